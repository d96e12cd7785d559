"""Training iterators that resume exactly, with or without loader processes.

:func:`train_iterator` is the one place a training script gets its iterator:
a ``SerialIterator`` that reads examples in the training process, or, for
datasets that decode files on access (:class:`~gan_trainer.datasets.ImageFolderDataset`),
a ``MultiprocessIterator`` whose worker processes decode the next batch
while the current one trains. Both shuffle with a
:class:`ResumableShuffleOrderSampler` and yield the same batches for the
same seed, so a snapshot written with workers resumes without them and vice
versa. Each saves its sampler's state with its own (``iterator:main/order_sampler``
in a trainer snapshot; :data:`SAVES_ORDER` marks such iterators), so the
updater never reaches into a sampler: an iterator that does not save its
shuffling state cannot resume exactly, and the updater warns about it once.

Two things Chainer 7.8.1's ``MultiprocessIterator`` gets wrong for a GAN
run that must resume bit for bit or fail in one line:

* Its prefetch thread runs ahead of training and draws the shuffled order of
  the next epoch early, so the order sampler's random state at a snapshot is
  one or more epochs ahead of the batches trained on. The sampler here
  remembers its state after each epoch's draw and saves the one that matches
  the iterator's epoch (see :meth:`GANUpdater.serialize
  <gan_trainer.updater.GANUpdater.serialize>`).
* An exception in a worker (an image deleted during training) kills the
  prefetch thread and leaves training waiting forever. Here the worker
  returns the exception and the training process raises it on the batch it
  belongs to.
"""

from __future__ import annotations

import collections
import contextlib
import pickle
import signal
import threading
import warnings

import chainer
import numpy

from gan_trainer.datasets import Dataset

# A prefetching iterator is at most ``n_prefetch + 1`` batches (2 here) ahead
# of training, so it can draw only a few epochs' orders early unless a batch
# spans many epochs; the history is kept that much longer.
_HISTORY = 64


def serialize_random_state(serializer, rng: numpy.random.RandomState) -> None:
    """Saves or restores a NumPy ``RandomState`` through a Chainer serializer."""
    name, keys, pos, has_gauss, cached = rng.get_state()
    keys = serializer('keys', keys)
    scalars = serializer('scalars', numpy.array([pos, has_gauss, cached], numpy.float64))
    if isinstance(serializer, chainer.serializer.Deserializer):
        rng.set_state((name, numpy.asarray(keys, numpy.uint32), int(scalars[0]),
                       int(scalars[1]), float(scalars[2])))


class ResumableShuffleOrderSampler(chainer.iterators.ShuffleOrderSampler):
    """``ShuffleOrderSampler`` whose random state is saved as training sees it.

    It draws exactly the permutations ``ShuffleOrderSampler(random_state)``
    draws. It also counts them (the first, at the iterator's construction, is
    epoch 0's order; each later one the next epoch's) and keeps the random
    state after each of the last 64, so :meth:`serialize` can save the state
    that belongs to the epoch the trained batches are in, however far a
    prefetching iterator has drawn ahead. Resetting the iterator
    (``iterator.reset()``) would break the count; training iterators are
    never reset.

    Args:
        random_state: The generator of the permutations (``_random``, as in
            Chainer's sampler).
    """

    def __init__(self, random_state: numpy.random.RandomState) -> None:
        super().__init__(random_state)
        self._lock = threading.Lock()  # called from the prefetch thread
        self._epoch = -1  # epoch of the last order drawn
        self._after: collections.OrderedDict[int, tuple] = collections.OrderedDict()

    def __call__(self, current_order, current_position):
        with self._lock:
            order = super().__call__(current_order, current_position)
            self._epoch += 1
            self._after[self._epoch] = self._random.get_state()
            while len(self._after) > _HISTORY:
                self._after.popitem(last=False)
        return order

    def serialize(self, serializer, epoch: int) -> None:
        """Saves the state after epoch ``epoch``'s draw, or restores it.

        Args:
            serializer: A Chainer serializer or deserializer; the layout is
                that of :func:`serialize_random_state`, so snapshots of
                runs with a plain ``ShuffleOrderSampler`` load too.
            epoch: The iterator's ``epoch``: that of the last batch it
                returned (restored before this is called when loading).

        Raises:
            RuntimeError: When saving, if the sampler has drawn more than 64
                orders past ``epoch`` (a batch many times the dataset).
        """
        if isinstance(serializer, chainer.serializer.Deserializer):
            rng = numpy.random.RandomState(0)
            serialize_random_state(serializer, rng)
            with self._lock:
                self._random.set_state(rng.get_state())
                self._epoch = epoch
                self._after = collections.OrderedDict({epoch: rng.get_state()})
            return
        with self._lock:
            state = self._after.get(epoch)
        if state is None:
            raise RuntimeError(
                f'the order sampler no longer has the random state of epoch {epoch} '
                f'(it drew up to epoch {self._epoch}); use a batch size nearer the dataset size')
        rng = numpy.random.RandomState(0)
        rng.set_state(state)
        serialize_random_state(serializer, rng)

    def __getstate__(self):
        state = self.__dict__.copy()
        del state['_lock']
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()


#: The attribute that marks an iterator whose ``serialize`` saves the state of
#: its shuffling (so that a resumed run sees the same batches).
SAVES_ORDER = 'saves_order'


def _serialize_sampler(iterator, serializer) -> None:
    """The sampler's state under ``order_sampler``, as of the iterator's epoch.

    Reading a snapshot written before iterators saved it (the updater kept it
    as ``order_rng:main``) finds nothing here; the updater reads it there.
    """
    sampler = iterator.order_sampler
    try:
        sampler.serialize(serializer['order_sampler'], iterator.epoch)
    except KeyError:
        if not isinstance(serializer, chainer.serializer.Deserializer):
            raise


class _SerialIterator(chainer.iterators.SerialIterator):
    """``SerialIterator`` that saves its order sampler with itself."""

    saves_order = True

    def serialize(self, serializer) -> None:
        super().serialize(serializer)
        _serialize_sampler(self, serializer)


class _Failure:
    """What a worker returns instead of an example it could not read."""

    def __init__(self, error: Exception) -> None:
        try:
            pickle.dumps(error)
        except Exception:  # noqa: BLE001 - any unpicklable error still gets its line
            error = RuntimeError(f'{type(error).__name__}: {error}')
        self.error = error


class _Catching:
    """A dataset whose failed reads come back as :class:`_Failure` values."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index):
        try:
            return self.dataset[index]
        except Exception as e:  # noqa: BLE001 - re-raised in the training process
            return _Failure(e)


class _WorkerIterator(chainer.iterators.MultiprocessIterator):
    """``MultiprocessIterator`` that raises a worker's error instead of hanging.

    It also saves its order sampler with itself, and its workers ignore
    SIGINT and SIGTERM: Ctrl-C (and a cluster's SIGTERM) reaches every
    process of the group, and the training process decides how to stop
    (:class:`~gan_trainer.extensions.GracefulStop`), which needs the workers
    for the batches of the iteration it finishes. They end when the run
    ends (``finalize`` closes the pool, whose workers then exit), and a
    worker whose training process was killed exits when its task pipe
    closes.
    """

    saves_order = True

    def __next__(self):
        with warnings.catch_warnings():
            # Python 3.12+ warns when a process with threads forks (here:
            # BLAS's thread pool, Chainer's prefetch thread). The workers
            # only read examples (PIL, NumPy) and take none of those
            # threads' locks, and OpenBLAS resets itself in a forked child:
            # the same fork a PyTorch DataLoader makes on Linux.
            warnings.filterwarnings('ignore', message=r'This process .* is multi-threaded',
                                    category=DeprecationWarning)
            # Chainer 7.8.1's own prefetch thread, on Python 3.10+.
            warnings.filterwarnings('ignore', message=r'setDaemon\(\) is deprecated',
                                    category=DeprecationWarning)
            # The pool is (re)started when there is no prefetch thread.
            forks = self._prefetch_loop.thread is None
            with _workers_ignore_stop_signals() if forks else contextlib.nullcontext():
                batch = super().__next__()
        for example in batch:
            if isinstance(example, _Failure):
                raise example.error
        return batch

    next = __next__

    def serialize(self, serializer) -> None:
        self._serialize_position(serializer)
        _serialize_sampler(self, serializer)

    def _serialize_position(self, serializer) -> None:
        if isinstance(serializer, chainer.serializer.Deserializer):
            super().serialize(serializer)
            return
        # The keys of Chainer's own version, which also restarts the
        # prefetching when it saves: the prefetch thread would then draw the
        # next epoch's order a second time, from a random state already past
        # the first draw, and the run would continue on other batches.
        serializer('current_position', self.current_position)
        serializer('epoch', self.epoch)
        serializer('is_new_epoch', self.is_new_epoch)
        serializer('order', self._state.order.copy())
        serializer('previous_epoch_detail', self._previous_epoch_detail)


#: The stop signals loader processes ignore (see :class:`_WorkerIterator`).
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def _workers_ignore_stop_signals():
    """Lets processes forked inside the block inherit 'ignore' for SIGINT and SIGTERM.

    The worker pool is forked at the first batch, from the main thread;
    the training process's own handlers are put back right after.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in _STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def train_iterator(dataset: Dataset, batch_size: int, *, seed: int | None = None,
                   n_processes: int = 0) -> chainer.dataset.Iterator:
    """A repeating, shuffling iterator over ``dataset`` that resumes exactly.

    Args:
        dataset: The training examples.
        batch_size: Examples per batch.
        seed: Seed of the shuffling (a :class:`ResumableShuffleOrderSampler`
            on ``RandomState(seed)``); the same seed gives the same batches
            whatever ``n_processes`` is.
        n_processes: Worker processes that read the examples ahead of
            training (a ``MultiprocessIterator``); 0 reads them in this
            process (a ``SerialIterator``). Workers pay off when reading an
            example costs time, as decoding an image file does; they are
            forked at the first batch and stopped by ``finalize()``, which
            Chainer's ``Trainer`` calls when the run ends.

    Returns:
        The iterator. An error reading an example in a worker is raised by
        ``next()`` in this process.
    """
    if n_processes < 0:
        raise ValueError(f'n_processes must be 0 or positive, got {n_processes}')
    sampler = ResumableShuffleOrderSampler(numpy.random.RandomState(seed))
    if n_processes == 0:
        return _SerialIterator(dataset, batch_size, order_sampler=sampler)
    return _WorkerIterator(_Catching(dataset), batch_size, n_processes=n_processes,
                           order_sampler=sampler)
