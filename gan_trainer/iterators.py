"""Training iterators that resume exactly, with or without loader processes.

:func:`train_iterator` is the one place a training script gets its iterator:
a ``SerialIterator`` that reads examples in the training process, or, for
datasets that decode files on access (:class:`~gan_trainer.datasets.ImageFolderDataset`),
the same iterator with a :class:`~gan_trainer.loader.LoaderPool` whose
worker processes decode the next batches while the current one trains. Both
shuffle with a :class:`ResumableShuffleOrderSampler` and yield the same
batches for the same seed, so a snapshot written with workers resumes
without them and vice versa. Each saves its sampler's state with its own
(``iterator:main/order_sampler`` in a trainer snapshot; :data:`SAVES_ORDER`
marks such iterators), so the updater never reaches into a sampler: an
iterator that does not save its shuffling state cannot resume exactly, and
the updater warns about it once.

Reading ahead means drawing the shuffled order of the next epoch early, so
the order sampler's random state at a snapshot can be an epoch ahead of the
batches trained on. The sampler here remembers its state after each epoch's
draw and saves the one that matches the iterator's epoch (see
:meth:`GANUpdater.serialize <gan_trainer.updater.GANUpdater.serialize>`).

Chainer 7.8.1's ``MultiprocessIterator`` is not used: an exception in one of
its workers killed its prefetch thread, and a worker killed by a signal (the
out-of-memory killer) lost its task, both leaving training waiting for ever
(issue 25). The workers here return a read error, which ``next()`` raises
on the batch it belongs to, and a dead worker is replaced and its examples
read again (:mod:`gan_trainer.loader`).
"""

from __future__ import annotations

import collections
import itertools
import threading

import chainer
import numpy
from chainer.iterators import _statemachine

from gan_trainer.datasets import Dataset
from gan_trainer.loader import Failure, LoaderPool
from gan_trainer.streams import random_state

# A prefetching iterator is at most ``n_prefetch`` batches (2 here) ahead of
# training, so it can draw only a few epochs' orders early unless a batch
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


class _WorkerIterator(_SerialIterator):
    """A ``SerialIterator`` whose examples are read by a :class:`~gan_trainer.loader.LoaderPool`.

    The batches are those of ``SerialIterator`` over the same dataset and
    order sampler, one for one: the indices of the next ``n_prefetch``
    batches are computed here, in the training process, by Chainer's own
    state machine, and their examples read by the workers while the current
    batch trains. A snapshot holds exactly what a ``SerialIterator``'s
    holds (the prefetched batches are read again after a resume), so a run
    saved with workers resumes without them and vice versa. An error
    reading an example (an image deleted during training) is raised by
    ``next()`` on the batch it belongs to; a worker that dies is replaced
    (see :mod:`gan_trainer.loader`), and ``finalize`` ends them all.
    """

    saves_order = True

    def __init__(self, dataset, batch_size: int, *, n_processes: int, order_sampler,
                 n_prefetch: int = 2) -> None:
        self.n_processes, self.n_prefetch = n_processes, n_prefetch
        self._pool = LoaderPool(dataset, n_processes)
        self._ahead: collections.deque = collections.deque()  # (tags, state after)
        self._tags = itertools.count()
        super().__init__(dataset, batch_size, order_sampler=order_sampler)

    def __next__(self):
        self._fill()
        tags, state = self._ahead.popleft()
        if tags is None:
            raise StopIteration
        self._fill()  # the next batches are read while this one trains
        self._previous_epoch_detail = self.epoch_detail
        self._state = state
        batch = [example for tag in tags for example in self._pool.get(tag)]
        for example in batch:
            if isinstance(example, Failure):
                raise example.error
        return batch

    next = __next__

    def _fill(self) -> None:
        state = self._ahead[-1][1] if self._ahead else self._state
        while len(self._ahead) < self.n_prefetch:
            state, indices = _statemachine.iterator_statemachine(
                state, self.batch_size, self.repeat, self.order_sampler, len(self.dataset))
            if indices is None:  # the end of a non-repeating iterator
                self._ahead.append((None, state))
                return
            # One task per worker, so that a batch is read in parallel.
            chunks = [c for c in numpy.array_split(numpy.asarray(indices), self.n_processes)
                      if len(c)]
            tags = [next(self._tags) for _ in chunks]
            for tag, chunk in zip(tags, chunks):
                self._pool.submit(tag, chunk.tolist())
            self._ahead.append((tags, state))

    def serialize(self, serializer) -> None:
        super().serialize(serializer)
        if isinstance(serializer, chainer.serializer.Deserializer):
            # Read ahead from the state before: read again from the loaded one.
            self._ahead.clear()
            self._pool.forget()

    def reset(self) -> None:
        super().reset()
        if hasattr(self, '_pool'):
            self._ahead.clear()
            self._pool.forget()

    def finalize(self) -> None:
        self._ahead.clear()
        self._pool.close()


def train_iterator(dataset: Dataset, batch_size: int, *, seed: int | None = None,
                   n_processes: int = 0) -> chainer.dataset.Iterator:
    """A repeating, shuffling iterator over ``dataset`` that resumes exactly.

    Args:
        dataset: The training examples.
        batch_size: Examples per batch.
        seed: Seed of the shuffling (a :class:`ResumableShuffleOrderSampler`
            on :func:`gan_trainer.streams.random_state` ``(seed, 'order')``,
            a stream of its own, independent of the z and of the initial
            weights drawn from the same seed); the same seed gives the same batches
            whatever ``n_processes`` is.
        n_processes: Worker processes that read the examples ahead of
            training (a :class:`~gan_trainer.loader.LoaderPool`); 0 reads
            them in this process (a plain ``SerialIterator``). Workers pay
            off when reading an example costs time, as decoding an image
            file does; they are forked at the first batch and stopped by
            ``finalize()``, which Chainer's ``Trainer`` calls when the run
            ends.

    Returns:
        The iterator. An error reading an example in a worker is raised by
        ``next()`` in this process.
    """
    if n_processes < 0:
        raise ValueError(f'n_processes must be 0 or positive, got {n_processes}')
    sampler = ResumableShuffleOrderSampler(random_state(seed, 'order'))
    if n_processes == 0:
        return _SerialIterator(dataset, batch_size, order_sampler=sampler)
    return _WorkerIterator(dataset, batch_size, n_processes=n_processes, order_sampler=sampler)
