"""DCGAN generator and discriminator (Radford, Metz and Chintala, 2016).

Both nets follow the paper's architecture guidelines: strided convolutions
(D) and stride-2 transposed convolutions (G) instead of pooling, batch
normalization in both nets except D's input layer and G's output layer, ReLU
in G with a tanh output, LeakyReLU(0.2) in D, and no hidden fully connected
layers (G's first layer is a linear projection of ``z`` reshaped to a small
feature map; D's last layer is a linear read-out of its last feature map).
All conv, deconv and linear weights are drawn from N(0, 0.02) as in the
paper, biases start at 0, and batch-norm scales (gamma) are drawn from
N(1, 0.02) as in the authors' reference code rather than set to exactly 1.

The depth comes from the image side: every stage halves (D) or doubles (G)
the side, so ``size`` must be ``s0 * 2**n`` for a start side ``s0`` and ``n``
stages. ``widths`` lists D's conv channels from the input side, e.g.
``[64, 128, 256]`` for 32x32 images; G uses the same list reversed, so the
two nets mirror each other. Tests pass tiny widths such as ``[4, 8]``.

D has two options beyond the paper, for the losses that need them:
``norm='none'`` drops its batch normalization (a WGAN-GP critic's gradient
penalty is per example, which batch statistics would break; Gulrajani et
al. 2017), and ``spectral_norm=True`` divides every conv and linear weight
by its largest singular value (SNGAN; Miyato et al. 2018), usually with
``norm='none'``. The layer stacks themselves live in :mod:`._blocks`, shared
with the class-conditional nets of :mod:`.conditional`.

Example::

    gen = Generator(size=28, channels=1)         # 7x7 -> 14x14 -> 28x28
    dis = Discriminator(size=28, channels=1)     # 28x28 -> 14x14 -> 7x7
    same = Generator(**gen.config())             # rebuilds the architecture
    critic = Discriminator(size=28, norm='none', spectral_norm=True)
"""

from collections.abc import Sequence

import chainer
import chainer.functions as F

from gan_trainer.nets._blocks import (
    NORMS,
    WEIGHT_STD,
    DiscriminatorBase,
    GeneratorBase,
    add_spectral_norm,
    default_n_stages,
    resolve_widths,
)

__all__ = [
    'NORMS',
    'WEIGHT_STD',
    'Discriminator',
    'Generator',
    'default_n_stages',
    'resolve_widths',
]


class Generator(GeneratorBase):
    """DCGAN generator: ``z`` -> image in [-1, 1].

    ``z`` is projected by a linear layer to a ``widths[-1]`` x ``s0`` x
    ``s0`` feature map (``s0 = size // 2**len(widths)``); each following
    stride-2 deconvolution doubles the side and steps down the reversed
    widths; the last one maps to ``channels`` and a tanh bounds the output.
    Every hidden layer is followed by batch normalization and ReLU.

    The generator has no ``make_hidden`` method on purpose: the updater
    draws ``z`` itself (from N(0, 1) of shape ``(B, n_hidden)``), and a
    ``make_hidden`` here would override that by contract.

    Args:
        size (int): Output side in pixels.
        channels (int): Output channels (1 for grey, 3 for RGB).
        n_hidden (int): Dimension of ``z``; 100 as in the paper.
        widths (sequence of int or None): D-order conv widths, see
            :func:`resolve_widths`; G uses them reversed.
        base_width (int): First width of the default ``widths``; 64 as
            the PyTorch and Chainer DCGAN examples use. The paper's 64x64
            generator (1024 channels at 4x4) is ``base_width=128``.
        ksize (int): Kernel side, 4 (pad 1) or 5 (pad 2, the paper's).

    Raises:
        ValueError: If ``size``, ``widths`` or ``ksize`` cannot work together.
    """

    def __init__(
        self,
        *,
        size: int = 28,
        channels: int = 1,
        n_hidden: int = 100,
        widths: Sequence[int] | None = None,
        base_width: int = 64,
        ksize: int = 4,
    ):
        super().__init__(
            size=size,
            channels=channels,
            n_hidden=n_hidden,
            widths=widths,
            base_width=base_width,
            ksize=ksize,
            n_in=n_hidden,
        )

    def config(self) -> dict:
        """Returns the JSON-able constructor kwargs of this architecture.

        ``Generator(**gen.config())`` builds a net with the same parameter
        shapes (fresh weights); snapshots store this next to the weights.
        It has no ``'arch'`` key: :func:`~gan_trainer.nets.build_generator`
        reads its absence as ``'dcgan'``.
        """
        return super().config()

    def forward(self, z) -> chainer.Variable:
        """Generates images.

        Args:
            z (chainer.Variable or array): Latent codes of shape
                ``(B, n_hidden)`` or ``(B, n_hidden, 1, 1)``.

        Returns:
            chainer.Variable: Images of shape ``(B, channels, size, size)``
            with values in [-1, 1].
        """
        return self.generate(self.check_z(z))


class Discriminator(DiscriminatorBase):
    """DCGAN discriminator: image -> one real/fake logit per image.

    Each stride-2 convolution halves the side and steps up ``widths``; all
    but the first are followed by batch normalization (the paper leaves BN
    off D's input layer; ``norm='none'`` leaves it off everywhere), all by
    LeakyReLU(0.2). A linear layer reads the last ``widths[-1]`` x ``s0`` x
    ``s0`` map out to one logit. There is no sigmoid: the losses take
    logits, which is numerically safer.

    Args:
        size (int): Input side in pixels.
        channels (int): Input channels (1 for grey, 3 for RGB).
        widths (sequence of int or None): Conv widths from the input side,
            see :func:`resolve_widths`.
        base_width (int): First width of the default ``widths``.
        ksize (int): Kernel side, 4 (pad 1) or 5 (pad 2, the paper's).
        norm (str): ``'batch'`` (the paper) or ``'none'``: no batch
            normalization, as WGAN-GP critics and SNGAN discriminators use.
        spectral_norm (bool): Whether to spectrally normalize every conv
            and linear weight (Miyato et al. 2018) with
            :class:`chainer.link_hooks.SpectralNormalization`, one power
            iteration per forward pass in train mode. The iteration's
            vectors are persistent (``convs/i/W_u``, ``out/W_u``), so they
            are saved and loaded with the weights.

    Raises:
        ValueError: If ``norm`` is unknown, or ``size``, ``widths`` or
            ``ksize`` cannot work together.
    """

    def __init__(
        self,
        *,
        size: int = 28,
        channels: int = 1,
        widths: Sequence[int] | None = None,
        base_width: int = 64,
        ksize: int = 4,
        norm: str = 'batch',
        spectral_norm: bool = False,
    ):
        super().__init__(
            size=size,
            channels=channels,
            widths=widths,
            base_width=base_width,
            ksize=ksize,
            norm=norm,
            spectral_norm=spectral_norm,
            in_channels=channels,
        )
        if self.spectral_norm:
            add_spectral_norm(self)

    def config(self) -> dict:
        """Returns the JSON-able constructor kwargs of this architecture.

        ``Discriminator(**dis.config())`` builds a net with the same
        parameters and persistent values (fresh weights), so ``load_npz``
        of a snapshot then reproduces the saved net exactly. Configs
        written before ``norm`` and ``spectral_norm`` existed still build:
        the defaults are the old architecture.
        """
        return super().config()

    def forward(self, x) -> chainer.Variable:
        """Scores images.

        Args:
            x (chainer.Variable or array): Images of shape
                ``(B, channels, size, size)``, values in [-1, 1].

        Returns:
            chainer.Variable: Logits of shape ``(B,)``; positive means
            "looks real".
        """
        h = self.features(self.check_x(x))
        # (B, widths[-1], s0, s0) -> (B, 1) -> (B,)
        return F.flatten(self.out(h))
