"""How a run ends: its errors, and the exit status each maps to.

=====  ==========================================================  ==========================
exit   meaning                                                     raised as
=====  ==========================================================  ==========================
0      done (or nothing left to do)
2      bad input: an option, the data, a snapshot, the folder      ``ValueError`` subclasses
3      training diverged (a NaN or infinity)                       ``TrainingDiverged``
4      the machine lacks a resource: disk space, memory, a file    :class:`ResourceError`
130    stopped by SIGINT (Ctrl-C), after writing a snapshot        ``Stopped``
143    stopped by SIGTERM (a cluster's pre-emption), same          ``Stopped``
=====  ==========================================================  ==========================

Bad input is every ``ValueError`` the package raises where the user's input
enters: :class:`~gan_trainer.run.ConfigError`,
:class:`~gan_trainer.datasets.DatasetError`,
:class:`~gan_trainer.run.SnapshotError`, :class:`FolderBusy`,
:class:`~gan_trainer.device.DeviceError`,
:class:`~gan_trainer.distributed.DistributedError`.
"""

from __future__ import annotations

import errno

from gan_trainer.checkpoint import SnapshotError
from gan_trainer.extensions.nan_guard import TrainingDiverged
from gan_trainer.extensions.stop import Stopped

__all__ = [
    'EXIT_DIVERGED',
    'EXIT_DONE',
    'EXIT_INPUT',
    'EXIT_RESOURCE',
    'NO_ROOM',
    'FolderBusy',
    'ResourceError',
    'RunWarning',
    'SnapshotError',
    'Stopped',
    'TrainingDiverged',
]

#: Exit statuses of the training command (see the module docstring).
EXIT_DONE, EXIT_INPUT, EXIT_DIVERGED, EXIT_RESOURCE = 0, 2, 3, 4

#: The errno values that mean "this machine has no room", not "bad input".
NO_ROOM = frozenset({errno.ENOSPC, getattr(errno, 'EDQUOT', errno.ENOSPC), errno.EFBIG,
                     errno.ENOMEM})


class RunWarning(UserWarning):
    """Something about the run the user should know, which does not stop it."""


class FolderBusy(SnapshotError):
    """The output folder is in use by another run (it holds the folder's lock)."""


class ResourceError(RuntimeError):
    """The run cannot get a resource it needs: disk space, memory, a file it must write.

    The message is one line: what could not be done, why, and what was kept
    (the newest complete snapshot).
    """
