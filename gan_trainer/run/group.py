"""Group: the processes of one run, and the rule that they fail together.

A run is one process, or a data-parallel group of processes under
``mpiexec`` (:mod:`gan_trainer.distributed`). In a group, a process that
fails alone (its share of the data is unreadable, its snapshot is missing)
would leave the others waiting forever in the next collective call. So the
steps that can fail on one process are run inside :meth:`Group.agreeing`:
when the block fails on any process, it fails on all of them, the failing
one with its own error and the others with a
:class:`~gan_trainer.distributed.DistributedError` carrying its message, so
that rank 0 alone can print one line for all. For one process the block is
a plain ``with``; this is the only place the rule is written.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from gan_trainer.run.errors import ResourceError


class Group:
    """One process (``comm=None``) or the processes of a ChainerMN communicator.

    Attributes:
        comm: The communicator, or None.
        rank: This process's rank, or None for one process.
        size: Number of processes.
        lead: Whether this process prints and writes the shared files
            (rank 0, or the only process).
    """

    def __init__(self, comm=None) -> None:
        self.comm = comm
        self.rank = None if comm is None else comm.rank
        self.size = 1 if comm is None else comm.size
        self.lead = self.rank in (None, 0)

    @property
    def parallel(self) -> bool:
        """Whether this is a data-parallel group (with a communicator)."""
        return self.comm is not None

    @contextlib.contextmanager
    def agreeing(self, errors: tuple[type[BaseException], ...] = (ValueError, ResourceError,
                                                                 OSError)) -> Iterator[None]:
        """Runs the block on every process; if it raises ``errors`` on any, all raise.

        The block itself must make no collective call that a failing
        process could skip (the others would match it with this one's).
        """
        if self.comm is None:
            yield
            return
        from gan_trainer.distributed import agree

        error = None
        try:
            yield
        except errors as e:
            error = e
        agree(self.comm, error)

    def lead_only(self, function, *args, **kwargs):
        """``function(...)`` on the lead process; None on the others."""
        return function(*args, **kwargs) if self.lead else None

    def any(self, flag: bool) -> bool:
        """Collective: whether ``flag`` is true on any process (one small allreduce)."""
        if self.comm is None:
            return bool(flag)
        return bool(max(self.comm.mpi_comm.allgather(bool(flag))))
