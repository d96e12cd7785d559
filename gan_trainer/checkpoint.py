"""Model snapshots that can be used without the training script.

A training run writes ``OUT/config.json`` (the networks' constructor
arguments, the z distribution, the class names) beside the generator and
discriminator snapshots ``gen_iter_N.npz`` / ``dis_iter_N.npz`` (Chainer
``save_npz`` files holding parameters and BatchNorm statistics). With both,
:func:`load_generator` rebuilds a generator anywhere: in ``generate.py``, a
notebook, or another project.

The rest keeps runs safe. Chainer's snapshot writers already write each file
into a temporary folder inside ``OUT`` and rename it into place, so a crash
never leaves a half-written file under a snapshot's name (the tests prove
it); :func:`find_latest_snapshot` picks the newest complete trainer snapshot
to resume from; :func:`check_fresh_out` and :func:`check_resume_out` stop a
run from overwriting, or letting ``n_retains`` delete, the snapshots of
another run. ``n_retains`` deletes the files whose names share the pattern's
prefix and suffix, oldest *modification time* first, whatever their N; with
these checks a folder only ever holds one run's snapshots, written in order,
so modification order is iteration order.

A data-parallel run (:mod:`gan_trainer.distributed`) writes one trainer
snapshot per process, ``snapshot_iter_N.rank0``, ``snapshot_iter_N.rank1``,
..., since each process has its own data iterator and random states; the
functions that look for trainer snapshots take a ``rank`` for that
(:func:`rank_suffix`). ``rank=None``, the default, is a one-process run.
:func:`latest_common_snapshot` and :func:`check_snapshot_ranks` pick a
data-parallel run's files to resume.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import warnings
import zipfile
import zlib
from collections.abc import Sequence

import chainer
import numpy

from gan_trainer.nets import build_discriminator, build_generator

CONFIG_NAME = 'config.json'

#: Names of the snapshots a training run writes: the trainer's
#: ``snapshot_iter_N`` and the networks' ``NAME_iter_N.npz`` (``gen``, ``dis``,
#: ``gen_ema``, ...). It covers every file Chainer's ``n_retains`` would delete
#: for those patterns (it matches a pattern's prefix and suffix only).
SNAPSHOT_NAMES = re.compile(r'snapshot_iter_.*|.+_iter_.*\.npz')
TRAINER_PREFIX = 'snapshot_iter_'
RANK_SUFFIX = re.compile(r'\.rank(\d+)\Z')


def rank_suffix(rank: int | None) -> str:
    """What follows N in a trainer snapshot's name: ``''``, or ``'.rank{rank}'``.

    Args:
        rank: The process's rank in a data-parallel run, or None for a
            one-process run.
    """
    return '' if rank is None else f'.rank{int(rank)}'


def rank_snapshot(snapshot: str, rank: int) -> str:
    """Process ``rank``'s file of a data-parallel trainer snapshot.

    ``snapshot`` may name the snapshot without a rank (``snapshot_iter_N``)
    or any process's file (``snapshot_iter_N.rank3``): either way the
    result is ``snapshot_iter_N.rank{rank}`` in the same folder.
    """
    return RANK_SUFFIX.sub('', snapshot) + rank_suffix(rank)


# What numpy.load raises for a file that is not a complete npz: a file that is
# not a zip is taken for a pickle (UnpicklingError, or ValueError with
# allow_pickle=False); a damaged compressed member fails in zlib.
_UNREADABLE = (zipfile.BadZipFile, pickle.UnpicklingError, zlib.error, OSError, EOFError)


class SnapshotError(ValueError):
    """A snapshot or config file is missing, unreadable or does not match."""


def save_config(out: str, config: dict) -> str:
    """Writes ``config`` as ``OUT/config.json`` (atomically) and returns the path."""
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, CONFIG_NAME)
    tmp = path + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump(config, f, indent=2, sort_keys=True)
    os.replace(tmp, path)
    return path


def check_writable(out: str, *, rank: int | None = None) -> None:
    """Makes sure ``out`` can be created and written, before training starts.

    Args:
        out: The output folder.
        rank: The process's rank in a data-parallel run: each process
            writes its own probe file, so that processes sharing ``out``
            do not remove each other's.

    Raises:
        SnapshotError: naming the folder, when it cannot be used.
    """
    try:
        os.makedirs(out, exist_ok=True)
        probe = os.path.join(out, '.write_test' + rank_suffix(rank))
        with open(probe, 'w') as f:
            f.write('ok')
        os.remove(probe)
    except OSError as e:
        raise SnapshotError(f"output folder '{out}' is not writable: {e.strerror or e}") from None


def load_config(snapshot: str, config_path: str | None = None) -> dict:
    """Reads the run config for ``snapshot`` (by default from its folder)."""
    path = config_path or os.path.join(os.path.dirname(os.path.abspath(snapshot)), CONFIG_NAME)
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except FileNotFoundError:
        raise SnapshotError(
            f"no {CONFIG_NAME} at '{path}': pass the config written by the training run (--config)"
        ) from None
    except (OSError, ValueError) as e:
        raise SnapshotError(f"cannot read config '{path}': {e}") from None


def _check_exists(snapshot: str) -> None:
    if not os.path.isfile(snapshot):
        raise SnapshotError(f"snapshot '{snapshot}' does not exist")


def load_params(snapshot: str, link: chainer.Link) -> chainer.Link:
    """Loads a ``save_npz`` snapshot into ``link`` with one-line errors."""
    _check_exists(snapshot)
    try:
        chainer.serializers.load_npz(snapshot, link)
    except _UNREADABLE as e:
        raise SnapshotError(f"snapshot '{snapshot}' is not a readable .npz file ({e})") from None
    except (KeyError, ValueError, TypeError) as e:
        raise SnapshotError(
            f"snapshot '{snapshot}' does not match what it is loaded into: {e}"
        ) from None
    return link


def load_generator(snapshot: str, config_path: str | None = None):
    """Rebuilds the generator of a run and loads ``snapshot`` into it.

    Returns:
        ``(gen, config)``: the generator on the CPU and the run's config.
    """
    # Checked first: a missing snapshot would otherwise be reported as a
    # missing config.json beside it.
    _check_exists(snapshot)
    config = load_config(snapshot, config_path)
    return load_params(snapshot, build_generator(config['gen'])), config


def load_discriminator(snapshot: str, config_path: str | None = None) -> chainer.Link:
    """Rebuilds the discriminator of a run and loads ``snapshot`` into it."""
    _check_exists(snapshot)
    config = load_config(snapshot, config_path)
    return load_params(snapshot, build_discriminator(config['dis']))


def _numbered(out: str, prefix: str, suffix: str = '') -> list[tuple[int, str]]:
    """``(N, path)`` of the files ``prefix + N + suffix`` in ``out``, by N."""
    pattern = re.compile(re.escape(prefix) + r'(\d+)' + re.escape(suffix) + r'\Z')
    try:
        names = os.listdir(out)
    except OSError:  # missing (a fresh run creates it) or not a folder
        return []
    found = []
    for name in names:
        match = pattern.match(name)
        path = os.path.join(out, name)
        if match and os.path.isfile(path):
            found.append((int(match.group(1)), path))
    return sorted(found)


def _damage(path: str) -> str | None:
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


def find_latest_snapshot(
    out: str,
    prefix: str = TRAINER_PREFIX,
    *,
    rank: int | None = None,
    max_iteration: int | None = None,
) -> str | None:
    """Returns the newest complete trainer snapshot ``prefix + N`` in ``out``.

    Snapshots are ordered by N (not by modification time). A file that is
    not a complete npz (truncated by a full disk, zeroed by a power cut) is
    skipped with one :class:`UserWarning` naming it, and the next older one
    is tried.

    Args:
        out: The run's output folder; it need not exist.
        prefix: File name before N; the file name has nothing after N but
            :func:`rank_suffix` of ``rank``.
        rank: Look for process ``rank``'s ``prefix + N + '.rank{rank}'``
            of a data-parallel run instead.
        max_iteration: Only snapshots with ``N <= max_iteration`` (the
            processes of a data-parallel run agree on a common N this way).

    Returns:
        The path (``out`` joined with the file name), or None when ``out``
        holds no readable snapshot.
    """
    skipped = []
    found = None
    for n, path in reversed(_numbered(out, prefix, rank_suffix(rank))):
        if max_iteration is not None and n > max_iteration:
            continue
        reason = _damage(path)
        if reason is None:
            found = path
            break
        skipped.append(f'{os.path.basename(path)} ({reason})')
    if skipped:
        warnings.warn(
            f"skipped {len(skipped)} unreadable snapshot(s) in '{out}': {', '.join(skipped)}",
            stacklevel=2,
        )
    return found


def snapshot_iteration(snapshot: str) -> int:
    """The iteration a trainer snapshot was taken at (its ``updater/iteration``)."""
    _check_exists(snapshot)
    try:
        with numpy.load(snapshot, allow_pickle=False) as f:
            return int(f['updater/iteration'])
    except KeyError:
        raise SnapshotError(
            f"'{snapshot}' is not a trainer snapshot (no updater/iteration)"
        ) from None
    except (*_UNREADABLE, ValueError) as e:
        raise SnapshotError(f"snapshot '{snapshot}' is not a readable .npz file ({e})") from None


def _listing(paths: Sequence[str], limit: int = 5) -> str:
    names = [os.path.basename(p) for p in paths]
    text = ', '.join(names[:limit])
    return text + (f' and {len(names) - limit} more' if len(names) > limit else '')


def check_fresh_out(
    out: str, *, advice: str = 'resume that run or write to another folder'
) -> None:
    """Refuses a new run in a folder that holds another run's snapshots.

    Chainer's ``n_retains`` would delete them (oldest modification time
    first) and equal names would be overwritten. Snapshots are the files
    named as :data:`SNAPSHOT_NAMES` says; Chainer's temporary folders
    (``tmpsnapshot_iter_N...``, left behind by a crash) do not count.

    Args:
        out: The output folder of the new run; it need not exist.
        advice: What the user can do, appended to the message.

    Raises:
        SnapshotError: Naming the folder and the files found.
    """
    try:
        names = sorted(os.listdir(out))
    except OSError:
        return
    found = [name for name in names if SNAPSHOT_NAMES.fullmatch(name)]
    if found:
        raise SnapshotError(
            f"output folder '{out}' already holds snapshots of an earlier run "
            f'({_listing(found)}): {advice}'
        )


def check_resume_out(
    out: str, snapshot: str, *, advice: str = 'write to another folder', rank: int | None = None
) -> None:
    """Makes sure resuming ``snapshot`` into ``out`` overwrites no other snapshot.

    * ``snapshot`` in ``out`` itself: the run continues there, so ``out`` must
      not hold trainer snapshots taken after it (resuming an older one would
      overwrite them with a different history).
    * ``snapshot`` elsewhere: ``out`` is new to this run, as in
      :func:`check_fresh_out`.

    ``rank``: in a data-parallel run, process ``rank`` compares against its
    own ``snapshot_iter_N.rank{rank}`` files.

    Raises:
        SnapshotError: Naming the files that would be lost.
    """
    if os.path.realpath(os.path.dirname(os.path.abspath(snapshot))) != os.path.realpath(out):
        check_fresh_out(out, advice=advice)
        return
    iteration = snapshot_iteration(snapshot)
    later = [path for n, path in _numbered(out, TRAINER_PREFIX, rank_suffix(rank)) if n > iteration]
    if later:
        raise SnapshotError(
            f"resuming '{snapshot}' (iteration {iteration}) would overwrite the later "
            f"snapshots in '{out}' ({_listing(later)}): {advice}"
        )


# ------------------------------------------------ data-parallel runs (one file per process)


def latest_common_snapshot(comm, out: str) -> str | None:
    """Collective: this process's file of the newest snapshot every process has.

    Each process looks for its own complete ``snapshot_iter_N.rank{r}`` in
    ``out`` (as :func:`find_latest_snapshot`; ``comm`` is a ChainerMN
    communicator, or anything with ``rank`` and an mpi4py ``mpi_comm``); if
    the processes' newest N differ (a run killed while they were writing
    one), they step down to the newest N they all have.

    Returns:
        The path for this process, or None (on every process) when some
        process has none.
    """
    # Nothing here may raise on one process only: the others would wait in
    # the allgather. So N comes from the file name (find_latest_snapshot
    # has checked the file), not from reading the file.
    suffix = rank_suffix(comm.rank)
    limit = None
    while True:
        path = find_latest_snapshot(out, rank=comm.rank, max_iteration=limit)
        name = '' if path is None else os.path.basename(path)
        n = int(name[len(TRAINER_PREFIX) : -len(suffix)]) if path else -1
        found = comm.mpi_comm.allgather(n)
        if min(found) == max(found):
            return path if n >= 0 else None
        limit = min(found)
        if limit < 0:
            return None


def check_snapshot_ranks(comm, snapshot: str) -> str:
    """This process's file of a per-process trainer snapshot, checked.

    Args:
        snapshot: ``snapshot_iter_N`` or any process's
            ``snapshot_iter_N.rankK``.

    Raises:
        SnapshotError: When this process's file is missing, or when the
            run that wrote it had more processes than this one.
    """
    mine = rank_snapshot(snapshot, comm.rank)
    stem = rank_snapshot(snapshot, 0)[: -len('.rank0')]
    if not os.path.isfile(mine):
        raise SnapshotError(
            f"snapshot '{mine}' does not exist: {comm.size} processes resume from "
            f'{os.path.basename(stem)}.rank0 to .rank{comm.size - 1}, written by a run '
            'of as many processes'
        )
    if os.path.exists(rank_snapshot(snapshot, comm.size)):
        raise SnapshotError(
            f"snapshot '{stem}' has files of more processes than the {comm.size} of this "
            'run: resume it with as many processes as wrote it'
        )
    return mine
