"""Tiny nets and fake data shared by the tests and the docs.

The nets are the real DCGAN classes (and their class-conditional
variants) at toy widths (8x8 images, 4 and 8 channels), so tests exercise the
production code yet run in milliseconds on a CPU. Everything here is deterministic given ``seed`` and leaves NumPy's
global random state as it found it, so a test that uses these helpers does
not change what a later test draws.
"""

from collections.abc import Sequence

import numpy as np

from gan_trainer.datasets import ArrayDataset
from gan_trainer.latent import global_seed
from gan_trainer.nets.conditional import ConditionalDiscriminator, ConditionalGenerator
from gan_trainer.nets.dcgan import Discriminator, Generator


def tiny_generator(
    *,
    size: int = 8,
    channels: int = 1,
    n_hidden: int = 4,
    widths: Sequence[int] = (4, 8),
    seed: int = 0,
) -> Generator:
    """Builds a small DCGAN generator with reproducible weights.

    Args:
        size (int): Output side; 8 with the default two stages starts 2x2.
        channels (int): Output channels.
        n_hidden (int): Dimension of ``z``.
        widths (sequence of int): D-order widths (G uses them reversed).
        seed (int): Seed for the weights; equal seeds give equal weights.

    Returns:
        Generator: A generator on the CPU, outputs ``(B, channels, size,
        size)``.
    """
    with global_seed(seed):
        return Generator(size=size, channels=channels, n_hidden=n_hidden, widths=list(widths))


def tiny_discriminator(
    *,
    size: int = 8,
    channels: int = 1,
    widths: Sequence[int] = (4, 8),
    norm: str = 'batch',
    spectral_norm: bool = False,
    seed: int = 0,
) -> Discriminator:
    """Builds a small DCGAN discriminator with reproducible weights.

    Args:
        size (int): Input side.
        channels (int): Input channels.
        widths (sequence of int): Conv widths from the input side.
        norm (str): ``'batch'`` or ``'none'`` (e.g. for a WGAN-GP critic).
        spectral_norm (bool): Whether to spectrally normalize the weights.
        seed (int): Seed for the weights (and the spectral normalization's
            start vectors); equal seeds give equal nets.

    Returns:
        Discriminator: A discriminator on the CPU, logits of shape ``(B,)``.
    """
    with global_seed(seed):
        return Discriminator(
            size=size,
            channels=channels,
            widths=list(widths),
            norm=norm,
            spectral_norm=spectral_norm,
        )


def tiny_conditional_generator(
    *,
    n_classes: int = 2,
    mode: str = 'concat',
    size: int = 8,
    channels: int = 1,
    n_hidden: int = 4,
    widths: Sequence[int] = (4, 8),
    seed: int = 0,
) -> ConditionalGenerator:
    """Builds a small class-conditional generator with reproducible weights.

    Args:
        n_classes (int): Number of labels; 2 matches :func:`fake_dataset`.
        mode (str): ``'concat'`` or ``'cbn'``.
        size (int): Output side.
        channels (int): Output channels.
        n_hidden (int): Dimension of ``z``.
        widths (sequence of int): D-order widths (G uses them reversed).
        seed (int): Seed for the weights; equal seeds give equal weights.

    Returns:
        ConditionalGenerator: A generator on the CPU, called as ``gen(z, t)``.
    """
    with global_seed(seed):
        return ConditionalGenerator(
            n_classes=n_classes,
            size=size,
            channels=channels,
            n_hidden=n_hidden,
            widths=list(widths),
            mode=mode,
        )


def tiny_conditional_discriminator(
    *,
    n_classes: int = 2,
    mode: str = 'projection',
    size: int = 8,
    channels: int = 1,
    widths: Sequence[int] = (4, 8),
    norm: str = 'batch',
    spectral_norm: bool = False,
    seed: int = 0,
) -> ConditionalDiscriminator:
    """Builds a small class-conditional discriminator with reproducible weights.

    Args:
        n_classes (int): Number of labels; 2 matches :func:`fake_dataset`.
        mode (str): ``'projection'`` or ``'concat'``.
        size (int): Input side.
        channels (int): Image channels.
        widths (sequence of int): Conv widths from the input side.
        norm (str): ``'batch'`` or ``'none'``.
        spectral_norm (bool): Whether to spectrally normalize the weights.
        seed (int): Seed for the weights; equal seeds give equal nets.

    Returns:
        ConditionalDiscriminator: A discriminator on the CPU, called as
        ``dis(x, t)``, logits of shape ``(B,)``.
    """
    with global_seed(seed):
        return ConditionalDiscriminator(
            n_classes=n_classes,
            size=size,
            channels=channels,
            widths=list(widths),
            norm=norm,
            spectral_norm=spectral_norm,
            mode=mode,
        )


def _squares(
    rng: np.random.RandomState, brightness: np.ndarray, size: int, channels: int
) -> np.ndarray:
    # One axis-aligned square per image on a -1 (black) background; its side
    # is 1/4..1/2 of the image so it stays visible at 8x8.
    n = len(brightness)
    images = np.full((n, channels, size, size), -1, dtype=np.float32)
    lo, hi = max(1, size // 4), max(1, size // 2)
    for i in range(n):
        side = rng.randint(lo, hi + 1)
        top, left = rng.randint(0, size - side + 1, size=2)
        images[i, :, top : top + side, left : left + side] = brightness[i]
    return images


def fake_images(n: int, *, size: int = 8, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Makes simple structured images: a bright square on a dark background.

    Unlike noise, these have a shape a GAN can learn in a few hundred
    iterations, and a grid of them is easy to eyeball.

    Args:
        n (int): Number of images.
        size (int): Image side in pixels.
        channels (int): Channels; all channels are equal (grey squares).
        seed (int): Seed of the private RNG; the global RNG is not touched.

    Returns:
        numpy.ndarray: float32 array of shape ``(n, channels, size, size)``
        with values in [-1, 1] (background -1, squares in [0.5, 1]).
    """
    if n < 0 or size < 1 or channels < 1:
        raise ValueError(
            f'need n >= 0, size >= 1 and channels >= 1, got n={n}, size={size}, channels={channels}'
        )
    rng = np.random.RandomState(seed)
    brightness = rng.uniform(0.5, 1.0, size=n).astype(np.float32)
    return _squares(rng, brightness, size, channels)


def fake_dataset(
    n: int, *, size: int = 8, channels: int = 1, n_classes: int = 2, seed: int = 0
) -> ArrayDataset:
    """Makes a labelled dataset of square images.

    The label sets the square's brightness, ``-1 + 2 * (label + 1) /
    n_classes`` (for two classes: 0 or 1), so a conditional model or a
    classifier-based metric has something to tell apart.

    Args:
        n (int): Number of examples.
        size (int): Image side in pixels.
        channels (int): Channels.
        n_classes (int): Number of labels, drawn uniformly.
        seed (int): Seed of the private RNG; the global RNG is not touched.

    Returns:
        ArrayDataset: Pairs ``(image, label)`` with float32
        images of shape ``(channels, size, size)`` in [-1, 1] and int32
        labels in ``[0, n_classes)``.
    """
    if n < 0 or size < 1 or channels < 1 or n_classes < 1:
        raise ValueError(
            f'need n >= 0, size >= 1, channels >= 1 and n_classes >= 1, got '
            f'n={n}, size={size}, channels={channels}, n_classes={n_classes}'
        )
    rng = np.random.RandomState(seed)
    labels = rng.randint(0, n_classes, size=n).astype(np.int32)
    brightness = (-1 + 2 * (labels + 1) / n_classes).astype(np.float32)
    images = _squares(rng, brightness, size, channels)
    return ArrayDataset(images, labels)
