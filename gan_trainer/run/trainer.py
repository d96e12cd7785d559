"""RunTrainer: Chainer's Trainer with the run's folder, record and way of ending.

:func:`~gan_trainer.run.build_trainer` returns one. It is a
``chainer.training.Trainer`` in every respect; its :meth:`RunTrainer.run`
adds what turns a training loop into a run:

* nothing to do when a resumed run has already reached its last iteration
  (it says so, writes nothing, and returns);
* ``config.json`` written (atomically) before the first iteration, once
  every check of the build has passed, so a failed start leaves an earlier
  run's file as it was; the graceful stop's signal handlers are installed
  just before it, so a signal from then on stops the run with a snapshot;
* one exception per way of ending, each with one line to say:
  :class:`~gan_trainer.extensions.TrainingDiverged` (naming the newest
  snapshot kept), :class:`~gan_trainer.extensions.Stopped` (a signal),
  :class:`~gan_trainer.run.errors.ResourceError` (a full disk or any other
  failed write, no memory, or a loader process that died and could not be
  replaced, naming the newest complete snapshot);
* the folder's lock released when the run ends.
"""

from __future__ import annotations

import signal
import warnings

from chainer import training

from gan_trainer.checkpoint import SnapshotError, load_params
from gan_trainer.extensions import Stopped, TrainingDiverged
from gan_trainer.loader import LoaderDied
from gan_trainer.run.errors import ResourceError

# What Chainer's triggers say when a snapshot of an earlier version lacks
# the state of an extension added since; they then guess it correctly.
_MISSING_TRIGGER_STATE = r'The (previous value of|flag of finished) .* (not saved|is not saved)'


class RunTrainer(training.Trainer):
    """A ``Trainer`` that knows its run (see the module docstring).

    Args:
        updater, stop_trigger: As for ``chainer.training.Trainer``.
        folder: The run's :class:`~gan_trainer.run.RunFolder` (``out``).
        record: The :class:`~gan_trainer.run.RunRecord` to write as
            ``config.json``.
        group: The :class:`~gan_trainer.run.group.Group` of processes.
        resumed_at: The iteration of the snapshot resumed, or 0.
        log: Prints one line (on the lead process).

    Attributes:
        folder, record, group: As given.
    """

    def __init__(self, updater, stop_trigger, *, folder, record, group, resumed_at: int = 0,
                 log=None) -> None:
        super().__init__(updater, stop_trigger, out=folder.path)
        self.folder, self.record, self.group = folder, record, group
        self.resumed_at = resumed_at
        self._log = log or (lambda line: None)

    @property
    def last_iteration(self) -> int:
        """The iteration the run ends at."""
        return int(self.stop_trigger.get_training_length()[0])

    def load(self, snapshot: str) -> None:
        """Loads a trainer snapshot (also one written by an earlier version) into the run.

        Raises:
            SnapshotError: When it is unreadable or does not fit these networks.
        """
        with warnings.catch_warnings():
            warnings.filterwarnings('ignore', message=_MISSING_TRIGGER_STATE)
            try:
                load_params(snapshot, self)
            except SnapshotError as e:
                if 'does not match' not in str(e):
                    raise
                raise SnapshotError(
                    f'{e}: the snapshot was trained with other network options; resume with '
                    'those (see its config.json), or start a new run in another --out'
                ) from None

    def run(self, show_loop_exception_msg: bool = False) -> None:
        """Trains to the last iteration (see the module docstring for how it can end)."""
        try:
            if self.updater.iteration >= self.last_iteration:
                self._log(f"the run in '{self.folder.path}' is already at iteration "
                          f'{self.updater.iteration} of {self.last_iteration}: nothing to do '
                          '(pass a larger --iteration to train further)')
                return
            stop = self._extensions.get('graceful_stop')
            stop = stop.extension if stop is not None else None
            if stop is not None:
                # Before config.json: from here on a first signal is a
                # graceful stop, also while the extensions start.
                stop.install()
            try:
                self._train(show_loop_exception_msg)
            finally:
                if stop is not None:
                    stop.finalize()
        finally:
            self.folder.unlock()

    def _train(self, show_loop_exception_msg: bool) -> None:
        try:
            if self.group.lead:
                self._write(lambda: self.record.write(self.folder.path))
            super().run(show_loop_exception_msg=show_loop_exception_msg)
        except KeyboardInterrupt:
            # A second signal: the graceful stop let it through to stop at once.
            stop = self.get_extension('graceful_stop') if 'graceful_stop' in (
                self._extensions) else None
            signum = getattr(stop, 'signum', None) or signal.SIGINT
            raise Stopped(signum, self.updater.iteration, None) from None
        except TrainingDiverged as e:
            kept = self.folder.newest_complete()
            kept = f'newest snapshot kept: {kept}' if kept else 'no snapshot was taken before it'
            raise TrainingDiverged(f'{e} ({kept})') from None
        except (OSError, MemoryError, LoaderDied) as e:
            raise self._resource_error(e) from None

    def _write(self, write) -> None:
        try:
            write()
        except OSError as e:
            raise self._resource_error(e) from None

    def _resource_error(self, error: BaseException) -> ResourceError:
        at = f'at iteration {self.updater.iteration}'
        if isinstance(error, MemoryError):
            what = f'ran out of memory {at}'
        elif isinstance(error, LoaderDied):
            what = f'{error} ({at})'
        else:
            target = f"'{error.filename}'" if getattr(error, 'filename', None) else 'a file'
            what = f'could not write {target} {at} ({error.strerror or error})'
        kept = self.folder.newest_complete()
        kept = (f'the newest complete snapshot is {kept} (--resume auto continues from it)'
                if kept else 'no snapshot was completed')
        return ResourceError(f'{what}; {kept}')
