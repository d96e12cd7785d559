"""Reading a run's snapshots: networks for use elsewhere, and their soundness.

(This module sits below :mod:`gan_trainer.run`, which re-exports it, so that
low-level code such as the metrics' classifier can load weights without
importing the whole run machinery.)

A run writes ``gen_iter_N.npz`` / ``dis_iter_N.npz`` (Chainer ``save_npz``
files holding parameters and BatchNorm statistics) beside ``config.json``;
with both, :func:`load_generator` rebuilds the generator anywhere: in
``gan-trainer generate``, a notebook, or another project::

    from gan_trainer.run import load_generator
    gen, record = load_generator('result/gen_iter_2500.npz')

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

from gan_trainer.nets import build_discriminator, build_generator

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


def _rebuild(record, key: str, build, snapshot: str):
    config = getattr(record, key)
    if config.get('arch') == 'custom':
        raise SnapshotError(
            f"'{snapshot}' belongs to a run with its own {key} class "
            f"({config.get('class', '?')}), which gan_trainer cannot rebuild: build it "
            'yourself and load the file with gan_trainer.run.load_params')
    try:
        return build(config)
    except (TypeError, ValueError) as e:
        raise SnapshotError(f"cannot rebuild the {key} of '{snapshot}' from its config: {e}"
                            ) from None


def load_generator(snapshot: str, config_path: str | None = None):
    """Rebuilds the generator of a run and loads ``snapshot`` into it.

    Args:
        snapshot: ``gen_iter_N.npz``, ``gen_ema_iter_N.npz``, ``gen_best.npz``.
        config_path: The run's ``config.json``; by default the one beside
            the snapshot.

    Returns:
        ``(gen, record)``: the generator on the CPU and the run's
        :class:`~gan_trainer.run.RunRecord`.
    """
    from gan_trainer.run.record import record_beside

    # Checked first: a missing snapshot would otherwise be reported as a
    # missing config.json beside it.
    check_exists(snapshot)
    record = record_beside(snapshot, config_path)
    gen = _rebuild(record, 'gen', build_generator, snapshot)
    return load_params(snapshot, gen), record


def load_discriminator(snapshot: str, config_path: str | None = None):
    """Rebuilds the discriminator of a run and loads ``snapshot`` into it."""
    from gan_trainer.run.record import record_beside

    check_exists(snapshot)
    record = record_beside(snapshot, config_path)
    return load_params(snapshot, _rebuild(record, 'dis', build_discriminator, snapshot))


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
