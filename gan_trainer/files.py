"""Every file a training run writes, by name, and the one atomic write.

A run's output folder (``--out``) holds files that several parts of the
package write or look for: the trainer and network snapshots (the
snapshot extension, the resume search, the check that a new run does not
overwrite an old one), the preview grids (:class:`~gan_trainer.extensions.ImageGrid`,
:mod:`gan_trainer.animation`, the TensorBoard report), the best generator
by FID, ``config.json``. Each name is spelled here once and imported
everywhere else, so renaming one cannot break the others silently.

This module sits below :mod:`gan_trainer.extensions` and
:mod:`gan_trainer.run` (both import it, it imports neither), which is why
the names live here rather than in :class:`gan_trainer.run.RunFolder`, the
object that owns a run's folder and uses them.

:func:`atomic_write` is the only way the package writes a file that must
never be seen half-written: the bytes go to a temporary file in the same
folder, which is flushed to disk and then renamed over the final name
(a rename within one file system is atomic), so a crash, a ``kill -9`` or
a full disk leaves either the old file or the new one, never a mix.
Temporary files are named ``.NAME.tmp-PID``: hidden, and matching none
of the snapshot patterns below, so no search mistakes one for a snapshot.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import zipfile
from collections.abc import Iterator
from typing import IO, Any

#: The run's configuration (:class:`gan_trainer.run.RunRecord`).
CONFIG = 'config.json'
#: Chainer's ``LogReport`` output (a JSON list) and its plot.
LOG = 'log'
LOSS_PLOT = 'loss.png'
#: The preview grids (:class:`~gan_trainer.extensions.ImageGrid`).
PREVIEW_DIR = 'preview'
PREVIEW_LATEST = 'latest.png'
#: The animation of the preview grids written when a run ends.
GIF = 'training.gif'
#: The lock that gives a folder to one run at a time (:class:`gan_trainer.run.RunFolder`).
LOCK = '.lock'
#: Where damaged snapshots are moved aside by ``--resume auto``.
DAMAGED_DIR = 'damaged'
#: TensorBoard event files.
TENSORBOARD_DIR = 'tensorboard'
#: Stem of the best generator by FID (``gen_best.npz`` and ``gen_best.json``).
BEST_STEM = 'gen_best'

TRAINER_PREFIX = 'snapshot_iter_'
#: A trainer snapshot: group 1 is the iteration, group 2 the rank (or None).
TRAINER_SNAPSHOT = re.compile(r'snapshot_iter_(\d+)(?:\.rank(\d+))?\Z')
#: A network snapshot ``NAME_iter_N.npz``: group 1 the network, group 2 N.
NET_SNAPSHOT = re.compile(r'(.+)_iter_(\d+)\.npz\Z')
#: A preview frame: group 1 is the iteration.
PREVIEW_FRAME = re.compile(r'image_(\d+)\.png\Z')
_TEMPORARY = re.compile(r'\..+\.tmp-\d+\Z')


def rank_suffix(rank: int | None) -> str:
    """What follows N in a trainer snapshot's name: ``''``, or ``'.rank{rank}'``.

    Args:
        rank: The process's rank in a data-parallel run, or None for a
            one-process run.
    """
    return '' if rank is None else f'.rank{int(rank)}'


def trainer_snapshot(iteration: int, rank: int | None = None) -> str:
    """``snapshot_iter_N`` (``.rank{r}`` for one process of a data-parallel run)."""
    return f'{TRAINER_PREFIX}{int(iteration)}{rank_suffix(rank)}'


def net_snapshot(net: str, iteration: int) -> str:
    """``NAME_iter_N.npz``: one network's parameters and statistics at iteration N."""
    return f'{net}_iter_{int(iteration)}.npz'


def preview_frame(iteration: int) -> str:
    """``image_0000N.png``: the preview grid at iteration N (zero-padded to 8 digits)."""
    return f'image_{int(iteration):08d}.png'


def twin(net_path: str, net: str) -> str:
    """The snapshot of network ``net`` taken with ``net_path``: same folder and N.

    ``twin('result/gen_iter_9.npz', 'gen_ema')`` is ``'result/gen_ema_iter_9.npz'``.
    Names that are not network snapshots (``gen_best.npz``) come back
    unchanged.
    """
    folder, name = os.path.split(net_path)
    match = NET_SNAPSHOT.match(name)
    if not match:
        return net_path
    return os.path.join(folder, net_snapshot(net, int(match.group(2))))


def is_snapshot(name: str) -> bool:
    """Whether a file name is a trainer or network snapshot of a run."""
    return bool(TRAINER_SNAPSHOT.match(name) or NET_SNAPSHOT.match(name))


def is_temporary(name: str) -> bool:
    """Whether a file name is one of :func:`atomic_write`'s temporary files."""
    return bool(_TEMPORARY.match(name))


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = 'wb',
                 encoding: str | None = None) -> Iterator[IO[Any]]:
    """Opens a temporary file that replaces ``path`` when the block succeeds.

    Usage::

        with atomic_write('result/config.json', 'w', encoding='utf-8') as f:
            json.dump(config, f)

    The parent folder must exist. If the block raises (a full disk, a
    bad value), the temporary file is removed and ``path`` is untouched.

    Args:
        path: The file to (re)write.
        mode: ``'wb'`` or ``'w'``.
        encoding: For text mode.
    """
    path = os.fspath(path)
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f'.{name}.tmp-{os.getpid()}')
    try:
        with open(tmp, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(e, OSError) and e.filename in (None, tmp):
            e.filename = path  # say which file could not be written, not its temporary
        raise


def write_json(path: str | os.PathLike, data: Any) -> str:
    """Writes ``data`` as indented JSON to ``path`` with :func:`atomic_write`."""
    with atomic_write(path, 'w', encoding='utf-8') as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write('\n')
    return os.fspath(path)


def save_npz(path: str | os.PathLike, obj, compression: int = zipfile.ZIP_STORED) -> str:
    """Chainer's ``save_npz`` of ``obj`` (a Link, an optimizer, a trainer), atomically.

    The file holds what ``chainer.serializers.save_npz`` writes (an npz of
    the object's serialized arrays, which ``chainer.serializers.load_npz``
    and ``numpy.load`` read), written here with a zip archive that is
    closed even when a write fails: NumPy's ``savez`` leaves its archive
    open on an error, and its late ``__del__`` then prints a traceback of
    its own when the process exits (seen on a full disk).

    Members are stored, not deflated (``compression``, a ``zipfile``
    constant, says otherwise): trained float32 weights and Adam's moments
    are close to random bits, so deflate saves a tenth of the size and
    costs seconds per file on a CPU, every snapshot, in the training
    process (a ``keras-dcgan`` run's 100 MB trainer snapshot; measured by
    ``benchmarks/snapshot_write.py``, figures in ``benchmarks/RESULTS.md``).
    Every member keeps its CRC, so :func:`gan_trainer.checkpoint.damage`
    finds a damaged file either way.
    """
    import chainer
    import numpy

    serializer = chainer.serializers.DictionarySerializer()
    serializer.save(obj)
    with atomic_write(path) as f, zipfile.ZipFile(
            f, mode='w', compression=compression, allowZip64=True) as archive:
        for key, value in serializer.target.items():
            with archive.open(key + '.npy', 'w', force_zip64=True) as member:
                numpy.lib.format.write_array(member, numpy.asanyarray(value), allow_pickle=True)
    return os.fspath(path)
