"""A run's random streams: one seed, independent streams for each use.

A run's seed is used three times: for the networks' initial weights
(Chainer's initializers draw from NumPy's global random state, seeded with
it by :func:`gan_trainer.latent.global_seed`), for the training step's own
draws (z, augmentation, soft labels: :class:`~gan_trainer.GANUpdater`'s
random state, saved in snapshots) and for the order of the training
examples (:func:`gan_trainer.iterators.train_iterator`). A fourth network
(DFM's denoiser, built after G and D) takes its initial weights from a
seed of its own (:func:`seed_for`): under the run's seed it repeated G's
first weights.

Seeding the last two with ``RandomState(seed)`` itself, as this package did
until 2026-12-07, made all three *one* stream: NumPy's global
``seed(s)`` and ``RandomState(s)`` produce the same numbers, so the z of
the first iterations were G's initial first-layer weights divided by their
scale (correlation 1.0: the first z batch of the keras-dcgan preset is its
G's first 128 weight rows times 1/0.073), every later z a copy of other
initial weights, and the data order a function of the same numbers. Found
by ``benchmarks/peers/step_check.py``: the keras-dcgan preset took every
step as its Keras original does, to rounding, for 600 iterations, yet over
seeds its FID stayed above the original's, whose initial weights come from
TensorFlow's generator (benchmarks/RESULTS.md, issue 27).

:func:`random_state` derives each use's stream from the seed with NumPy's
``SeedSequence`` (a spawn key per use), so the streams are independent of
each other and of ``numpy.random.seed(seed)``'s, and the same seed still
gives the same run.
"""

from __future__ import annotations

import numpy

#: Each use of the run's seed -> its ``SeedSequence`` spawn key.
PURPOSES = {'step': 1, 'order': 2, 'denoiser': 3}


def random_state(seed: int | None, purpose: str) -> numpy.random.RandomState:
    """A ``RandomState`` for ``purpose`` (a key of :data:`PURPOSES`) derived from ``seed``.

    ``None`` gives an unseeded one (the operating system's entropy), as
    ``RandomState(None)`` does. Its state saves and restores with
    ``get_state``/``set_state`` like any ``RandomState``'s.

    Raises:
        ValueError: For an unknown purpose or a seed that is not a
            non-negative integer.
    """
    if purpose not in PURPOSES:
        raise ValueError(f'unknown random stream {purpose!r}; valid: {", ".join(PURPOSES)}')
    if seed is None:
        return numpy.random.RandomState()
    if isinstance(seed, bool) or not isinstance(seed, (int, numpy.integer)) or seed < 0:
        raise ValueError(f'seed must be a non-negative integer, got {seed!r}')
    sequence = numpy.random.SeedSequence(int(seed), spawn_key=(PURPOSES[purpose],))
    return numpy.random.RandomState(numpy.random.MT19937(sequence))


def seed_for(seed: int | None, purpose: str) -> int | None:
    """A 32-bit seed for ``purpose``'s use of NumPy's global state (e.g. a network's
    initial weights under :func:`gan_trainer.latent.global_seed`), derived from
    ``seed`` as :func:`random_state`'s stream is; ``None`` stays ``None``."""
    if seed is None:
        return None
    state = random_state(seed, purpose)  # checks purpose and seed
    return int(state.randint(0, 2**32, dtype=numpy.uint64))
