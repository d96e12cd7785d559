"""Loader processes that die: detected at once, replaced, or one line; never a hang or an orphan.

Issue 25.2: with Chainer's MultiprocessIterator a loader worker killed by
``kill -9`` (as the out-of-memory killer does) hung the run for good, and
after ``kill -9`` of the training process the workers stayed behind. Every
test here kills a real process with a real signal.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy
import pytest
from helpers import write_image_folder

from gan_trainer import files
from gan_trainer.datasets import Data
from gan_trainer.iterators import train_iterator
from gan_trainer.loader import LoaderDied, LoaderPool, LoaderWarning
from gan_trainer.run import ResourceError, RunConfig, build_trainer
from gan_trainer.testing import fake_images

REPO = Path(__file__).resolve().parents[1]


class Numbers:
    """``dataset[i]`` is ``i * 10`` after ``delay`` seconds; reading ``poison`` kills the reader.

    The poison only works in a loader process (not the one that made the
    dataset), as an image that the out-of-memory killer stops every time.
    """

    def __init__(self, n=40, delay=0.0, poison=None):
        self.n, self.delay, self.poison, self.home = n, delay, poison, os.getpid()

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i == self.poison and os.getpid() != self.home:
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(self.delay)
        return i * 10


def gone(pid, timeout=10.0):
    """Whether process ``pid`` has ended within ``timeout`` (a zombie has: it runs no more)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f'/proc/{pid}/stat') as f:
                if f.read().rsplit(')', 1)[1].split()[0] == 'Z':
                    return True
        except FileNotFoundError:
            return True
        except OSError:  # no /proc: ask the process itself
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
        time.sleep(0.02)
    return False


def test_a_pool_answers_each_task_with_its_examples():
    pool = LoaderPool(Numbers(), 2)
    try:
        for tag, task in enumerate([[3, 1], [7], [0, 39, 5]]):
            pool.submit(tag, task)
        assert pool.get(2) == [0, 390, 50]
        assert pool.get(0) == [30, 10]
        assert pool.get(1) == [70]
    finally:
        pool.close()


def test_a_worker_killed_mid_task_is_replaced_at_once_and_its_examples_read_again():
    pool = LoaderPool(Numbers(delay=0.2), 2)
    try:
        pool.submit('a', [1, 2, 3, 4, 5])
        pool.submit('b', [6, 7, 8, 9, 10])
        victim = pool.pids[0]
        time.sleep(0.3)  # both are reading
        os.kill(victim, signal.SIGKILL)
        start = time.monotonic()
        with pytest.warns(LoaderWarning, match=rf'loader process {victim} was killed by '
                                               r'SIGKILL while reading 5 examples .* started '
                                               r'another in its place \(1 of at most 5\)'):
            answers = [pool.get('a'), pool.get('b')]
        # Seen at once: the task's own five reads, not a timeout.
        assert time.monotonic() - start < 5
        assert answers == [[10, 20, 30, 40, 50], [60, 70, 80, 90, 100]]
        assert victim not in pool.pids and len(pool.pids) == 2
    finally:
        pool.close()
    assert gone(victim)


def test_examples_that_kill_every_reader_stop_the_run_in_one_line():
    pool = LoaderPool(Numbers(poison=3), 2)
    try:
        pool.submit(0, [1, 2, 3])
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', LoaderWarning)  # the first death
            with pytest.raises(LoaderDied, match=r'was killed by SIGKILL while reading 3 '
                                                 r'examples \(indices 1, 2, 3\), after another '
                                                 'died on the same examples'):
                pool.get(0)
    finally:
        pool.close()


def test_a_pool_that_may_replace_none_stops_at_the_first_death():
    pool = LoaderPool(Numbers(delay=0.5), 1, max_restarts=0)
    try:
        pool.submit(0, [1])
        [pid] = pool.pids
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(LoaderDied, match=f'loader process {pid} was killed by SIGKILL.*0 '
                                             'loader processes were replaced already'):
            pool.get(0)
    finally:
        pool.close()


def test_close_ends_a_worker_stuck_in_a_read_and_leaves_no_process():
    pool = LoaderPool(Numbers(delay=600), 2)
    pool.submit(0, [1])
    pids = pool.pids
    start = time.monotonic()
    pool.close()  # the reader ignores SIGTERM and sleeps for ten minutes: SIGKILL
    assert time.monotonic() - start < 10
    assert all(gone(pid, timeout=1) for pid in pids)


def test_the_iterator_with_a_replaced_worker_gives_the_same_batches():
    data = Numbers(n=10, delay=0.01)
    expected_iterator = train_iterator(data, 4, seed=2)
    expected = [next(expected_iterator) for _ in range(8)]
    iterator = train_iterator(data, 4, seed=2, n_processes=2)
    try:
        got = [next(iterator) for _ in range(3)]
        os.kill(iterator._pool.pids[1], signal.SIGKILL)
        with pytest.warns(LoaderWarning):
            got += [next(iterator) for _ in range(5)]
    finally:
        iterator.finalize()
    assert got == expected


KILLED_PARENT = textwrap.dedent('''
    import sys, time
    sys.path.insert(0, sys.argv[1])
    from test_loader import Numbers
    from gan_trainer.loader import LoaderPool
    pool = LoaderPool(Numbers(delay=600), 2)
    pool.submit(0, [1])
    pool.submit(1, [2])
    print(*pool.pids, flush=True)
    time.sleep(600)
''')


ORPHAN = textwrap.dedent('''
    import os, sys
    from gan_trainer.loader import _die_with_parent
    _die_with_parent(int(sys.argv[1]))
    print('alive', flush=True)
''')


@pytest.mark.process
def test_a_worker_whose_parent_died_before_it_started_exits():
    # The race a loaded machine showed: the training process dies between the
    # fork and the worker's prctl, so the worker's parent is already another
    # process. The worker compares with the pid it was given, not with the
    # parent it finds. This checks that comparison (a live parent's pid and
    # one that is not the parent), not the timing of the race itself.
    here = subprocess.run([sys.executable, '-c', ORPHAN, str(os.getpid())], cwd=REPO, check=False,
                          capture_output=True, text=True, timeout=60)
    assert (here.returncode, here.stdout) == (0, 'alive\n'), here.stderr
    dead = subprocess.run([sys.executable, '-c', ORPHAN, str(os.getpid() + 1_000_000)],
                          cwd=REPO, check=False, capture_output=True, text=True, timeout=60)
    assert (dead.returncode, dead.stdout) == (1, ''), dead.stderr


@pytest.mark.process
def test_workers_die_with_the_training_process():
    # Each worker is busy for ten minutes: only the parent's death can end it.
    proc = subprocess.Popen([sys.executable, '-c', KILLED_PARENT, str(Path(__file__).parent)],
                            cwd=REPO, stdout=subprocess.PIPE, text=True)
    pids = []
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2
        proc.kill()
        proc.wait()
        # A worker still starting (imports, before its prctl) sees the dead parent at its
        # check after prctl and exits: on a loaded machine that can take seconds.
        assert all(gone(pid, timeout=30) for pid in pids), 'a worker outlived kill -9 of its parent'
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        for pid in pids:  # should the test fail: no orphan of its own either
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class Images(Numbers):
    """Tiny images; reading number ``poison`` kills a loader process every time."""

    def __init__(self, poison):
        super().__init__(n=16, poison=poison)
        self.images = fake_images(16, channels=1, size=8)

    def __getitem__(self, i):
        super().__getitem__(i)
        return self.images[i]


def test_a_run_whose_examples_kill_their_readers_ends_with_a_resource_error(tmp_path):
    data = Data.of(Images(poison=5), fake_images(4, channels=1, size=8), decodes_files=True)
    config = RunConfig(out=str(tmp_path / 'out'), base_width=4, batchsize=4, iteration=50,
                       snapshot_interval=1, loaderjob=2, progress=False)
    trainer = build_trainer(config, data=data, log=None)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        with pytest.raises(ResourceError) as ended:
            trainer.run()
    message = str(ended.value)
    assert 'was killed by SIGKILL while reading ' in message
    assert 'after another died on the same examples' in message
    # Example 5 is in one of the first four batches (an epoch of 16 images).
    assert message.endswith((' (--resume auto continues from it)', 'no snapshot was completed'))
    assert '\n' not in message


@pytest.mark.slow
@pytest.mark.process
def test_a_run_that_loses_a_loader_process_ends_bit_for_bit_like_one_that_did_not(tmp_path):
    write_image_folder(tmp_path / 'pets', 12, 16)
    flags = ['--dataset', str(tmp_path / 'pets'), '--size', '8', '--base_width', '4', '-b', '4',
             '--iteration', '300', '-j', '2', '--snapshot_interval', '1000', '--no_progress']

    def start(out):
        return subprocess.Popen([sys.executable, '-m', 'gan_trainer.cli', 'train', *flags,
                                 '--out', str(out)], cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)

    straight, victim = start(tmp_path / 'straight'), start(tmp_path / 'victim')
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / 'victim' / files.CONFIG).exists():
            assert victim.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(0.5)  # training, its loader processes reading ahead
        workers = _children(victim.pid)
        assert len(workers) == 2, workers
        os.kill(workers[0], signal.SIGKILL)  # as the out-of-memory killer does
        _, stderr = victim.communicate(timeout=300)
        assert victim.returncode == 0, stderr
        assert straight.wait(timeout=300) == 0, straight.stderr.read()
    finally:
        for proc in (straight, victim):
            proc.kill()
            proc.communicate()
    warned = [line for line in stderr.splitlines() if 'loader process' in line]
    assert len(warned) == 1 and warned[0].startswith(
        f'gan-trainer train: warning: loader process {workers[0]} was killed by SIGKILL'), stderr
    for name in ('gen_iter_300.npz', 'dis_iter_300.npz'):
        with numpy.load(tmp_path / 'straight' / name) as a, numpy.load(
                tmp_path / 'victim' / name) as b:
            assert sorted(a.files) == sorted(b.files)
            for key in a.files:
                numpy.testing.assert_array_equal(a[key], b[key], err_msg=f'{name}: {key}')


def _children(pid):
    """The process ids whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open(f'/proc/{entry}/stat') as f:
                    fields = f.read().rsplit(')', 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return sorted(found)


@pytest.mark.filterwarnings('ignore:setDaemon:DeprecationWarning')  # Chainer's own iterator
def test_the_loader_benchmark_times_the_three_iterators(capsys):
    sys.path.insert(0, str(REPO / 'benchmarks'))
    try:
        import loader as benchmark
    finally:
        sys.path.pop(0)
    assert benchmark.main(['--images', '16', '--side', '12', '--size', '8', '--batch', '4',
                           '--batches', '2', '--warmup', '1', '--rounds', '2',
                           '--step_ms', '1']) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith('# ') and '2 rounds of 2 batches' in lines[0]
    assert [line.split()[0] for line in lines[1:]] == ['chainer', 'pool', 'serial']
    assert all(line.split()[2] == 'ms/batch' for line in lines[1:])


def test_a_read_that_stalls_is_reported_and_a_signal_still_ends_the_wait(monkeypatch):
    monkeypatch.setattr('gan_trainer.loader.STALL_SECONDS', 1)
    pool = LoaderPool(Numbers(delay=600), 1)
    try:
        pool.submit(0, [1])
        # A second Ctrl-C raises KeyboardInterrupt in the waiting thread.
        signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
        signal.alarm(3)
        with pytest.warns(LoaderWarning, match='have read nothing for 1 s'), pytest.raises(
                KeyboardInterrupt):
            pool.get(0)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        pids = pool.pids
        pool.close()
    assert all(gone(pid, timeout=1) for pid in pids)
