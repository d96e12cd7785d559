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

The recipes of the DCGAN write-ups are options too (their layers in
:mod:`._layers`), each off by default, so the default nets are the paper's,
parameter for parameter. Every option is declared once, in
:mod:`gan_trainer.nets.options` (``GeneratorOptions``,
``DiscriminatorOptions``), which the run's options and the command's flags
are made from too:

* G ``upsample='nearest'`` or ``'bilinear'``: each stage upsamples 2x and
  then convolves (stride 1, odd ``ksize``, 'same' padding) instead of a
  stride-2 transposed convolution, as keras-dcgan's ``UpSampling2D`` +
  ``Conv2D`` do; also the remedy for checkerboard artefacts (Odena et al.
  2016). G ``fc_width=1024, activation='tanh'`` adds keras-dcgan's dense
  head (Dense 1024 + tanh before the projection); ``activation`` may be
  ``'relu'`` (the paper), ``'elu'`` (the Keras DCGAN notes), ``'tanh'``
  (keras-dcgan) or ``'leaky_relu'`` (TensorFlow's tutorial).
* D ``downsample='max_pool'`` or ``'avg_pool'``: a stride-1 convolution,
  its activation and 2x2 pooling per stage (keras-dcgan: max-pooling on its
  master branch, average-pooling in its pull request #13); ``fc_width`` a hidden
  fully connected layer (keras-dcgan's Dense 1024 + tanh, the notes' Dense
  2048 + LeakyReLU) with ``fc_activation``; ``activation='tanh'``
  (keras-dcgan); ``noise_sigma=0.2`` (Chainer's DCGAN example: Gaussian
  noise on the input and every hidden layer, in training only);
  ``dropout=0.3`` (TensorFlow's tutorial, in training only);
  ``bn_gamma=False`` (Chainer's example: batch normalization without its
  learned scale); ``padding='valid'`` with pooling (keras-dcgan's unpadded
  second convolution).
* What Keras does by default, for the Keras and TensorFlow write-ups: G
  ``project_norm='unit'`` (Keras' ``BatchNormalization`` after ``Dense``
  normalises each unit of the projection, not each channel of its map;
  keras-dcgan's G collapses without it), G ``stage_norm=False`` (keras-dcgan
  normalises the projection only), and for both nets ``init='glorot'``
  (Glorot-uniform weights, batch-norm scales 1), ``bn_decay=0.99`` and
  ``bn_eps=1e-3`` (Keras' ``momentum`` and ``epsilon``).

Example::

    gen = Generator(size=28, channels=1)         # 7x7 -> 14x14 -> 28x28
    dis = Discriminator(size=28, channels=1)     # 28x28 -> 14x14 -> 7x7
    same = Generator(**gen.config())             # rebuilds the architecture
    critic = Discriminator(size=28, norm='none', spectral_norm=True)
    keras_g = Generator(size=28, upsample='nearest', ksize=5, activation='tanh',
                        fc_width=1024, widths=[64, 128])
    keras_d = Discriminator(size=28, downsample='max_pool', ksize=5,
                            activation='tanh', norm='none', fc_width=1024,
                            widths=[64, 128])
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
    Every hidden layer is followed by batch normalization and ReLU. The
    recipe options (``upsample``, ``activation``, ``fc_width``) change
    that as described in the module docstring.

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
        ksize (int or None): Kernel side. With ``upsample='deconv'`` 4 (pad
            1, the default), 5 (pad 2, the paper's) or 3 (pad 1); with
            upsampling an odd 3 (the default), 5 (keras-dcgan's) or 7,
            padded to keep the side. ``None`` picks the default.
        **options: The options of
            :class:`~gan_trainer.nets.options.GeneratorOptions` by name
            (``upsample``, ``activation``, ...), each declared there with
            its default, the paper's.

    Raises:
        TypeError: If an option is unknown (the message names it).
        ValueError: If an option's value is not allowed, or ``size``,
            ``widths``, ``ksize`` and ``upsample`` cannot work together
            (the message names them).
    """

    def __init__(
        self,
        *,
        size: int = 28,
        channels: int = 1,
        n_hidden: int = 100,
        widths: Sequence[int] | None = None,
        base_width: int = 64,
        ksize: int | None = None,
        **options,
    ):
        super().__init__(
            size=size,
            channels=channels,
            n_hidden=n_hidden,
            widths=widths,
            base_width=base_width,
            ksize=ksize,
            n_in=n_hidden,
            **options,
        )

    def config(self) -> dict:
        """Returns the JSON-able constructor kwargs of this architecture.

        ``Generator(**gen.config())`` builds a net with the same parameter
        shapes (fresh weights); snapshots store this next to the weights.
        It has no ``'arch'`` key: :func:`~gan_trainer.nets.build_generator`
        reads its absence as ``'dcgan'``. The options of
        :class:`~gan_trainer.nets.options.GeneratorOptions` appear only
        when they differ from their defaults, so a default net's config is
        what it was before they existed.
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
    logits, which is numerically safer. The recipe options (pooling, a
    hidden fully connected layer, other activations, training-only noise
    and dropout, batch norm without gamma) change that as described in the
    module docstring.

    Args:
        size (int): Input side in pixels.
        channels (int): Input channels (1 for grey, 3 for RGB).
        widths (sequence of int or None): Conv widths from the input side,
            see :func:`resolve_widths`.
        base_width (int): First width of the default ``widths``.
        ksize (int or None): Kernel side. With ``downsample='stride'`` 4
            (pad 1, the default), 5 (pad 2, the paper's) or 3 (pad 1, the
            Keras DCGAN notes'); with pooling an odd 3 (the default), 5
            (keras-dcgan's) or 7, padded to keep the side. ``None`` picks
            the default.
        **options: The options of
            :class:`~gan_trainer.nets.options.DiscriminatorOptions` by name
            (``norm``, ``spectral_norm``, ``downsample``, ...), each
            declared there with its default, the paper's.

    Raises:
        TypeError: If an option is unknown (the message names it).
        ValueError: If an option is out of range, or ``size``, ``widths``,
            ``ksize``, ``downsample``, ``norm``, ``bn_gamma``, ``fc_width``
            and ``fc_activation`` cannot work together (the message names
            the options).
    """

    def __init__(
        self,
        *,
        size: int = 28,
        channels: int = 1,
        widths: Sequence[int] | None = None,
        base_width: int = 64,
        ksize: int | None = None,
        **options,
    ):
        super().__init__(
            size=size,
            channels=channels,
            widths=widths,
            base_width=base_width,
            ksize=ksize,
            in_channels=channels,
            **options,
        )
        if self.spectral_norm:
            add_spectral_norm(self)

    def config(self) -> dict:
        """Returns the JSON-able constructor kwargs of this architecture.

        ``Discriminator(**dis.config())`` builds a net with the same
        parameters and persistent values (fresh weights), so ``load_npz``
        of a snapshot then reproduces the saved net exactly. Configs
        written before ``norm``, ``spectral_norm`` and the recipe options
        existed still build: the defaults are the old architecture, and the
        options of :class:`~gan_trainer.nets.options.DiscriminatorOptions`
        other than ``norm`` and ``spectral_norm`` appear only when they
        differ from their defaults.
        """
        return super().config()

    def forward(self, x) -> chainer.Variable:
        """Scores images.

        Args:
            x (chainer.Variable or array): Images of shape
                ``(B, channels, size, size)``, values in [-1, 1].

        Returns:
            chainer.Variable: Logits of shape ``(B,)``; positive means
            "looks real". ``(B, out_dim)`` when ``out_dim > 1``.
        """
        # (B, widths[-1], s0, s0) or (B, fc_width) -> (B,) or (B, out_dim)
        return self.read_out(self.head(self.features(self.noisy(self.check_x(x)))))

    def forward_with_features(self, x) -> tuple[chainer.Variable, chainer.Variable]:
        """D's outputs and the features its read-out sees, in one forward pass.

        Denoising feature matching (:mod:`gan_trainer.dfm`) trains a
        denoiser on these features and guides G with it.

        Returns:
            ``(outputs, features)``: the outputs of :meth:`forward`, and
            ``(B, F)`` features: the last feature map (or the hidden fully
            connected layer, with ``fc_width``) flattened, after its
            activation.
        """
        h = self.head(self.features(self.noisy(self.check_x(x))))
        return self.read_out(h), F.reshape(h, (h.shape[0], -1))
