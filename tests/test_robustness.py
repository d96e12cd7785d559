"""Never lose a run: crashes, NaNs and bad input, as a user meets them.

End-to-end tests run ``examples/train_dcgan.py`` with the tiny settings of
``tests/helpers.py``: a run killed with SIGKILL in a real process and
resumed with ``--resume auto`` ends bit-for-bit equal to an uninterrupted
one; through the command's ``main(argv)`` in this process, a NaN stops
training with exit status 3 and keeps the last good snapshot, and a folder
holding another run's snapshots is refused. The rest of the bad-input
gauntlet (odd image files) runs on the dataset loader directly. Every bad input ends in a clean conversion, a
skip with one warning listing the files, or one line of error with exit
status 2, and never touches an earlier snapshot.
"""

import io
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import warnings
import zlib

import numpy
import pytest
from helpers import (
    FAST,
    REPO,
    assert_one_line_error,
    assert_same_weights,
    succeeded,
    train,
    train_here,
)
from PIL import Image

from gan_trainer.datasets import ImageFolderDataset, LargeImageWarning, SkippedFilesWarning
from gan_trainer.files import is_snapshot
from gan_trainer.image import load_image

PROG = 'train_dcgan.py'
AS_ROOT = hasattr(os, 'geteuid') and os.geteuid() == 0


def snapshots(out):
    """{name: bytes} of the snapshot files in ``out``."""
    return {p.name: p.read_bytes() for p in out.iterdir() if is_snapshot(p.name)}


def stderr_lines(proc):
    assert 'Traceback' not in proc.stderr, proc.stderr
    return proc.stderr.splitlines()


# ------------------------------------------------------------ crash and resume

# 300 iterations of ~10 ms: long enough to kill the run between snapshots.
SETTINGS = {
    '--iteration': 300,
    '--snapshot_interval': 50,
    '--display_interval': 25,
    '--preview_interval': 300,
    '--eval_interval': 300,
}
LONG = [str(part) for pair in SETTINGS.items() for part in pair]


def start(*args):
    """``train(*args)`` in the background (the same flags, stderr piped)."""
    return subprocess.Popen(
        [sys.executable, 'examples/train_dcgan.py', *FAST.split(), *map(str, args)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.process
def test_sigkill_then_resume_auto_ends_bit_for_bit_like_an_uninterrupted_run(tmp_path):
    full, killed = tmp_path / 'full', tmp_path / 'killed'
    reference = start(*LONG, '--out', full)  # runs alongside, on the other core
    victim = start(*LONG, '--out', killed)
    deadline = time.monotonic() + 120
    while not (killed / 'snapshot_iter_50').exists():
        assert victim.poll() is None, victim.stderr.read()
        assert time.monotonic() < deadline, 'no snapshot after 120 s'
        time.sleep(0.005)
    time.sleep(0.1)  # some iterations past the snapshot, maybe into the next one
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    victim.stderr.close()
    assert victim.returncode == -signal.SIGKILL  # killed, not finished
    assert not (killed / 'snapshot_iter_300').exists()
    newest = max(int(p.name.split('_')[-1]) for p in killed.glob('snapshot_iter_*'))

    proc = succeeded(train(*LONG, '--resume', 'auto', '--out', killed))
    assert proc.stdout.splitlines()[0] == f'{PROG}: resuming from {killed}/snapshot_iter_{newest}'
    _, reference_stderr = reference.communicate(timeout=300)
    assert reference.returncode == 0, reference_stderr
    # The same console output too (tiny nets trip the divergence warning at
    # the same iteration: the monitor's window was resumed as well).
    assert proc.stderr == reference_stderr

    for name in ('gen_iter_300.npz', 'dis_iter_300.npz'):
        assert_same_weights(killed / name, full / name)
    logs = [json.loads((out / 'log').read_text()) for out in (full, killed)]
    for entries in logs:
        for entry in entries:
            entry.pop('elapsed_time')
    assert logs[0] == logs[1]


@pytest.fixture(scope='module')
def short_run(tmp_path_factory):
    """Three iterations with a snapshot after each, started with --resume auto."""
    out = tmp_path_factory.mktemp('short') / 'result'
    proc = succeeded(
        train_here('--iteration', 3, '--snapshot_interval', 1, '--resume', 'auto', '--out', out)
    )
    assert (
        proc.stdout.splitlines()[0]
        == f"{PROG}: no snapshot to resume in '{out}'; starting a new run"
    )
    assert sorted(snapshots(out)) == sorted(
        f'{kind}_iter_{i}{ext}'
        for i in (1, 2, 3)
        for kind, ext in (('snapshot', ''), ('gen', '.npz'), ('dis', '.npz'))
    )
    return out


def copy_run(short_run, tmp_path):
    out = tmp_path / 'result'
    shutil.copytree(short_run, out)
    return out


def test_nan_stops_with_status_3_and_keeps_the_last_good_snapshot(short_run, tmp_path):
    out = copy_run(short_run, tmp_path)
    before = snapshots(out)
    # Adam's step size is not part of a snapshot: resumed with 1e30 (a change
    # of course, asked for by name), the first update (iteration 4) sends the
    # weights past float32's range.
    proc = train_here('--iteration', 6, '--snapshot_interval', 1, '--lr', 1e30,
                      '--allow_change', 'lr', '--resume', 'auto', '--out', out)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.splitlines()[0] == f'{PROG}: resuming from {out}/snapshot_iter_3'
    *others, last = stderr_lines(proc)
    assert last == (
        f'{PROG}: error: training stopped at iteration 4: gen/loss is nan '
        f'(newest snapshot kept: {out}/snapshot_iter_3)'
    )
    # Before it, at most NumPy's overflow warnings, each on one line.
    assert all(line.startswith(f'{PROG}: warning: ') for line in others), others
    assert snapshots(out) == before  # nothing of iteration 4 written, nothing deleted
    with numpy.load(out / 'gen_iter_3.npz') as f:
        assert all(numpy.isfinite(f[k]).all() for k in f.files)


def fake_snapshot_folder(out, names):
    out.mkdir()
    for i, name in enumerate(names):
        (out / name).write_bytes(bytes([i]) * 100)
    return {name: ((out / name).read_bytes(), (out / name).stat().st_mtime_ns) for name in names}


def unchanged(out, before):
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir()
             if p.is_file()}
    return after == before and not (out / 'damaged').exists()


@pytest.mark.parametrize(
    'names',
    [['snapshot_iter_500', 'gen_iter_500.npz', 'dis_iter_500.npz'], ['gen_ema_iter_9.npz']],
    ids=['trainer_and_nets', 'nets_only'],
)
def test_a_new_run_refuses_a_folder_with_snapshots_and_touches_nothing(tmp_path, names):
    out = tmp_path / 'result'
    before = fake_snapshot_folder(out, names)
    proc = train_here('--out', out)
    assert_one_line_error(proc, f"output folder '{out}' already holds snapshots", PROG)
    assert 'pass --resume auto to continue it, or another --out' in proc.stderr
    assert unchanged(out, before)  # not even config.json (or a lock file) was written


def test_resume_auto_without_a_readable_snapshot_is_refused(tmp_path):
    out = tmp_path / 'result'
    before = fake_snapshot_folder(out, ['snapshot_iter_7', 'gen_iter_7.npz'])
    proc = train_here('--resume', 'auto', '--out', out)
    assert proc.returncode == 2
    warning, error = stderr_lines(proc)
    assert warning.startswith(f"{PROG}: warning: skipped 1 unreadable snapshot(s) in '{out}'")
    assert 'snapshot_iter_7 (BadZipFile' in warning
    assert error.startswith(f"{PROG}: error: output folder '{out}' already holds snapshots")
    assert error.endswith('none of them can be resumed; pass another --out')
    assert unchanged(out, before)


def run_files(out):
    # The lock file holds the process that last held the folder: not the run's.
    return {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != '.lock'}


def test_resuming_an_older_snapshot_in_its_own_folder_is_refused(short_run, tmp_path):
    out = copy_run(short_run, tmp_path)
    before = run_files(out)
    proc = train_here('--resume', out / 'snapshot_iter_1', '--out', out)
    assert_one_line_error(proc, 'would overwrite the later snapshots', PROG)
    assert 'snapshot_iter_2, snapshot_iter_3' in proc.stderr
    assert run_files(out) == before


# ------------------------------------------------------------ bad command lines


def test_negative_batch_size_is_one_line(tmp_path):
    proc = train_here('--batchsize', '-3', '--out', tmp_path / 'result')
    assert_one_line_error(proc, '--batchsize: must be at least 1, got -3', PROG)


@pytest.mark.skipif(AS_ROOT, reason='root writes into read-only folders')
def test_read_only_out_is_one_line_before_training(tmp_path):
    out = tmp_path / 'locked'
    out.mkdir(mode=0o555)
    proc = train_here('--out', out)
    assert_one_line_error(proc, f"output folder '{out}' is not writable", PROG)


# ------------------------------------------------------------ odd image files


def png_header(width, height):
    """A PNG that only declares its size: enough for Pillow's bomb check."""

    def chunk(kind, data):
        return (
            struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
        )

    ihdr = struct.pack('>IIBBBBB', width, height, 1, 0, 0, 0, 0)  # 1-bit gray
    return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IEND', b'')


def truncated_jpeg():
    buffer = io.BytesIO()
    pixels = numpy.random.RandomState(0).randint(0, 256, (64, 64, 3), numpy.uint8)
    Image.fromarray(pixels).save(buffer, format='JPEG')
    return buffer.getvalue()[:1500]


def test_a_folder_of_odd_images_trains_and_lists_what_it_skipped(tmp_path):
    zoo = tmp_path / 'zoo'
    zoo.mkdir()
    palette = Image.new('P', (12, 9))
    palette.putpalette([10, 20, 30] * 256)
    good = {
        'alpha.png': Image.new('RGBA', (9, 12), (200, 0, 0, 0)),
        'deep.png': Image.fromarray(numpy.full((10, 10), 128 * 257, numpy.uint16)),
        'palette.png': palette,
        'cmyk.jpg': Image.new('CMYK', (16, 16), (0, 255, 255, 0)),
        'gray.png': Image.new('L', (16, 16), 100),
        'rgb.png': Image.new('RGB', (20, 10), (0, 0, 255)),
        'dot.png': Image.new('RGB', (1, 1), (255, 0, 0)),
        'huge.jpg': Image.new('RGB', (6000, 6000), (0, 255, 0)),  # 36 Mpx: legit
    }
    for name, img in good.items():
        img.save(zoo / name)
    (zoo / 'cut.jpg').write_bytes(truncated_jpeg())
    (zoo / 'text.png').write_text('not an image')
    (zoo / 'bomb.png').write_bytes(png_header(20000, 10000))  # 200 Mpx: over the limit
    (zoo / 'notes.txt').write_text('not an image file name; ignored')

    # 8 readable images: 1 held out, 7 to train on, fewer than the batch.
    proc = succeeded(
        train_here('--dataset', zoo, '--size', 8, '--batchsize', 64, '--out', tmp_path / 'out')
    )
    skipped, clamped = stderr_lines(proc)
    assert skipped.startswith(
        f"{PROG}: warning: skipped 3 unreadable file(s) in dataset folder '{zoo}'"
    )
    # Each file named with what is wrong with it.
    listed = skipped.split("': ", 1)[1]
    assert listed.startswith('bomb.png (DecompressionBombError: ')
    assert ', cut.jpg (' in listed and ', text.png (UnidentifiedImageError: ' in listed
    assert (
        clamped == f'{PROG}: warning: --batchsize 64 is larger than the 7 training images; using 7'
    )
    config = json.loads((tmp_path / 'out' / 'config.json').read_text())
    assert (config['gen']['size'], config['gen']['channels']) == (8, 3)


def test_a_one_pixel_image_is_scaled_up_evenly(tmp_path):
    Image.new('RGB', (1, 1), (255, 0, 0)).save(tmp_path / 'dot.png')
    image = load_image(tmp_path / 'dot.png', size=8)
    expected = numpy.broadcast_to(numpy.reshape([1, -1, -1], (3, 1, 1)), (3, 8, 8))
    numpy.testing.assert_array_equal(image, expected)


def test_a_big_png_under_pillows_limit_loads_without_a_warning(tmp_path):
    Image.new('L', (6000, 6000), 100).save(tmp_path / 'big.png')
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        dataset = ImageFolderDataset(tmp_path, size=4, gray=True)
    numpy.testing.assert_allclose(dataset[0][0], 100 / 127.5 - 1, atol=1e-6)


def test_pillows_bomb_limits_warn_then_skip(tmp_path, monkeypatch):
    # The real limits (89 and 179 Mpx) scaled down: over 4,096 pixels warns,
    # over twice that is refused. Pillow reads the size from the header.
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 64 * 64)
    Image.new('RGB', (70, 70), (0, 0, 255)).save(tmp_path / 'large.png')  # 4,900 px
    Image.new('RGB', (100, 100), (0, 0, 255)).save(tmp_path / 'bomb.png')  # 10,000 px
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter('always')
        dataset = ImageFolderDataset(tmp_path, size=4)
        image = dataset[0][0]
    assert [os.path.basename(p) for p in dataset.paths] == ['large.png']
    assert image.shape == (3, 4, 4)
    assert dataset.skipped[0][1].startswith('DecompressionBombError')
    skips = [str(r.message) for r in record if r.category is SkippedFilesWarning]
    assert len(skips) == 1 and ": bomb.png (DecompressionBombError: " in skips[0]
    # The large one is named in a warning of the dataset's own (Pillow's
    # does not name the file), and not an error.
    [large] = [str(r.message) for r in record if r.category is LargeImageWarning]
    assert large.startswith(f"1 image(s) in dataset folder '{tmp_path}' are over 4,096 pixels")
    assert large.endswith(': large.png')
    assert {r.category for r in record} == {SkippedFilesWarning, LargeImageWarning}


def test_a_file_that_cannot_be_opened_is_skipped_and_listed(tmp_path, monkeypatch):
    # Tests run as root, which reads anything; a PermissionError is
    # simulated where the file is opened (os.open, as the kernel would refuse).
    for name in ('locked.png', 'open.png'):
        Image.new('L', (4, 4), 0).save(tmp_path / name)
    real_open = os.open

    def guarded_open(path, *args, **kwargs):
        if os.path.basename(os.fspath(path)) == 'locked.png':
            raise PermissionError(13, 'Permission denied', os.fspath(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, 'open', guarded_open)
    with pytest.warns(SkippedFilesWarning, match=r'skipped 1 .*: locked\.png \(PermissionError'):
        dataset = ImageFolderDataset(tmp_path, size=4)
    assert dataset.skipped[0][1].startswith('PermissionError')
    assert len(dataset) == 1


@pytest.mark.skipif(AS_ROOT, reason='root reads files whatever their permissions')
def test_a_file_without_read_permission_is_skipped_and_listed(tmp_path):
    for name in ('locked.png', 'open.png'):
        Image.new('L', (4, 4), 0).save(tmp_path / name)
    (tmp_path / 'locked.png').chmod(0)
    with pytest.warns(SkippedFilesWarning, match=r'locked\.png \(PermissionError'):
        dataset = ImageFolderDataset(tmp_path, size=4)
    assert len(dataset) == 1
