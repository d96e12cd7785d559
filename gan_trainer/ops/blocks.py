"""A layer, its batch normalization and its activation as one node (NumPy).

A DCGAN is a stack of blocks: a convolution (D), a transposed convolution
or a linear projection (G), then batch normalization with the batch's
statistics, then ReLU or LeakyReLU. As separate Chainer nodes that is two
(or, for G's projection and its reshape, three) ``FunctionNode.apply``
calls in the forward pass and as many backward steps, each with Chainer's
bookkeeping (input and output Variables, retained arrays, hooks, the
backprop queue); on a small network that bookkeeping is a large part of
an iteration (``benchmarks/profile_run.py`` prints the split). :class:`Block`
runs the whole block in one node: the layer's forward pass (the same
oneDNN or NumPy node the layer would run alone, used for its arithmetic
only), then the normalization and activation in one pass
(:class:`~.normalization.BatchNormalizationNumPy`'s), and one backward
pass through both.

It is the same arithmetic in the same order as the separate nodes, so the
values, gradients and running statistics are those of the unfused layers
bit for bit (``tests/test_blocks.py`` compares them, and a whole
training iteration). Double backprop (gradient penalties) differentiates
Chainer's own functions of the block's inputs, as every fast node does.
Anything the block does not cover takes the separate layers:
:func:`~gan_trainer.ops.block` (the links' entry point) decides.
Switch fusion off with ``chainer.using_config('gan_trainer_blocks',
False)`` or ``GAN_TRAINER_BLOCKS=0``.
"""

from __future__ import annotations

import math

import chainer
import chainer.functions as F

from gan_trainer.ops import conv as conv_ops
from gan_trainer.ops import dnnl
from gan_trainer.ops._common import (
    FastNode,
    blocks_enabled,
    reference_backward,
    use_fast,
    variables,
)
from gan_trainer.ops.activation import check_activation
from gan_trainer.ops.linear import fast_node as linear_node
from gan_trainer.ops.linear import linear
from gan_trainer.ops.normalization import BatchNormalizationNumPy, batch_normalization


class Block(FastNode):
    """``bn(layer(x, W[, b]))`` with the activation inside ``bn``, as one node.

    Args:
        layer: The layer's fast node, not applied: its ``compute`` and
            ``gradients`` do the arithmetic (a convolution node of
            :mod:`.conv` or :mod:`.onednn_conv`, or :class:`~.linear.LinearNumPy`).
        bn: A :class:`~.normalization.BatchNormalizationNumPy`, not applied,
            with the activation.
        n_layer_inputs: 2 (``x, W``) or 3 (``x, W, b``); ``gamma`` and
            ``beta`` follow them in the node's inputs.
        shape: For a linear layer, the map ``(C, H, W)`` its output is
            viewed as before the normalization (G's projection); else None.
    """

    def __init__(self, layer, bn: BatchNormalizationNumPy, n_layer_inputs: int, shape=None):
        self.layer, self.bn, self.n, self.shape = layer, bn, n_layer_inputs, shape

    @property
    def label(self) -> str:
        return f'Block({type(self.layer).__name__}+BatchNormalization)'

    def forward(self, inputs):
        self.retain_inputs(tuple(range(len(inputs))))
        n = self.n
        h = self.layer.compute(*inputs[:n])
        if self.shape is not None:
            h = h.reshape((len(h), *self.shape))
        if self.bn.activation is not None:
            self.retain_outputs((0,))
        return self.bn.normalize(h, *inputs[n:]),

    def backward(self, indexes, grad_outputs):
        if chainer.config.enable_backprop:
            return reference_backward(self, indexes, grad_outputs, self.reference)
        try:
            grads = self._gradients(indexes, grad_outputs[0].array)
        except dnnl.DNNLError:  # a backward primitive oneDNN cannot build: Chainer's way
            with chainer.using_config('enable_backprop', True):
                grads = reference_backward(self, indexes, grad_outputs, self.reference)
            return variables(*(None if g is None else g.array for g in grads))
        return variables(*(grads[i] for i in indexes))

    def _gradients(self, indexes, gy) -> dict:
        inputs = [v.array for v in self.get_retained_inputs()]
        n = self.n
        y = self.get_retained_outputs()[0].array if self.bn.activation is not None else None
        layer_indexes = [i for i in indexes if i < n]
        gh, ggamma, gbeta = self.bn.gradients(inputs[n], gy, y, bool(layer_indexes))
        grads = {n: ggamma, n + 1: gbeta}
        if layer_indexes:
            if self.shape is not None:
                gh = gh.reshape((len(gh), -1))
            gx, gW, gb = self.layer.gradients(layer_indexes, inputs[0], inputs[1], n == 3, gh)
            grads.update({0: gx, 1: gW, 2: gb})
        return grads

    def reference(self, *inputs):
        n = self.n
        h = self.layer.reference(*inputs[:n])
        if self.shape is not None:
            h = F.reshape(h, (len(h), *self.shape))
        return self.bn.reference(h, *inputs[n:])


def _bn(eps, running_mean, running_var, decay, activation, slope) -> BatchNormalizationNumPy:
    return BatchNormalizationNumPy(eps, running_mean, running_var, decay,
                                   activation=activation, slope=slope)


def _fusable(x, gamma, beta, channels: int, activation) -> bool:
    """Whether batch normalization of ``channels`` channels can join a block."""
    return (blocks_enabled() and activation != 'tanh' and use_fast(x, gamma, beta)
            and gamma.shape == beta.shape == (channels,))


def conv_bn(x, W, b, gamma, beta, *, stride=1, pad=0, transposed: bool = False, outsize=None,
            eps: float = 2e-5, running_mean=None, running_var=None, decay: float = 0.9,
            activation=None, slope: float = 0.2):
    """``activation(batch_normalization(conv(x, W, b)))``, as one node where it can.

    ``conv`` is :func:`~gan_trainer.ops.convolution_2d` (or, ``transposed``,
    :func:`~gan_trainer.ops.deconvolution_2d` with ``outsize``); the
    normalization uses the batch's statistics and updates ``running_mean``
    and ``running_var`` as :func:`~gan_trainer.ops.batch_normalization`
    does; ``activation`` is None, ``'relu'`` or ``'leaky_relu'``. Where the
    fast path does not apply, the same functions run one after the other.
    """
    check_activation(activation, slope)
    layer = conv_ops.fast_node(transposed, x, W, b, stride, pad, outsize)
    co = W.shape[1] if transposed else W.shape[0]
    if layer is None or not _fusable(x, gamma, beta, co, activation):
        f = conv_ops.deconvolution_2d if transposed else conv_ops.convolution_2d
        h = (f(x, W, b, stride, pad, outsize) if transposed else f(x, W, b, stride, pad))
        return batch_normalization(h, gamma, beta, eps=eps, running_mean=running_mean,
                                   running_var=running_var, decay=decay,
                                   activation=activation, slope=slope)
    args = (x, W, gamma, beta) if b is None else (x, W, b, gamma, beta)
    bn = _bn(eps, running_mean, running_var, decay, activation, slope)
    y, = Block(layer, bn, 3 if b is not None else 2).apply(args)
    return y


def linear_bn(x, W, b, gamma, beta, *, shape, eps: float = 2e-5, running_mean=None,
              running_var=None, decay: float = 0.9, activation=None, slope: float = 0.2):
    """``activation(batch_normalization(reshape(linear(x, W, b), (N, *shape))))`` in one node.

    G's projection of z to its first map: ``shape`` is ``(C, H, W)``, and
    the normalization is per channel ``C``. Falls back to the separate
    functions as :func:`conv_bn` does.
    """
    check_activation(activation, slope)
    layer = linear_node(x, W, b)
    if (layer is None or W.shape[0] != math.prod(shape)
            or not _fusable(x, gamma, beta, shape[0], activation)):
        h = F.reshape(linear(x, W, b), (len(x), *shape))
        return batch_normalization(h, gamma, beta, eps=eps, running_mean=running_mean,
                                   running_var=running_var, decay=decay,
                                   activation=activation, slope=slope)
    args = (x, W, gamma, beta) if b is None else (x, W, b, gamma, beta)
    bn = _bn(eps, running_mean, running_var, decay, activation, slope)
    y, = Block(layer, bn, 3 if b is not None else 2, shape=tuple(shape)).apply(args)
    return y
