"""Fault injection: the run under a second run, a full disk, signals, bad resumes, huge flags.

Each case is what a user does to ``examples/train_dcgan.py`` (tiny nets, a
few iterations), and each checks the promise README's "Never lose a run"
makes: one line on stderr, a documented exit status, and no file of the run
lost or left broken. What needs a process of its own (a second run on a
locked folder, signals, kill -9, a full disk in a mount namespace) runs in
one; refusals of bad input run through the command's ``main(argv)`` in this
process (helpers.here), which prints the same line and returns the same
status.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy
import pytest
from helpers import (
    FAST,
    REPO,
    assert_one_line_error,
    here,
    succeeded,
    train,
    train_here,
    write_image_folder,
)

PROG = 'train_dcgan.py'


def start(*args, **kwargs):
    """The training script in the background, in its own process group.

    Killed, with its group, when the test ends (see :func:`_kill_started`).
    """
    proc = subprocess.Popen(
        [sys.executable, 'examples/train_dcgan.py', *FAST.split(), *map(str, args)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, **kwargs)
    _STARTED.append(proc)
    return proc


_STARTED = []


@pytest.fixture(autouse=True)
def _kill_started():
    """No process of a failed (or timed-out) test outlives it."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.communicate()


def wait_for(path, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f'{path} did not appear'
        time.sleep(0.01)


def group_is_gone(pgid, timeout=10):
    """Whether every process of the group has ended (waiting up to ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def snapshot_names(out):
    return sorted(p.name for p in out.iterdir() if p.name.startswith('snapshot_iter_'))


def finite(path):
    with numpy.load(path) as f:
        return all(numpy.isfinite(f[k]).all() for k in f.files if f[k].dtype.kind == 'f')


@pytest.fixture(scope='module')
def pets8(tmp_path_factory):
    """16 random 8x8 PNGs in two class folders, none broken (so stderr holds only the run's lines)."""
    return write_image_folder(tmp_path_factory.mktemp('faults') / 'pets', 8, 8)


# ------------------------------------------------------- fault 2: two runs, one folder


@pytest.mark.process
def test_a_second_run_on_a_folder_in_use_fails_at_once_naming_the_holder(tmp_path):
    out = tmp_path / 'result'
    first = start('--iteration', 400, '--snapshot_interval', 400, '--out', out)
    try:
        wait_for(out / 'config.json', first)  # past its checks: training
        second = train('--iteration', 4, '--out', out)
        assert_one_line_error(second, f"output folder '{out}' is in use by another run "
                                      f'(process {first.pid} on ', PROG)
        assert first.poll() is None  # the first run goes on, untouched
    finally:
        first.kill()
        first.communicate()
    # kill -9 released the lock with the process: the folder can be resumed.
    succeeded(train('--iteration', 2, '--resume', 'auto', '--out', out))


# ------------------------------------------- fault 3: a failed resume writes nothing


def test_a_refused_resume_leaves_config_json_as_it_was(digits_run, tmp_path):
    out = tmp_path / 'result'
    shutil.copytree(digits_run[0], out)
    before = (out / 'config.json').read_bytes()
    proc = train_here('--widths', '8,16', '--iteration', 9, '--resume', 'auto', '--out', out)
    assert_one_line_error(proc, '--widths: gives D the widths 8,16, but the run being resumed '
                                f'({out}/snapshot_iter_6) has 4,8', PROG)
    assert (out / 'config.json').read_bytes() == before
    succeeded(here('generate.py', out / 'gen_iter_6.npz', '--out', tmp_path / 'g.png'))


# ------------------------------------------------------------ fault 4: a full disk

FULL_DISK = """
set -e
mount -t tmpfs -o size=3m tmpfs "$1"
shift
"$@" --out "$OUT/result" --snapshot_interval 1 --keep 100 --iteration 40 > "$LOG.1" 2>&1 || echo "exit $?" >> "$LOG.1"
"$@" --out "$OUT/result" --snapshot_interval 1 --keep 100 --iteration 40 --resume auto > "$LOG.2" 2>&1 || echo "exit $?" >> "$LOG.2"
ls "$OUT/result" > "$LOG.ls"
"""


def full_disk_available():
    if shutil.which('unshare') is None:
        return False
    probe = subprocess.run(['unshare', '-m', 'sh', '-c', 'mount -t tmpfs -o size=1m tmpfs /mnt'],
                           capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.process
@pytest.mark.skipif(not full_disk_available(),
                    reason='needs mount namespaces (unshare -m) for a small tmpfs')
def test_a_full_disk_is_one_line_with_status_4_and_the_snapshots_stay_resumable(tmp_path):
    disk, logs = tmp_path / 'disk', tmp_path / 'log'
    disk.mkdir()
    # A private mount namespace: the 3 MB disk exists for these two runs only.
    command = ['unshare', '-m', 'sh', '-c', FULL_DISK, 'sh', str(disk), sys.executable,
               'examples/train_dcgan.py', *FAST.split()]
    env = dict(os.environ, OUT=str(disk), LOG=str(logs))
    subprocess.run(command, cwd=REPO, env=env, check=True, timeout=600)
    for n in (1, 2):  # the run, then resuming in place on the still-full disk
        lines = (tmp_path / f'log.{n}').read_text().splitlines()
        assert lines[-1] == 'exit 4', lines
        errors = [line for line in lines if line.startswith(f'{PROG}: error: ')]
        assert len(errors) == 1 and not any('Traceback' in line for line in lines), lines
        assert 'No space left on device' in errors[0]
        assert 'the newest complete snapshot is ' in errors[0] or 'cannot be written' in (
            errors[0])
    assert (tmp_path / 'log.1').read_text().count('could not write ') == 1


# ------------------------------------------------------------ fault 5: signals


@pytest.mark.process
@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_at_the_iteration_with_a_snapshot_and_one_line(tmp_path, signum,
                                                                      pets8):
    out = tmp_path / 'result'
    # Loader processes too: Ctrl-C reaches the whole process group.
    proc = start('--dataset', pets8, '--size', 8, '--loaderjob', 2, '--iteration', 2000,
                 '--snapshot_interval', 1000, '--out', out)
    wait_for(out / 'config.json', proc)
    time.sleep(1.0)  # some iterations in, no regular snapshot yet
    os.killpg(proc.pid, signum)  # as a terminal's Ctrl-C (or a cluster) does
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, stderr
    assert 'Traceback' not in stderr
    lines = stderr.splitlines()
    name = signal.Signals(signum).name
    assert lines[0] == (f'{PROG}: warning: {name}: stopping after this iteration and saving it '
                        '(send it again to stop at once)')
    [snapshot] = snapshot_names(out)
    n = int(snapshot.split('_')[-1])
    # (--no_progress: config.json does not keep it, so the command says it again.)
    again = f'{sys.executable} examples/train_dcgan.py --resume auto --out {out} --no_progress'
    assert lines[-1] == (f'{PROG}: stopped by {name} at iteration {n}; snapshot: '
                         f'{out}/{snapshot}; continue with: {again}')
    assert len(lines) == 2
    assert (out / f'gen_iter_{n}.npz').exists() and (out / 'training.gif').exists()
    assert group_is_gone(proc.pid)  # no loader process outlives the run
    resumed = succeeded(train('--dataset', pets8, '--size', 8, '--iteration', n + 2,
                              '--snapshot_interval', 1000, '--resume', 'auto', '--out', out))
    assert resumed.stdout.startswith(f'{PROG}: resuming from {out}/{snapshot}\n')


@pytest.mark.process
def test_a_second_ctrl_c_stops_at_once(tmp_path):
    out = tmp_path / 'result'
    # Iterations of a second or so, so that the second Ctrl-C comes mid-way.
    proc = start('--size', 64, '--base_width', 64, '--batchsize', 64, '--iteration', 1000,
                 '--snapshot_interval', 1000, '--out', out)
    wait_for(out / 'config.json', proc)
    # config.json is written just before the trainer installs its handlers:
    # a SIGINT in between meets Python's own (CI's Python 3.10 stack once
    # sent it there). A second later training has started, as above.
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGINT)
    assert 'stopping after this iteration' in proc.stderr.readline()
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and 'Traceback' not in stderr, stderr
    assert stderr.splitlines()[-1].startswith(
        f'{PROG}: stopped at once by a second SIGINT at iteration ')


@pytest.mark.process
def test_kill_9_leaves_no_loader_process_behind(tmp_path, pets8):
    out = tmp_path / 'result'
    proc = start('--dataset', pets8, '--size', 8, '--loaderjob', 2, '--iteration', 2000,
                 '--out', out)
    wait_for(out / 'config.json', proc)
    time.sleep(0.5)
    proc.kill()
    proc.communicate()
    assert group_is_gone(proc.pid)


# ------------------------------------------------------------ fault 6: memory


@pytest.mark.parametrize('args, names', [
    (['--size', 100000], '--size 100000'),
    (['--batchsize', 10**7, '--size', 64], '--batchsize 10000000'),
    (['--fid_interval', 3, '--fid_samples', 10**9], '--fid_samples 1000000000'),
])
def test_a_run_that_cannot_fit_in_memory_is_refused_at_once(tmp_path, args, names):
    began = time.monotonic()
    proc = train_here('--out', tmp_path / 'result', *args)
    assert proc.returncode == 4, proc.stderr
    [line] = proc.stderr.splitlines()
    assert line.startswith(f'{PROG}: error: ') and names in line
    assert 'of memory, and this machine has' in line
    assert time.monotonic() - began < 60
    assert not (tmp_path / 'result').exists()


@pytest.fixture
def tiny_run(digits_run):
    return digits_run[0]


@pytest.mark.parametrize('script, args, names', [
    ('interpolate.py', ['--steps', 10**8, '--rows', 1], 'a grid of 1 x 100,000,000 images'),
    ('generate.py', ['--rows', 10**5, '--cols', 10**5], '10,000,000,000 images'),
])
def test_tools_refuse_outputs_larger_than_memory(tiny_run, tmp_path, script, args, names):
    proc = here(script, tiny_run / 'gen_iter_6.npz', *args, '--out', tmp_path / 'x.png')
    assert proc.returncode == 4, proc.stderr
    [line] = proc.stderr.splitlines()
    assert names in line and 'of memory' in line
    assert not (tmp_path / 'x.png').exists()


def test_many_image_files_are_generated_in_chunks(tiny_run, tmp_path):
    # Chunks of 1,000 with one random stream: the files are those of one batch.
    out = tmp_path / 'samples'
    succeeded(here('generate.py', tiny_run / 'gen_iter_6.npz', '--n', 1203, '--out_dir', out))
    names = sorted(os.listdir(out))
    assert len(names) == 1203 and names[0] == '000000.png' and names[-1] == '001202.png'
    single = tmp_path / 'one'
    succeeded(here('generate.py', tiny_run / 'gen_iter_6.npz', '--n', 3, '--out_dir', single))
    for name in os.listdir(single):
        assert (single / name).read_bytes() == (out / name).read_bytes()


# ----------------------------------------------- fault 7: --keep across resumes


def test_keep_counts_the_runs_snapshots_across_resumes(tmp_path):
    out = tmp_path / 'result'
    keep = ['--keep', 2, '--snapshot_interval', 2, '--out', out]
    succeeded(train_here('--iteration', 6, *keep))
    succeeded(train_here('--iteration', 10, '--resume', 'auto', *keep))
    succeeded(train_here('--iteration', 16, '--resume', 'auto', *keep))
    assert snapshot_names(out) == ['snapshot_iter_14', 'snapshot_iter_16']
    assert sorted(p.name for p in out.glob('gen_iter_*')) == ['gen_iter_14.npz',
                                                              'gen_iter_16.npz']


# ----------------------------------------- fault 8: resume past a damaged snapshot


def test_resume_auto_moves_a_damaged_newest_snapshot_aside_and_continues(tmp_path):
    out = tmp_path / 'result'
    succeeded(train_here('--iteration', 12, '--snapshot_interval', 2, '--keep', 10,
                         '--out', out))
    newest = out / 'snapshot_iter_12'
    damaged = newest.read_bytes()[: len(newest.read_bytes()) // 2]  # truncated
    newest.write_bytes(damaged)
    proc = succeeded(train_here('--iteration', 14, '--snapshot_interval', 2, '--keep', 10,
                                '--resume', 'auto', '--out', out))
    assert proc.stdout.startswith(f'{PROG}: resuming from {out}/snapshot_iter_10\n')
    assert "skipped 1 unreadable snapshot(s)" in proc.stderr
    assert f"moved 1 snapshot(s) newer than {out}/snapshot_iter_10" in proc.stderr
    assert (out / 'damaged' / 'snapshot_iter_12').read_bytes() == damaged  # kept, not deleted
    assert {'snapshot_iter_12', 'snapshot_iter_14'} <= set(snapshot_names(out))


# ------------------------------------------------------------ faults 9-11


@pytest.mark.parametrize('flags, says', [
    (['--lr', '-1'], '--lr: must be a number above 0, got -1.0'),
    (['--lr', 'nan'], '--lr: must be a number above 0, got nan'),
    (['--beta1', '5'], '--beta1: must be in [0, 1), got 5.0'),
    (['--beta2', '1'], '--beta2: must be in [0, 1), got 1.0'),
    (['--ema', '2'], '--ema: must be in (0, 1), got 2.0'),
    (['--penalty_weight', '-3'], '--penalty_weight: must be at least 0, got -3.0'),
    (['--seed', '-5'], '--seed: must be in [0, 4294967296), got -5'),
    (['--fid_samples', '2'], '--fid_samples: must be at least 4, got 2'),
    (['--keep', '0'], '--keep: must be at least 1, got 0'),
])
def test_every_numeric_flag_is_checked_at_the_boundary(tmp_path, flags, says):
    proc = train_here('--out', tmp_path / 'result', *flags)
    assert_one_line_error(proc, says, PROG)
    assert not (tmp_path / 'result').exists()


@pytest.mark.parametrize('opset', [99, 5])
def test_export_with_an_unsupported_opset_is_one_line(tiny_run, tmp_path, opset):
    pytest.importorskip('onnx')
    proc = here('export_onnx.py', tiny_run / 'gen_iter_6.npz', '--opset', opset,
                '--out', tmp_path / 'g.onnx')
    assert_one_line_error(proc, f'--opset {opset}: ONNX export supports opsets 7 to ',
                          'export_onnx.py')


@pytest.mark.parametrize('flags, says', [
    (['--preset', 'wgan-gp'], '--dis_norm: is none (from preset wgan-gp), but the run being'),
    (['--base_width', '8'], '--base_width: gives D the widths 8,16'),
    (['--dataset', 'FOLDER', '--size', '8'], '--dataset: is '),
    (['--ema', '0.9'], '--ema: is 0.9, but the run being resumed'),
])
def test_resuming_with_other_networks_or_data_names_the_flag_and_both_values(
        tiny_run, tmp_path, pets8, flags, says):
    out = tmp_path / 'result'
    shutil.copytree(tiny_run, out)
    flags = [str(pets8) if f == 'FOLDER' else f for f in flags]
    proc = train_here('--iteration', 8, '--resume', 'auto', '--out', out, *flags)
    assert_one_line_error(proc, says, PROG)
    assert snapshot_names(out) == ['snapshot_iter_3', 'snapshot_iter_6']


# ------------------------------------------------------------ rough edges


def test_a_run_shorter_than_the_display_interval_still_logs_and_plots(tmp_path):
    out = tmp_path / 'result'
    succeeded(train_here('--iteration', 2, '--display_interval', 50, '--out', out))
    assert [e['iteration'] for e in json.loads((out / 'log').read_text())] == [2]
    assert (out / 'loss.png').exists()


def test_the_start_says_what_data_was_found_and_no_escape_codes_without_progress(tmp_path):
    proc = succeeded(train_here('--out', tmp_path / 'result'))
    assert proc.stdout.splitlines()[0] == (
        f"{PROG}: data 'digits': 4,500 training images, 500 held out, 10 classes, 1x28x28")
    assert '\033' not in proc.stdout


def test_a_size_the_default_widths_halve_only_once_is_warned_about(tmp_path):
    proc = succeeded(train_here('--size', 30, '--iteration', 1, '--out', tmp_path / 'result'))
    [line] = [line for line in proc.stderr.splitlines() if '--size 30' in line]
    assert line.startswith(f'{PROG}: warning: --size 30 halves only 1 time(s) with the default '
                           'widths (to 15x15)')


def test_resuming_a_finished_run_says_so_and_writes_nothing(tiny_run, tmp_path):
    out = tmp_path / 'result'
    shutil.copytree(tiny_run, out)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != '.lock'}
    proc = succeeded(train_here('--resume', 'auto', '--out', out))
    assert proc.stdout.splitlines()[-1] == (
        f"{PROG}: the run in '{out}' is already at iteration 6 of 6: nothing to do (pass a "
        'larger --iteration to train further)')
    after = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != '.lock'}
    assert after == before
    assert finite(out / 'gen_iter_6.npz')
