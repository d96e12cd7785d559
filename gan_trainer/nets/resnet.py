"""SNGAN's ResNet generator and discriminator (Miyato et al. 2018).

The residual networks of "Spectral Normalization for Generative Adversarial
Networks" (Tables 4 and 5 there) and of Miyato and Koyama's projection
discriminator, as their Chainer code (pfnet-research/sngan_projection,
``gen_models/resblocks.py``, ``dis_models/resblocks.py``) builds them:

Generator
    ``z`` -> linear -> ``widths[0]`` x ``s0`` x ``s0`` -> one up-block per
    further width (each doubles the side) -> BN, ReLU, conv 3x3 to
    ``channels``, tanh. An up-block is ``BN, ReLU, upsample, conv 3x3, BN,
    ReLU, conv 3x3`` plus a shortcut ``upsample, conv 1x1`` (nearest-
    neighbour upsampling by 2).

Discriminator
    A first block ``conv 3x3, ReLU, conv 3x3, avg-pool`` with shortcut
    ``avg-pool, conv 1x1``, then blocks ``ReLU, conv 3x3, ReLU, conv 3x3``
    (the first ``n_down`` of all blocks end in a 2x2 average pool) with a
    1x1-conv shortcut where the width or the side changes, then ReLU, a sum
    over the positions (global sum pooling) and a linear read-out to one
    logit. Spectral normalization on every conv, the linear layer and the
    projection embedding, and no batch normalization, as in the paper.

Default widths, per image side (``base_width`` scales them all; the
defaults are the papers' nets)::

    size  G: start side, widths              D: widths, downsampling blocks
    28    7,  256 256 256                    128 128 128 128, 2   (ours)
    32    4,  256 256 256 256                128 128 128 128, 2   (CIFAR-10)
    48    6,  512 256 128 64                 64 128 256 512 1024, 4  (STL-10)
    64    4,  1024 512 256 128 64            64 128 256 512 1024, 5
    128   4,  1024 1024 512 256 128 64       64 128 256 512 1024 1024, 5

The 28x28 pair is the 32x32 one with a 7x7 start (28 = 7 * 4): two
up-blocks in G, and D's two downsampling blocks end at 7x7 where the 32x32
D ends at 8x8, so the built-in digits need no resizing. ``base_width`` is
the width of D's first block (128 at 28 and 32, 64 above); G keeps its
ratio to D. Weights start as in the reference code: Glorot-uniform with
gain sqrt(2) in the residual convs, gain 1 in shortcuts and the linear
layers.

Class-conditional variants (``n_classes`` set): G's blocks use conditional
batch normalization (:class:`~gan_trainer.nets.conditional.ConditionalBatchNormalization`,
the final BN stays plain, as in the reference), D adds the projection term
``<embed(t), h>`` (Miyato and Koyama 2018) to its logit. Both are then
called as ``net(x, t)`` and have an ``n_classes`` attribute, as the
conditional DCGAN nets; unconditional ones have none.

The convolutions and batch norms are :mod:`gan_trainer.ops` links (the fast
CPU functions); upsampling and pooling are a reshape with a broadcast or a
mean, which cost little on NumPy, are twice differentiable (R1) and export
to ONNX.

Example::

    gen = ResNetGenerator(size=32, channels=3)      # 4 -> 8 -> 16 -> 32
    dis = ResNetDiscriminator(size=32, channels=3)  # 32 -> 16 -> 8 -> 8 -> 8
    tiny = ResNetGenerator(size=8, widths=[8, 4])   # 4 -> 8, for tests
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import chainer
import chainer.functions as F
import chainer.links as L
from chainer import initializers

from gan_trainer import ops
from gan_trainer.nets._blocks import add_spectral_norm, default_n_stages
from gan_trainer.nets.conditional import ConditionalBatchNormalization, _check_n_classes, _labels

#: size -> (D's first width, G widths and D widths in units of it, D's
#: downsampling blocks): the default nets of the module docstring.
DEFAULTS = {
    28: (128, (2, 2, 2), (1, 1, 1, 1), 2),
    32: (128, (2, 2, 2, 2), (1, 1, 1, 1), 2),
    48: (64, (8, 4, 2, 1), (1, 2, 4, 8, 16), 4),
    64: (64, (16, 8, 4, 2, 1), (1, 2, 4, 8, 16), 5),
    128: (64, (16, 16, 8, 4, 2, 1), (1, 2, 4, 8, 16, 16), 5),
}


def _residual_init():
    return initializers.GlorotUniform(math.sqrt(2))


def _check_size(size) -> int:
    if isinstance(size, bool) or int(size) != size or size < 1:
        raise ValueError(f'size must be a positive integer, got {size!r}')
    return int(size)


def default_widths(size: int, base_width: int | None = None) -> tuple[tuple[int, ...], ...]:
    """The default ``(G widths, D widths)`` for ``size`` (the module docstring's table).

    Args:
        size: Image side; one of :data:`DEFAULTS`.
        base_width: Width of D's first block; the others scale with it.
            ``None``: the paper's (128 at 28 and 32, 64 above).

    Raises:
        ValueError: For a size without defaults or a bad ``base_width``.
    """
    if size not in DEFAULTS:
        raise ValueError(
            f'size {size} has no default ResNet widths (sizes with defaults: '
            f'{", ".join(map(str, DEFAULTS))}); pass widths')
    base, g_units, d_units, _ = DEFAULTS[size]
    if base_width is None:
        base_width = base
    if isinstance(base_width, bool) or int(base_width) != base_width or base_width < 1:
        raise ValueError(f'base_width must be a positive integer, got {base_width!r}')
    return (tuple(int(base_width) * u for u in g_units),
            tuple(int(base_width) * u for u in d_units))


def _check_widths(widths) -> tuple[int, ...]:
    widths = tuple(widths)
    if not widths or any(isinstance(w, bool) or int(w) != w or w < 1 for w in widths):
        raise ValueError(
            f'widths must be a non-empty list of positive integers, got {list(widths)!r}')
    return tuple(int(w) for w in widths)


def upsample(x) -> chainer.Variable:
    """Nearest-neighbour upsampling by 2: ``(B, C, H, W) -> (B, C, 2H, 2W)``."""
    b, c, h, w = x.shape
    x = F.broadcast_to(F.reshape(x, (b, c, h, 1, w, 1)), (b, c, h, 2, w, 2))
    return F.reshape(x, (b, c, 2 * h, 2 * w))


def downsample(x) -> chainer.Variable:
    """2x2 average pooling: ``(B, C, H, W) -> (B, C, H/2, W/2)`` (even sides)."""
    b, c, h, w = x.shape
    return F.mean(F.reshape(x, (b, c, h // 2, 2, w // 2, 2)), axis=(3, 5))


class UpBlock(chainer.Chain):
    """G's residual block: doubles the side, ``in_channels -> out_channels``.

    Args:
        in_channels, out_channels: Widths.
        n_classes: Conditional batch norm for this many classes, or ``None``.
    """

    def __init__(self, in_channels: int, out_channels: int, n_classes: int | None = None):
        super().__init__()

        def norm(width):
            if n_classes is None:
                return ops.BatchNormalization(width)
            return ConditionalBatchNormalization(width, n_classes)

        with self.init_scope():
            self.c1 = ops.Convolution2D(in_channels, out_channels, 3, pad=1,
                                        initialW=_residual_init())
            self.c2 = ops.Convolution2D(out_channels, out_channels, 3, pad=1,
                                        initialW=_residual_init())
            self.b1 = norm(in_channels)
            self.b2 = norm(out_channels)
            self.c_sc = ops.Convolution2D(in_channels, out_channels, 1,
                                          initialW=initializers.GlorotUniform())

    def forward(self, x, *t) -> chainer.Variable:
        h = self.c1(upsample(F.relu(self.b1(x, *t))))
        h = self.c2(F.relu(self.b2(h, *t)))
        return h + self.c_sc(upsample(x))


class DownBlock(chainer.Chain):
    """D's residual block, ``in_channels -> out_channels``, optionally halving the side.

    Args:
        in_channels, out_channels: Widths (the hidden conv keeps ``in_channels``).
        downsample: End the residual and the shortcut in a 2x2 average pool.
        first: The "optimized" first block: no ReLU before its first conv,
            and the shortcut pools before its 1x1 conv.
    """

    def __init__(self, in_channels: int, out_channels: int, *, downsample: bool,
                 first: bool = False):
        super().__init__()
        self.downsample, self.first = downsample, first
        hidden = out_channels if first else in_channels
        self.learnable_sc = first or downsample or in_channels != out_channels
        with self.init_scope():
            self.c1 = ops.Convolution2D(in_channels, hidden, 3, pad=1, initialW=_residual_init())
            self.c2 = ops.Convolution2D(hidden, out_channels, 3, pad=1, initialW=_residual_init())
            if self.learnable_sc:
                self.c_sc = ops.Convolution2D(in_channels, out_channels, 1,
                                              initialW=initializers.GlorotUniform())

    def forward(self, x) -> chainer.Variable:
        h = self.c1(x if self.first else F.relu(x))
        h = self.c2(F.relu(h))
        if self.downsample:
            h = downsample(h)
        if not self.learnable_sc:
            return h + x
        if self.first:
            return h + self.c_sc(downsample(x))
        s = self.c_sc(x)
        return h + (downsample(s) if self.downsample else s)


class ResNetGenerator(chainer.Chain):
    """SNGAN's ResNet generator: ``z`` (and labels ``t``) -> image in [-1, 1].

    Args:
        size: Output side in pixels.
        channels: Output channels (1 for grey, 3 for RGB).
        n_hidden: Dimension of ``z``; 128 as in the paper.
        widths: The start map's width, then each up-block's; the start side
            is ``size / 2**(len(widths) - 1)``. ``None``: the defaults of the
            module docstring (for the sizes listed there).
        base_width: Scales the default widths (see the module docstring);
            ignored with ``widths``.
        n_classes: Class-conditional (conditional BN) for this many classes.

    Raises:
        ValueError: If ``size`` and ``widths`` cannot work together, or for
            a size without defaults when ``widths`` is ``None``.
    """

    def __init__(
        self,
        *,
        size: int = 28,
        channels: int = 1,
        n_hidden: int = 128,
        widths: Sequence[int] | None = None,
        base_width: int | None = None,
        n_classes: int | None = None,
    ):
        super().__init__()
        size = _check_size(size)
        widths = default_widths(size, base_width)[0] if widths is None else _check_widths(widths)
        n_up = len(widths) - 1
        if size % 2**n_up:
            raise ValueError(
                f'size {size} cannot be built with {n_up} up-blocks (widths {list(widths)}): '
                f'use a multiple of {2**n_up}, or fewer widths')
        self.size, self.channels, self.n_hidden, self.widths = size, channels, n_hidden, widths
        self.start_side = size // 2**n_up
        if n_classes is not None:
            self.n_classes = _check_n_classes(n_classes)
        glorot = initializers.GlorotUniform()
        with self.init_scope():
            self.project = L.Linear(n_hidden, widths[0] * self.start_side**2, initialW=glorot)
            self.blocks = chainer.ChainList(
                *[UpBlock(a, b, n_classes) for a, b in itertools.pairwise(widths)])
            self.bn = ops.BatchNormalization(widths[-1])
            self.out = ops.Convolution2D(widths[-1], channels, 3, pad=1, initialW=glorot)

    def config(self) -> dict:
        """The JSON-able kwargs of :func:`~gan_trainer.nets.build_generator` (``'arch': 'resnet'``)."""
        return {'arch': 'resnet', 'size': self.size, 'channels': self.channels,
                'n_hidden': self.n_hidden, 'widths': list(self.widths),
                'n_classes': getattr(self, 'n_classes', None)}

    def forward(self, z, t=None) -> chainer.Variable:
        """Generates images.

        Args:
            z: Latent codes ``(B, n_hidden)`` or ``(B, n_hidden, 1, 1)``.
            t: Integer labels ``(B,)``, for a conditional G only.

        Returns:
            Images ``(B, channels, size, size)`` in [-1, 1].
        """
        if z.shape[1:] not in ((self.n_hidden,), (self.n_hidden, 1, 1)):
            raise ValueError(f'z must have shape (B, {self.n_hidden}) or '
                             f'(B, {self.n_hidden}, 1, 1), got {tuple(z.shape)}')
        b, s0 = z.shape[0], self.start_side
        labels = _conditioning(self, t, b)
        h = F.reshape(self.project(F.reshape(z, (b, self.n_hidden))), (b, -1, s0, s0))
        for block in self.blocks:
            h = block(h, *labels)  # (B, C, s, s) -> (B, C', 2s, 2s)
        return F.tanh(self.out(F.relu(self.bn(h))))


class ResNetDiscriminator(chainer.Chain):
    """SNGAN's ResNet discriminator: image (and labels ``t``) -> one logit per image.

    Args:
        size: Input side in pixels.
        channels: Input channels.
        widths: Each block's width, from the input side. ``None``: the
            defaults of the module docstring.
        base_width: Scales the default widths; ignored with ``widths``.
        n_down: How many blocks (the first ones) halve the side. ``None``:
            the default for ``size`` (at most ``len(widths)``), or, for a size
            without defaults, as many as keep the side even and at least 4.
        n_classes: Class-conditional (projection) for this many classes.
        spectral_norm: Spectrally normalize every conv, the linear layer and
            the projection embedding (the paper's D; off only to compare).

    Raises:
        ValueError: If ``size``, ``widths`` and ``n_down`` cannot work together.
    """

    def __init__(
        self,
        *,
        size: int = 28,
        channels: int = 1,
        widths: Sequence[int] | None = None,
        base_width: int | None = None,
        n_down: int | None = None,
        n_classes: int | None = None,
        spectral_norm: bool = True,
    ):
        super().__init__()
        size = _check_size(size)
        widths = default_widths(size, base_width)[1] if widths is None else _check_widths(widths)
        if n_down is None:
            n_down = DEFAULTS[size][3] if size in DEFAULTS else max(default_n_stages(size), 1)
            n_down = min(n_down, len(widths))
        if isinstance(n_down, bool) or int(n_down) != n_down or not 1 <= n_down <= len(widths):
            raise ValueError(f'n_down must be an integer from 1 to len(widths) = {len(widths)}, '
                             f'got {n_down!r}')
        if size % 2**n_down:
            raise ValueError(f'size {size} cannot be halved {n_down} times (n_down): use a '
                             f'multiple of {2**n_down}, or a smaller n_down')
        self.size, self.channels, self.widths = size, channels, widths
        self.n_down, self.spectral_norm = int(n_down), bool(spectral_norm)
        if n_classes is not None:
            self.n_classes = _check_n_classes(n_classes)
        glorot = initializers.GlorotUniform()
        ins = (channels,) + widths[:-1]
        with self.init_scope():
            self.blocks = chainer.ChainList(*[
                DownBlock(a, b, downsample=i < self.n_down, first=i == 0)
                for i, (a, b) in enumerate(zip(ins, widths))])
            self.out = L.Linear(widths[-1], 1, initialW=glorot)
            if n_classes is not None:
                self.embed = L.EmbedID(n_classes, widths[-1], initialW=glorot)
        if self.spectral_norm:
            add_spectral_norm(self)

    def config(self) -> dict:
        """The JSON-able kwargs of :func:`~gan_trainer.nets.build_discriminator` (``'arch': 'resnet'``)."""
        return {'arch': 'resnet', 'size': self.size, 'channels': self.channels,
                'widths': list(self.widths), 'n_down': self.n_down,
                'n_classes': getattr(self, 'n_classes', None),
                'spectral_norm': self.spectral_norm}

    def forward(self, x, t=None) -> chainer.Variable:
        """Scores images.

        Args:
            x: Images ``(B, channels, size, size)`` in [-1, 1].
            t: Integer labels ``(B,)``, for a conditional D only.

        Returns:
            Logits ``(B,)``; positive means "looks real" (of class ``t``).
        """
        expected = (self.channels, self.size, self.size)
        if x.shape[1:] != expected:
            raise ValueError(
                f'x must have shape (B, {", ".join(map(str, expected))}), got {tuple(x.shape)}')
        labels = _conditioning(self, t, x.shape[0])
        h = x
        for block in self.blocks:
            h = block(h)
        h = F.sum(F.relu(h), axis=(2, 3))  # global sum pooling: (B, widths[-1])
        y = F.flatten(self.out(h))
        if labels:
            y = y + F.sum(self.embed(labels[0]) * h, axis=1)
        return y


def _conditioning(net, t, batch: int) -> tuple:
    """``(labels,)`` for a conditional net, ``()`` otherwise; checks that ``t`` fits."""
    if not hasattr(net, 'n_classes'):
        if t is not None:
            raise ValueError('labels t were given to an unconditional ResNet net (n_classes=None)')
        return ()
    if t is None:
        raise ValueError(f'this ResNet net is conditional (n_classes={net.n_classes}): '
                         'call it with labels t')
    return (_labels(t, batch),)
