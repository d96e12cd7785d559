"""Class-conditional DCGAN nets: G(z, t) and D(x, t) for labels ``t``.

The layer stacks are DCGAN's (:mod:`.dcgan`, built by :mod:`._blocks`);
only the way the label ``t`` (int32, shape ``(B,)``, values in
``[0, n_classes)``) enters differs, chosen by ``mode``:

Generator
    ``'concat'`` (conditional GAN, Mirza and Osindero 2014): a learned
    embedding of ``t`` is concatenated to ``z`` before the projection.
    ``'cbn'``: conditional batch normalization (de Vries et al. 2017, as in
    Miyato and Koyama 2018): every hidden BN has no affine parameters of its
    own, and a per-class scale and shift, looked up from ``t``, follow it.

Discriminator
    ``'projection'`` (Miyato and Koyama 2018): the logit is
    ``out(h) + <embed(t), h>`` for the flattened last feature map ``h``, the
    inner product taking the place of D's class-conditional log-ratio term.
    ``'concat'``: one-hot maps of ``t`` are stacked on the image channels,
    ``(B, C, H, W) -> (B, C + n_classes, H, W)``.

The nets share every parameter name with the DCGAN ones (``project``,
``deconvs/i``, ``convs/i``, ``out``, ...) and add ``embed`` (concat G,
projection D) or per-layer ``gamma``/``beta`` embeddings (cbn G). They take
the DCGAN nets' recipe options too (upsampling G, pooling D, ``fc``, noise,
...; see :mod:`.dcgan`): the projection D's inner product is then with the
output of D's hidden fully connected layer, and the concat D's input noise
is added to the image before the label maps are stacked on it. Their
``config()`` carries ``'arch': 'conditional'``, so rebuild them with
:func:`~gan_trainer.nets.build_generator` /
:func:`~gan_trainer.nets.build_discriminator`, which drop that key.

Example::

    gen = ConditionalGenerator(n_classes=10, size=28, mode='cbn')
    dis = ConditionalDiscriminator(n_classes=10, size=28)  # projection
    y = dis(gen(z, t), t)                                    # (B,) logits
"""

from collections.abc import Sequence

import chainer
import chainer.functions as F
import chainer.links as L
import numpy as np
from chainer import initializers

from gan_trainer import ops
from gan_trainer.nets._blocks import (
    WEIGHT_STD,
    DiscriminatorBase,
    GeneratorBase,
    add_spectral_norm,
)
from gan_trainer.nets._common import BN_DECAY, BN_EPS
from gan_trainer.nets.options import (
    DiscriminatorOptions,
    GeneratorOptions,
    refuse_unconditional,
)

#: How a label enters G: concatenated to z, or via conditional batch norm.
GENERATOR_MODES = ('concat', 'cbn')
#: How a label enters D: projection onto the features, or one-hot input maps.
DISCRIMINATOR_MODES = ('projection', 'concat')


def _check_n_classes(n_classes: int) -> int:
    if isinstance(n_classes, bool) or int(n_classes) != n_classes or n_classes < 1:
        raise ValueError(f'n_classes must be a positive integer, got {n_classes!r}')
    return int(n_classes)


def _check_mode(mode: str, valid: tuple[str, ...]) -> str:
    if mode not in valid:
        raise ValueError(f'unknown mode {mode!r}; valid ones are {", ".join(valid)}')
    return mode


def _labels(t, batch: int):
    """Returns the labels ``t`` as an int32 array of shape ``(batch,)``.

    Labels are constants of the graph, so a Variable is unwrapped. Their
    range is not checked: that would cost a device sync per call, and the
    dataset is the place to check it.
    """
    t = t.array if isinstance(t, chainer.Variable) else t
    if t.shape != (batch,):
        raise ValueError(f't must have shape ({batch},) to match the batch, got {tuple(t.shape)}')
    if t.dtype.kind not in 'iu':
        raise ValueError(f't must hold integer class labels, got dtype {t.dtype}')
    return t.astype(np.int32, copy=False)


class ConditionalBatchNormalization(chainer.Chain):
    """Batch normalization with a per-class scale and shift.

    ``y = gamma[t] * BN(x) + beta[t]``, where ``BN`` normalizes with batch
    (train) or running (eval) statistics and has no affine parameters of its
    own, and ``gamma``/``beta`` are :class:`~chainer.links.EmbedID` tables of
    shape ``(n_classes, size)`` starting at exactly 1 and 0, so a fresh
    layer is plain BN for every class (de Vries et al. 2017).

    Args:
        size (int): Channels of the input.
        n_classes (int): Number of labels.
        decay (float): The running averages' decay (G's ``bn_decay``).
        eps (float): Added to the variance (G's ``bn_eps``).
    """

    def __init__(self, size: int, n_classes: int, *, decay: float = BN_DECAY,
                 eps: float = BN_EPS):
        super().__init__()
        with self.init_scope():
            self.bn = ops.BatchNormalization(size, use_gamma=False, use_beta=False,
                                             decay=decay, eps=eps)
            self.gamma = L.EmbedID(n_classes, size, initialW=initializers.One())
            self.beta = L.EmbedID(n_classes, size, initialW=initializers.Zero())

    def forward(self, x, t) -> chainer.Variable:
        """Normalizes ``x`` (B, C, ...) with the scale and shift of labels ``t`` (B,)."""
        h = self.bn(x)
        # (B, C) -> (B, C, 1, ...), broadcast over the spatial axes.
        shape = self.gamma.W.shape[1:] + (1,) * (x.ndim - 2)
        gamma = F.reshape(self.gamma(t), (-1,) + shape)
        beta = F.reshape(self.beta(t), (-1,) + shape)
        return gamma * h + beta


class ConditionalGenerator(GeneratorBase):
    """Class-conditional DCGAN generator: ``(z, t)`` -> image in [-1, 1].

    The DCGAN generator (:class:`~gan_trainer.nets.Generator`) with the
    label fed in by ``mode``: ``'concat'`` projects ``[z, embed(t)]``
    instead of ``z``; ``'cbn'`` replaces every hidden batch normalization
    (``bn0``, ``bns/i``) by :class:`ConditionalBatchNormalization`.

    Args:
        n_classes (int): Number of labels; ``t`` takes values in
            ``[0, n_classes)``.
        size (int): Output side in pixels.
        channels (int): Output channels (1 for grey, 3 for RGB).
        n_hidden (int): Dimension of ``z``.
        widths (sequence of int or None): D-order conv widths, see
            :func:`~gan_trainer.nets.dcgan.resolve_widths`.
        base_width (int): First width of the default ``widths``.
        ksize (int or None): Kernel side, as for
            :class:`~gan_trainer.nets.Generator`.
        mode (str): ``'concat'`` or ``'cbn'``, see above.
        n_embed (int or None): Size of the label embedding of ``'concat'``;
            ``None`` means ``n_classes``, as many as a one-hot code, which
            is enough to keep every class apart and small next to ``z``
            (10 for MNIST against 100). Must be ``None`` for ``'cbn'``.
        **options: The options of G
            (:class:`~gan_trainer.nets.options.GeneratorOptions`), as for
            :class:`~gan_trainer.nets.Generator`.

    Raises:
        TypeError: If an option is unknown, or one of the unconditional G's
            only (``norm``).
        ValueError: If ``n_classes``, ``mode`` or ``n_embed`` is invalid, or
            ``size``, ``widths`` or ``ksize`` cannot work together.
    """

    def __init__(
        self,
        *,
        n_classes: int,
        size: int = 28,
        channels: int = 1,
        n_hidden: int = 100,
        widths: Sequence[int] | None = None,
        base_width: int = 64,
        ksize: int | None = None,
        mode: str = 'concat',
        n_embed: int | None = None,
        **options,
    ):
        n_classes = _check_n_classes(n_classes)
        _check_mode(mode, GENERATOR_MODES)
        refuse_unconditional(type(self), GeneratorOptions, options)
        if mode == 'cbn' and n_embed is not None:
            raise ValueError(f"n_embed is for mode 'concat' only, got n_embed={n_embed!r}")
        if mode == 'concat':
            n_embed = n_classes if n_embed is None else n_embed
            if isinstance(n_embed, bool) or int(n_embed) != n_embed or n_embed < 1:
                raise ValueError(f'n_embed must be a positive integer, got {n_embed!r}')
            n_embed = int(n_embed)

        def make_norm(width):  # called by GeneratorBase once the options are set
            if mode == 'cbn':
                return ConditionalBatchNormalization(width, n_classes, decay=self.bn_decay,
                                                     eps=self.bn_eps)
            return self.batch_norm(width)

        super().__init__(
            size=size,
            channels=channels,
            n_hidden=n_hidden,
            widths=widths,
            base_width=base_width,
            ksize=ksize,
            n_in=n_hidden + (n_embed or 0),
            make_norm=make_norm,
            **options,
        )
        self.n_classes = n_classes
        self.mode = mode
        self.n_embed = n_embed
        if mode == 'concat':
            with self.init_scope():
                self.embed = L.EmbedID(n_classes, n_embed, initialW=initializers.Normal(WEIGHT_STD))

    def config(self) -> dict:
        """Returns the JSON-able kwargs of :func:`~gan_trainer.nets.build_generator`.

        Includes ``'arch': 'conditional'``; the constructor itself takes the
        other keys.
        """
        return {
            'arch': 'conditional',
            'n_classes': self.n_classes,
            **super().config(),
            'mode': self.mode,
            'n_embed': self.n_embed,
        }

    def forward(self, z, t) -> chainer.Variable:
        """Generates images of the classes ``t``.

        Args:
            z (chainer.Variable or array): Latent codes of shape
                ``(B, n_hidden)`` or ``(B, n_hidden, 1, 1)``.
            t (chainer.Variable or array): Integer labels of shape ``(B,)``.

        Returns:
            chainer.Variable: Images of shape ``(B, channels, size, size)``
            with values in [-1, 1].
        """
        z = self.check_z(z)
        t = _labels(t, z.shape[0])
        if self.mode == 'cbn':
            return self.generate(z, t)
        # (B, n_hidden) + (B, n_embed) -> (B, n_hidden + n_embed)
        return self.generate(F.concat((z, self.embed(t)), axis=1))


class ConditionalDiscriminator(DiscriminatorBase):
    """Class-conditional DCGAN discriminator: ``(x, t)`` -> logits ``(B,)``.

    The DCGAN discriminator (:class:`~gan_trainer.nets.Discriminator`) with
    the label fed in by ``mode``: ``'projection'`` adds ``<embed(t), h>`` to
    the logit, ``h`` being the flattened last feature map (``embed`` has
    ``widths[-1] * s0**2`` columns); ``'concat'`` stacks one-hot label maps
    on the image channels before the first conv.

    Args:
        n_classes (int): Number of labels.
        size (int): Input side in pixels.
        channels (int): Image channels (without the label maps).
        widths (sequence of int or None): Conv widths from the input side.
        base_width (int): First width of the default ``widths``.
        ksize (int or None): Kernel side, as for
            :class:`~gan_trainer.nets.Discriminator`.
        mode (str): ``'projection'`` or ``'concat'``, see above.
        **options: The options of D
            (:class:`~gan_trainer.nets.options.DiscriminatorOptions`), as
            for :class:`~gan_trainer.nets.Discriminator`; ``spectral_norm``
            normalizes the projection's embedding too, as Miyato and
            Koyama's SNGAN projection discriminator does.

    Raises:
        TypeError: If an option is unknown, or one of the unconditional D's
            only (``out_dim``, minibatch discrimination).
        ValueError: If ``n_classes``, ``mode`` or ``norm`` is invalid, or
            ``size``, ``widths`` or ``ksize`` cannot work together.
    """

    def __init__(
        self,
        *,
        n_classes: int,
        size: int = 28,
        channels: int = 1,
        widths: Sequence[int] | None = None,
        base_width: int = 64,
        ksize: int | None = None,
        mode: str = 'projection',
        **options,
    ):
        n_classes = _check_n_classes(n_classes)
        _check_mode(mode, DISCRIMINATOR_MODES)
        refuse_unconditional(type(self), DiscriminatorOptions, options)
        super().__init__(
            size=size,
            channels=channels,
            widths=widths,
            base_width=base_width,
            ksize=ksize,
            in_channels=channels + (n_classes if mode == 'concat' else 0),
            **options,
        )
        self.n_classes = n_classes
        self.mode = mode
        if mode == 'projection':
            with self.init_scope():
                self.embed = L.EmbedID(
                    n_classes, self.out.W.shape[1], initialW=initializers.Normal(WEIGHT_STD)
                )
        if self.spectral_norm:
            add_spectral_norm(self)

    def config(self) -> dict:
        """Returns the JSON-able kwargs of :func:`~gan_trainer.nets.build_discriminator`.

        Includes ``'arch': 'conditional'``; the constructor itself takes the
        other keys.
        """
        return {
            'arch': 'conditional',
            'n_classes': self.n_classes,
            **super().config(),
            'mode': self.mode,
        }

    def forward(self, x, t) -> chainer.Variable:
        """Scores images as examples of the classes ``t``.

        Args:
            x (chainer.Variable or array): Images of shape
                ``(B, channels, size, size)``, values in [-1, 1].
            t (chainer.Variable or array): Integer labels of shape ``(B,)``.

        Returns:
            chainer.Variable: Logits of shape ``(B,)``; positive means
            "looks like a real example of class t".
        """
        x = self.noisy(self.check_x(x))
        b = x.shape[0]
        t = _labels(t, b)
        if self.mode == 'concat':
            xp = chainer.backend.get_array_module(t)
            one_hot = xp.eye(self.n_classes, dtype=x.dtype)[t]  # (B, n_classes)
            maps = xp.broadcast_to(
                one_hot[:, :, None, None], (b, self.n_classes, self.size, self.size)
            )
            return F.flatten(self.out(self.head(self.features(F.concat((x, maps), axis=1)))))
        # (B, widths[-1] * s0 * s0), or (B, fc_width) after a hidden fc.
        h = F.reshape(self.head(self.features(x)), (b, -1))
        return F.flatten(self.out(h)) + F.sum(self.embed(t) * h, axis=1)
