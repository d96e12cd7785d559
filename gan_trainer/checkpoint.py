"""Reading snapshot files: loading one into a link, and telling whether it is whole.

:func:`load_params` loads a Chainer ``save_npz`` file (a network's
``gen_iter_N.npz``, a trainer's ``snapshot_iter_N``) into what it belongs
to, with one-line errors; the networks of a run are rebuilt from its
``config.json`` by :func:`gan_trainer.run.load_generator` (which uses this).
This module sits below :mod:`gan_trainer.run` so that low-level code, such
as the metrics' classifier, can load weights without the run machinery.

:func:`damage` tells whether a snapshot file is complete (every member read
and checked against its CRC), which is how the resume search skips a file a
full disk or a power cut cut short. Every error is a one-line
:class:`SnapshotError` naming the file.
"""

from __future__ import annotations

import os
import pickle
import zipfile
import zlib

import chainer
import numpy

# What numpy.load raises for a file that is not a complete npz: a file that is
# not a zip is taken for a pickle (UnpicklingError, or ValueError with
# allow_pickle=False); a damaged compressed member fails in zlib.
_UNREADABLE = (zipfile.BadZipFile, pickle.UnpicklingError, zlib.error, OSError, EOFError)


class SnapshotError(ValueError):
    """A snapshot or config file is missing, unreadable or does not match."""


def check_exists(snapshot: str) -> None:
    """Raises :class:`SnapshotError` unless ``snapshot`` is a file."""
    if not os.path.isfile(snapshot):
        raise SnapshotError(f"snapshot '{snapshot}' does not exist")


def load_params(snapshot: str, link) -> object:
    """Loads a ``save_npz`` snapshot into ``link`` (or a trainer) with one-line errors."""
    check_exists(snapshot)
    try:
        chainer.serializers.load_npz(snapshot, link)
    except _UNREADABLE as e:
        raise SnapshotError(f"snapshot '{snapshot}' is not a readable .npz file ({e})") from None
    except (KeyError, ValueError, TypeError) as e:
        raise SnapshotError(
            f"snapshot '{snapshot}' does not match what it is loaded into: {e}"
        ) from None
    return link


def damage(path: str) -> str | None:
    """Why ``path`` is not a complete npz file, or None if it is one.

    Every member is read and checked against its CRC, so a truncated file
    or one with damaged bytes anywhere is found, not only a missing header.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile, zlib.error, EOFError, ValueError) as e:
        return f'{type(e).__name__}: {e}'.splitlines()[0]
    if bad is not None:
        return f'member {bad} is damaged'
    if not names or not all(name.endswith('.npy') for name in names):
        return 'not an npz file'
    return None


def snapshot_iteration(snapshot: str) -> int:
    """The iteration a trainer snapshot was taken at (its ``updater/iteration``)."""
    check_exists(snapshot)
    try:
        with numpy.load(snapshot, allow_pickle=False) as f:
            return int(f['updater/iteration'])
    except KeyError:
        raise SnapshotError(
            f"'{snapshot}' is not a trainer snapshot (no updater/iteration)"
        ) from None
    except (*_UNREADABLE, ValueError) as e:
        raise SnapshotError(f"snapshot '{snapshot}' is not a readable .npz file ({e})") from None
