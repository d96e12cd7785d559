"""RunFolder: a run's output folder, owned by one run at a time.

Everything a run writes goes into one folder (``--out``). This object knows
every file name in it (from :mod:`gan_trainer.files`) and keeps the rules
that make a folder safe to train in:

* **One run at a time.** :meth:`RunFolder.lock` takes an exclusive
  ``flock`` on ``OUT/.lock``; a second run on the folder fails at once with
  a :class:`~gan_trainer.run.errors.FolderBusy` naming the process that
  holds it. The kernel releases the lock when that process ends, however
  it ends (``kill -9`` included), so a lock never outlives its run.
* **No snapshot lost to another run.** :meth:`check_fresh` refuses a new
  run in a folder that holds snapshots, and :meth:`check_resume` refuses
  to resume an older snapshot where later ones would be overwritten.
* **The newest complete snapshot.** :meth:`latest` orders trainer
  snapshots by their iteration N (never by modification time) and checks
  each file whole (:func:`~gan_trainer.checkpoint.damage`); a damaged
  one is moved aside into ``OUT/damaged/`` with a warning (never deleted),
  and the next older one is taken.
* **--keep across resumes.** :meth:`prune` keeps the newest ``keep``
  snapshots of each kind by N, whichever process (or earlier, resumed
  part of the run) wrote them.

A data-parallel run (:mod:`gan_trainer.distributed`) writes one trainer
snapshot per process, ``snapshot_iter_N.rank0``, ``.rank1``, ...; a folder
is made with the process's ``rank`` for that, and :meth:`latest_common`
makes the processes agree on the newest N they all have.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import warnings
from collections.abc import Sequence

from gan_trainer import files
from gan_trainer.checkpoint import SnapshotError, damage, snapshot_iteration
from gan_trainer.run.errors import NO_ROOM, FolderBusy, ResourceError

try:
    import fcntl
except ImportError:  # Windows: no flock; the folder is then not locked
    fcntl = None


class RunFolder:
    """The output folder of a run (see the module docstring).

    Args:
        path: The folder; created by :meth:`check_writable`.
        rank: This process's rank in a data-parallel run, or None.
    """

    def __init__(self, path: str | os.PathLike, *, rank: int | None = None) -> None:
        self.path = os.fspath(path)
        self.rank = rank
        self._lock_file = None
        self._created = False  # whether check_writable made the folder
        self._lock_made = False  # whether lock() made the lock file

    def __repr__(self) -> str:
        return f'RunFolder({self.path!r})'

    # ------------------------------------------------------------ names

    def join(self, *parts: str) -> str:
        """A path inside the folder."""
        return os.path.join(self.path, *parts)

    @property
    def config(self) -> str:
        return self.join(files.CONFIG)

    @property
    def preview_dir(self) -> str:
        return self.join(files.PREVIEW_DIR)

    @property
    def gif(self) -> str:
        return self.join(files.GIF)

    def trainer_snapshot(self, iteration: int) -> str:
        """This process's trainer snapshot of ``iteration``."""
        return self.join(files.trainer_snapshot(iteration, self.rank))

    def net_snapshot(self, net: str, iteration: int) -> str:
        return self.join(files.net_snapshot(net, iteration))

    # ----------------------------------------------------------- checks

    def check_writable(self) -> None:
        """Creates the folder and writes a probe file, before anything else is done.

        Raises:
            SnapshotError: When it cannot be a folder or written (bad input).
            ResourceError: When the disk is full (or over quota).
        """
        probe = self.join('.write_test' + files.rank_suffix(self.rank))
        try:
            self._created = not os.path.isdir(self.path)
            os.makedirs(self.path, exist_ok=True)
            with open(probe, 'w') as f:
                f.write('ok')
            os.remove(probe)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.remove(probe)
            if e.errno in NO_ROOM:
                raise ResourceError(f"output folder '{self.path}' cannot be written: "
                                    f'{e.strerror}') from None
            raise SnapshotError(
                f"output folder '{self.path}' is not writable: {e.strerror or e}") from None

    def lock(self) -> None:
        """Takes the folder for this run until :meth:`unlock` or the process ends.

        Raises:
            FolderBusy: When another process holds it (its pid and host
                are named when it wrote them).
        """
        if fcntl is None or self._lock_file is not None:
            return
        path = self.join(files.LOCK)
        made = not os.path.exists(path)
        f = open(path, 'a+', encoding='utf-8')  # noqa: SIM115 - held until unlock()
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or 'another process'
            f.close()
            raise FolderBusy(
                f"output folder '{self.path}' is in use by another run ({holder}): wait for "
                'it to end, or pass another --out') from None
        f.seek(0)
        f.truncate()
        f.write(f'process {os.getpid()} on {socket.gethostname()}\n')
        f.flush()
        self._lock_file, self._lock_made = f, made

    def unlock(self) -> None:
        """Releases the folder (also done by the kernel when the process ends)."""
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def abandon(self) -> None:
        """Undoes what the checks of a run that failed to start left behind.

        Unlocks the folder and removes the lock file if :meth:`lock` made
        it, and the folder itself if :meth:`check_writable` made it and it
        is empty again, so a run refused for bad input leaves no trace.
        """
        holding = self._lock_file is not None
        self.unlock()
        with contextlib.suppress(OSError):
            if holding and self._lock_made:
                os.remove(self.join(files.LOCK))
            if self._created and not os.listdir(self.path):
                os.rmdir(self.path)

    def remove_temporaries(self) -> list[str]:
        """Removes what interrupted atomic writes left; call with the lock held.

        With the lock, no other process is writing here, so every
        ``.NAME.tmp-PID`` file and every ``tmpsnapshot_iter_*`` folder of
        Chainer's own writer is the remains of a crash.
        """
        removed = []
        for name in self._names():
            path = self.join(name)
            if files.is_temporary(name) or (name.startswith('tmp' + files.TRAINER_PREFIX)
                                            and os.path.isdir(path)):
                with contextlib.suppress(OSError):
                    shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
                    removed.append(name)
        return removed

    def snapshots(self) -> list[str]:
        """Names of every trainer and network snapshot in the folder, sorted."""
        return sorted(n for n in self._names() if files.is_snapshot(n))

    def check_fresh(self, *, advice: str = 'pass --resume auto to continue it, or another '
                                            '--out') -> None:
        """Refuses a new run where snapshots of another run are.

        Raises:
            SnapshotError: Naming the folder and the files found.
        """
        found = self.snapshots()
        if found:
            raise SnapshotError(
                f"output folder '{self.path}' already holds snapshots of an earlier run "
                f'({_listing(found)}): {advice}')

    def check_resume(self, snapshot: str, *, advice: str = 'pass another --out',
                     ignore: Sequence[str] = ()) -> None:
        """Makes sure resuming ``snapshot`` here overwrites no other snapshot.

        * ``snapshot`` in this folder: the run continues here, so the folder
          must not hold trainer snapshots taken after it (but those in
          ``ignore``, which the caller moves aside with :meth:`set_aside`).
        * ``snapshot`` elsewhere: this folder is new to the run, as in
          :meth:`check_fresh`.

        Raises:
            SnapshotError: Naming the files that would be lost.
        """
        if os.path.realpath(os.path.dirname(os.path.abspath(snapshot))) != (
                os.path.realpath(self.path)):
            self.check_fresh(advice=advice)
            return
        iteration = snapshot_iteration(snapshot)
        later = [path for n, path in self.trainer_snapshots()
                 if n > iteration and path not in ignore]
        if later:
            raise SnapshotError(
                f"resuming '{snapshot}' (iteration {iteration}) would overwrite the later "
                f"snapshots in '{self.path}' ({_listing(later)}): {advice}")

    # -------------------------------------------------------- snapshots

    def trainer_snapshots(self) -> list[tuple[int, str]]:
        """``(N, path)`` of this process's trainer snapshots, by N."""
        found = []
        for name in self._names():
            match = files.TRAINER_SNAPSHOT.match(name)
            if not match or (None if match.group(2) is None else int(match.group(2))) != (
                    self.rank):
                continue
            path = self.join(name)
            if os.path.isfile(path):
                found.append((int(match.group(1)), path))
        return sorted(found)

    def net_snapshots(self) -> dict[str, list[tuple[int, str]]]:
        """Network name -> ``(N, path)`` of its snapshots, by N."""
        found: dict[str, list[tuple[int, str]]] = {}
        for name in self._names():
            match = files.NET_SNAPSHOT.match(name)
            if match and os.path.isfile(self.join(name)):
                found.setdefault(match.group(1), []).append((int(match.group(2)),
                                                             self.join(name)))
        return {net: sorted(items) for net, items in found.items()}

    def latest_net(self, net: str = 'gen') -> str | None:
        """The path of network ``net``'s newest snapshot (``gen_iter_N.npz``), or None."""
        found = self.net_snapshots().get(net)
        return found[-1][1] if found else None

    def latest(self, *, max_iteration: int | None = None) -> str | None:
        """The newest complete trainer snapshot of this process, or None.

        Damaged snapshots newer than it are skipped, with one warning naming
        them and what is wrong with each.

        Args:
            max_iteration: Only snapshots with ``N <= max_iteration``.
        """
        skipped, found = [], None
        for n, path in reversed(self.trainer_snapshots()):
            if max_iteration is not None and n > max_iteration:
                continue
            reason = damage(path)
            if reason is None:
                found = path
                break
            skipped.append((path, reason))
        if skipped:
            listed = ', '.join(f'{os.path.basename(p)} ({why})' for p, why in skipped)
            warnings.warn(f"skipped {len(skipped)} unreadable snapshot(s) in '{self.path}': "
                          f'{listed}', stacklevel=2)
        return found

    def after(self, snapshot: str | None) -> list[str]:
        """This process's trainer snapshots taken after ``snapshot`` (all, for None)."""
        n = -1 if snapshot is None else _iteration_of(snapshot)
        return [path for m, path in self.trainer_snapshots() if m > n]

    def set_aside(self, paths: Sequence[str]) -> str | None:
        """Moves snapshots into ``OUT/damaged/`` (never deleting; a name taken gets ``.1``).

        ``--resume auto`` does this with the snapshots newer than the one it
        continues from (damaged ones, or those some process of a
        data-parallel run did not finish), so the run can go on in its
        folder without overwriting them.

        Returns:
            The folder they went to, or None when there was nothing to move.
        """
        if not paths:
            return None
        folder = self.join(files.DAMAGED_DIR)
        os.makedirs(folder, exist_ok=True)
        for path in paths:
            target = os.path.join(folder, os.path.basename(path))
            n = 1
            while os.path.exists(target):  # an earlier damaged file of the same name
                target = os.path.join(folder, f'{os.path.basename(path)}.{n}')
                n += 1
            os.replace(path, target)
        return folder

    def newest_complete(self) -> str | None:
        """The newest complete trainer snapshot, for messages (nothing moved, no warning)."""
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            return self.latest()

    def prune(self, keep: int, *, nets: bool = True) -> list[str]:
        """Deletes all but the newest ``keep`` snapshots of each kind, by N.

        Args:
            keep: Snapshots to keep per kind (trainer, and each network).
            nets: Also prune the network snapshots (the process that writes
                them; in a data-parallel run, rank 0).

        Returns:
            The paths deleted.
        """
        groups = [self.trainer_snapshots()]
        if nets:
            groups += list(self.net_snapshots().values())
        deleted = []
        for items in groups:
            for _, path in items[:-keep] if keep > 0 else []:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)
                    deleted.append(path)
        return deleted

    def _names(self) -> list[str]:
        try:
            return os.listdir(self.path)
        except OSError:  # missing (a fresh run creates it) or not a folder
            return []

    # ---------------------------------------- data-parallel runs (one file per process)

    def latest_common(self, comm) -> str | None:
        """Collective: this process's file of the newest snapshot every process has.

        Each process looks for its own complete ``snapshot_iter_N.rank{r}``
        (as :meth:`latest`; ``comm`` is a ChainerMN communicator or anything
        with ``rank`` and an mpi4py ``mpi_comm``); if their newest N differ
        (a run killed while they were writing one), they step down to the
        newest N they all have.

        Returns:
            The path for this process, or None (on every process) when some
            process has none.
        """
        # Nothing here may raise on one process only: the others would wait
        # in the allgather. So N comes from the file name (latest() has
        # checked the file), not from reading the file.
        limit = None
        while True:
            path = self.latest(max_iteration=limit)
            match = files.TRAINER_SNAPSHOT.match(os.path.basename(path)) if path else None
            n = int(match.group(1)) if match else -1
            found = comm.mpi_comm.allgather(n)
            if min(found) == max(found):
                return path if n >= 0 else None
            limit = min(found)
            if limit < 0:
                return None

    def rank_file(self, snapshot: str, comm) -> str:
        """This process's file of a per-process trainer snapshot, checked.

        Args:
            snapshot: ``snapshot_iter_N`` or any process's ``snapshot_iter_N.rankK``.

        Raises:
            SnapshotError: When this process's file is missing, or when the
                run that wrote it had more processes than this one.
        """
        stem = rank_free(snapshot)
        mine = stem + files.rank_suffix(comm.rank)
        if not os.path.isfile(mine):
            raise SnapshotError(
                f"snapshot '{mine}' does not exist: {comm.size} processes resume from "
                f'{os.path.basename(stem)}.rank0 to .rank{comm.size - 1}, written by a run '
                'of as many processes')
        if os.path.exists(stem + files.rank_suffix(comm.size)):
            raise SnapshotError(
                f"snapshot '{stem}' has files of more processes than the {comm.size} of this "
                'run: resume it with as many processes as wrote it')
        return mine


def _iteration_of(snapshot: str) -> int:
    match = files.TRAINER_SNAPSHOT.match(os.path.basename(snapshot))
    if not match:
        raise SnapshotError(f"'{snapshot}' is not named like a trainer snapshot (snapshot_iter_N)")
    return int(match.group(1))


def rank_free(snapshot: str) -> str:
    """``snapshot_iter_N.rankK`` -> ``snapshot_iter_N`` (other names unchanged)."""
    folder, name = os.path.split(snapshot)
    match = files.TRAINER_SNAPSHOT.match(name)
    if match and match.group(2) is not None:
        name = files.trainer_snapshot(int(match.group(1)))
    return os.path.join(folder, name)


def is_rank_file(snapshot: str) -> bool:
    """Whether a path names one process's file of a data-parallel trainer snapshot."""
    match = files.TRAINER_SNAPSHOT.match(os.path.basename(snapshot))
    return bool(match and match.group(2) is not None)


def _listing(paths: Sequence[str], limit: int = 5) -> str:
    names = [os.path.basename(p) for p in paths]
    text = ', '.join(names[:limit])
    return text + (f' and {len(names) - limit} more' if len(names) > limit else '')
