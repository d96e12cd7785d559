"""train_iterator: the same batches with or without loader processes, exact resume, no hangs."""

import multiprocessing
import time

import chainer
import numpy
import pytest

from gan_trainer.datasets import DatasetError
from gan_trainer.iterators import train_iterator
from gan_trainer.testing import fake_dataset

# Chainer 7.8.1 starts its prefetch thread with the deprecated setDaemon().
pytestmark = pytest.mark.filterwarnings('ignore:setDaemon:DeprecationWarning')

# 10 examples in batches of 8: nearly every batch starts a new epoch, so the
# prefetching runs an epoch or two ahead of the batches handed out.
DATA = fake_dataset(10, size=4)
BATCH = 8


def take(iterator, n):
    """The next ``n`` batches as (images, labels) arrays."""
    return [chainer.dataset.concat_examples(iterator.next()) for _ in range(n)]


def assert_same_batches(a, b):
    assert len(a) == len(b)
    for i, ((xa, ta), (xb, tb)) in enumerate(zip(a, b)):
        numpy.testing.assert_array_equal(xa, xb, err_msg=f'batch {i}')
        numpy.testing.assert_array_equal(ta, tb, err_msg=f'batch {i}')


def wait_until_drawn_ahead(iterator):
    """Waits (at most 10 s) until the prefetching has shuffled a later epoch."""
    deadline = time.monotonic() + 10
    while iterator.order_sampler._epoch <= iterator.epoch:
        assert time.monotonic() < deadline, 'the prefetching did not run ahead'
        time.sleep(0.01)


def save(iterator):
    """What GANUpdater.serialize saves of an iterator, as a dict."""
    serializer = chainer.serializers.DictionarySerializer()
    iterator.serialize(serializer['iterator'])
    iterator.order_sampler.serialize(serializer['order_rng'], iterator.epoch)
    return serializer.target


def load(iterator, target):
    deserializer = chainer.serializers.NpzDeserializer(target)
    iterator.serialize(deserializer['iterator'])
    iterator.order_sampler.serialize(deserializer['order_rng'], iterator.epoch)


@pytest.mark.parametrize('saved_with, resumed_with', [(0, 0), (2, 2), (2, 0), (0, 2)])
def test_a_saved_iterator_resumes_the_uninterrupted_batches(saved_with, resumed_with):
    expected = take(train_iterator(DATA, BATCH, seed=3), 8)
    iterator = train_iterator(DATA, BATCH, seed=3, n_processes=saved_with)
    resumed = train_iterator(DATA, BATCH, seed=99, n_processes=resumed_with)
    try:
        got = take(iterator, 3)
        if saved_with:
            wait_until_drawn_ahead(iterator)
        state = save(iterator)
        got += take(iterator, 5)  # saving did not disturb the prefetching
        load(resumed, state)
        continued = take(resumed, 5)
    finally:
        iterator.finalize()
        resumed.finalize()
    assert_same_batches(got, expected)
    assert_same_batches(continued, expected[3:])


class Unreadable(chainer.dataset.DatasetMixin):
    """Six tiny images; reading number 4 fails with ``error``."""

    def __init__(self, error):
        super().__init__()
        self.error = error

    def __len__(self):
        return 6

    def get_example(self, i):
        if i == 4:
            raise self.error
        return numpy.zeros((1, 2, 2), numpy.float32), numpy.int32(0)


class Unpicklable(Exception):
    def __init__(self, message):
        super().__init__(message)
        self.callback = lambda: None  # cannot be sent back from a worker


@pytest.mark.parametrize('n_processes', [0, 2])
def test_a_read_error_is_raised_by_next_not_left_hanging(n_processes):
    # Chainer's MultiprocessIterator alone would wait forever for the batch.
    error = DatasetError("cannot read image 'gone.png' (No such file)")
    iterator = train_iterator(Unreadable(error), 3, seed=0, n_processes=n_processes)
    try:
        with pytest.raises(DatasetError, match="'gone.png'"):
            take(iterator, 4)  # two epochs: image 4 is in one of the batches
    finally:
        iterator.finalize()


def test_an_error_that_cannot_be_pickled_still_reaches_the_training_process():
    iterator = train_iterator(Unreadable(Unpicklable('odd')), 3, seed=0, n_processes=2)
    try:
        with pytest.raises((Unpicklable, RuntimeError), match='odd'):
            take(iterator, 4)
    finally:
        iterator.finalize()


def test_finalize_stops_the_loader_processes():
    iterator = train_iterator(DATA, BATCH, seed=0, n_processes=2)
    take(iterator, 2)
    assert len(multiprocessing.active_children()) == 2
    iterator.finalize()
    assert multiprocessing.active_children() == []


def test_without_processes_it_is_a_serial_iterator():
    assert isinstance(train_iterator(DATA, BATCH), chainer.iterators.SerialIterator)
    with pytest.raises(ValueError, match='n_processes must be 0 or positive, got -1'):
        train_iterator(DATA, BATCH, n_processes=-1)
