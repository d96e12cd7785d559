"""A resume is the same run: options from config.json, changes refused or asked for by name.

Issue 25.1. Every option declares what a resumed run may do with it
(``option(resume=...)``: free, ask, keep). These tests check the
declarations, the refusals and the recorded changes through the library
(``build_trainer``) and the command line (``parse_config``), that the free
options really leave the trained numbers alone, and, with real processes
and a real SIGINT, that the command a stopped run prints continues it bit
for bit.
"""

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy
import pytest
from helpers import write_image_folder

from gan_trainer import files
from gan_trainer.cli.train import continue_command, parse_config
from gan_trainer.datasets import Data
from gan_trainer.run import ConfigError, RunConfig, build_trainer, read_record
from gan_trainer.run.options import RESUME_RULES, declared, resume_rule
from gan_trainer.testing import fake_images

REPO = Path(__file__).resolve().parents[1]
TINY = {'base_width': 4, 'batchsize': 4, 'iteration': 4, 'snapshot_interval': 2,
        'display_interval': 2, 'preview_interval': 2, 'eval_interval': 2, 'progress': False}
DATA = Data.of(fake_images(16, channels=1, size=8, seed=1), fake_images(4, channels=1, size=8))

# ------------------------------------------------------------ the declarations

#: The options a resume may change freely: the end, the intervals, --keep,
#: logging, the device and where images are decoded. Listed here by hand so
#: that making another option free is a decision a test shows.
FREE = {'loaderjob', 'iteration', 'epoch', 'snapshot_interval', 'display_interval',
        'preview_interval', 'eval_interval', 'keep', 'fid_interval', 'out', 'resume',
        'allow_change', 'gpu', 'tf32', 'progress', 'tensorboard'}


def test_every_option_declares_what_a_resume_may_do_with_it():
    undeclared = [n for n, f in declared(RunConfig).items() if f.metadata['resume'] is None]
    assert undeclared == [], f'declare resume= on: {", ".join(undeclared)}'
    for name, field in declared(RunConfig).items():
        assert resume_rule(field) in RESUME_RULES
        if field.metadata['networks']:
            assert resume_rule(field) == 'keep', name
    free = {n for n, f in declared(RunConfig).items() if resume_rule(f) == 'free'}
    assert free == FREE


# --------------------------------------------------------- through the library


def _first_run(tmp_path, **options):
    out = tmp_path / 'run'
    build_trainer(RunConfig(out=str(out), **TINY, **options), data=DATA, log=None).run()
    return out


def _resume(out, **options):
    config = read_record(str(out)).config.replace(out=str(out), resume='auto', **options)
    return build_trainer(config, data=DATA, log=None)


@pytest.mark.parametrize('name, value, shown', [
    ('lr', 1e-3, '0.001'),
    ('loss', 'hinge', 'hinge'),
    ('n_dis', 2, '2'),
    ('seed', 7, '7'),
    ('batchsize', 8, '8'),
    ('beta1', 0.9, '0.9'),
    ('reuse_fakes', False, 'False'),
    ('preset', 'dcgan', 'dcgan'),
    ('fid_samples', 500, '500'),
])
def test_a_change_of_course_is_refused_naming_the_option_and_both_values(
        tmp_path, name, value, shown):
    out = _first_run(tmp_path)
    before = (out / files.CONFIG).read_bytes()
    old = getattr(read_record(str(out)).config, name)
    with pytest.raises(ConfigError) as refused:
        _resume(out, iteration=6, **{name: value})
    assert refused.value.option == name
    old = 'none' if old is None else old
    assert str(refused.value) == (
        f'{name}: is {shown}, but the run being resumed ({out}/snapshot_iter_4) has {old}: a '
        f'resume continues the same run; resume with its value, pass --allow_change {name} to '
        'change it from iteration 4 on, or start a new run in another --out')
    assert (out / files.CONFIG).read_bytes() == before
    assert not (out / 'snapshot_iter_6').exists()


def test_an_allowed_change_is_recorded_with_its_iteration_and_kept_by_later_resumes(tmp_path):
    out = _first_run(tmp_path)
    _resume(out, iteration=6, lr=1e-3, allow_change=('lr',)).run()
    record = json.loads((out / files.CONFIG).read_text())
    assert record['run']['lr'] == 1e-3 and record['run']['iteration'] == 6
    assert record['changes'] == [{'iteration': 4, 'option': 'lr', 'from': None, 'to': 1e-3}]
    # The next resume continues the changed run (nothing to allow) and may change more.
    _resume(out, iteration=8, n_dis=2, allow_change=('n_dis',)).run()
    record = read_record(str(out))
    assert record.config.lr == 1e-3 and record.config.n_dis == 2
    assert record.changes == (
        {'iteration': 4, 'option': 'lr', 'from': None, 'to': 1e-3},
        {'iteration': 6, 'option': 'n_dis', 'from': 1, 'to': 2})


@pytest.mark.parametrize('names, says', [
    (('widths',), 'widths shapes the networks, the data or the snapshots'),
    (('dataset',), 'dataset shapes the networks'),
    (('communicator',), 'communicator shapes'),
    (('learning_rate',), "'learning_rate' is not an option of a run"),
])
def test_allow_change_names_only_options_a_resume_can_change(names, says):
    with pytest.raises(ConfigError, match=says):
        RunConfig(resume='auto', allow_change=names)


def test_allow_change_is_for_a_resume():
    with pytest.raises(ConfigError, match='allow_change: is for a resumed run'):
        RunConfig(allow_change=('lr',))


def test_what_shapes_the_networks_cannot_change_even_when_asked(tmp_path):
    out = _first_run(tmp_path)
    with pytest.raises(ConfigError, match=r'^n_hidden: is 8, but the run being resumed .* has '
                                          r'100: resume with its value, or start a new run'):
        _resume(out, iteration=6, n_hidden=8)


def _weights(path):
    with numpy.load(path) as f:
        return {k: f[k] for k in f.files}


def test_the_free_options_leave_the_trained_numbers_as_they_were(tmp_path):
    straight = tmp_path / 'straight'
    build_trainer(RunConfig(out=str(straight), **dict(TINY, iteration=8)), data=DATA,
                  log=None).run()
    out = _first_run(tmp_path)
    free = {'iteration': 8, 'snapshot_interval': 3, 'display_interval': 1,
            'preview_interval': 5, 'eval_interval': 1, 'keep': 1, 'loaderjob': 0}
    _resume(out, **free).run()
    assert read_record(str(out)).changes == ()
    for net in ('gen', 'dis'):
        a, b = _weights(straight / f'{net}_iter_8.npz'), _weights(out / f'{net}_iter_8.npz')
        assert a.keys() == b.keys()
        for key in a:
            numpy.testing.assert_array_equal(a[key], b[key], err_msg=key)


# ---------------------------------------------------------- the command line


def _cli_run(tmp_path, *flags):
    out = tmp_path / 'cli run'
    argv = ['--base_width', '4', '--iteration', '2', '--snapshot_interval', '2',
            '--no_progress', '--out', str(out), *flags]
    build_trainer(parse_config(argv), log=None).run()
    return out


def test_resume_takes_every_option_from_the_runs_config_json(tmp_path):
    out = _cli_run(tmp_path, '--preset', 'dcgan', '-b', '8', '--lr', '0.001', '--seed', '3')
    recorded = read_record(str(out)).config
    resumed = parse_config(['--resume', 'auto', '--out', str(out)])
    assert resumed == recorded.replace(out=str(out), resume='auto')
    # Flags given with it change what they name (the end here), nothing else;
    # naming the run's own preset again changes nothing either.
    longer = parse_config(['--resume', 'auto', '--out', str(out), '--iteration', '9',
                           '--preset', 'dcgan'])
    assert longer == resumed.replace(iteration=9)
    # An explicit snapshot: the config.json beside it.
    explicit = parse_config(['--resume', str(out / 'snapshot_iter_2'), '--out', 'elsewhere'])
    assert explicit == recorded.replace(out='elsewhere', resume=str(out / 'snapshot_iter_2'))


def test_allow_change_on_the_command_line_takes_names_and_repeats(tmp_path):
    out = _cli_run(tmp_path)
    config = parse_config(['--resume', 'auto', '--out', str(out), '--allow_change', 'lr,n_dis',
                           '--allow_change', 'seed'])
    assert config.allow_change == ('lr', 'n_dis', 'seed')


def test_the_continue_command_names_what_config_json_does_not_keep():
    config = RunConfig(out="my run's out", gpu=1, progress=False, tf32=False, lr=0.5)
    assert continue_command(config, 'gan-trainer train') == (
        'gan-trainer train --resume auto --out \'my run\'"\'"\'s out\' --gpu 1 --no-tf32 '
        '--no_progress')
    assert continue_command(RunConfig(), 'gan-trainer train', processes=2) == (
        'mpiexec -n 2 gan-trainer train --resume auto --out result')


# ------------------------------------ a real Ctrl-C, and the printed command verbatim


@pytest.mark.slow
@pytest.mark.process
def test_the_printed_command_continues_a_stopped_run_bit_for_bit(tmp_path):
    pets = write_image_folder(tmp_path / 'pets', 8, 8)
    # Not one default among what decides the numbers: a folder, its size, a
    # preset, a batch, a learning rate, loader processes, an odd --out.
    flags = ['--dataset', str(pets), '--size', '8', '--preset', 'dcgan', '--base_width', '4',
             '-b', '4', '--lr', '0.0005', '--seed', '5', '--iteration', '400', '-j', '2',
             '--snapshot_interval', '150', '--display_interval', '50', '--eval_interval', '200',
             '--preview_interval', '400', '--no_progress']
    bin_dir = os.path.dirname(sys.executable)
    env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ['PATH'])

    def start(out):
        return subprocess.Popen(['gan-trainer', 'train', *flags, '--out', str(out)], cwd=tmp_path,
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)

    straight = start(tmp_path / 'straight')  # alongside, on the other core
    stopped_out = tmp_path / "a stopped run's folder"
    stopped = start(stopped_out)
    try:
        deadline = time.monotonic() + 120
        while not (stopped_out / files.CONFIG).exists():
            assert stopped.poll() is None, stopped.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(1.0)
        os.killpg(stopped.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole group
        _, stderr = stopped.communicate(timeout=120)
    finally:
        if stopped.poll() is None:
            os.killpg(stopped.pid, signal.SIGKILL)
            stopped.communicate()
    assert stopped.returncode == 130, stderr
    last = stderr.splitlines()[-1]
    iteration = int(last.split(' at iteration ')[1].split(';')[0])
    assert 0 < iteration < 400, last
    printed = last.split('; continue with: ')[1]
    assert printed == ('gan-trainer train --resume auto --out '
                       f'{shlex.quote(str(stopped_out))} --no_progress')
    resumed = subprocess.run(printed, shell=True, cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=300, check=False)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.startswith(
        f'gan-trainer train: resuming from {stopped_out}/snapshot_iter_{iteration}\n')
    assert straight.wait(timeout=300) == 0, straight.stderr.read()
    straight.stderr.close()
    for name in ('gen_iter_400.npz', 'dis_iter_400.npz', 'snapshot_iter_400'):
        a, b = _weights(tmp_path / 'straight' / name), _weights(stopped_out / name)
        assert a.keys() == b.keys()
        for key in a:
            if 'elapsed_time' in key or 'LogReport' in key or 'ProgressBar' in key:
                continue  # clocks and the log's own timing
            numpy.testing.assert_array_equal(a[key], b[key], err_msg=f'{name}: {key}')
    logs = [json.loads((out / 'log').read_text()) for out in (tmp_path / 'straight', stopped_out)]
    for entries in logs:
        for entry in entries:
            entry.pop('elapsed_time')
    assert logs[0] == logs[1]
    record = read_record(str(stopped_out))
    assert record.config == read_record(str(tmp_path / 'straight')).config
    assert record.changes == ()
