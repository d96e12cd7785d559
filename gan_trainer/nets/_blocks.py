"""The DCGAN layer stacks, shared by :mod:`.dcgan` and :mod:`.conditional`.

:class:`GeneratorBase` holds G's linear projection of the (possibly
label-augmented) latent code and its upsampling stages;
:class:`DiscriminatorBase` holds D's downsampling convolutions and linear
read-out. The public nets subclass them and only add what they feed in
(``z``, ``z`` + a label embedding, one-hot label maps) and what they read
out (a logit, a logit plus a projection). Keeping the stacks here, with
their parameter names (``project``, ``bn0``, ``deconvs/i``, ``bns/i``,
``convs/i``, ``out``), is what lets every variant load snapshots of the
same layout. The recipes' options (upsampling + convolution in G, pooling,
a hidden fully connected layer ``fc`` and training-only noise in D, other
activations) add or rename links only when they are set, so the defaults
build exactly the DCGAN paper's nets, parameter for parameter and draw for
draw. See :mod:`.dcgan` for the architecture and its references, and
:mod:`._layers` for the optional pieces.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import chainer
import chainer.functions as F

from gan_trainer import ops
from gan_trainer.nets._common import (
    NORMS,
    WEIGHT_STD,
    add_spectral_norm,
    batch_norm,
    default_n_stages,
    resolve_widths,
    weight_initializer,
)
from gan_trainer.nets._layers import (
    ACTIVATIONS,
    Stochastic,
    downsample,
    resolve_ksize,
    stage_pad,
    upsample_conv,
)
from gan_trainer.nets.minibatch import MinibatchDiscrimination
from gan_trainer.nets.options import (
    DiscriminatorOptions,
    GeneratorOptions,
    recorded_options,
    set_options,
)

__all__ = [
    'NORMS',
    'WEIGHT_STD',
    'DiscriminatorBase',
    'GeneratorBase',
    'add_spectral_norm',
    'batch_norm',
    'default_n_stages',
    'resolve_widths',
]


#: The activations the package's conv and BN nodes apply inside themselves.
_FUSED = ('relu', 'leaky_relu')
#: ... and the ones its conv and deconv nodes do: with oneDNN, as a post-op of
#: the convolution (tanh there is the write-ups' activation, which NumPy
#: computes on one core in a pass of its own).
_CONV_FUSED = (*_FUSED, 'tanh')


class _NoNorm(chainer.Link):
    """A normalization link that normalizes nothing: ``h`` (G's ``norm='none'``)."""

    def forward(self, h, *args):
        return h


def _no_norm(width: int) -> chainer.Link:
    return _NoNorm()


def _norm_then(norm: chainer.Link, h, norm_args, activation: str):
    """``activation(norm(h, *norm_args))``, in one node for the package's batch norm."""
    if isinstance(norm, ops.BatchNormalization) and activation in _FUSED:
        return norm(h, *norm_args, activation=activation, slope=0.2)
    return ACTIVATIONS[activation](norm(h, *norm_args))


def _layer_norm_then(layer: chainer.Link, h, norm: chainer.Link, norm_args, activation: str,
                     shape=None):
    """``activation(norm(layer(h)))`` (``layer``'s output viewed as ``(B, *shape)``).

    One node for the package's layers and batch norm (:func:`gan_trainer.ops.block`);
    a conditional normalization (``norm_args``) or another activation runs as
    separate functions.
    """
    if not norm_args and activation in _FUSED and isinstance(norm, ops.BatchNormalization):
        return ops.block(layer, h, norm, activation=activation, slope=0.2, shape=shape)
    h = layer(h)
    if shape is not None:
        h = F.reshape(h, (h.shape[0], *shape))
    return _norm_then(norm, h, norm_args, activation)


class GeneratorBase(chainer.Chain):
    """G's layers: an optional dense head, a linear projection, then upsampling stages.

    The projection maps an ``n_in``-vector (or the output of the hidden
    fully connected layer ``fc``, when ``fc_width`` is set) to a
    ``widths[-1]`` x ``s0`` x ``s0`` map (``s0 = size // 2**len(widths)``);
    each stage doubles the side and steps down the reversed widths; the
    last maps to ``channels``. A stage is a stride-2 transposed convolution
    ``deconvs/i`` (``upsample='deconv'``) or an upsampling followed by a
    stride-1 convolution ``convs/i``. Every hidden layer but ``fc`` is
    followed by a normalization link built by ``make_norm(width)`` (``bn0``
    after the projection, ``bns/i`` after stage ``i``) and the
    ``activation``; ``fc`` by the activation alone (keras-dcgan's Dense
    1024 + tanh); the output goes through tanh. ``project_norm='unit'``
    normalises the projection before the reshape, each of its units over
    the batch, so ``bn0`` has ``widths[-1] * s0 * s0`` entries instead of
    ``widths[-1]``; ``stage_norm=False`` leaves the stages without
    normalization (no ``bns``), as keras-dcgan's G.

    Args:
        size, channels, n_hidden, widths, base_width, ksize: As in
            :class:`~gan_trainer.nets.Generator`.
        n_in (int): Input size of the first linear layer: ``n_hidden`` plus
            whatever the subclass concatenates to ``z``.
        make_norm (callable or None): ``width -> link``; the link is called
            as ``norm(h, *norm_args)`` with the ``norm_args`` given to
            :meth:`generate`. It is called once the options are set, so it
            may read them from the net. ``None``: :meth:`batch_norm`.
        **options: G's options (:class:`~gan_trainer.nets.options.GeneratorOptions`),
            set as attributes of the same names.
    """

    def __init__(
        self,
        *,
        size: int,
        channels: int,
        n_hidden: int,
        widths: Sequence[int] | None,
        base_width: int,
        ksize: int | None,
        n_in: int,
        make_norm: Callable[[int], chainer.Link] | None = None,
        **options,
    ):
        super().__init__()
        set_options(self, GeneratorOptions, options)
        if self.norm == 'none':
            make_norm = _no_norm
        make_norm = make_norm or self.batch_norm
        strided = self.upsample == 'deconv'
        self.ksize = resolve_ksize(ksize, strided=strided, option=f'upsample={self.upsample!r}')
        pad = stage_pad(self.ksize, strided=strided)
        self.widths = resolve_widths(size, widths, base_width=base_width)
        self.size = size
        self.channels = channels
        self.n_hidden = n_hidden
        n = len(self.widths)
        self.start_side = size // 2**n
        w = weight_initializer(self.init)
        # G-order widths: deepest (smallest map) first, then `channels`.
        g_widths = self.widths[::-1] + (channels,)
        # The creation order fixes which random draws each weight gets, so
        # seeded nets stay the same across refactors: keep it.
        with self.init_scope():
            if self.fc_width is not None:
                self.fc = ops.Linear(n_in, self.fc_width, initialW=w)
            self.project = ops.Linear(
                self.fc_width or n_in, g_widths[0] * self.start_side**2, initialW=w)
            per_unit = self.project_norm == 'unit'
            self.bn0 = make_norm(g_widths[0] * (self.start_side**2 if per_unit else 1))
            stages, bns = [], []
            side = self.start_side
            for i in range(n):
                side *= 2
                if strided:
                    # outsize: ksize 5 / pad 2 would give 2 * side - 1 without it.
                    stage = ops.Deconvolution2D(
                        g_widths[i], g_widths[i + 1], self.ksize, stride=2, pad=pad,
                        outsize=(side, side), initialW=w)
                else:
                    stage = ops.Convolution2D(
                        g_widths[i], g_widths[i + 1], self.ksize, stride=1, pad=pad,
                        initialW=w)
                stages.append(stage)
                # No normalization on the output layer (the paper).
                if i < n - 1 and self.stage_norm:
                    bns.append(make_norm(g_widths[i + 1]))
            if strided:
                self.deconvs = chainer.ChainList(*stages)
            else:
                self.convs = chainer.ChainList(*stages)
            self.bns = chainer.ChainList(*bns)

    def batch_norm(self, width: int) -> chainer.Link:
        """G's batch normalization of ``width`` entries, by its options (``init``, ``bn_*``)."""
        return batch_norm(width, init=self.init, decay=self.bn_decay, eps=self.bn_eps)

    @property
    def stages(self) -> chainer.ChainList:
        """The upsampling stages: ``deconvs``, or ``convs`` after upsampling."""
        return self.deconvs if self.upsample == 'deconv' else self.convs

    def config(self) -> dict:
        """Returns the JSON-able constructor kwargs of the layer stack.

        The options appear only where they differ from their defaults
        (:func:`~gan_trainer.nets.options.recorded_options`).
        """
        return {
            'size': self.size,
            'channels': self.channels,
            'n_hidden': self.n_hidden,
            'widths': list(self.widths),
            'ksize': self.ksize,
            **recorded_options(self, GeneratorOptions),
        }

    def check_z(self, z) -> chainer.Variable:
        """Returns ``z`` as ``(B, n_hidden)``, accepting ``(B, n_hidden, 1, 1)``.

        Raises:
            ValueError: If ``z`` has another shape.
        """
        if z.shape[1:] not in ((self.n_hidden,), (self.n_hidden, 1, 1)):
            raise ValueError(
                f'z must have shape (B, {self.n_hidden}) or '
                f'(B, {self.n_hidden}, 1, 1), got {tuple(z.shape)}'
            )
        return _in_dtype_of(F.reshape(z, (z.shape[0], self.n_hidden)), self.project.W)

    def _stage(self, stage: chainer.Link, h, activation: str | None = None) -> chainer.Variable:
        # (B, C, s, s) -> (B, C', 2s, 2s), then the activation if one is given
        if self.upsample == 'deconv':
            return stage(h, activation=activation, slope=0.2)
        return upsample_conv(stage, h, self.upsample, activation=activation)

    def generate(self, h, *norm_args) -> chainer.Variable:
        """Runs the stack on ``h`` of shape ``(B, n_in)``.

        Returns:
            chainer.Variable: Images ``(B, channels, size, size)`` in [-1, 1].
        """
        act = ACTIVATIONS[self.activation]
        if self.fc_width is not None:
            h = act(self.fc(h))  # (B, n_in) -> (B, fc_width)
        s0 = self.start_side
        # (B, n_in) -> (B, widths[-1] * s0 * s0) -> (B, widths[-1], s0, s0).
        # By default the normalization runs after the reshape, per channel as
        # in the conv layers (and the TensorFlow DCGAN), not per each of the
        # s0 * s0 positions; 'unit' normalises each unit before it, as Keras
        # does after a Dense layer (PROJECT_NORMS).
        shape = (self.project.out_size // s0**2, s0, s0)
        if self.project_norm == 'unit':
            h = _layer_norm_then(self.project, h, self.bn0, norm_args, self.activation)
            h = F.reshape(h, (h.shape[0], *shape))
        else:
            h = _layer_norm_then(self.project, h, self.bn0, norm_args, self.activation, shape)
        stages = self.stages
        for i, stage in enumerate(stages[:-1]):
            if not self.stage_norm:  # the activation inside the conv node where it can be
                h = (self._stage(stage, h, self.activation) if self.activation in _CONV_FUSED
                     else ACTIVATIONS[self.activation](self._stage(stage, h)))
            elif self.upsample == 'deconv':
                h = _layer_norm_then(stage, h, self.bns[i], norm_args, self.activation)
            else:
                h = _norm_then(self.bns[i], self._stage(stage, h), norm_args, self.activation)
        return self._stage(stages[-1], h, 'tanh')  # tanh fused where oneDNN runs


def _in_dtype_of(x, weight: chainer.Parameter):
    """``x`` cast to the dtype of the layer that reads it, if that differs.

    Under ``chainer.mixed16`` the layers hold float16 weights (BatchNorm
    float32), while z, datasets and callers hand in float32; casting at the
    network's entrance lets every caller (updater, evaluator, grids,
    ``generate.py``) feed float32 as before. A no-op in float32.
    """
    dtype = weight.dtype if weight.array is not None else None
    if dtype is None or x.dtype == dtype:
        return x
    return F.cast(x, dtype)


class DiscriminatorBase(chainer.Chain):
    """D's layers: downsampling convolutions, an optional ``fc``, a linear read-out ``out``.

    Each stage halves the side and steps up ``widths``: a stride-2
    convolution (``downsample='stride'``) or a stride-1 convolution whose
    activated output is pooled 2x2. All but the first are followed by batch
    normalization when ``norm == 'batch'`` (the paper leaves it off D's
    input layer), all by the ``activation``. :meth:`features` runs the
    stages; :meth:`head` flattens their output and, with ``fc_width``, runs
    the hidden fully connected layer ``fc``; ``out`` maps what :meth:`head`
    returns to one logit. Training-only noise (``noise_sigma``, before each
    activation and, through :meth:`noisy`, on the input) and dropout (after
    each activation) come from :attr:`stochastic`. Subclasses call
    :func:`add_spectral_norm` once all their links exist, when
    ``self.spectral_norm`` is set. With ``padding='valid'`` (pooling only)
    the convolutions after the first are not padded, so each such stage
    shrinks the side by ``ksize - 1`` before pooling it (see
    :data:`~gan_trainer.nets._layers.PADDINGS`); :attr:`start_side` is the
    side of the last map.

    Args:
        size, channels, widths, base_width, ksize: As in
            :class:`~gan_trainer.nets.Discriminator`.
        in_channels (int): Channels of the first conv's input: ``channels``
            plus whatever the subclass concatenates to the images.
        **options: D's options (:class:`~gan_trainer.nets.options.DiscriminatorOptions`),
            set as attributes of the same names.

    Raises:
        ValueError: If an option is unknown or out of range, or two options
            cannot work together (the message names both).
    """

    def __init__(
        self,
        *,
        size: int,
        channels: int,
        widths: Sequence[int] | None,
        base_width: int,
        ksize: int | None,
        in_channels: int,
        **options,
    ):
        super().__init__()
        set_options(self, DiscriminatorOptions, options)
        strided = self.downsample == 'stride'
        self.ksize = resolve_ksize(ksize, strided=strided,
                                   option=f'downsample={self.downsample!r}')
        pad = stage_pad(self.ksize, strided=strided)
        self.widths = resolve_widths(size, widths, base_width=base_width)
        self.size = size
        self.channels = channels
        n = len(self.widths)
        # Stage i's padding; a 'valid' stage shrinks the side by ksize - 1 before
        # its pooling halves it (flooring an odd side, as Keras' pooling does).
        pads = [pad if i == 0 or self.padding == 'same' else 0 for i in range(n)]
        side = size
        for p in pads:
            side = side // 2 if strided else (side + 2 * p - self.ksize + 1) // 2
            if side < 1:
                raise ValueError(f"size {size} is too small for padding='valid' with ksize "
                                 f'{self.ksize} and {n} stages')
        self.start_side = side
        w = weight_initializer(self.init)
        ins = (in_channels,) + self.widths[:-1]
        n_flat = self.widths[-1] * self.start_side**2
        with self.init_scope():
            self.convs = chainer.ChainList(*[
                ops.Convolution2D(c_in, c_out, self.ksize, stride=2 if strided else 1,
                                  pad=p, initialW=w)
                for c_in, c_out, p in zip(ins, self.widths, pads)
            ])
            # Empty without batch norm, so ``dis.bns`` always exists.
            self.bns = chainer.ChainList(*[
                batch_norm(c, use_gamma=self.bn_gamma, init=self.init, decay=self.bn_decay,
                           eps=self.bn_eps)
                for c in self.widths[1:] if self.norm == 'batch'
            ])
            if self.fc_width is not None:
                self.fc = ops.Linear(n_flat, self.fc_width, initialW=w)
            n_read = (self.fc_width or n_flat) + (self.minibatch_kernels or 0)
            self.out = ops.Linear(n_read, self.out_dim, initialW=w)
            # After `out`, so that a net without it gets the draws it always got.
            if self.minibatch_kernels is not None:
                self.minibatch = MinibatchDiscrimination(
                    self.fc_width or n_flat, self.minibatch_kernels, self.minibatch_dim,
                    initialW=w)
        # After the weights, so that they get the draws they get without it.
        self.stochastic = Stochastic(noise_sigma=self.noise_sigma, dropout=self.dropout)

    def config(self) -> dict:
        """Returns the JSON-able constructor kwargs of the layer stack.

        ``norm`` and ``spectral_norm`` always appear, the other options only
        where they differ from their defaults
        (:func:`~gan_trainer.nets.options.recorded_options`).
        """
        return {
            'size': self.size,
            'channels': self.channels,
            'widths': list(self.widths),
            'ksize': self.ksize,
            **recorded_options(self, DiscriminatorOptions),
        }

    @property
    def n_features(self) -> int:
        """How many numbers per image :meth:`head` gives (what ``out`` and DFM read)."""
        return self.fc_width or self.widths[-1] * self.start_side**2

    def serialize(self, serializer) -> None:
        """Saves/restores the parameters, and the noise's random state if any."""
        super().serialize(serializer)
        self.stochastic.serialize_state(serializer)

    def check_x(self, x):
        """Returns ``x`` if its shape is ``(B, channels, size, size)``.

        Raises:
            ValueError: If it is not.
        """
        expected = (self.channels, self.size, self.size)
        if x.shape[1:] != expected:
            raise ValueError(
                f'x must have shape (B, {", ".join(map(str, expected))}), got {tuple(x.shape)}'
            )
        return _in_dtype_of(x, self.convs[0].W)

    def noisy(self, x):
        """``x`` with the input noise (``noise_sigma``) in training, else ``x``."""
        return self.stochastic.noise(x)

    def features(self, x) -> chainer.Variable:
        """Runs the stages on ``x`` of shape ``(B, in_channels, size, size)``.

        Returns:
            chainer.Variable: The last feature map, ``(B, widths[-1], s0,
            s0)``, after its activation (and pooling, and dropout).
        """
        stochastic = self.stochastic
        # The DCGAN's own stack (strided convs, ReLU or LeakyReLU, no noise or
        # dropout) runs each layer's activation inside its conv or BN node.
        fused = (self.downsample == 'stride' and self.activation in _FUSED
                 and not self.noise_sigma and not self.dropout)
        h = x
        for i, conv in enumerate(self.convs):
            # No BN on the input layer (the paper).
            norm = self.bns[i - 1] if i > 0 and self.norm == 'batch' else None
            if fused:
                # (B, C, s, s) -> (B, C', s/2, s/2)
                h = (conv(h, activation=self.activation, slope=0.2) if norm is None
                     else _layer_norm_then(conv, h, norm, (), self.activation))
                continue
            # (B, C, s, s) -> (B, C', s/2, s/2), or (B, C', s, s) before pooling
            if norm is None and not self.noise_sigma and self.activation in _CONV_FUSED:
                h = conv(h, activation=self.activation, slope=0.2)
            else:
                h = conv(h)
                if norm is not None:
                    h = norm(h)
                h = stochastic.noisy_activation(h, self.activation)
            if self.downsample != 'stride':
                h = downsample(h, self.downsample)
            h = stochastic.drop(h)
        return h

    def head(self, h) -> chainer.Variable:
        """What ``out`` reads: the features, through ``fc`` when there is one.

        Args:
            h: The output of :meth:`features`.

        Returns:
            chainer.Variable: ``h`` itself without ``fc`` (``out`` flattens
            it), else ``(B, fc_width)`` after ``fc``'s activation.
        """
        if self.fc_width is None:
            return h
        h = self.fc(h)  # (B, widths[-1] * s0 * s0) -> (B, fc_width)
        h = self.stochastic.noisy_activation(h, self.fc_activation or self.activation)
        return self.stochastic.drop(h)

    def read_out(self, h) -> chainer.Variable:
        """D's outputs from what :meth:`head` returned.

        With ``minibatch_kernels`` the cross-batch counts of
        :class:`~gan_trainer.nets.minibatch.MinibatchDiscrimination` are
        appended to ``h`` first.

        Returns:
            chainer.Variable: ``(B,)`` logits, or ``(B, out_dim)`` outputs
            when ``out_dim > 1`` (a Cramér GAN critic's feature vectors).
        """
        if self.minibatch_kernels is not None:
            h = self.minibatch(h)  # (B, A) -> (B, A + kernels)
        y = self.out(h)
        return F.flatten(y) if self.out_dim == 1 else y
