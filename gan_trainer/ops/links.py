"""Chainer links that use the fast functions, and freezing a net's weights.

:class:`Convolution2D`, :class:`Deconvolution2D` and
:class:`BatchNormalization` are Chainer's links with the same constructor,
parameters and saved names (snapshots load either way); only ``forward``
differs, by calling :mod:`gan_trainer.ops`' functions, which fall back to
Chainer's own when the fast path does not apply (GPU, float16, dilation,
groups, fine-tuning or evaluation mode). The package's networks are built
from them; other networks can swap them in one for one.

:func:`frozen` stops gradients from being computed for a link's
parameters for the duration of a ``with`` block, which is what the G step
wants from D: D's weight gradients would be thrown away anyway, and not
computing them skips a matrix product per D layer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import chainer
import chainer.functions as F
import chainer.links as L

from gan_trainer.ops import blocks
from gan_trainer.ops.activation import activated
from gan_trainer.ops.conv import convolution_2d, deconvolution_2d
from gan_trainer.ops.normalization import batch_normalization


class Convolution2D(L.Convolution2D):
    """:class:`chainer.links.Convolution2D` using :func:`~gan_trainer.ops.convolution_2d`.

    ``link(x, activation='leaky_relu', slope=0.2)`` also applies an
    activation (``'relu'``, ``'leaky_relu'``, ``'tanh'``) to the output,
    fused into the convolution where oneDNN runs it.
    """

    def forward(self, x, *, activation=None, slope=0.2):
        if self.W.array is None:
            self._initialize_params(x.shape[1])
        return convolution_2d(x, self.W, self.b, self.stride, self.pad,
                              dilate=self.dilate, groups=self.groups,
                              activation=activation, slope=slope)


class Deconvolution2D(L.Deconvolution2D):
    """:class:`chainer.links.Deconvolution2D` using :func:`~gan_trainer.ops.deconvolution_2d`.

    Takes the same ``activation`` and ``slope`` as :class:`Convolution2D`.
    """

    def forward(self, x, *, activation=None, slope=0.2):
        if self.W.array is None:
            self._initialize_params(x.shape[1])
        return deconvolution_2d(x, self.W, self.b, self.stride, self.pad, self.outsize,
                                dilate=self.dilate, groups=self.groups,
                                activation=activation, slope=slope)


class BatchNormalization(L.BatchNormalization):
    """:class:`chainer.links.BatchNormalization` using the fast training-mode function.

    Training mode over the channel axis (Chainer's default ``axis``) runs
    :func:`~gan_trainer.ops.batch_normalization`; evaluation mode,
    fine-tuning and other axes use Chainer's link unchanged. Without
    ``gamma``/``beta`` (``use_gamma=False``, ``use_beta=False``, as in
    conditional batch normalization) the constants 1 and 0 stand in for
    them, as in Chainer's link. ``link(x, activation='relu')`` (or
    ``'leaky_relu'`` with ``slope``) applies the activation too, in the same
    node in training mode.
    """

    def forward(self, x, *, activation=None, slope=0.2, **kwargs):
        if (not chainer.config.train or kwargs.get('finetune') or self.axis is not None
                or self.avg_mean is None or chainer.config.in_recomputing):
            y = super().forward(x, **kwargs)
            return activated(y, activation, slope)
        gamma = self._get_gamma()[0] if self.gamma is None else self.gamma
        beta = self._get_beta()[0] if self.beta is None else self.beta
        return batch_normalization(x, gamma, beta, eps=self.eps,
                                   running_mean=self.avg_mean, running_var=self.avg_var,
                                   decay=self.decay, activation=activation, slope=slope)


def _hooked(link: chainer.Link) -> bool:
    # A link hook (spectral normalization, a timer) runs in ``link(x)``,
    # which a block bypasses.
    return bool(chainer._get_link_hooks()) or link._n_local_link_hooks > 0


def block(layer: chainer.Link, x, norm: chainer.Link, *, activation=None, slope: float = 0.2,
          shape=None):
    """``activation(norm(layer(x)))`` as one node where the fast path covers it.

    The building block of the package's DCGAN nets
    (:mod:`gan_trainer.ops.blocks`): ``layer`` is a :class:`Convolution2D`,
    a :class:`Deconvolution2D` or a linear link whose output is viewed as
    the map ``shape`` ``(C, H, W)`` (G's projection); ``norm`` a
    :class:`BatchNormalization`; ``activation`` None, ``'relu'`` or
    ``'leaky_relu'`` (with ``slope``). In training mode, with neither link
    hooked (spectral normalization wraps ``link(x)``, so a hooked layer
    runs as usual), on NumPy float32/float64, the block is one node with
    the values of the separate layers; in every other case this is exactly
    ``norm(layer(x), activation=...)``.
    """
    bn_fast = (isinstance(norm, BatchNormalization) and chainer.config.train
               and not chainer.config.in_recomputing and norm.axis is None
               and norm.avg_mean is not None)
    if (not bn_fast or layer.W.array is None or _hooked(layer) or _hooked(norm)
            or (shape is None and not isinstance(layer, (Convolution2D, Deconvolution2D)))
            or (shape is None and (layer.dilate not in (1, (1, 1)) or layer.groups != 1))):
        h = layer(x)
        if shape is not None:
            h = F.reshape(h, (len(h), *shape))
        return norm(h, activation=activation, slope=slope)
    gamma = norm._get_gamma()[0] if norm.gamma is None else norm.gamma
    beta = norm._get_beta()[0] if norm.beta is None else norm.beta
    stats = {'eps': norm.eps, 'running_mean': norm.avg_mean, 'running_var': norm.avg_var,
             'decay': norm.decay, 'activation': activation, 'slope': slope}
    if shape is not None:
        return blocks.linear_bn(x, layer.W, layer.b, gamma, beta, shape=shape, **stats)
    transposed = isinstance(layer, Deconvolution2D)
    return blocks.conv_bn(x, layer.W, layer.b, gamma, beta, stride=layer.stride, pad=layer.pad,
                          transposed=transposed, outsize=layer.outsize if transposed else None,
                          **stats)


@contextlib.contextmanager
def frozen(link: chainer.Link) -> Iterator[chainer.Link]:
    """Computes no gradients for ``link``'s parameters inside the block.

    Gradients still flow *through* the link to its inputs (the G step
    needs D's input gradient), but its parameters count as constants:
    every function skips their weight gradient, and their ``grad`` stays as
    it was (``None`` after ``cleargrads()``). Both the forward and the
    backward pass must run inside the block.

    Chainer decides which gradients to compute from each graph node's
    ``requires_grad``, which has no public setter; this sets the node's
    flag and restores it on exit, even after an exception.
    """
    # ChainerX arrays have no graph node to flag; their gradients are
    # computed as usual (the updater clears them after the G step).
    params = [p for p in link.params()
              if not p._has_chainerx_array and p.node._requires_grad]
    for p in params:
        p._requires_grad = p.node._requires_grad = False
    try:
        yield link
    finally:
        for p in params:
            p._requires_grad = p.node._requires_grad = True
