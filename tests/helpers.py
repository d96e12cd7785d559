"""What the tests share besides fixtures: running the commands, reading what they wrote.

The fixtures (a tiny digits run, an image folder) are in ``conftest.py``;
test modules import these helpers from here and never from each other.

A command runs either as a user runs it, a fresh Python process
(:func:`run`, :func:`train`), or in this process through the same
``main(argv)`` that the process calls (:func:`here`, :func:`train_here`).
The second is for the many cases whose proof is the command's answer to
bad input (one line, exit status 2, nothing written): the line and the
status come from ``main(argv)`` either way, and a process start costs
seconds. What only a real process shows (signals, exit codes set by the
interpreter, ``flock`` between processes, the start-up hook) keeps a real
process, and each command keeps at least one real-process bad-input case.
"""

from __future__ import annotations

import contextlib
import io
import struct
import subprocess
import sys
import warnings
from pathlib import Path

import chainer
import chainer.functions as F
import numpy
import pytest
from chainer import training
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
# Tiny nets (widths 4, 8) and 6 iterations keep each run at about 2 s on a CPU.
FAST = (
    '--base_width 4 --batchsize 8 --iteration 6 --snapshot_interval 3 --display_interval 3 '
    '--preview_interval 3 --eval_interval 3 --no_progress'
)
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def run(script, *args, timeout=300):
    """``python examples/SCRIPT ARGS`` in a fresh process: a CompletedProcess."""
    return subprocess.run(
        [sys.executable, f'examples/{script}', *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def train(*args):
    """``examples/train_dcgan.py`` with the tiny settings of :data:`FAST`, in a fresh process."""
    return run('train_dcgan.py', *FAST.split(), *args)


def _mains():
    """examples/SCRIPT (or gan-trainer) -> ``argv -> exit status``: what its ``__main__`` calls."""
    from gan_trainer import cli
    from gan_trainer.cli import generate, interpolate, tools
    from gan_trainer.cli import train as train_command

    return {
        'gan-trainer': cli.main,
        'train_dcgan.py': lambda argv: train_command.main(argv, prog='train_dcgan.py'),
        'generate.py': lambda argv: generate.main(argv, prog='generate.py'),
        'interpolate.py': lambda argv: interpolate.main(argv, prog='interpolate.py'),
        'make_gif.py': lambda argv: tools.main('gif', argv, prog='make_gif.py'),
        'plot_log.py': lambda argv: tools.main('plot', argv, prog='plot_log.py'),
        'export_onnx.py': lambda argv: tools.main('export', argv, prog='export_onnx.py'),
    }


# Python's own warning filters (``python -W`` unset): what a fresh process
# starts with, where pytest's would show deprecations a user never sees.
_PYTHON_FILTERS = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


def here(script, *args):
    """``examples/SCRIPT ARGS`` in this process, through the ``main(argv)`` the script calls.

    Returns a CompletedProcess like :func:`run`'s: the exit status
    (``sys.exit`` from argparse included), and stdout and stderr as the
    command printed them, with the warning filters of a fresh interpreter.
    Chainer's global configuration (a run sets its dtype) is put back.
    """
    argv = [str(a) for a in args]
    stdout, stderr = io.StringIO(), io.StringIO()
    config = dict(vars(chainer.global_config))
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(stdout), \
                contextlib.redirect_stderr(stderr):
            warnings.resetwarnings()
            for category in _PYTHON_FILTERS:
                warnings.simplefilter('ignore', category)
            try:
                status = _mains()[script](argv)
            except SystemExit as e:
                status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        vars(chainer.global_config).clear()
        vars(chainer.global_config).update(config)
    return subprocess.CompletedProcess([script, *argv], status, stdout.getvalue(),
                                       stderr.getvalue())


def script_here(main, *args):
    """A benchmark script's ``main(argv)`` in this process: a CompletedProcess of its answer.

    For the bad-flag cases of scripts that are not commands (``recipes.py``,
    ``compare.py``): the exit status (argparse's ``sys.exit`` included) and
    what the script printed.
    """
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            status = main([str(a) for a in args])
        except SystemExit as e:
            status = e.code
    return subprocess.CompletedProcess(args, status, stdout.getvalue(), stderr.getvalue())


def gan_trainer(*args):
    """``gan-trainer ARGS`` as installed, in a fresh process (``python -m gan_trainer.cli``)."""
    return subprocess.run([sys.executable, '-m', 'gan_trainer.cli', *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=300, check=False)


def in_this_and_one_real_process(cases, real_case, here_command, process_command):
    """pytest parameters ``(case, command)``: every case in this process, one also in a real one.

    The real-process case (marked ``process``) proves that the process
    prints what ``main(argv)`` returns and exits with it; the others prove
    the command's answer to each input, which is the same in both.
    """
    assert real_case in cases, real_case
    return [pytest.param(case, here_command, id=case) for case in cases] + [
        pytest.param(real_case, process_command, id=f'{real_case}-process',
                     marks=pytest.mark.process)]


def train_here(*args):
    """:func:`train` in this process (see :func:`here`)."""
    return here('train_dcgan.py', *FAST.split(), *args)


def write_image_folder(root, per_class, side, seed=0):
    """Random ``side`` x ``side`` RGB PNGs, ``per_class`` in each of ``cats/`` and ``dogs/``."""
    rng = numpy.random.RandomState(seed)
    for name in ('cats', 'dogs'):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.randint(0, 256, (side, side, 3)).astype(numpy.uint8)
            Image.fromarray(pixels).save(root / name / f'{i}.png')
    return root


def succeeded(proc):
    assert proc.returncode == 0, f'exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}'
    return proc


def assert_one_line_error(proc, names, prog):
    """Exit status 2 and one line on stderr, ``PROG: error: ...``, that contains ``names``."""
    assert proc.returncode == 2, f'exit {proc.returncode}\n{proc.stderr}'
    assert 'Traceback' not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].strip(), proc.stderr
    assert lines[0].startswith(f'{prog}: error: ')
    assert str(names) in lines[0]


def read_png(path):
    assert Path(path).read_bytes()[:8] == PNG_SIGNATURE, f'{path} is not a PNG'
    with Image.open(path) as img:
        return numpy.asarray(img)


def grid_side(n, side):
    return n * side + (n + 1) * 2  # padding 2 around and between cells


def weights(path):
    with numpy.load(path) as f:
        return {k: f[k] for k in f.files}


def input_gradient_penalty(y, x):
    """A gradient penalty through the function that made ``y`` from ``x``: the value of
    ``sum((d sum(tanh(y)) / dx) ** 2)``, backpropagated (double backprop) into every
    variable that made ``y``, whose ``.grad`` the caller then compares."""
    gx, = chainer.grad([F.sum(F.tanh(y))], [x], enable_double_backprop=True)
    penalty = F.sum(gx * gx)
    penalty.backward()
    return penalty.array


def assert_same_weights(a, b):
    wa, wb = weights(a), weights(b)
    assert sorted(wa) == sorted(wb)
    for key in wa:
        numpy.testing.assert_array_equal(wa[key], wb[key], err_msg=key)


def make_trainer(out, *, gen=None, channels=1, stop=4):
    """A Chainer Trainer of the tiny nets on fake images, ``stop`` iterations, into ``out``."""
    from gan_trainer import GANUpdater
    from gan_trainer.testing import fake_images, tiny_discriminator, tiny_generator

    gen = gen or tiny_generator(channels=channels)
    dis = tiny_discriminator(channels=channels)
    opts = {}
    for name, net in (('gen', gen), ('dis', dis)):
        opts[name] = chainer.optimizers.Adam(1e-2, beta1=0.5)
        opts[name].setup(net)
    it = chainer.iterators.SerialIterator(fake_images(40, channels=channels), 4, shuffle=False)
    updater = GANUpdater(it, opts, device=-1, seed=0)
    return training.Trainer(updater, (stop, 'iteration'), out=str(out))


def read_events(folder):
    """Every TensorBoard Event in the TFRecord files of ``folder`` (length, crc, data, crc each)."""
    event_pb2 = pytest.importorskip('tensorboardX.proto.event_pb2')
    events = []
    for path in sorted(Path(folder).glob('events.out.tfevents.*')):
        data = path.read_bytes()
        pos = 0
        while pos < len(data):
            (length,) = struct.unpack('<Q', data[pos : pos + 8])
            event = event_pb2.Event()
            event.ParseFromString(data[pos + 12 : pos + 12 + length])
            events.append(event)
            pos += 12 + length + 4
    return events


def scalars(events):
    """{tag: [(step, value), ...]} of the scalar summaries."""
    found = {}
    for event in events:
        for value in event.summary.value:
            if value.HasField('simple_value'):
                found.setdefault(value.tag, []).append((event.step, value.simple_value))
    return found


def images(events):
    """[(tag, step, pixels)] of the image summaries, decoded."""
    found = []
    for event in events:
        for value in event.summary.value:
            if value.HasField('image'):
                with Image.open(io.BytesIO(value.image.encoded_image_string)) as img:
                    found.append((value.tag, event.step, numpy.asarray(img.convert('RGB'))))
    return found


def to_float(value) -> float:
    """A reported value (array or Variable, on any device) as a float."""
    return float(chainer.backends.cuda.to_cpu(getattr(value, 'array', value)))


def reported(updater):
    """Runs one ``updater.update()`` and returns what it reported, as floats."""
    reporter = chainer.Reporter()
    reporter.add_observer('gen', updater.gen)
    reporter.add_observer('dis', updater.dis)
    observation = {}
    with reporter.scope(observation):
        updater.update()
    return {key: to_float(value) for key, value in observation.items()}
