"""BEGAN's own networks (Berthelot, Schumm and Metz 2017, Fig. 1): ``arch='began'``.

The BEGAN paper trains a G and an autoencoder D built from one block: at
every scale, repeated 3x3 convolutions with ELU activations, no batch
normalization; the decoder (and G, which has the decoder's structure and
weights of its own) goes up a scale by nearest-neighbour upsampling, the
encoder down by a stride-2 3x3 convolution. The encoder's widths grow
linearly (``n``, ``2n``, ``3n``, ...; the paper's ``n`` is 64 to 128), the
decoder's stay at ``n``, and between the two a linear layer makes an
embedding ``h`` (the paper: 64) and another expands it to the first
``n x s0 x s0`` map, as G's first layer expands ``z``. The paper has no tanh
on either output: the images are in [-1, 1] and the L1 reconstruction error
reads the outputs as they are.

:class:`BEGANGenerator` and :class:`BEGANDiscriminator` follow that
description (written from the paper's figure and text; the public TensorFlow
implementation of Taehoon Kim, carpedm20/BEGAN-tensorflow, was read for the
details the paper leaves open: no activation after the linear layers, the
subsampling convolution at the width of its scale, Glorot-uniform weights).
The side comes from the image: each scale halves (encoder) or doubles (G and
decoder) it until the first map's side ``s0`` is at most 8 (the paper's 8x8
for 64x64 images; 7x7 for the 28x28 digits, 8x8 for 32x32 images).

Why the package has them beside chainer-gan-lib's autoencoder
(:class:`~gan_trainer.nets.AutoencoderDiscriminator` with the DCGAN G, the
``began`` preset's nets before issue 28's second part): on the built-in
digits chainer-gan-lib's nets train G into one grey square for every ``z``
(``benchmarks/began_g_probe.py``). These nets alone do not cure it: with
``k_t`` starting at 0 and moving by ``lambda_k = 0.001`` a step, D attends
to the fakes too little, too late, and G learns one black image instead
(with a tanh on G's output, deep in its flat tail). A starting ``k_t``
above 0 (``--began_k0``) makes D push the fakes away from the first step,
and G's images depend on ``z`` from then on. The probes, their flags and
their figures are in ``benchmarks/RESULTS.md`` ("BEGAN's G on the digits,
part 3").

Example::

    gen = BEGANGenerator(size=28, n_hidden=64, width=32)    # 7 -> 14 -> 28
    dis = BEGANDiscriminator(size=28, width=32, code_dim=64)
    errors = dis(gen(z))                                     # (B,) L1 errors
"""

from __future__ import annotations

import chainer
import chainer.functions as F
import chainer.links as L

from gan_trainer import ops
from gan_trainer.nets._common import INITS, weight_initializer
from gan_trainer.nets._layers import check_width, upsample_conv

__all__ = ['BEGANDiscriminator', 'BEGANGenerator', 'n_scales']

#: The largest side of the first (smallest) map: the paper's 8x8.
MAX_START_SIDE = 8


def n_scales(size: int) -> int:
    """Scales of a net for ``size``-pixel images: halvings until the side is at most 8, plus one.

    28 -> 14 -> 7: three scales; 32 -> 16 -> 8: three; 64: four (the paper's).

    Raises:
        ValueError: If ``size`` is not a positive integer.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f'size must be a positive integer, got {size!r}')
    scales = 1
    while size > MAX_START_SIDE and size % 2 == 0:
        size //= 2
        scales += 1
    return scales


def _check(init: str, repeats: int) -> None:
    if init not in INITS:
        raise ValueError(f'init must be one of {", ".join(INITS)}, got {init!r}')
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f'repeats must be a positive integer, got {repeats!r}')


class _Decoder(chainer.Chain):
    """A linear layer to an ``n x s0 x s0`` map, then ``repeats`` ELU 3x3 convs per scale.

    Between two scales the side doubles by nearest-neighbour upsampling,
    run with the first convolution of the next scale as one transposed
    convolution (:func:`~gan_trainer.nets._layers.upsample_conv`, the same
    numbers). The last 3x3 convolution maps to the image's channels, with
    tanh or without (the paper).
    """

    def __init__(self, n_in: int, *, size: int, channels: int, width: int, repeats: int,
                 tanh: bool, init: str) -> None:
        super().__init__()
        self.scales = n_scales(size)
        self.start_side = size // 2 ** (self.scales - 1)
        self.width, self.tanh = width, tanh
        w = weight_initializer(init)
        with self.init_scope():
            self.project = L.Linear(n_in, width * self.start_side ** 2, initialW=w)
            self.convs = chainer.ChainList(*[
                ops.Convolution2D(width, width, 3, stride=1, pad=1, initialW=w)
                for _ in range(self.scales * repeats)])
            self.out = ops.Convolution2D(width, channels, 3, stride=1, pad=1, initialW=w)
        self.repeats = repeats

    def forward(self, code) -> chainer.Variable:
        s0 = self.start_side
        h = F.reshape(self.project(code), (len(code), self.width, s0, s0))
        for i, conv in enumerate(self.convs):
            if i and i % self.repeats == 0:  # the first conv of a new scale: 2x first
                h = upsample_conv(conv, h, 'nearest')
            else:
                h = conv(h)
            h = ops.elu(h)  # (B, n, s, s)
        return self.out(h, activation='tanh' if self.tanh else None)


class BEGANGenerator(chainer.Chain):
    """BEGAN's G: ``z`` -> image, the structure of D's decoder (see the module docstring).

    Args:
        size (int): Output side in pixels (28 for the digits).
        channels (int): Output channels.
        n_hidden (int): Dimension of ``z`` (the paper: 64, as ``h``).
        width (int): The paper's ``n``, every conv's channels (CelebA: 128).
        repeats (int): 3x3 convolutions per scale (the paper: 2).
        tanh (bool): A tanh on the output, which bounds it to the data's
            [-1, 1]. The paper has none; ``benchmarks/began_g_probe.py``
            measures both (RESULTS.md).
        init (str): ``'glorot'`` (Glorot-uniform, the TensorFlow default
            the paper's code had) or ``'normal'`` (N(0, 0.02)).

    Raises:
        ValueError: Naming the argument that is not allowed.
    """

    def __init__(self, *, size: int = 28, channels: int = 1, n_hidden: int = 64,
                 width: int = 32, repeats: int = 2, tanh: bool = True,
                 init: str = 'glorot') -> None:
        super().__init__()
        _check(init, repeats)
        self.size, self.channels, self.init = size, channels, init
        self.n_hidden = check_width('n_hidden', n_hidden)
        self.width = check_width('width', width)
        self.repeats, self.tanh = repeats, bool(tanh)
        with self.init_scope():
            self.decoder = _Decoder(self.n_hidden, size=size, channels=channels,
                                    width=self.width, repeats=repeats, tanh=self.tanh, init=init)

    @property
    def project(self) -> chainer.Link:
        """G's first layer, ``z`` -> the first map (what the probes call it)."""
        return self.decoder.project

    def config(self) -> dict:
        """The JSON-able constructor kwargs, with ``'arch': 'began'``."""
        return {'arch': 'began', 'size': self.size, 'channels': self.channels,
                'n_hidden': self.n_hidden, 'width': self.width, 'repeats': self.repeats,
                'tanh': self.tanh, 'init': self.init}

    def forward(self, z) -> chainer.Variable:
        """``(B, n_hidden)`` -> ``(B, channels, size, size)``."""
        if z.ndim != 2 or z.shape[1] != self.n_hidden:
            raise ValueError(f'z must have shape (B, {self.n_hidden}), got {tuple(z.shape)}')
        return self.decoder(z)


class BEGANDiscriminator(chainer.Chain):
    """BEGAN's D: an autoencoder, image -> its mean absolute reconstruction error.

    The encoder: a 3x3 convolution to ``n`` channels, then at scale ``i``
    (from 1) ``repeats`` 3x3 convolutions of ``i * n`` channels and, but at
    the last scale, a stride-2 3x3 convolution that halves the side; a
    linear layer to the code. The decoder as :class:`BEGANGenerator`.
    Every hidden layer has ELU.

    Args:
        size (int): Input side in pixels.
        channels (int): Input channels.
        width (int): The paper's ``n``.
        code_dim (int): The embedding ``h`` (the paper: 64).
        repeats (int): 3x3 convolutions per scale (the paper: 2).
        tanh (bool): A tanh on the reconstruction (chainer-gan-lib's
            autoencoder has one; the paper has none, the default).
        init (str): As for :class:`BEGANGenerator`.

    Raises:
        ValueError: Naming the argument that is not allowed.
    """

    #: D's output is a per-image reconstruction error (the ``began`` loss reads it).
    output_kind = 'reconstruction_error'

    def __init__(self, *, size: int = 28, channels: int = 1, width: int = 32,
                 code_dim: int = 64, repeats: int = 2, tanh: bool = False,
                 init: str = 'glorot') -> None:
        super().__init__()
        _check(init, repeats)
        self.size, self.channels, self.init = size, channels, init
        self.width = check_width('width', width)
        self.code_dim = check_width('code_dim', code_dim)
        self.repeats, self.tanh = repeats, bool(tanh)
        scales = n_scales(size)
        self.end_side = size // 2 ** (scales - 1)
        w = weight_initializer(init)
        layers = []
        c_in = self.width
        for i in range(1, scales + 1):
            c = i * self.width
            for _ in range(repeats):
                layers.append(ops.Convolution2D(c_in, c, 3, stride=1, pad=1, initialW=w))
                c_in = c
            if i < scales:  # subsampling: a stride-2 3x3 conv at this scale's width
                layers.append(ops.Convolution2D(c, c, 3, stride=2, pad=1, initialW=w))
        with self.init_scope():
            self.conv_in = ops.Convolution2D(channels, self.width, 3, stride=1, pad=1,
                                             initialW=w)
            self.convs = chainer.ChainList(*layers)
            self.encode = L.Linear(c_in * self.end_side ** 2, self.code_dim, initialW=w)
            self.decoder = _Decoder(self.code_dim, size=size, channels=channels,
                                    width=self.width, repeats=repeats, tanh=self.tanh, init=init)

    def config(self) -> dict:
        """The JSON-able constructor kwargs, with ``'arch': 'began'``."""
        return {'arch': 'began', 'size': self.size, 'channels': self.channels,
                'width': self.width, 'code_dim': self.code_dim, 'repeats': self.repeats,
                'tanh': self.tanh, 'init': self.init}

    def reconstruct(self, x) -> chainer.Variable:
        """D's reconstruction of ``x``, ``(B, channels, size, size)``."""
        expected = (self.channels, self.size, self.size)
        if x.shape[1:] != expected:
            raise ValueError(f'x must have shape (B, {", ".join(map(str, expected))}), '
                             f'got {tuple(x.shape)}')
        h = ops.elu(self.conv_in(x))
        for conv in self.convs:
            h = ops.elu(conv(h))  # (B, i n, s, s), or (B, i n, s/2, s/2) after a subsampling
        return self.decoder(self.encode(h))  # code (B, code_dim), no activation

    def forward(self, x) -> chainer.Variable:
        """Reconstruction errors ``mean |x - D(x)|`` per image, shape ``(B,)``."""
        error = F.absolute(self.reconstruct(x) - x)
        return F.mean(F.reshape(error, (len(x), -1)), axis=1)
