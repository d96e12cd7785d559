"""gan_trainer.files: the run's file names and the one atomic write."""

import os
import signal
import subprocess
import sys

import numpy
import pytest

from gan_trainer import files
from gan_trainer.animation import find_frames
from gan_trainer.checkpoint import load_params
from gan_trainer.testing import tiny_generator


def test_names_round_trip_through_their_patterns():
    assert files.trainer_snapshot(500) == 'snapshot_iter_500'
    assert files.trainer_snapshot(8, 3) == 'snapshot_iter_8.rank3'
    match = files.TRAINER_SNAPSHOT.match(files.trainer_snapshot(8, 3))
    assert (match.group(1), match.group(2)) == ('8', '3')
    assert files.NET_SNAPSHOT.match(files.net_snapshot('gen_ema', 12)).groups() == ('gen_ema', '12')
    assert files.PREVIEW_FRAME.match(files.preview_frame(100)).group(1) == '00000100'
    assert files.rank_suffix(None) == '' and files.rank_suffix(2) == '.rank2'


@pytest.mark.parametrize('name, snapshot', [
    ('snapshot_iter_5', True), ('snapshot_iter_5.rank1', True), ('gen_iter_5.npz', True),
    ('gen_ema_iter_5.npz', True), ('gen_best.npz', False), ('snapshot_iter_x', False),
    ('.snapshot_iter_5.tmp-123', False), ('tmpsnapshot_iter_5abc', False), ('log', False),
])
def test_what_counts_as_a_snapshot(name, snapshot):
    assert files.is_snapshot(name) is snapshot


def test_twin_names_the_other_network_of_the_same_iteration():
    assert files.twin('result/gen_iter_9.npz', 'gen_ema') == 'result/gen_ema_iter_9.npz'
    assert files.twin('result/gen_iter_9.npz', 'dis') == 'result/dis_iter_9.npz'
    assert files.twin('result/gen_best.npz', 'dis') == 'result/gen_best.npz'


def test_the_preview_frames_are_what_the_gif_maker_collects(tmp_path):
    for n in (100, 20, 3):
        (tmp_path / files.preview_frame(n)).write_bytes(b'')
    (tmp_path / files.PREVIEW_LATEST).write_bytes(b'')
    assert [p.name for p in find_frames(tmp_path)] == [
        files.preview_frame(3), files.preview_frame(20), files.preview_frame(100)]


def test_atomic_write_replaces_the_file_through_a_temporary_in_the_same_folder(
        tmp_path, monkeypatch):
    target = tmp_path / 'config.json'
    target.write_text('old')
    renames = []
    real = os.replace

    def spy(src, dst):
        renames.append((os.fspath(src), os.fspath(dst)))
        real(src, dst)

    monkeypatch.setattr(os, 'replace', spy)
    with files.atomic_write(target, 'w', encoding='utf-8') as f:
        f.write('new')
        assert target.read_text() == 'old'  # not yet visible
    [(src, dst)] = renames
    assert os.path.dirname(src) == str(tmp_path) and dst == str(target)
    assert files.is_temporary(os.path.basename(src))
    assert target.read_text() == 'new' and os.listdir(tmp_path) == ['config.json']


def test_a_write_that_fails_midway_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / 'snapshot_iter_4'
    target.write_bytes(b'the previous snapshot')
    with pytest.raises(OSError, match='No space') as excinfo, files.atomic_write(target) as f:
        f.write(b'PK\x03\x04 half of a snapshot')
        raise OSError(28, 'No space left on device')
    assert excinfo.value.filename == str(target)  # the file meant, not its temporary
    assert os.listdir(tmp_path) == ['snapshot_iter_4']
    assert target.read_bytes() == b'the previous snapshot'


KILLED_WHILE_SAVING = """
import os, signal, sys
from gan_trainer import files

with files.atomic_write(os.path.join(sys.argv[1], 'snapshot_iter_5')) as f:
    f.write(b'PK\\x03\\x04 the first bytes of a snapshot')
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.process
def test_a_process_killed_while_saving_leaves_only_a_temporary(tmp_path):
    proc = subprocess.run([sys.executable, '-c', KILLED_WHILE_SAVING, str(tmp_path)],
                          capture_output=True, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    [leftover] = os.listdir(tmp_path)
    assert files.is_temporary(leftover) and not files.is_snapshot(leftover)


def test_save_npz_writes_a_loadable_snapshot(tmp_path):
    gen = tiny_generator(seed=3)
    path = files.save_npz(tmp_path / 'gen_iter_1.npz', gen)
    other = load_params(path, tiny_generator(seed=4))
    numpy.testing.assert_array_equal(other.project.W.array, gen.project.W.array)
    assert os.listdir(tmp_path) == ['gen_iter_1.npz']


def test_save_npz_stores_its_members_and_chainer_and_numpy_read_both_ways(tmp_path):
    import zipfile

    gen = tiny_generator(seed=3)
    stored = files.save_npz(tmp_path / 'stored.npz', gen)
    deflated = files.save_npz(tmp_path / 'deflated.npz', gen, compression=zipfile.ZIP_DEFLATED)
    with zipfile.ZipFile(stored) as a, zipfile.ZipFile(deflated) as b:
        assert {m.compress_type for m in a.infolist()} == {zipfile.ZIP_STORED}
        assert {m.compress_type for m in b.infolist()} == {zipfile.ZIP_DEFLATED}
        assert sorted(a.namelist()) == sorted(b.namelist())
    for path in (stored, deflated):
        other = load_params(path, tiny_generator(seed=4))
        numpy.testing.assert_array_equal(other.project.W.array, gen.project.W.array)
    with numpy.load(stored) as a, numpy.load(deflated) as b:
        assert all(numpy.array_equal(a[k], b[k]) for k in a.files)


def test_write_json_is_readable_json(tmp_path):
    import json

    files.write_json(tmp_path / 'a.json', {'b': [1, 2], 'a': None})
    assert json.loads((tmp_path / 'a.json').read_text()) == {'a': None, 'b': [1, 2]}


def test_images_are_written_atomically(tmp_path, monkeypatch):
    from gan_trainer.image import save_grid

    calls = []
    real = files.atomic_write

    def spy(path, *args, **kwargs):
        calls.append(os.fspath(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr('gan_trainer.image.atomic_write', spy)
    images = numpy.zeros((4, 1, 8, 8), numpy.float32)
    save_grid(images, tmp_path / 'grid.png', 2, 2)
    assert calls == [str(tmp_path / 'grid.png')]
    assert os.listdir(tmp_path) == ['grid.png']
