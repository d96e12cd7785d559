"""Drawing images from a trained generator, and ranking them by D.

Sampling runs G in evaluation mode (BatchNorm with running statistics)
without building a graph, in batches so that thousands of samples fit in
memory. :func:`nice_samples` is the "nice" trick of the Japanese DCGAN
tutorials: draw many more images than needed and keep those the
discriminator finds most real.
"""

from __future__ import annotations

import chainer
import numpy

from gan_trainer.latent import Sampler, get_sampler


def draw_hidden(n: int, n_hidden: int, *, z_dist: str | Sampler = 'normal',
                seed: int | None = None) -> numpy.ndarray:
    """Returns ``n`` latent vectors ``(n, n_hidden)`` from ``RandomState(seed)``."""
    return get_sampler(z_dist)(numpy.random.RandomState(seed), n, n_hidden)


def generate(gen: chainer.Link, z: numpy.ndarray, *, batchsize: int = 100) -> numpy.ndarray:
    """Runs G on ``z`` in evaluation mode and returns images on the CPU.

    Args:
        gen: The generator; its device decides where it runs.
        z: Latent vectors ``(n, n_hidden)`` (NumPy or on G's device).
        batchsize: Vectors per forward pass.

    Returns:
        float32 NumPy array ``(n, C, H, W)`` in [-1, 1].
    """
    device = gen.device
    cpu = chainer.backend.CpuDevice()
    out = []
    with chainer.using_config('train', False), chainer.no_backprop_mode():
        for i in range(0, len(z), batchsize):
            out.append(cpu.send(gen(device.send(z[i:i + batchsize])).array))
    return numpy.concatenate(out)


def score(dis: chainer.Link, images: numpy.ndarray, *, batchsize: int = 100) -> numpy.ndarray:
    """D's logits ``(n,)`` for ``images``, in evaluation mode; higher is more real."""
    device = dis.device
    cpu = chainer.backend.CpuDevice()
    out = []
    with chainer.using_config('train', False), chainer.no_backprop_mode():
        for i in range(0, len(images), batchsize):
            y = dis(device.send(images[i:i + batchsize])).array
            out.append(cpu.send(y).reshape(-1))
    return numpy.concatenate(out)


def nice_samples(gen: chainer.Link, dis: chainer.Link, z: numpy.ndarray, n: int, *,
                 batchsize: int = 100) -> numpy.ndarray:
    """Generates one image per z and keeps the ``n`` that D scores highest.

    With ``len(z) == 20 * n`` this keeps the top 5%, as ``generate.py --nice``
    does. The result is sorted from the highest score down.

    Args:
        gen: The generator.
        dis: The discriminator trained with it.
        z: Candidate latent vectors ``(m, n_hidden)``, ``m >= n``.
        n: Number of images to keep.
        batchsize: Vectors per forward pass.

    Returns:
        float32 NumPy array ``(n, C, H, W)``.
    """
    if not 1 <= n <= len(z):
        raise ValueError(f'cannot keep {n} of {len(z)} samples')
    images = generate(gen, z, batchsize=batchsize)
    order = numpy.argsort(-score(dis, images, batchsize=batchsize), kind='stable')
    return images[order[:n]]
