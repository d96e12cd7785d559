"""Latent vectors z: the distributions G's input is drawn from.

Each sampler is a pure function ``(random_state, batchsize, n_hidden) ->
float32 array of shape (batchsize, n_hidden)`` on the CPU; the caller moves
it to the device. Drawing from an explicit :class:`numpy.random.RandomState`
rather than the global RNG is what lets the updater save the sampler's state
in a snapshot and a resumed run draw the same z as an uninterrupted one.
:func:`lerp` and :func:`slerp` walk from one z to another, for pictures of
what G does in between (:func:`gan_trainer.sampling.interpolation_grid`).
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator

import numpy

Sampler = Callable[[numpy.random.RandomState, int, int], numpy.ndarray]


def normal(rng: numpy.random.RandomState, batchsize: int, n_hidden: int) -> numpy.ndarray:
    """z ~ N(0, I), the common choice in modern GANs."""
    return rng.standard_normal((batchsize, n_hidden)).astype(numpy.float32)


def uniform(rng: numpy.random.RandomState, batchsize: int, n_hidden: int) -> numpy.ndarray:
    """z ~ U(-1, 1)^n, as in the DCGAN paper and Chainer's DCGAN example."""
    return rng.uniform(-1, 1, (batchsize, n_hidden)).astype(numpy.float32)


#: Default bound of :func:`truncated_normal`, in standard deviations: what
#: ``tf.random.truncated_normal`` and Keras' ``TruncatedNormal`` use.
TRUNCATION = 2.0


def truncated_normal(rng: numpy.random.RandomState, batchsize: int, n_hidden: int, *,
                     threshold: float = TRUNCATION) -> numpy.ndarray:
    """z ~ N(0, I) truncated to ``|z_i| <= threshold``, each entry on its own.

    Entries beyond the bound are drawn again from ``rng`` until they fall
    inside (TensorFlow's rule), so the draws are N(0, 1) conditioned on the
    bound: mean 0, variance ``1 - 2 a phi(a) / (2 Phi(a) - 1)`` for ``a =
    threshold`` (0.774 at 2 sigma, 0.291 at 1 sigma). keras-dcgan's pull
    request #13 draws z like this with ``threshold=1`` (``scipy.stats.truncnorm``
    on (-1, 1)); the truncation trick of BigGAN (Brock et al. 2019) samples a
    trained G this way. Use :func:`truncated_normal_sampler` for another
    bound as a :data:`Sampler`.

    Args:
        rng: The random state drawn from.
        batchsize, n_hidden: The shape ``(batchsize, n_hidden)``.
        threshold: The bound, in standard deviations (> 0).

    Raises:
        ValueError: If ``threshold`` is not a finite number > 0.
    """
    threshold = _check_threshold(threshold)
    z = rng.standard_normal((batchsize, n_hidden))
    outside = numpy.abs(z) > threshold
    while outside.any():
        z[outside] = rng.standard_normal(int(outside.sum()))
        outside = numpy.abs(z) > threshold
    return z.astype(numpy.float32)


def _check_threshold(threshold) -> float:
    if (isinstance(threshold, bool) or not isinstance(threshold, (int, float, numpy.floating))
            or not math.isfinite(threshold) or threshold <= 0):
        raise ValueError(f'the truncation threshold must be a finite number > 0 (in '
                         f'standard deviations), got {threshold!r}')
    return float(threshold)


def truncated_normal_sampler(threshold: float = TRUNCATION) -> Sampler:
    """:func:`truncated_normal` with bound ``threshold`` as a :data:`Sampler`.

    Raises:
        ValueError: If ``threshold`` is not a finite number > 0 (raised
            here, where the setting enters, not at the first draw).
    """
    return functools.partial(truncated_normal, threshold=_check_threshold(threshold))


def hidden_for(gen, sampler: Sampler, rng: numpy.random.RandomState, batchsize: int,
               n_hidden: int | None):
    """z for ``gen``: ``gen.make_hidden(batchsize)`` when G has that method, else ``sampler``.

    ``make_hidden`` is the convention of Chainer's DCGAN example; such a
    generator draws from NumPy's global RNG, so ``rng`` is then unused.
    """
    if hasattr(gen, 'make_hidden'):
        return gen.make_hidden(batchsize)
    return sampler(rng, batchsize, n_hidden)


#: Sampler names accepted by ``GANUpdater(z_dist=...)`` and ``--z_dist``.
SAMPLERS: dict[str, Sampler] = {
    'normal': normal,
    'uniform': uniform,
    'truncated_normal': truncated_normal,
}


def get_sampler(z_dist: str | Sampler, *, threshold: float | None = None) -> Sampler:
    """Returns the sampler named ``z_dist`` (or ``z_dist`` if callable).

    Args:
        z_dist: A name from :data:`SAMPLERS`, or a sampler function.
        threshold: The bound of ``'truncated_normal'`` in standard
            deviations; ``None`` for :data:`TRUNCATION` (2).

    Raises:
        ValueError: for an unknown name (the message lists the valid ones),
            a ``threshold`` with another distribution, or a bad threshold.
    """
    if threshold is not None and z_dist != 'truncated_normal':
        raise ValueError(f"a z threshold is for z_dist 'truncated_normal' only, got "
                         f'z_dist {z_dist!r} with threshold {threshold!r}')
    if callable(z_dist):
        return z_dist
    if z_dist == 'truncated_normal' and threshold is not None:
        return truncated_normal_sampler(threshold)
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


def _endpoints(z0, z1, steps: int) -> tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray]:
    """Checks a pair of z and returns them with the fractions ``t`` of ``steps``.

    ``t`` has shape ``(steps, 1, ..., 1)`` so that it broadcasts against ``z0``.
    """
    a, b = numpy.asarray(z0), numpy.asarray(z1)
    if a.shape != b.shape or a.ndim == 0:
        raise ValueError(
            f'z0 and z1 must be vectors (or batches of them) of one shape, '
            f'got {a.shape} and {b.shape}'
        )
    if isinstance(steps, bool) or not isinstance(steps, (int, numpy.integer)) or steps < 2:
        raise ValueError(f'steps must be an integer >= 2 (the two endpoints), got {steps!r}')
    t = numpy.linspace(0.0, 1.0, steps).reshape((steps,) + (1,) * a.ndim)
    return a, b, t


def _with_exact_endpoints(path: numpy.ndarray, a: numpy.ndarray, b: numpy.ndarray):
    # The formulas give z0 and z1 up to rounding; G(path[0]) must be G(z0).
    path = path.astype(numpy.result_type(a.dtype, b.dtype, numpy.float32), copy=False)
    path[0], path[-1] = a, b
    return path


def lerp(z0, z1, steps: int) -> numpy.ndarray:
    """Linear interpolation: ``steps`` evenly spaced points from ``z0`` to ``z1``.

    Point ``i`` is ``(1 - t) z0 + t z1`` with ``t = i / (steps - 1)``. For
    z ~ N(0, I) the middle points are shorter than typical samples (the
    midpoint of two independent z has about 71% of their norm), which is why
    :func:`slerp` usually gives the cleaner pictures.

    Args:
        z0: Start, shape ``(n_hidden,)`` or a batch ``(..., n_hidden)``.
        z1: End, same shape as ``z0``.
        steps: Number of points, ``>= 2``; the first is ``z0`` and the last
            ``z1``, exactly.

    Returns:
        numpy.ndarray: ``(steps, *z0.shape)``, float32 for float32 input.

    Raises:
        ValueError: If the shapes differ or ``steps < 2``.
    """
    a, b, t = _endpoints(z0, z1, steps)
    return _with_exact_endpoints((1.0 - t) * a + t * b, a, b)


def slerp(z0, z1, steps: int) -> numpy.ndarray:
    """Spherical interpolation along the great circle from ``z0`` to ``z1``.

    With ``omega`` the angle between the two vectors, point ``t`` is
    ``sin((1 - t) omega) / sin(omega) z0 + sin(t omega) / sin(omega) z1``
    (Shoemake 1985; White 2016 recommends it for GAN latents). Between two
    vectors of equal norm every point keeps that norm, so the path stays
    where N(0, I) puts its mass instead of cutting through the middle. When
    the vectors are parallel or antiparallel (or one is zero) the circle is
    undefined and the path is :func:`lerp`'s straight line. A batch
    ``(..., n_hidden)`` interpolates each pair of rows on its own.

    Args:
        z0: Start, shape ``(n_hidden,)`` or ``(..., n_hidden)``.
        z1: End, same shape as ``z0``.
        steps: Number of points, ``>= 2``; the first is ``z0`` and the last
            ``z1``, exactly.

    Returns:
        numpy.ndarray: ``(steps, *z0.shape)``, float32 for float32 input.

    Raises:
        ValueError: If the shapes differ or ``steps < 2``.
    """
    a, b, t = _endpoints(z0, z1, steps)
    a64, b64 = a.astype(numpy.float64), b.astype(numpy.float64)
    norms = numpy.linalg.norm(a64, axis=-1, keepdims=True) * numpy.linalg.norm(
        b64, axis=-1, keepdims=True
    )
    dot = numpy.sum(a64 * b64, axis=-1, keepdims=True)
    cos = numpy.where(norms > 0, dot / numpy.where(norms > 0, norms, 1.0), 1.0)
    omega = numpy.arccos(numpy.clip(cos, -1.0, 1.0))
    sin = numpy.sin(omega)
    # Below this the two circle weights lose every digit to cancellation.
    straight = sin < 1e-6
    safe = numpy.where(straight, 1.0, sin)
    wa = numpy.where(straight, 1.0 - t, numpy.sin((1.0 - t) * omega) / safe)
    wb = numpy.where(straight, t, numpy.sin(t * omega) / safe)
    return _with_exact_endpoints(wa * a64 + wb * b64, a, b)
