"""GracefulStop: SIGINT and SIGTERM end the run at the next iteration, with a snapshot.

Ctrl-C (SIGINT) or a cluster's pre-emption notice (SIGTERM) during
training no longer kills the process mid-step: the handler installed here
only records the signal, and at the end of the iteration being trained
the extension writes the snapshots of that iteration
(:class:`~gan_trainer.extensions.Snapshots`) and raises :class:`Stopped`,
which the run reports in one line (exit status 130 or 143), so that
``--resume auto`` continues from exactly there. A second signal stops at
once (Python's ``KeyboardInterrupt``), for a step that hangs.

In a data-parallel run each process may see the signal at a different
iteration; the processes agree every iteration (one tiny allreduce) so
that all stop at the same one.

The handlers are installed when training starts (by a
:class:`~gan_trainer.run.RunTrainer`, before it writes ``config.json``, so
that a first signal while the extensions start is a graceful stop too, not
taken for a second one) and the previous ones put back when it ends, so
code around the trainer keeps its own handling.
"""

from __future__ import annotations

import signal
import threading

from chainer import training

from gan_trainer.priorities import priority_of

#: The signals that ask for a graceful stop.
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(Exception):
    """Training stopped at a signal after writing the snapshot ``snapshot``.

    Attributes:
        signum: ``signal.SIGINT`` or ``signal.SIGTERM``.
        iteration: The last iteration trained.
        snapshot: The trainer snapshot of that iteration, or None when the
            stop was immediate (a second signal).
    """

    def __init__(self, signum: int, iteration: int, snapshot: str | None) -> None:
        self.signum, self.iteration, self.snapshot = int(signum), iteration, snapshot
        name = signal.Signals(signum).name
        if snapshot:
            text = f'stopped by {name} at iteration {iteration}; snapshot: {snapshot}'
        else:
            text = f'stopped at once by a second {name} at iteration {iteration}'
        super().__init__(text)

    @property
    def exit_status(self) -> int:
        """128 + the signal number, as a shell reports a process ended by it."""
        return 128 + self.signum


class GracefulStop(training.Extension):
    """Turns SIGINT/SIGTERM into a snapshot and a :class:`Stopped` at the iteration's end.

    Args:
        snapshots: The run's :class:`~gan_trainer.extensions.Snapshots`,
            whose ``write(trainer)`` saves the iteration.
        agree: ``flag -> flag``: in a data-parallel run, whether any
            process saw a signal (a collective call); ``None`` for one
            process.
        notice: Called with one line when the first signal arrives (the
            command prints it to stderr).
    """

    trigger = 1, 'iteration'
    # Last of all: after the snapshots' own trigger at this iteration.
    priority = priority_of('graceful_stop')
    default_name = 'graceful_stop'

    def __init__(self, snapshots, *, agree=None, notice=None) -> None:
        self.snapshots, self.agree, self.notice = snapshots, agree, notice
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        """Installs the handlers now (once); ``finalize`` puts the previous ones back.

        :class:`~gan_trainer.run.RunTrainer` calls it before it writes
        ``config.json``: from the moment a run has a record on disk, a first
        signal is a graceful stop, also while the other extensions start.
        """
        # Signal handlers can only be set from the main thread.
        if self._previous or threading.current_thread() is not threading.main_thread():
            return
        for signum in SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)

    def initialize(self, trainer: training.Trainer) -> None:
        self.install()

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:  # the second one: stop now
            raise KeyboardInterrupt
        self.signum = signum
        if self.notice is not None:
            self.notice(f'{signal.Signals(signum).name}: stopping after this iteration and '
                        'saving it (send it again to stop at once)')

    def __call__(self, trainer: training.Trainer) -> None:
        requested = self.signum is not None
        if self.agree is not None:
            requested = self.agree(requested)
        if not requested:
            return
        path = self.snapshots.write(trainer)
        raise Stopped(self.signum or signal.SIGTERM, trainer.updater.iteration, path)

    def finalize(self, trainer=None) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}
