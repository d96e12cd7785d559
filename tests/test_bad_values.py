"""One line for every bad value, at each of the three doors a run's values come in by.

Issue 25.4: ``RunConfig``, a run's ``config.json`` and ``build_trainer``'s
arguments each took some values (None, infinities, 1e30, wrong types) that
failed later with a traceback, or not at all. Each case below names the
door, the value, and the start of the one line that must come out.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import chainer
import chainer.functions as F
import chainer.links as L
import numpy
import pytest
from PIL import Image

from gan_trainer import files
from gan_trainer.cli import main as gan_trainer
from gan_trainer.cli.train import parse_config
from gan_trainer.datasets import Data, DatasetError, SkippedFilesWarning, load_dataset
from gan_trainer.run import (
    ConfigError,
    RunConfig,
    RunRecord,
    SnapshotError,
    build_trainer,
    load_generator,
)
from gan_trainer.testing import fake_images

REPO = Path(__file__).resolve().parents[1]
TINY = {'base_width': 4, 'batchsize': 4, 'iteration': 2, 'snapshot_interval': 2,
        'display_interval': 2, 'preview_interval': 2, 'eval_interval': 2, 'progress': False}
DATA = Data.of(fake_images(16, channels=1, size=8), fake_images(4, channels=1, size=8))
NAN, INF = float('nan'), float('inf')

# ---------------------------------------------------------------- door 1: RunConfig

CONFIG_CASES = {
    'n_hidden None': ({'n_hidden': None}, ('n_hidden: needs a value (leave it out for the '
                                          'default, 100), got None')),
    'iteration None': ({'iteration': None}, 'iteration: needs a value'),
    'out None': ({'out': None}, 'out: needs a value'),
    'dataset None': ({'dataset': None}, ("dataset: needs a value (leave it out for the default, "
                                        "'digits'), got None")),
    'iteration inf': ({'iteration': INF}, 'iteration: expected an integer, got inf'),
    'iteration 1e30': ({'iteration': 10**30}, 'iteration: must fit a 64-bit integer, got 1'),
    'seed -1': ({'seed': -1}, 'seed: must be in [0, 4294967296), got -1'),
    'lr nan': ({'lr': NAN}, 'lr: must be a number above 0, got nan'),
    'penalty_weight inf': ({'penalty_weight': INF}, 'penalty_weight: must be a finite number'),
    'dis_noise inf': ({'dis_noise': INF}, 'dis_noise: must be a finite number, got inf'),
    'ada_speed nan': ({'ada_speed': NAN}, 'ada_speed: must be a number above 0, got nan'),
    'real_label nan': ({'real_label': (NAN,)}, 'real_label: must be a finite number, got nan'),
    'batchsize text': ({'batchsize': '8'}, "batchsize: expected an integer, got '8'"),
    'keep bool': ({'keep': True}, 'keep: expected an integer, got True'),
    'gray text': ({'gray': 'yes'}, "gray: expected true or false, got 'yes'"),
    'widths text': ({'widths': 'a,b'}, 'widths: expected a list of positive integers'),
    'widths zero': ({'widths': (0, 4)}, 'widths: expected a list of positive integers'),
    'out empty': ({'out': '  '}, 'out: must not be empty'),
    'dataset NUL': ({'dataset': 'a\x00b'}, 'dataset: must not hold a NUL character'),
    'ema 1': ({'ema': 1.0}, 'ema: must be in (0, 1), got 1.0'),
    'loss unknown': ({'loss': 'nope'}, 'loss: must be one of '),
    'allow_change unknown': ({'resume': 'auto', 'allow_change': ('lr2',)},
                             "allow_change: 'lr2' is not an option of a run"),
}


@pytest.mark.parametrize('case', list(CONFIG_CASES))
def test_runconfig_refuses_a_bad_value_in_one_line_naming_the_option(case):
    values, says = CONFIG_CASES[case]
    with pytest.raises(ConfigError) as refused:
        RunConfig(**values)
    assert str(refused.value).startswith(says), str(refused.value)
    assert '\n' not in str(refused.value)


# ------------------------------------------------------------ door 2: config.json


def _record():
    gen = {'arch': 'dcgan', 'size': 8, 'channels': 1, 'n_hidden': 100, 'base_width': 4}
    return RunRecord.of(RunConfig(**TINY), gen, dict(gen)).to_json()


def _edit(change):
    data = _record()
    change(data)
    return json.dumps(data)


JSON_CASES = {
    'run n_hidden null': (lambda d: d['run'].update(n_hidden=None),
                          'n_hidden: needs a value'),
    'run iteration 1e+30': (lambda d: d['run'].update(iteration=1e30),
                            'iteration: must fit a 64-bit integer'),
    'run lr NaN': (lambda d: d['run'].update(lr=NAN), 'lr: must be a number above 0, got nan'),
    'run widths dict': (lambda d: d['run'].update(widths={'a': 1}),
                        'widths: expected a list of positive integers'),
    'run a list': (lambda d: d.update(run=[]), 'run must be an object of options, got list'),
    'run unknown key': (lambda d: d['run'].update(learning_rate=1),
                        'learning_rate: is not an option of a run'),
    'classes a number': (lambda d: d.update(classes=5), 'classes must be a list, got 5'),
    'z_dist unknown': (lambda d: d.update(z_dist='banana'), 'z_dist must be one of '),
    'ema 2': (lambda d: d.update(ema=2), 'ema must be a decay in (0, 1) or null, got 2'),
    'data a list': (lambda d: d.update(data=[1]), 'data must be an object, got [1]'),
    'changes of numbers': (lambda d: d.update(changes=[1]),
                           'changes must be a list of objects with an option and an iteration'),
    'version text': (lambda d: d.update(version='2'), "has config version '2'"),
    'gen text': (lambda d: d.update(gen='x'), 'is not the config.json of a gan_trainer run'),
}


@pytest.mark.parametrize('case', list(JSON_CASES))
def test_a_bad_config_json_is_one_line_naming_the_file(case, tmp_path):
    change, says = JSON_CASES[case]
    path = tmp_path / files.CONFIG
    path.write_text(_edit(change))
    with pytest.raises(SnapshotError) as refused:
        RunRecord.from_json(json.loads(path.read_text()), where=str(path))
    message = str(refused.value)
    assert message.startswith(f"'{path}'") and says in message, message
    assert '\n' not in message


@pytest.mark.parametrize('case', ['run n_hidden null', 'run iteration 1e+30', 'ema 2'])
def test_resuming_from_a_bad_config_json_is_one_line_and_status_2(case, tmp_path, capsys):
    out = tmp_path / 'run'
    out.mkdir()
    (out / files.CONFIG).write_text(_edit(JSON_CASES[case][0]))
    with pytest.raises(SystemExit) as ended:
        parse_config(['--resume', 'auto', '--out', str(out)], prog='gan-trainer train')
    assert ended.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"gan-trainer train: error: '{out / files.CONFIG}': ")
    assert JSON_CASES[case][1] in line


# ------------------------------------------------------ door 3: build_trainer's arguments


class NoZ(chainer.Chain):
    """A generator that does not say what z it takes."""

    def forward(self, z):
        return z


class TwoLogits(chainer.Chain):
    """A D that returns (B, 2): two logits per image, against the contract."""

    def __init__(self):
        super().__init__()
        with self.init_scope():
            self.l1 = L.Linear(64, 2)

    def forward(self, x):
        return self.l1(F.reshape(x, (len(x), -1)))


class WrongSize(chainer.Chain):
    """A generator of 16x16 images for data of 8x8."""

    n_hidden = 4

    def __init__(self):
        super().__init__()
        with self.init_scope():
            self.l1 = L.Linear(4, 256)

    def forward(self, z):
        return F.reshape(self.l1(z), (-1, 1, 16, 16))


class SmallGen(WrongSize):
    def __init__(self):
        chainer.Chain.__init__(self)
        with self.init_scope():
            self.l1 = L.Linear(4, 64)

    def forward(self, z):
        return F.tanh(F.reshape(self.l1(z), (-1, 1, 8, 8)))


class OneLogit(TwoLogits):
    def __init__(self):
        chainer.Chain.__init__(self)
        with self.init_scope():
            self.l1 = L.Linear(64, 1)


ARGUMENT_CASES = {
    'config a string': (lambda out: (('str',), {}), TypeError,
                        "build_trainer: config must be a gan_trainer.run.RunConfig, got str 'str'"),
    'data a list': (lambda out: ((RunConfig(out=out),), {'data': [1, 2, 3]}), TypeError,
                    ('build_trainer: data must be a gan_trainer.datasets.Data (wrap your datasets '
                    'with Data.of(train, test)), got list [1, 2, 3]')),
    'gen a number': (lambda out: ((RunConfig(out=out),), {'gen': 42, 'dis': 42}), TypeError,
                     'build_trainer: gen must be a chainer.Link (a Chain of your own), got int 42'),
    'gen without dis': (lambda out: ((RunConfig(out=out),), {'gen': SmallGen()}), ValueError,
                        'build_trainer needs both gen and dis, or neither'),
    'gen without z': (lambda out: ((RunConfig(out=out),), {'gen': NoZ(), 'dis': OneLogit()}),
                      ValueError, ('build_trainer: gen (NoZ) needs an n_hidden attribute (the '
                                  'dimension of z) or a make_hidden(batchsize) method')),
    'log a number': (lambda out: ((RunConfig(out=out),), {'log': 5}), TypeError,
                     'build_trainer: log must be a function of one line, or None, got int 5'),
    'comm an object': (lambda out: ((RunConfig(out=out),), {'comm': 'mpi'}), TypeError,
                       "build_trainer: comm must be a ChainerMN communicator, got str 'mpi'"),
    'data empty': (lambda out: ((RunConfig(out=out),), {'data': Data('x', [], [1], (1, 8, 8))}),
                   DatasetError, 'build_trainer: data.train is empty'),
    'data shape 2-D': (lambda out: ((RunConfig(out=out),),
                                    {'data': Data('x', DATA.train, DATA.test, (8, 8))}),
                       DatasetError, ('build_trainer: data.shape must be (C, H, W) of positive '
                                     'integers, got (8, 8)')),
}


@pytest.mark.parametrize('case', list(ARGUMENT_CASES))
def test_build_trainer_refuses_a_bad_argument_in_one_line_and_writes_nothing(case, tmp_path):
    make, error, says = ARGUMENT_CASES[case]
    out = str(tmp_path / 'out')
    args, kwargs = make(out)
    with pytest.raises(error) as refused:
        build_trainer(*args, **kwargs)
    assert str(refused.value) == says
    assert not os.path.exists(out) or os.listdir(out) == []


@pytest.mark.parametrize('gen, dis, says', [
    (SmallGen, TwoLogits, ('the discriminator (TwoLogits) returned outputs of shape (4, 2) for '
                          '4 images: it must return one number per image, (4,) or (4, 1)')),
    (WrongSize, OneLogit, ("the generator (WrongSize) makes images of shape (1, 16, 16), and the "
                          "data's are (1, 8, 8)")),
])
def test_networks_that_break_the_contract_stop_at_the_first_step_in_one_line(
        tmp_path, gen, dis, says):
    trainer = build_trainer(RunConfig(out=str(tmp_path / 'out'), **TINY), gen=gen(), dis=dis(),
                            data=DATA, log=None)
    with pytest.raises(ValueError) as refused:
        trainer.run()
    assert str(refused.value) == says
    assert not (tmp_path / 'out' / 'snapshot_iter_1').exists()


def _folder(root, *names):
    root.mkdir()
    rng = numpy.random.RandomState(0)
    for name in names:
        Image.fromarray(rng.randint(0, 256, (8, 8, 3)).astype(numpy.uint8)).save(root / name)
    return root


def test_a_fifo_in_an_image_folder_is_skipped_without_blocking(tmp_path):
    root = _folder(tmp_path / 'pics', 'a.png', 'b.png')
    os.mkfifo(root / 'c.png')  # no writer: opening it for reading would block for ever
    with pytest.warns(SkippedFilesWarning, match=r"c\.png \(OSError: \[Errno 22\] not a regular "
                                                 r"file \(a FIFO\)\)"):
        data = load_dataset(str(root), size=8)
    assert len(data.train) + len(data.test) == 2


def test_a_folder_of_nothing_but_a_fifo_is_one_line(tmp_path):
    root = tmp_path / 'pics'
    root.mkdir()
    os.mkfifo(root / 'c.png')
    with pytest.raises(
            DatasetError, match=r"none of the 1 image files in dataset folder .* could be "
                                r"decoded .*not a regular file \(a FIFO\)"):
        load_dataset(str(root), size=8)


# ------------------------------------------------------- a tool given NaN weights


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp('bad') / 'run'
    build_trainer(RunConfig(out=str(out), **TINY), data=DATA, log=None).run()
    return out


@pytest.mark.parametrize('value, word', [(NAN, 'NaN'), (INF, 'infinite')])
def test_a_tool_refuses_a_generator_file_with_nan_weights_in_one_line(
        tiny_run, tmp_path, capsys, value, word):
    out = tmp_path / 'run'
    shutil.copytree(tiny_run, out)
    path = out / 'gen_iter_2.npz'
    with numpy.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    key = min(k for k in arrays if k.endswith('/W'))
    arrays[key] = arrays[key].copy()
    arrays[key].flat[3] = value
    numpy.savez(path, **arrays)
    with pytest.raises(SnapshotError, match=f"holds {word} values"):
        load_generator(str(path))
    status = gan_trainer(['generate', str(path), '--out', str(tmp_path / 'g.png')])
    assert status == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"gan-trainer generate: error: '{path}' holds {word} values "
                           f'(parameter gen/{key}')
    assert line.endswith('the run diverged before it was saved; use an earlier snapshot')
    assert not (tmp_path / 'g.png').exists()


# --------------------------------------------------------- a tool on a full disk

def _unshare_works():
    if not hasattr(os, 'geteuid') or shutil.which('unshare') is None:
        return False
    probe = subprocess.run(['unshare', '-m', 'sh', '-c', 'mount -t tmpfs tmpfs /mnt'],
                           capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.process
@pytest.mark.skipif(not _unshare_works(), reason='needs mount namespaces (unshare -m)')
@pytest.mark.parametrize('tool', ['generate', 'interpolate', 'gif', 'plot', 'export'])
def test_a_tool_on_a_full_disk_exits_4_in_one_line_and_leaves_no_empty_file(
        tiny_run, tmp_path, tool):
    if tool == 'export':
        pytest.importorskip('onnx_chainer')
    disk = tmp_path / 'disk'
    disk.mkdir()
    gen = str(tiny_run / 'gen_iter_2.npz')
    target = str(disk / ('out.onnx' if tool == 'export' else 'out.png'))
    args = {'generate': [gen, '--rows', '20', '--cols', '20'],
            'interpolate': [gen, '--rows', '20', '--steps', '20'],
            'gif': [str(tiny_run)], 'plot': [str(tiny_run)], 'export': [gen]}[tool]
    script = (f'mount -t tmpfs -o size=64k tmpfs {disk} && '
              f'head -c 60000 /dev/zero > {disk}/ballast; '
              f'"$@"; echo "exit $?"; ls -a {disk}')
    command = [sys.executable, '-m', 'gan_trainer.cli', tool, *args, '--out', target]
    proc = subprocess.run(['unshare', '-m', 'sh', '-c', script, 'sh', *command], cwd=REPO,
                          capture_output=True, text=True, timeout=300, check=False)
    lines = proc.stdout.splitlines()
    assert 'exit 4' in lines, (proc.stdout, proc.stderr)
    errors = proc.stderr.splitlines()
    assert len(errors) == 1 and errors[0].startswith(f'gan-trainer {tool}: error: '), errors
    assert 'No space left on device' in errors[0]
    # Only the ballast is left: no empty or half-written output, no temporary.
    assert sorted(lines[lines.index('exit 4') + 1:]) == ['.', '..', 'ballast']


def test_the_table_holds_at_least_thirty_cases_across_the_three_doors():
    assert len(CONFIG_CASES) + len(JSON_CASES) + len(ARGUMENT_CASES) >= 30
    assert min(len(CONFIG_CASES), len(JSON_CASES), len(ARGUMENT_CASES)) >= 5
