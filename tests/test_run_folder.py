"""RunFolder: one run per folder, the newest complete snapshot, --keep by N, ranks."""

import os
import subprocess
import sys
import time
import warnings

import numpy
import pytest

from gan_trainer import files
from gan_trainer.run import FolderBusy, ResourceError, RunFolder, SnapshotError


def write_npz(path, **arrays):
    with open(path, 'wb') as f:
        numpy.savez_compressed(f, **arrays)
    return path


def trainer_snapshots(folder, *iterations, rank=None):
    folder.mkdir(parents=True, exist_ok=True)
    return [write_npz(folder / files.trainer_snapshot(n, rank),
                      **{'updater/iteration': numpy.array(n)}) for n in iterations]


def one_line(excinfo):
    message = str(excinfo.value)
    assert message and '\n' not in message, repr(message)
    return message


# ------------------------------------------------------------------ writable, lock


def test_check_writable_creates_a_usable_folder(tmp_path):
    out = tmp_path / 'a' / 'b'
    RunFolder(out).check_writable()
    assert out.is_dir() and os.listdir(out) == []  # the probe file is removed
    RunFolder(out).check_writable()  # an existing folder is fine too


@pytest.mark.parametrize('relative', ['file.txt/out', 'file.txt', 'file.txt/a/b'])
def test_check_writable_names_a_folder_that_cannot_be_made(tmp_path, relative):
    # Tests may run as root, which ignores permissions; a regular file where
    # a folder must go stops everyone.
    (tmp_path / 'file.txt').write_text('not a folder')
    out = tmp_path / relative
    with pytest.raises(SnapshotError) as excinfo:
        RunFolder(out).check_writable()
    assert f"'{out}'" in one_line(excinfo)
    assert (tmp_path / 'file.txt').read_text() == 'not a folder'


def test_a_full_disk_is_a_resource_error_not_bad_input(tmp_path, monkeypatch):
    real_open = open

    def full(path, *args, **kwargs):
        if str(path).endswith('.write_test'):
            raise OSError(28, 'No space left on device', str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr('builtins.open', full)
    with pytest.raises(ResourceError, match='No space left on device') as excinfo:
        RunFolder(tmp_path).check_writable()
    one_line(excinfo)


def test_check_writable_probes_do_not_collide_between_ranks(tmp_path):
    (tmp_path / '.write_test.rank1').write_text('held by another process')
    RunFolder(tmp_path, rank=0).check_writable()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['.write_test.rank1']


HOLD_THE_LOCK = """
import sys, time
from gan_trainer.run import RunFolder
folder = RunFolder(sys.argv[1])
folder.lock()
print('locked', flush=True)
time.sleep(60)
"""


@pytest.mark.process
def test_a_second_run_on_a_locked_folder_fails_naming_the_process(tmp_path):
    holder = subprocess.Popen([sys.executable, '-c', HOLD_THE_LOCK, str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == 'locked\n'
        with pytest.raises(FolderBusy) as excinfo:
            RunFolder(tmp_path).lock()
        message = one_line(excinfo)
        assert f"'{tmp_path}'" in message and f'process {holder.pid} on ' in message
        # kill -9: the kernel releases the lock with the process.
        holder.kill()
        holder.wait()
        folder = RunFolder(tmp_path)
        folder.lock()
        folder.unlock()
    finally:
        holder.kill()
        holder.wait()


def test_unlock_lets_the_next_run_take_the_folder(tmp_path):
    first, second = RunFolder(tmp_path), RunFolder(tmp_path)
    first.lock()
    with pytest.raises(FolderBusy):
        second.lock()
    first.unlock()
    second.lock()
    second.unlock()


def test_remove_temporaries_removes_only_what_interrupted_writes_left(tmp_path):
    for name in ('.snapshot_iter_5.tmp-123', '.config.json.tmp-9', 'snapshot_iter_4', 'log',
                 '.lock'):
        (tmp_path / name).write_bytes(b'x')
    (tmp_path / 'tmpsnapshot_iter_5abc').mkdir()  # Chainer's own writer, earlier versions
    removed = RunFolder(tmp_path).remove_temporaries()
    assert sorted(removed) == ['.config.json.tmp-9', '.snapshot_iter_5.tmp-123',
                               'tmpsnapshot_iter_5abc']
    assert sorted(os.listdir(tmp_path)) == ['.lock', 'log', 'snapshot_iter_4']


# ------------------------------------------------------------------ fresh / resume


@pytest.mark.parametrize('name', ['snapshot_iter_500', 'gen_iter_500.npz', 'dis_iter_500.npz',
                                  'gen_ema_iter_500.npz', 'snapshot_iter_500.rank1'])
def test_check_fresh_refuses_a_folder_with_snapshots(tmp_path, name):
    (tmp_path / name).write_bytes(b'an earlier run')
    (tmp_path / 'log').write_text('[]')
    with pytest.raises(SnapshotError) as excinfo:
        RunFolder(tmp_path).check_fresh(advice='try again')
    assert one_line(excinfo) == (
        f"output folder '{tmp_path}' already holds snapshots of an earlier run ({name}): try again")
    assert (tmp_path / name).read_bytes() == b'an earlier run'


def test_check_fresh_accepts_a_folder_without_snapshots(tmp_path):
    RunFolder(tmp_path / 'missing').check_fresh()
    for name in ('log', 'config.json', 'loss.png', 'gen_best.npz', 'notes.npz',
                 '.gen_iter_5.npz.tmp-12'):
        (tmp_path / name).write_bytes(b'x')
    (tmp_path / 'preview').mkdir()
    (tmp_path / 'tmpsnapshot_iter_5abc').mkdir()
    RunFolder(tmp_path).check_fresh()


def test_check_fresh_lists_five_then_counts(tmp_path):
    for n in range(8):
        (tmp_path / f'gen_iter_{n}.npz').write_bytes(b'x')
    with pytest.raises(SnapshotError, match=r'gen_iter_4\.npz and 3 more\)'):
        RunFolder(tmp_path).check_fresh()


def test_check_resume_in_its_own_folder_refuses_to_overwrite_later_snapshots(tmp_path):
    first, _, newest = trainer_snapshots(tmp_path, 1, 2, 3)
    RunFolder(tmp_path).check_resume(str(newest))  # the usual case: continue the newest
    with pytest.raises(SnapshotError) as excinfo:
        RunFolder(tmp_path).check_resume(str(first), advice='use another folder')
    assert one_line(excinfo) == (
        f"resuming '{first}' (iteration 1) would overwrite the later snapshots in "
        f"'{tmp_path}' (snapshot_iter_2, snapshot_iter_3): use another folder")


def test_check_resume_elsewhere_needs_a_folder_without_snapshots(tmp_path):
    [snapshot] = trainer_snapshots(tmp_path / 'run', 3)
    RunFolder(tmp_path / 'new').check_resume(str(snapshot))  # missing: fine
    trainer_snapshots(tmp_path / 'other', 9)
    with pytest.raises(SnapshotError, match='already holds snapshots .*: pass another --out'):
        RunFolder(tmp_path / 'other').check_resume(str(snapshot))


def test_check_resume_compares_a_rank_with_its_own_files(tmp_path):
    first, _ = trainer_snapshots(tmp_path, 2, 4, rank=1)
    trainer_snapshots(tmp_path, 2, rank=0)
    RunFolder(tmp_path, rank=0).check_resume(str(tmp_path / 'snapshot_iter_2.rank0'))
    with pytest.raises(SnapshotError, match=r'overwrite the later .*\(snapshot_iter_4\.rank1\)'):
        RunFolder(tmp_path, rank=1).check_resume(str(first))


# ------------------------------------------------------------------ latest


def test_latest_goes_by_n_not_by_modification_time(tmp_path):
    now = time.time()
    trainer_snapshots(tmp_path, 2, 10, 9)
    for n, age in ((2, 0), (10, 300), (9, 200)):
        os.utime(tmp_path / f'snapshot_iter_{n}', (now - age, now - age))
    # Not trainer snapshots by name: ignored whatever they hold.
    write_npz(tmp_path / 'snapshot_iter_11.bak', a=numpy.zeros(1))
    (tmp_path / 'snapshot_iter_12').mkdir()
    write_npz(tmp_path / 'gen_iter_13.npz', a=numpy.zeros(1))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert RunFolder(tmp_path).latest() == str(tmp_path / 'snapshot_iter_10')


def damaged(folder, *, good=10, bad=(12,)):
    trainer_snapshots(folder, good, *bad)
    for n in bad:
        path = folder / f'snapshot_iter_{n}'
        path.write_bytes(path.read_bytes()[:40])  # truncated, as by a full disk
    return folder / f'snapshot_iter_{good}'


def test_latest_skips_a_damaged_newest_one_with_one_warning(tmp_path):
    good = damaged(tmp_path)
    with pytest.warns(UserWarning) as record:
        assert RunFolder(tmp_path).latest() == str(good)
    [warning] = record
    message = str(warning.message)
    assert message.startswith(f"skipped 1 unreadable snapshot(s) in '{tmp_path}': "
                              'snapshot_iter_12 (')
    assert '\n' not in message and (tmp_path / 'snapshot_iter_12').exists()


def test_damaged_later_snapshots_are_set_aside_so_the_run_continues_there(tmp_path):
    good = damaged(tmp_path, bad=(12, 14))
    truncated = (tmp_path / 'snapshot_iter_14').read_bytes()
    folder = RunFolder(tmp_path)
    with pytest.warns(UserWarning, match=r'skipped 2 unreadable'):
        assert folder.latest() == str(good)
    later = folder.after(str(good))
    assert later == [str(tmp_path / 'snapshot_iter_12'), str(tmp_path / 'snapshot_iter_14')]
    with pytest.raises(SnapshotError, match='would overwrite the later snapshots'):
        folder.check_resume(str(good))
    folder.check_resume(str(good), ignore=later)  # they are about to be moved aside
    assert folder.set_aside(later) == str(tmp_path / files.DAMAGED_DIR)
    assert sorted(os.listdir(tmp_path / files.DAMAGED_DIR)) == ['snapshot_iter_12',
                                                               'snapshot_iter_14']
    assert (tmp_path / files.DAMAGED_DIR / 'snapshot_iter_14').read_bytes() == truncated
    folder.check_resume(str(good))  # nothing in the way any more
    # A second damaged file of the same name does not overwrite the first.
    damaged(tmp_path, bad=(14,))
    folder.set_aside(folder.after(str(good)))
    assert 'snapshot_iter_14.1' in os.listdir(tmp_path / files.DAMAGED_DIR)
    assert folder.set_aside([]) is None


def test_abandon_leaves_no_trace_of_a_refused_start(tmp_path):
    fresh = RunFolder(tmp_path / 'new')
    fresh.check_writable()
    fresh.lock()
    fresh.abandon()
    assert not (tmp_path / 'new').exists()
    (tmp_path / 'used').mkdir()
    (tmp_path / 'used' / 'log').write_text('[]')
    used = RunFolder(tmp_path / 'used')
    used.check_writable()
    used.lock()
    used.abandon()
    assert os.listdir(tmp_path / 'used') == ['log']


@pytest.mark.parametrize('content', [None, [], ['gen_iter_4.npz', 'log']])
def test_latest_without_trainer_snapshots_is_none(tmp_path, content):
    out = tmp_path / 'result'
    if content is not None:
        out.mkdir()
        for name in content:
            (out / name).write_bytes(b'x')
    assert RunFolder(out).latest() is None


def test_latest_net_goes_by_n_and_by_network(tmp_path):
    # 10 after 9 (not by name), gen_ema apart from gen, a folder of the same name skipped.
    for name in ('gen_iter_9.npz', 'gen_iter_10.npz', 'gen_ema_iter_20.npz', 'dis_iter_30.npz',
                 'snapshot_iter_40'):
        write_npz(tmp_path / name, w=numpy.zeros(1))
    (tmp_path / 'gen_iter_50.npz').mkdir()
    folder = RunFolder(tmp_path)
    assert folder.latest_net() == str(tmp_path / 'gen_iter_10.npz')
    assert folder.latest_net('gen_ema') == str(tmp_path / 'gen_ema_iter_20.npz')
    assert folder.latest_net('dis') == str(tmp_path / 'dis_iter_30.npz')
    assert RunFolder(tmp_path / 'none').latest_net() is None


def test_latest_of_a_rank_and_below_an_iteration(tmp_path):
    trainer_snapshots(tmp_path, 2, 4, 6, rank=0)
    trainer_snapshots(tmp_path, 2, 4, rank=1)
    trainer_snapshots(tmp_path, 8)  # a one-process snapshot: not any rank's
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert RunFolder(tmp_path, rank=0).latest() == str(tmp_path / 'snapshot_iter_6.rank0')
        assert RunFolder(tmp_path, rank=1).latest() == str(tmp_path / 'snapshot_iter_4.rank1')
        assert RunFolder(tmp_path, rank=2).latest() is None
        assert RunFolder(tmp_path, rank=0).latest(max_iteration=5) == str(
            tmp_path / 'snapshot_iter_4.rank0')
        assert RunFolder(tmp_path).latest() == str(tmp_path / 'snapshot_iter_8')


# ------------------------------------------------------------------ prune


def test_prune_keeps_the_newest_by_n_of_each_kind(tmp_path):
    now = time.time()
    for n, age in ((2, 0), (4, 100), (6, 50), (16, 300)):  # modification times shuffled
        for name in (files.trainer_snapshot(n), files.net_snapshot('gen', n),
                     files.net_snapshot('gen_ema', n)):
            (tmp_path / name).write_bytes(b'x')
            os.utime(tmp_path / name, (now - age, now - age))
    (tmp_path / 'gen_best.npz').write_bytes(b'best')
    deleted = RunFolder(tmp_path).prune(2)
    assert len(deleted) == 6
    assert sorted(os.listdir(tmp_path)) == sorted([
        'gen_best.npz', 'snapshot_iter_6', 'snapshot_iter_16', 'gen_iter_6.npz',
        'gen_iter_16.npz', 'gen_ema_iter_6.npz', 'gen_ema_iter_16.npz'])


def test_prune_of_a_rank_touches_only_its_trainer_snapshots(tmp_path):
    trainer_snapshots(tmp_path, 2, 4, 6, rank=0)
    trainer_snapshots(tmp_path, 2, 4, 6, rank=1)
    (tmp_path / 'gen_iter_2.npz').write_bytes(b'x')
    RunFolder(tmp_path, rank=1).prune(1, nets=False)
    assert sorted(os.listdir(tmp_path)) == sorted([
        'gen_iter_2.npz', 'snapshot_iter_2.rank0', 'snapshot_iter_4.rank0',
        'snapshot_iter_6.rank0', 'snapshot_iter_6.rank1'])
