"""Drawing images from a trained generator, and ranking them by D.

Sampling runs G in evaluation mode (BatchNorm with running statistics)
without building a graph, in batches so that thousands of samples fit in
memory. :func:`nice_samples` is the "nice" trick of the Japanese DCGAN
tutorials: draw many more images than needed and keep those the
discriminator finds most real. :func:`interpolation_grid` shows what G
makes on the way from one z to another.
"""

from __future__ import annotations

import chainer
import numpy

from gan_trainer.latent import Sampler, get_sampler, lerp, slerp
from gan_trainer.nets import call_net, dis_outputs

#: Interpolation modes of :func:`interpolation_grid`.
INTERPOLATIONS = {'linear': lerp, 'spherical': slerp}


def draw_hidden(n: int, n_hidden: int, *, z_dist: str | Sampler = 'normal',
                seed: int | None = None) -> numpy.ndarray:
    """Returns ``n`` latent vectors ``(n, n_hidden)`` from ``RandomState(seed)``."""
    return get_sampler(z_dist)(numpy.random.RandomState(seed), n, n_hidden)


def _batches(n: int, batchsize: int, device, *arrays):
    """Yields slices of ``arrays`` (``None`` entries stay ``None``) on ``device``."""
    for i in range(0, n, batchsize):
        yield [None if a is None else device.send(a[i:i + batchsize]) for a in arrays]


def generate(gen: chainer.Link, z: numpy.ndarray, labels: numpy.ndarray | None = None, *,
             batchsize: int = 100) -> numpy.ndarray:
    """Runs G on ``z`` in evaluation mode and returns images on the CPU.

    Args:
        gen: The generator; its device decides where it runs.
        z: Latent vectors ``(n, n_hidden)`` (NumPy or on G's device).
        labels: Class labels ``(n,)`` int32 for a conditional G, else ``None``.
        batchsize: Vectors per forward pass.

    Returns:
        float32 NumPy array ``(n, C, H, W)`` in [-1, 1].
    """
    cpu = chainer.backend.CpuDevice()
    out = []
    with chainer.using_config('train', False), chainer.no_backprop_mode():
        for z_i, t_i in _batches(len(z), batchsize, gen.device, z, labels):
            out.append(cpu.send(call_net(gen, z_i, t_i).array))
    return numpy.concatenate(out)


def score(dis: chainer.Link, images: numpy.ndarray, labels: numpy.ndarray | None = None, *,
          batchsize: int = 100) -> numpy.ndarray:
    """D's logits ``(n,)`` for ``images`` (and labels), in evaluation mode; higher is more real."""
    cpu = chainer.backend.CpuDevice()
    out = []
    with chainer.using_config('train', False), chainer.no_backprop_mode():
        for x_i, t_i in _batches(len(images), batchsize, dis.device, images, labels):
            out.append(cpu.send(dis_outputs(dis, x_i, t_i).array))
    return numpy.concatenate(out)


def nice_samples(gen: chainer.Link, dis: chainer.Link, z: numpy.ndarray, n: int,
                 labels: numpy.ndarray | None = None, *, batchsize: int = 100) -> numpy.ndarray:
    """Generates one image per z and keeps the ``n`` that D scores highest.

    With ``len(z) == 20 * n`` this keeps the top 5%, as ``generate.py --nice``
    does. The result is sorted from the highest score down.

    Args:
        gen: The generator.
        dis: The discriminator trained with it.
        z: Candidate latent vectors ``(m, n_hidden)``, ``m >= n``.
        n: Number of images to keep.
        labels: Class labels ``(m,)`` for conditional nets, else ``None``.
        batchsize: Vectors per forward pass.

    Returns:
        float32 NumPy array ``(n, C, H, W)``.
    """
    if not 1 <= n <= len(z):
        raise ValueError(f'cannot keep {n} of {len(z)} samples')
    images = generate(gen, z, labels, batchsize=batchsize)
    order = numpy.argsort(-score(dis, images, labels, batchsize=batchsize), kind='stable')
    return images[order[:n]]


def interpolation_grid(gen: chainer.Link, z_pairs, steps: int, *, mode: str = 'linear',
                       labels: numpy.ndarray | None = None,
                       batchsize: int = 100) -> numpy.ndarray:
    """Images along paths in z: one row per pair, ``steps`` columns each.

    Row ``r`` walks from ``z_pairs[r][0]`` to ``z_pairs[r][1]``
    (:func:`~gan_trainer.latent.lerp` or :func:`~gan_trainer.latent.slerp`);
    its first and last columns are G of exactly those two vectors. Lay the
    result out with ``save_grid(images, path, len(z_pairs), steps)``.

    Args:
        gen: The generator.
        z_pairs: ``(rows, 2, n_hidden)``: a start and an end per row.
        steps: Images per row, ``>= 2``.
        mode: ``'linear'`` or ``'spherical'`` (see :data:`INTERPOLATIONS`).
        labels: Class label per row ``(rows,)`` for a conditional G (the
            class stays fixed along a row), else ``None``.
        batchsize: Vectors per forward pass.

    Returns:
        float32 NumPy array ``(rows * steps, C, H, W)`` in [-1, 1], row-major.

    Raises:
        ValueError: For an unknown mode, a bad shape, or ``steps < 2``.
    """
    if mode not in INTERPOLATIONS:
        raise ValueError(f'unknown interpolation mode {mode!r}; valid: {", ".join(INTERPOLATIONS)}')
    z_pairs = numpy.asarray(z_pairs)
    if z_pairs.ndim != 3 or z_pairs.shape[1] != 2 or len(z_pairs) == 0:
        raise ValueError(f'z_pairs must have shape (rows, 2, n_hidden), got {z_pairs.shape}')
    rows = len(z_pairs)
    # (steps, rows, n_hidden) -> (rows, steps, n_hidden) -> (rows * steps, n_hidden)
    path = INTERPOLATIONS[mode](z_pairs[:, 0], z_pairs[:, 1], steps)
    z = numpy.ascontiguousarray(path.transpose(1, 0, 2).reshape(rows * steps, -1))
    if labels is not None:
        labels = numpy.asarray(labels, numpy.int32)
        if labels.shape != (rows,):
            raise ValueError(f'labels must have shape ({rows},), one per row, got {labels.shape}')
        labels = numpy.repeat(labels, steps)
    return generate(gen, z.astype(numpy.float32, copy=False), labels, batchsize=batchsize)
