"""LoaderPool: processes that read examples ahead of training, watched, and never orphaned.

Decoding image files costs as much CPU as a small network's step, so a
run over a folder reads its next batches in worker processes while the
current one trains (:func:`gan_trainer.iterators.train_iterator`). Chainer
7.8.1's ``MultiprocessIterator`` does this with a ``multiprocessing.Pool``
and a prefetch thread, and a worker that dies (the out-of-memory killer's
``kill -9``) takes its task with it: the pool starts a replacement, the
batch never arrives, and training waits forever, through SIGTERM too
(issue 25). This pool is small enough to reason about instead:

* each worker is a forked process with a pipe of its own; a task is a list
  of indices, tagged, and the answer is those examples (or the error of the
  one that failed, raised in the training process);
* the training process waits on the pipes *and* on each process's sentinel
  (:func:`multiprocessing.connection.wait`), so a worker's death is seen the
  moment it happens, not after a timeout;
* a dead worker is replaced and its unanswered tasks are sent to the new
  one: the same indices, so the same batches, and a run that lost a worker
  ends bit for bit like one that did not. A task that kills a second worker
  (an example that crashes the decoder every time), or a run that lost
  :data:`MAX_RESTARTS` workers, raises :class:`LoaderDied` instead: one
  line naming the process, its signal and the examples;
* a worker that lives but answers nothing (a read blocked on a stalled
  network disk) is reported after :data:`STALL_SECONDS`; the wait is in
  steps of a second, so a second Ctrl-C or SIGTERM still stops the run;
* the workers ignore SIGINT and SIGTERM (the training process decides how a
  run stops, and needs the batch of the iteration it finishes), die with the
  training process on Linux (``PR_SET_PDEATHSIG``), and otherwise exit when
  their pipe closes; :meth:`LoaderPool.close` ends them with SIGKILL if they
  do not exit at once, so no worker outlives the run, even one stuck in a
  read.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import threading
import time
import warnings
import weakref
from collections.abc import Sequence

#: Workers a run may lose (each replaced) before the loss stops it.
MAX_RESTARTS = 5
#: Seconds without an answer before a stalled read is reported (once per batch).
STALL_SECONDS = 60
#: Seconds a closing worker has to exit before it is killed.
_GRACE = 2.0
_PR_SET_PDEATHSIG = 1


class LoaderDied(RuntimeError):
    """A loader process died and could not be replaced; the message says which and how."""


class LoaderWarning(RuntimeWarning):
    """A loader process died and was replaced; the run goes on, its batches the same."""


class Failure:
    """What a worker returns instead of an example it could not read."""

    def __init__(self, error: Exception) -> None:
        try:
            pickle.dumps(error)
        except Exception:  # noqa: BLE001 - any unpicklable error still gets its line
            error = RuntimeError(f'{type(error).__name__}: {error}')
        self.error = error


class LoaderPool:
    """``n`` worker processes that read ``dataset[i]`` for lists of indices.

    Args:
        dataset: Anything with ``__getitem__``; the workers inherit it by
            ``fork`` (nothing is pickled).
        n: Number of worker processes (at least 1).
        max_restarts: Workers the pool may replace in its life.

    Tasks are sent to the worker with the fewest unanswered ones; ``get``
    returns a task's examples (a :class:`Failure` in place of one that
    could not be read). The workers start at the first :meth:`submit`.
    """

    def __init__(self, dataset, n: int, *, max_restarts: int = MAX_RESTARTS) -> None:
        if n < 1:
            raise ValueError(f'a loader pool needs at least 1 process, got {n}')
        self.dataset, self.n, self.max_restarts = dataset, n, max_restarts
        self.restarts, self.closed = 0, False
        self._workers: list[_Worker | None] = [None] * n
        self._results: dict[object, list] = {}
        self._deaths: dict[object, int] = {}  # task -> workers it has killed
        self._context = multiprocessing.get_context('fork')
        # Kill the workers even if close() is never called: when the pool is
        # collected, or at exit, before multiprocessing's own exit handler
        # (registered earlier, so run later) joins its children, which would
        # wait for ever for a worker that ignores its SIGTERM.
        self._finalizer = weakref.finalize(self, _kill_all, self._workers)
        self._finalizer.atexit = False
        atexit.register(self._finalizer)

    # ------------------------------------------------------------ tasks

    def submit(self, tag, indices: Sequence[int]) -> None:
        """Asks for ``dataset[i]`` for each of ``indices``; ``tag`` names the task for :meth:`get`."""
        if self.closed:
            raise RuntimeError('the loader pool is closed')
        self._start_missing()
        worker = min((w for w in self._workers), key=lambda w: len(w.pending))
        worker.send(tag, list(indices))

    def get(self, tag) -> list:
        """The examples of task ``tag``, waiting for them (and replacing dead workers).

        A replaced worker is reported as a :class:`LoaderWarning` (one line).

        Args:
            tag: A task given to :meth:`submit`.

        Raises:
            LoaderDied: When a worker died and cannot be replaced (see
                the module docstring).
        """
        since, stalled = time.monotonic(), False
        while tag not in self._results:
            workers = [w for w in self._workers if w is not None and (w.pending or w.stale)]
            if not workers:
                raise KeyError(f'no task {tag!r} was submitted')
            ready = multiprocessing.connection.wait(
                [w.conn for w in workers] + [w.process.sentinel for w in workers], timeout=1.0)
            if ready:
                since = time.monotonic()
            elif not stalled and time.monotonic() - since > STALL_SECONDS:
                stalled = True  # alive but silent: a read that blocks (a stalled network disk)
                warnings.warn(f'the loader processes have read nothing for {STALL_SECONDS} s; '
                              'a second Ctrl-C (or SIGTERM) stops the run at once',
                              LoaderWarning, stacklevel=2)
            for worker in workers:
                if worker.conn in ready:
                    try:
                        answer = worker.conn.recv()
                    except (EOFError, OSError):
                        answer = None  # died mid-answer: its sentinel says so next
                    if answer is not None:
                        done, examples = answer
                        if done in worker.stale:  # a task forgotten since
                            worker.stale.discard(done)
                        else:
                            worker.pending.pop(done)
                            self._results[done] = examples
                        continue
                if worker.process.sentinel in ready or not worker.process.is_alive():
                    self._replace(worker)
        return self._results.pop(tag)

    def forget(self) -> None:
        """Drops the answers of every task (a resumed iterator asks anew); waits for none."""
        self._results.clear()
        for worker in self._workers:
            if worker is not None:
                worker.stale.update(worker.pending)
                worker.pending.clear()

    def close(self) -> None:
        """Ends every worker: its pipe closes, and SIGKILL after :data:`_GRACE` seconds."""
        self.closed = True
        self._finalizer()
        atexit.unregister(self._finalizer)

    @property
    def pids(self) -> list[int]:
        """The process ids of the running workers."""
        return [w.process.pid for w in self._workers if w is not None]

    # ---------------------------------------------------------- workers

    def _start_missing(self) -> None:
        for i, worker in enumerate(self._workers):
            if worker is None:
                self._workers[i] = self._start()

    def _start(self) -> _Worker:
        ours, theirs = self._context.Pipe(duplex=True)
        # Every parent end the child inherits must be closed there, or a
        # worker's pipe would stay open after the training process died.
        parents = [w.conn for w in self._workers if w is not None] + [ours]
        with _stop_signals_ignored(), warnings.catch_warnings():
            # Python 3.12+ warns when a process with threads forks (BLAS's
            # pool). The workers only read examples (PIL, NumPy) and take
            # none of those threads' locks: the fork a PyTorch DataLoader
            # makes on Linux.
            warnings.filterwarnings('ignore', message=r'This process .* is multi-threaded',
                                    category=DeprecationWarning)
            process = self._context.Process(target=_work,
                                            args=(self.dataset, theirs, parents, os.getpid()),
                                            daemon=True, name='gan_trainer-loader')
            process.start()
        theirs.close()
        return _Worker(process, ours)

    def _replace(self, worker: _Worker) -> None:
        worker.process.join(_GRACE)  # its sentinel is ready: reaped at once
        code = worker.process.exitcode
        how = (f'was killed by {signal.Signals(-code).name}' if code is not None and code < 0
               else f'exited with status {code}')
        lost = dict(worker.pending)
        indices = sorted(i for task in lost.values() for i in task)
        i = self._workers.index(worker)
        worker.discard()
        self._workers[i] = None
        for tag in lost:
            self._deaths[tag] = self._deaths.get(tag, 0) + 1
        what = (f'loader process {worker.process.pid} {how} while reading {len(indices)} '
                f'examples (indices {_listed(indices)})')
        if any(self._deaths[tag] > 1 for tag in lost):
            raise LoaderDied(f'{what}, after another died on the same examples: they kill the '
                             'process that reads them (an image too large for memory?)')
        if self.restarts >= self.max_restarts:
            raise LoaderDied(f'{what}; {self.restarts} loader processes were replaced already '
                             '(is the machine out of memory? try fewer --loaderjob)')
        self.restarts += 1
        self._workers[i] = replacement = self._start()
        for tag, task in lost.items():
            replacement.send(tag, task)
        warnings.warn(f'{what}; started another in its place ({self.restarts} of at most '
                      f'{self.max_restarts}), which reads them again', LoaderWarning,
                      stacklevel=3)


class _Worker:
    """A worker process, the parent's end of its pipe, and its unanswered tasks."""

    def __init__(self, process, conn) -> None:
        self.process, self.conn = process, conn
        self.pending: dict[object, list[int]] = {}  # tag -> indices, in the order sent
        self.stale: set = set()  # tags forgotten: their answers are dropped

    def send(self, tag, indices: list[int]) -> None:
        self.pending[tag] = indices
        with contextlib.suppress(OSError):  # a dead worker: its sentinel tells get()
            self.conn.send((tag, indices))

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.close()
        if self.process.is_alive():
            self.process.kill()
        self.process.join(_GRACE)


def _kill_all(workers: list) -> None:
    """Closes every worker's pipe, waits :data:`_GRACE` seconds in all, then SIGKILL."""
    live = [w for w in workers if w is not None]
    for worker in live:
        with contextlib.suppress(OSError):
            worker.conn.close()
    deadline = time.monotonic() + _GRACE
    for worker in live:
        worker.process.join(max(0.0, deadline - time.monotonic()))
        if worker.process.is_alive():
            worker.process.kill()  # stuck in a read: it ignores SIGTERM
            worker.process.join(_GRACE)
    workers[:] = [None] * len(workers)


def _listed(indices: list[int]) -> str:
    shown = ', '.join(map(str, indices[:8]))
    return shown + (f' and {len(indices) - 8} more' if len(indices) > 8 else '')


@contextlib.contextmanager
def _stop_signals_ignored():
    """SIGINT and SIGTERM ignored while a worker is forked, so it inherits 'ignore'.

    Only from the main thread (handlers cannot be set from another); the
    training process's own handlers are put back right after.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _die_with_parent(parent: int) -> None:
    """Linux: the kernel sends this process SIGKILL when its parent (pid ``parent``) dies.

    ``parent`` is the pid the training process read of itself before it
    started the worker: read here, after the fork, it would already be the
    orphan's new parent if the training process had died in between, and
    the check below would pass (a loaded machine showed that race: a worker
    busy with a slow example outlived ``kill -9`` of its parent).
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl
        os._exit(1)


def _work(dataset, conn, parents, parent_pid: int) -> None:
    """A worker's life: read the indices of each task, answer with the examples."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with_parent(parent_pid)
    for parent in parents:
        parent.close()
    while True:
        try:
            tag, indices = conn.recv()
        except (EOFError, OSError):
            return  # the training process closed the pipe, or is gone
        examples = []
        for i in indices:
            try:
                examples.append(dataset[i])
            except Exception as e:  # noqa: BLE001 - raised in the training process
                examples.append(Failure(e))
        try:
            conn.send((tag, examples))
        except (BrokenPipeError, OSError):
            return
