"""Snapshots: config round trip, rebuild, one-line errors, crash safety and resume checks."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import types
import warnings

import chainer
import numpy
import pytest
from chainer.training import extensions

from gan_trainer.checkpoint import (
    CONFIG_NAME,
    SnapshotError,
    check_fresh_out,
    check_resume_out,
    check_writable,
    find_latest_snapshot,
    load_config,
    load_discriminator,
    load_generator,
    load_params,
    rank_snapshot,
    rank_suffix,
    save_config,
    snapshot_iteration,
)
from gan_trainer.testing import fake_images, tiny_discriminator, tiny_generator

CONFIG = {
    'gen': {'size': 8, 'channels': 1, 'n_hidden': 4, 'widths': [4, 8], 'ksize': 4},
    'dis': {'size': 8, 'channels': 1, 'widths': [4, 8], 'ksize': 4},
    'z_dist': 'uniform',
    'loss': 'hinge',
    'dataset': '/data/faces',
}


def trained_pair(*, channels=1, widths=(4, 8), seed=0):
    """Tiny nets whose BatchNorm statistics are no longer the initial ones."""
    gen = tiny_generator(channels=channels, widths=widths, seed=seed)
    dis = tiny_discriminator(channels=channels, widths=widths, seed=seed)
    with chainer.using_config('train', True), chainer.no_backprop_mode():
        z = numpy.random.RandomState(seed).standard_normal((16, gen.n_hidden))
        dis(gen(z.astype(numpy.float32)))
        dis(fake_images(16, channels=channels, seed=seed))
    return gen, dis


def write_run(folder, gen, dis, *, iteration=6):
    """Writes what a training run leaves behind: config.json and npz snapshots."""
    save_config(str(folder), {'gen': gen.config(), 'dis': dis.config(), 'z_dist': 'normal'})
    gen_path, dis_path = folder / f'gen_iter_{iteration}.npz', folder / f'dis_iter_{iteration}.npz'
    chainer.serializers.save_npz(str(gen_path), gen)
    chainer.serializers.save_npz(str(dis_path), dis)
    return gen_path, dis_path


def eval_outputs(gen, dis, z):
    with chainer.using_config('train', False), chainer.no_backprop_mode():
        images = gen(z).array
        return images, dis(images).array


def one_line_error(excinfo):
    message = str(excinfo.value)
    assert message and '\n' not in message, repr(message)
    return message


def test_save_config_round_trips_through_load_config(tmp_path):
    out = tmp_path / 'run' / 'nested'  # created on demand
    path = save_config(str(out), CONFIG)
    assert path == str(out / CONFIG_NAME)
    assert sorted(os.listdir(out)) == [CONFIG_NAME]  # no temporary file left
    assert json.loads((out / CONFIG_NAME).read_text(encoding='utf-8')) == CONFIG
    # By default the config is found beside the snapshot, which need not exist yet.
    assert load_config(str(out / 'gen_iter_6.npz')) == CONFIG
    # An explicit path wins over the snapshot's folder.
    other = tmp_path / 'elsewhere'
    save_config(str(other), {**CONFIG, 'loss': 'wgan'})
    assert load_config(str(out / 'gen_iter_6.npz'), str(other / CONFIG_NAME))['loss'] == 'wgan'


def test_save_config_replaces_an_older_config(tmp_path):
    save_config(str(tmp_path), {'a': 1})
    save_config(str(tmp_path), {'b': 2})
    assert load_config(str(tmp_path / 'x.npz')) == {'b': 2}


@pytest.mark.parametrize('channels, widths', [(1, (4, 8)), (3, (4,)), (3, (2, 4))])
def test_load_generator_and_discriminator_reproduce_the_saved_nets(tmp_path, channels, widths):
    gen, dis = trained_pair(channels=channels, widths=widths)
    gen_path, dis_path = write_run(tmp_path, gen, dis)
    z = numpy.random.RandomState(9).standard_normal((5, gen.n_hidden)).astype(numpy.float32)
    expected_images, expected_logits = eval_outputs(gen, dis, z)

    loaded_gen, config = load_generator(str(gen_path))
    loaded_dis = load_discriminator(str(dis_path))
    assert config['gen'] == gen.config() and config['dis'] == dis.config()
    assert isinstance(loaded_gen, type(gen)) and isinstance(loaded_dis, type(dis))
    images, _ = eval_outputs(loaded_gen, loaded_dis, z)
    numpy.testing.assert_array_equal(images, expected_images)
    numpy.testing.assert_array_equal(eval_outputs(gen, loaded_dis, z)[1], expected_logits)
    # BatchNorm running statistics are part of the snapshot too.
    numpy.testing.assert_array_equal(loaded_gen.bn0.avg_mean, gen.bn0.avg_mean)

    # The match is due to loading: nets with other weights give other outputs.
    other_gen, other_dis = trained_pair(channels=channels, widths=widths, seed=1)
    other_images, other_logits = eval_outputs(other_gen, other_dis, z)
    assert not numpy.allclose(other_images, expected_images)
    assert not numpy.allclose(other_logits, expected_logits)


def test_load_generator_reads_an_explicit_config_path(tmp_path):
    gen, dis = trained_pair()
    gen_path, _ = write_run(tmp_path / 'run', gen, dis)
    moved = tmp_path / 'moved.npz'
    os.replace(gen_path, moved)  # no config.json beside it any more
    config_path = tmp_path / 'run' / CONFIG_NAME
    loaded, config = load_generator(str(moved), str(config_path))
    assert config['z_dist'] == 'normal'
    z = numpy.ones((2, gen.n_hidden), numpy.float32)
    numpy.testing.assert_array_equal(eval_outputs(loaded, dis, z)[0], eval_outputs(gen, dis, z)[0])


def corrupt(data, position):
    damaged = bytearray(data)
    for i in range(position, position + 20):
        damaged[i] ^= 0xFF
    return bytes(damaged)


# Each case turns a good snapshot's bytes into a broken file's bytes.
BROKEN = {
    'text': lambda data: b'this is not an npz file\n',
    'random_bytes': lambda data: numpy.random.RandomState(0).bytes(500),
    'empty': lambda data: b'',
    'zip_magic_only': lambda data: b'PK\x03\x04' + bytes(100),
    'truncated_half': lambda data: data[: len(data) // 2],
    'truncated_tail': lambda data: data[:-10],
    'damaged_member': lambda data: corrupt(data, 100),
    'damaged_middle': lambda data: corrupt(data, len(data) // 2),
}


@pytest.mark.parametrize('case', sorted(BROKEN))
@pytest.mark.parametrize('loader', ['generator', 'discriminator'])
def test_unreadable_snapshot_is_a_snapshot_error_naming_it(tmp_path, case, loader):
    gen, dis = trained_pair()
    gen_path, dis_path = write_run(tmp_path, gen, dis)
    path = gen_path if loader == 'generator' else dis_path
    path.write_bytes(BROKEN[case](path.read_bytes()))
    load = load_generator if loader == 'generator' else load_discriminator
    with pytest.raises(SnapshotError) as excinfo:
        load(str(path))
    assert f"'{path}'" in one_line_error(excinfo)


def test_missing_snapshot_is_reported_as_such_even_without_a_config(tmp_path):
    # With neither file there, the snapshot (what the user typed) is named,
    # not the config.json that would sit beside it.
    for load in (load_generator, load_discriminator):
        path = tmp_path / 'gen_iter_100.npz'
        with pytest.raises(SnapshotError) as excinfo:
            load(str(path))
        message = one_line_error(excinfo)
        assert f"'{path}'" in message and 'does not exist' in message
        assert CONFIG_NAME not in message


def test_missing_snapshot_with_a_config(tmp_path):
    save_config(str(tmp_path), CONFIG)
    path = tmp_path / 'gen_iter_100.npz'
    with pytest.raises(SnapshotError) as excinfo:
        load_params(str(path), tiny_generator())
    assert f"'{path}'" in one_line_error(excinfo)


@pytest.mark.parametrize('content', [None, '{"gen": ', b'\xff\xfe\x00garbage'])
def test_missing_or_unreadable_config_is_a_snapshot_error_naming_it(tmp_path, content):
    gen, dis = trained_pair()
    gen_path, dis_path = write_run(tmp_path, gen, dis)
    config = tmp_path / CONFIG_NAME
    if content is None:
        config.unlink()
    elif isinstance(content, bytes):
        config.write_bytes(content)
    else:
        config.write_text(content)
    for load, path in ((load_generator, gen_path), (load_discriminator, dis_path)):
        with pytest.raises(SnapshotError) as excinfo:
            load(str(path))
        assert f"'{config}'" in one_line_error(excinfo)


@pytest.mark.parametrize(
    'saved_widths, config_widths',
    [((4, 8), (8, 16)), ((4, 8), (4,)), ((4,), (4, 8))],
    ids=['wider', 'fewer_layers', 'more_layers'],
)
def test_snapshot_of_another_architecture_is_a_snapshot_error(
    tmp_path, saved_widths, config_widths
):
    gen, dis = trained_pair(widths=saved_widths)
    gen_path, dis_path = write_run(tmp_path, gen, dis)
    config = json.loads((tmp_path / CONFIG_NAME).read_text())
    config['gen']['widths'] = config['dis']['widths'] = list(config_widths)
    save_config(str(tmp_path), config)
    for load, path in ((load_generator, gen_path), (load_discriminator, dis_path)):
        with pytest.raises(SnapshotError) as excinfo:
            load(str(path))
        message = one_line_error(excinfo)
        assert f"'{path}'" in message and 'does not match' in message


def test_generator_snapshot_loaded_as_discriminator_is_a_snapshot_error(tmp_path):
    gen, dis = trained_pair()
    gen_path, _ = write_run(tmp_path, gen, dis)
    with pytest.raises(SnapshotError) as excinfo:
        load_discriminator(str(gen_path))
    assert f"'{gen_path}'" in one_line_error(excinfo)


def test_check_writable_creates_a_usable_folder(tmp_path):
    out = tmp_path / 'a' / 'b'
    check_writable(str(out))
    assert out.is_dir() and os.listdir(out) == []  # the probe file is removed
    check_writable(str(out))  # an existing folder is fine too


@pytest.mark.parametrize('relative', ['file.txt/out', 'file.txt', 'file.txt/a/b'])
def test_check_writable_names_a_folder_that_cannot_be_made(tmp_path, relative):
    # Tests may run as root, which ignores permissions; a regular file where
    # a folder must go stops everyone.
    (tmp_path / 'file.txt').write_text('not a folder')
    out = tmp_path / relative
    with pytest.raises(SnapshotError) as excinfo:
        check_writable(str(out))
    assert f"'{out}'" in one_line_error(excinfo)
    assert (tmp_path / 'file.txt').read_text() == 'not a folder'


# ------------------------------------------------- crash-safe snapshots, resume


def fake_trainer(out, iteration):
    """What Chainer's snapshot extensions read from a trainer."""
    return types.SimpleNamespace(out=str(out), updater=types.SimpleNamespace(iteration=iteration))


def write_npz(path, **arrays):
    with open(path, 'wb') as f:  # a file object: numpy adds no '.npz' suffix
        numpy.savez_compressed(f, **arrays)
    return path


def test_chainer_writes_snapshots_to_a_temporary_file_renamed_in_the_same_folder(
    tmp_path, monkeypatch
):
    renames = []
    real_rename = os.rename

    def spy(src, dst):
        renames.append((str(src), str(dst)))
        real_rename(src, dst)

    def no_copy(*args, **kwargs):
        raise AssertionError('copied instead of renamed')

    monkeypatch.setattr(os, 'rename', spy)
    monkeypatch.setattr(shutil, 'copy2', no_copy)
    extension = extensions.snapshot_object(tiny_generator(), 'gen_iter_{.updater.iteration}.npz')
    extension(fake_trainer(tmp_path, 5))
    [(src, dst)] = renames
    # tmp_path/tmpgen_iter_5.npzXXXX/gen_iter_5.npz -> tmp_path/gen_iter_5.npz:
    # one folder, one file system, so the rename is atomic.
    assert os.path.dirname(os.path.dirname(src)) == str(tmp_path)
    assert dst == str(tmp_path / 'gen_iter_5.npz')
    assert os.listdir(tmp_path) == ['gen_iter_5.npz']  # the temporary folder is gone
    load_params(dst, tiny_generator(seed=1))


def test_a_snapshot_that_fails_midway_leaves_nothing_under_its_name(tmp_path):
    (tmp_path / 'snapshot_iter_4').write_bytes(b'the previous snapshot')

    def disk_full(path, target):
        with open(path, 'wb') as f:
            f.write(b'PK\x03\x04 half of a snapshot')
        raise OSError(28, 'No space left on device')

    extension = extensions.snapshot(savefun=disk_full, target=tiny_generator())
    with pytest.raises(OSError, match='No space'):
        extension(fake_trainer(tmp_path, 5))
    assert os.listdir(tmp_path) == ['snapshot_iter_4']
    assert (tmp_path / 'snapshot_iter_4').read_bytes() == b'the previous snapshot'


KILLED_WHILE_SAVING = """
import os, signal, sys, types
import chainer
from chainer.training import extensions

def save_and_die(path, target):
    with open(path, 'wb') as f:
        f.write(b'PK\\x03\\x04 the first bytes of a snapshot')
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)

trainer = types.SimpleNamespace(out=sys.argv[1], updater=types.SimpleNamespace(iteration=5))
extensions.snapshot(savefun=save_and_die, target=chainer.Link())(trainer)
"""


def test_a_process_killed_while_saving_leaves_nothing_under_the_name(tmp_path):
    proc = subprocess.run(
        [sys.executable, '-c', KILLED_WHILE_SAVING, str(tmp_path)], capture_output=True, check=False
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    # Only Chainer's temporary folder, holding the partial file, is left.
    [leftover] = os.listdir(tmp_path)
    assert leftover.startswith('tmpsnapshot_iter_5') and (tmp_path / leftover).is_dir()
    assert os.listdir(tmp_path / leftover) == ['snapshot_iter_5']
    # It is neither resumed from nor taken for another run's snapshot.
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert find_latest_snapshot(str(tmp_path)) is None
    check_fresh_out(str(tmp_path))


def test_n_retains_deletes_the_oldest_modification_time_whatever_the_run(tmp_path):
    # Why a new run must not write into a used folder: Chainer matches
    # snapshot_iter_* and deletes by modification time, not by N or run.
    now = time.time()
    for name, age in (('snapshot_iter_100', 300), ('snapshot_iter_5', 200)):
        (tmp_path / name).write_bytes(b'an earlier run')
        os.utime(tmp_path / name, (now - age, now - age))
    extension = extensions.snapshot_object(
        tiny_generator(), 'snapshot_iter_{.updater.iteration}', n_retains=2
    )
    trainer = fake_trainer(tmp_path, 7)
    extension.initialize(trainer)
    extension(trainer)
    assert sorted(os.listdir(tmp_path)) == ['snapshot_iter_5', 'snapshot_iter_7']
    with pytest.raises(SnapshotError):
        check_fresh_out(str(tmp_path))


def test_find_latest_snapshot_goes_by_n_not_by_modification_time(tmp_path):
    now = time.time()
    for n, age in ((2, 0), (10, 300), (9, 200)):
        write_npz(tmp_path / f'snapshot_iter_{n}', **{'updater/iteration': numpy.array(n)})
        os.utime(tmp_path / f'snapshot_iter_{n}', (now - age, now - age))
    # Not trainer snapshots by name: ignored whatever they hold.
    write_npz(tmp_path / 'snapshot_iter_11.bak', a=numpy.zeros(1))
    (tmp_path / 'snapshot_iter_12').mkdir()
    write_npz(tmp_path / 'gen_iter_13.npz', a=numpy.zeros(1))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert find_latest_snapshot(str(tmp_path)) == str(tmp_path / 'snapshot_iter_10')
    assert snapshot_iteration(str(tmp_path / 'snapshot_iter_10')) == 10


@pytest.mark.parametrize('case', sorted(BROKEN))
def test_find_latest_snapshot_skips_a_damaged_newest_one_with_a_warning(tmp_path, case):
    gen, dis = trained_pair()
    good, newest = tmp_path / 'snapshot_iter_3', tmp_path / 'snapshot_iter_6'
    chainer.serializers.save_npz(str(good), gen)
    chainer.serializers.save_npz(str(newest), dis)
    newest.write_bytes(BROKEN[case](newest.read_bytes()))
    with pytest.warns(UserWarning) as record:
        assert find_latest_snapshot(str(tmp_path)) == str(good)
    [warning] = record
    message = str(warning.message)
    assert message.startswith(
        f"skipped 1 unreadable snapshot(s) in '{tmp_path}': snapshot_iter_6 ("
    )
    assert '\n' not in message


@pytest.mark.parametrize('content', [None, [], ['gen_iter_4.npz', 'log']])
def test_find_latest_snapshot_without_trainer_snapshots_is_none(tmp_path, content):
    out = tmp_path / 'result'
    if content is not None:
        out.mkdir()
        for name in content:
            (out / name).write_bytes(b'x')
    assert find_latest_snapshot(str(out)) is None


@pytest.mark.parametrize('content', [b'garbage', None])
def test_snapshot_iteration_of_something_else_is_a_snapshot_error(tmp_path, content):
    path = tmp_path / 'gen_iter_3.npz'
    if content is None:
        write_npz(path, W=numpy.zeros(2))
    else:
        path.write_bytes(content)
    with pytest.raises(SnapshotError) as excinfo:
        snapshot_iteration(str(path))
    assert f"'{path}'" in one_line_error(excinfo)


@pytest.mark.parametrize(
    'name',
    [
        'snapshot_iter_500',
        'gen_iter_500.npz',
        'dis_iter_500.npz',
        'gen_ema_iter_500.npz',
        'snapshot_iter_500.bak',  # n_retains would delete it too
    ],
)
def test_check_fresh_out_refuses_a_folder_with_snapshots(tmp_path, name):
    (tmp_path / name).write_bytes(b'an earlier run')
    (tmp_path / 'log').write_text('[]')
    with pytest.raises(SnapshotError) as excinfo:
        check_fresh_out(str(tmp_path), advice='try again')
    message = one_line_error(excinfo)
    assert message == (
        f"output folder '{tmp_path}' already holds snapshots of an earlier run ({name}): try again"
    )
    assert (tmp_path / name).read_bytes() == b'an earlier run'


def test_check_fresh_out_accepts_a_folder_without_snapshots(tmp_path):
    check_fresh_out(str(tmp_path / 'missing'))
    for name in ('log', 'config.json', 'loss.png', 'gen_latest.npz', 'notes.npz'):
        (tmp_path / name).write_bytes(b'x')
    (tmp_path / 'preview').mkdir()
    (tmp_path / 'tmpsnapshot_iter_5abc').mkdir()
    check_fresh_out(str(tmp_path))


def test_check_fresh_out_lists_five_then_counts(tmp_path):
    for n in range(8):
        (tmp_path / f'gen_iter_{n}.npz').write_bytes(b'x')
    with pytest.raises(SnapshotError, match=r'gen_iter_4\.npz and 3 more\)'):
        check_fresh_out(str(tmp_path))


def trainer_snapshots(folder, *iterations):
    folder.mkdir(exist_ok=True)
    return [
        write_npz(folder / f'snapshot_iter_{n}', **{'updater/iteration': numpy.array(n)})
        for n in iterations
    ]


def test_check_resume_out_in_its_own_folder_refuses_to_overwrite_later_snapshots(tmp_path):
    first, _, newest = trainer_snapshots(tmp_path, 1, 2, 3)
    check_resume_out(str(tmp_path), str(newest))  # the usual case: continue the newest
    with pytest.raises(SnapshotError) as excinfo:
        check_resume_out(str(tmp_path), str(first), advice='use another folder')
    assert one_line_error(excinfo) == (
        f"resuming '{first}' (iteration 1) would overwrite the later snapshots in "
        f"'{tmp_path}' (snapshot_iter_2, snapshot_iter_3): use another folder"
    )


def test_check_resume_out_elsewhere_needs_a_folder_without_snapshots(tmp_path):
    [snapshot] = trainer_snapshots(tmp_path / 'run', 3)
    check_resume_out(str(tmp_path / 'new'), str(snapshot))  # missing: fine
    trainer_snapshots(tmp_path / 'other', 9)
    with pytest.raises(SnapshotError, match='already holds snapshots .*: write to another folder'):
        check_resume_out(str(tmp_path / 'other'), str(snapshot))


# ------------------------------------------- per-process snapshots (data-parallel runs)


def rank_snapshots(folder, rank, *iterations):
    folder.mkdir(exist_ok=True)
    return [
        write_npz(
            folder / f'snapshot_iter_{n}{rank_suffix(rank)}',
            **{'updater/iteration': numpy.array(n)},
        )
        for n in iterations
    ]


def test_rank_names():
    assert (rank_suffix(None), rank_suffix(0), rank_suffix(12)) == ('', '.rank0', '.rank12')
    for given in ('out/snapshot_iter_8', 'out/snapshot_iter_8.rank0', 'out/snapshot_iter_8.rank5'):
        assert rank_snapshot(given, 1) == 'out/snapshot_iter_8.rank1'


def test_find_latest_snapshot_of_a_rank_and_below_an_iteration(tmp_path):
    rank_snapshots(tmp_path, 0, 2, 4, 6)
    rank_snapshots(tmp_path, 1, 2, 4)
    trainer_snapshots(tmp_path, 8)  # a one-process snapshot: not any rank's
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert find_latest_snapshot(str(tmp_path), rank=0) == str(
            tmp_path / 'snapshot_iter_6.rank0'
        )
        assert find_latest_snapshot(str(tmp_path), rank=1) == str(
            tmp_path / 'snapshot_iter_4.rank1'
        )
        assert find_latest_snapshot(str(tmp_path), rank=2) is None
        assert find_latest_snapshot(str(tmp_path), rank=0, max_iteration=5) == str(
            tmp_path / 'snapshot_iter_4.rank0'
        )
        # The one-process name is unchanged: the rank files are not its.
        assert find_latest_snapshot(str(tmp_path)) == str(tmp_path / 'snapshot_iter_8')


def test_check_resume_out_compares_a_rank_with_its_own_files(tmp_path):
    first, _ = rank_snapshots(tmp_path, 1, 2, 4)
    rank_snapshots(tmp_path, 0, 2)
    check_resume_out(str(tmp_path), str(tmp_path / 'snapshot_iter_2.rank0'), rank=0)
    with pytest.raises(
        SnapshotError, match=r'overwrite the later snapshots .*\(snapshot_iter_4\.rank1\)'
    ):
        check_resume_out(str(tmp_path), str(first), rank=1)


def test_check_fresh_out_refuses_rank_snapshots(tmp_path):
    rank_snapshots(tmp_path, 1, 2)
    with pytest.raises(SnapshotError, match=r'snapshot_iter_2\.rank1'):
        check_fresh_out(str(tmp_path))


def test_check_writable_probes_do_not_collide_between_ranks(tmp_path):
    # Processes sharing a folder each write and remove their own probe.
    (tmp_path / '.write_test.rank1').write_text('held by another process')
    check_writable(str(tmp_path), rank=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['.write_test.rank1']
