"""Latent vectors z: the distributions G's input is drawn from.

Each sampler is a pure function ``(random_state, batchsize, n_hidden) ->
float32 array of shape (batchsize, n_hidden)`` on the CPU; the caller moves
it to the device. Drawing from an explicit :class:`numpy.random.RandomState`
rather than the global RNG is what lets the updater save the sampler's state
in a snapshot and a resumed run draw the same z as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy

Sampler = Callable[[numpy.random.RandomState, int, int], numpy.ndarray]


def normal(rng: numpy.random.RandomState, batchsize: int, n_hidden: int) -> numpy.ndarray:
    """z ~ N(0, I), the common choice in modern GANs."""
    return rng.standard_normal((batchsize, n_hidden)).astype(numpy.float32)


def uniform(rng: numpy.random.RandomState, batchsize: int, n_hidden: int) -> numpy.ndarray:
    """z ~ U(-1, 1)^n, as in the DCGAN paper and Chainer's DCGAN example."""
    return rng.uniform(-1, 1, (batchsize, n_hidden)).astype(numpy.float32)


#: Sampler names accepted by ``GANUpdater(z_dist=...)`` and ``--z_dist``.
SAMPLERS: dict[str, Sampler] = {'normal': normal, 'uniform': uniform}


def get_sampler(z_dist: str | Sampler) -> Sampler:
    """Returns the sampler named ``z_dist`` (or ``z_dist`` if callable).

    Raises:
        ValueError: for an unknown name; the message lists the valid ones.
    """
    if callable(z_dist):
        return z_dist
    try:
        return SAMPLERS[z_dist]
    except KeyError:
        raise ValueError(
            f'unknown z distribution {z_dist!r}; '
            f'valid: {", ".join(sorted(SAMPLERS))}'
        ) from None


@contextlib.contextmanager
def global_seed(seed: int | None) -> Iterator[None]:
    """Seeds NumPy's global RNG inside the block and restores it afterwards.

    Chainer's initializers and generators with their own ``make_hidden``
    draw from the global RNG and take no seed; this makes them repeatable
    without changing what the rest of the program draws.
    """
    state = numpy.random.get_state()
    numpy.random.seed(seed)
    try:
        yield
    finally:
        numpy.random.set_state(state)
