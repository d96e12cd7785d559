"""BEGAN's discriminator: an autoencoder whose output is its reconstruction error.

In BEGAN (Berthelot, Schumm and Metz 2017, "BEGAN: Boundary Equilibrium
Generative Adversarial Networks") D does not classify: it is an
autoencoder, and what it "says" about an image is how badly it reconstructs
it, ``L(v) = mean |v - D(v)|`` (the paper's pixel-wise L1 loss, eta = 1).
D learns to reconstruct real images well and fakes badly; G learns to make
images D reconstructs well. :mod:`gan_trainer.losses`' ``began`` loss turns
these per-image errors into the two players' losses and keeps the
equilibrium variable ``k_t``.

The layers follow chainer-gan-lib's ``began/net.py`` (pfnet-research, the
Chainer GAN collection this package is compared with), scaled by
``widths`` like the package's DCGAN nets: a 3x3 convolution to
``widths[0] // 2`` channels, one stride-2 4x4 convolution per width (the
side halves), a linear layer to a ``code_dim`` code (chainer-gan-lib: 128),
a linear layer back, the mirrored stride-2 4x4 transposed convolutions and
a 3x3 transposed convolution to the image channels with tanh (the images
are in [-1, 1]). LeakyReLU(0.2) everywhere else, no normalization, weights
from N(0, 0.02) (``init='normal'``, chainer-gan-lib's) or Glorot-uniform
(``init='glorot'``). The paper's own nets differ (ELU, nearest-neighbour
upsampling, repeated 3x3 convolutions, no tanh); chainer-gan-lib's are the
ones the comparison in ``benchmarks/ganlib_check.py`` runs.

Why the ``began`` preset starts from Glorot-uniform weights (issue 28): with
N(0, 0.02) each of the ten layers of a narrow net (the digits' widths 32
and 64, against chainer-gan-lib's 64 to 512 on CIFAR-10) shrinks what it
passes on, so at the start D's reconstruction is the same image whatever
the input. Three quarters of a digit's pixels are exactly -1, tanh's
bound, and the L1 error's gradient there keeps its full size however close
the output comes, so the first steps push the output into tanh's flat
tail, where every gradient dies before the encoder's signal has grown: D
stays at the error of a constant image, k_t at 0, and G learns to draw a
flat square. Glorot-uniform weights pass the input through from the first
step and D learns to reconstruct. ``benchmarks/began_digits.py`` trains
D alone both ways, and ``tests/test_ganlib_run.py`` holds the preset's D
to it.
"""

from __future__ import annotations

from collections.abc import Sequence

import chainer
import chainer.functions as F
import chainer.links as L

from gan_trainer import ops
from gan_trainer.nets._common import INITS, resolve_widths, weight_initializer
from gan_trainer.nets._layers import check_width

__all__ = ['AutoencoderDiscriminator']


class AutoencoderDiscriminator(chainer.Chain):
    """An autoencoder D: image -> its mean absolute reconstruction error.

    Args:
        size (int): Input side in pixels; it must halve ``len(widths)``
            times (as for the DCGAN nets, see
            :func:`~gan_trainer.nets.dcgan.resolve_widths`).
        channels (int): Input channels.
        widths (sequence of int or None): The encoder's stride-2 widths from
            the input side (the decoder mirrors them); ``None`` for the
            default of the image side (``base_width * 2**i``).
        base_width (int): First width of the default ``widths``.
        code_dim (int): Size of the code between encoder and decoder
            (BEGAN's ``h``; chainer-gan-lib: 128).
        init (str): The weights' initialization, one of
            :data:`~gan_trainer.nets._common.INITS`: ``'normal'``,
            chainer-gan-lib's N(0, 0.02), or ``'glorot'`` (Glorot-uniform),
            which the ``began`` preset uses: see the module docstring.

    Raises:
        ValueError: If ``size`` and ``widths`` cannot work together, a
            width is not a positive integer, or ``init`` is unknown.
    """

    #: What the updater and the losses read: D's output is a per-image
    #: reconstruction error, not a logit (the ``began`` loss needs this).
    output_kind = 'reconstruction_error'

    def __init__(self, *, size: int = 28, channels: int = 1,
                 widths: Sequence[int] | None = None, base_width: int = 64,
                 code_dim: int = 128, init: str = 'normal') -> None:
        super().__init__()
        if init not in INITS:
            raise ValueError(f'init must be one of {", ".join(INITS)}, got {init!r}')
        self.init = init
        self.widths = resolve_widths(size, widths, base_width=base_width)
        self.size = size
        self.channels = channels
        self.code_dim = check_width('code_dim', code_dim)
        n = len(self.widths)
        self.start_side = size // 2**n
        w = weight_initializer(init)
        first = max(1, self.widths[0] // 2)
        ins = (first,) + self.widths[:-1]
        n_flat = self.widths[-1] * self.start_side**2
        with self.init_scope():
            self.conv_in = ops.Convolution2D(channels, first, 3, stride=1, pad=1, initialW=w)
            self.convs = chainer.ChainList(*[
                ops.Convolution2D(c_in, c_out, 4, stride=2, pad=1, initialW=w)
                for c_in, c_out in zip(ins, self.widths)])
            self.encode = L.Linear(n_flat, self.code_dim, initialW=w)
            self.decode = L.Linear(self.code_dim, n_flat, initialW=w)
            self.deconvs = chainer.ChainList(*[
                ops.Deconvolution2D(c_out, c_in, 4, stride=2, pad=1, initialW=w)
                for c_in, c_out in reversed(list(zip(ins, self.widths)))])
            self.deconv_out = ops.Deconvolution2D(first, channels, 3, stride=1, pad=1,
                                                  initialW=w)

    def config(self) -> dict:
        """The JSON-able constructor kwargs, with ``'arch': 'autoencoder'``."""
        return {'arch': 'autoencoder', 'size': self.size, 'channels': self.channels,
                'widths': list(self.widths), 'code_dim': self.code_dim, 'init': self.init}

    def reconstruct(self, x) -> chainer.Variable:
        """D's reconstruction of ``x``: ``(B, channels, size, size)`` in [-1, 1]."""
        expected = (self.channels, self.size, self.size)
        if x.shape[1:] != expected:
            raise ValueError(f'x must have shape (B, {", ".join(map(str, expected))}), '
                             f'got {tuple(x.shape)}')
        h = self.conv_in(x, activation='leaky_relu')
        for conv in self.convs:
            h = conv(h, activation='leaky_relu')  # (B, C, s, s) -> (B, C', s/2, s/2)
        code = ops.leaky_relu(self.encode(h), slope=0.2)  # (B, code_dim)
        s0 = self.start_side
        h = F.reshape(ops.leaky_relu(self.decode(code), slope=0.2), (len(x), -1, s0, s0))
        for deconv in self.deconvs:
            h = deconv(h, activation='leaky_relu')  # (B, C', s, s) -> (B, C, 2s, 2s)
        return self.deconv_out(h, activation='tanh')

    def forward(self, x) -> chainer.Variable:
        """Reconstruction errors ``mean |x - D(x)|`` per image, shape ``(B,)``.

        The gradient reaches ``x`` twice, through the reconstruction and
        through ``x`` itself, so G learns from both (as in chainer-gan-lib's
        ``F.mean_absolute_error(h, x)``, of which this is the per-image mean).
        """
        error = F.absolute(self.reconstruct(x) - x)
        return F.mean(F.reshape(error, (len(x), -1)), axis=1)
