"""A linear layer as one node, its backward pass without new nodes (NumPy).

Chainer's :func:`~chainer.functions.linear` on an ``(N, C, H, W)`` map is
two nodes (a reshape to ``(N, C*H*W)``, then the product), and its backward
pass applies three more (``LinearGradData``, ``LinearGradWeight`` and a
``Sum`` for the bias), each with the graph bookkeeping of a node, so that a
second derivative could be taken through them. A DCGAN has two linear
layers (G's projection of z, D's read-out), and D's runs three times per
iteration. :class:`LinearNumPy` is the same arithmetic, NumPy call for
NumPy call (the results are Chainer's bit for bit; ``tests/test_ops.py``
compares them), in one node whose backward pass is plain NumPy; under
double backprop (a gradient penalty) it differentiates Chainer's own
function instead, as the package's other fast nodes do. Float32 products
go to oneDNN where it is loaded (:mod:`.onednn_matmul`: all of the OpenMP
team's threads instead of one OpenBLAS thread; equal within rounding).

**A read-out from a channel-last map.** The convolutions store their maps
channel-last, and ``x.reshape(N, -1)`` flattens in Chainer's order
``(C, H, W)``: a transposing copy of the map in every forward pass, and
an input gradient in that order, which the layer before (a normalization
with LeakyReLU, channel-last) must copy back. On the oneDNN path, when
``W`` has no more rows than the batch (D's read-out to one logit), the
product runs on the map's own memory as rows ``(N, H*W*C)`` against a copy
of ``W`` with its columns in that order (cheaper than the map's copy), and
the input gradient comes out channel-last; ``W``'s gradient is put back
into Chainer's column order. The same products in another order of
summation: equal within rounding (``tests/test_onednn_matmul.py``).
"""

from __future__ import annotations

import chainer
import chainer.functions as F
import chainer.links as L
import numpy

from gan_trainer.ops import onednn_matmul
from gan_trainer.ops._common import FastNode, reference_backward, use_fast, variables


def _c_or_f(a: numpy.ndarray) -> numpy.ndarray:
    # Chainer's own guard before ``dot`` (a strided array with a unit axis).
    if not (a.flags.c_contiguous or a.flags.f_contiguous) and 1 in a.shape:
        return numpy.ascontiguousarray(a)
    return a


def channel_last_rows(x: numpy.ndarray) -> numpy.ndarray | None:
    """The ``(N, H*W*C)`` view of a map ``(N, C, H, W)`` stored channel-last (any
    other array: None)."""
    if x.ndim != 4:
        return None
    t = x.transpose(0, 2, 3, 1)
    return t.reshape(len(x), -1) if t.flags.c_contiguous else None


def _columns_channel_last(W: numpy.ndarray, shape) -> numpy.ndarray:
    """``W``'s columns from Chainer's ``(C, H, W)`` order to ``(H, W, C)``, a copy."""
    m, (c, h, w) = W.shape[0], shape[1:]
    return numpy.ascontiguousarray(W.reshape(m, c, h, w).transpose(0, 2, 3, 1)).reshape(m, -1)


def _columns_chainer(gW: numpy.ndarray, shape) -> numpy.ndarray:
    """The inverse of :func:`_columns_channel_last`, a copy."""
    m, (c, h, w) = gW.shape[0], shape[1:]
    return numpy.ascontiguousarray(gW.reshape(m, h, w, c).transpose(0, 3, 1, 2)).reshape(m, -1)


class LinearNumPy(FastNode):
    """``x.reshape(N, -1) @ W.T + b`` for an ``x`` of any rank, output ``(N, M)``."""

    _rows = None  # the channel-last rows the forward pass used (see the module docstring)

    def forward(self, inputs):
        self.retain_inputs(tuple(range(len(inputs))))
        return self.compute(*inputs),

    def compute(self, x, W, b=None) -> numpy.ndarray:
        """The forward pass on arrays, no graph (also the first part of a fused block)."""
        self._rows = None
        if W.shape[0] <= len(x) and onednn_matmul.available(x, W, b):
            rows = channel_last_rows(x)
            if rows is not None:
                Wc = _columns_channel_last(W, x.shape)
                y = onednn_matmul.product(rows, Wc.T, b)
                if y is not None:
                    self.x_shape, self._rows, self._Wc = x.shape, rows, Wc
                    return y
        x2 = _c_or_f(x.reshape(len(x), -1))
        self.x_shape, self.x2 = x.shape, x2  # the flattened x: W's gradient needs it
        if onednn_matmul.available(x2, W, b):
            y = onednn_matmul.product(x2, W.T, b)
            if y is not None:
                return y
        y = numpy.empty((len(x2), W.shape[0]), x.dtype)
        numpy.dot(x2, W.T, out=y)
        if b is not None:
            y += b
        return y

    def backward(self, indexes, grad_outputs):
        if chainer.config.enable_backprop:
            return reference_backward(self, indexes, grad_outputs, self.reference)
        inputs = self.get_retained_inputs()
        grads = self.gradients(indexes, inputs[0].array, inputs[1].array, len(inputs) == 3,
                               grad_outputs[0].array)
        return variables(*(grads[i] for i in indexes))

    def backward_accumulate(self, target_input_indexes, grad_outputs, grad_inputs):
        """:meth:`backward`, with the gradient another path gave an input added in place.

        D's read-out runs on the real and the fake batch in D's step, so
        Chainer adds the two weight gradients (for the Keras DCGAN notes'
        Dense 6,272 -> 2,048, two arrays of 51 MB): by default with an ``Add``
        node into a third new array. Here the sum goes into the array this
        node has just made (no other reference to it exists yet): where two
        paths meet, the same bits as Chainer's sum (one commutative float
        addition); with more, the same sum in another order. Under double
        backprop the sum stays Chainer's differentiable one.
        """
        gxs = self.backward(target_input_indexes, grad_outputs)
        out = []
        for gx, other in zip(gxs, grad_inputs):
            if other is None or gx is None:
                out.append(other if gx is None else gx)
            elif chainer.config.enable_backprop:
                out.append(gx + other)
            else:
                numpy.add(gx.array, other.array, out=gx.array)
                out.append(gx)
        return tuple(out)

    def gradients(self, indexes, x, W, has_bias: bool, gy) -> tuple:
        """``(gx, gW, gb)`` on arrays; entries not in ``indexes`` are None."""
        gy = _c_or_f(gy)
        gx = gW = gb = None
        if self._rows is not None:
            gx, gW = self._channel_last_gradients(indexes, gy)
        elif onednn_matmul.available(gy, W):
            if 0 in indexes:
                gx = onednn_matmul.product(gy, W)
                gx = None if gx is None else gx.reshape(self.x_shape)
            if 1 in indexes:
                gW = onednn_matmul.product(gy.T, self.x2)
        if 0 in indexes and gx is None:
            gx = gy.dot(W).astype(gy.dtype, copy=False).reshape(self.x_shape)
        if 1 in indexes and gW is None:
            gW = gy.T.dot(self.x2).astype(W.dtype, copy=False)
        if 2 in indexes:
            gb = gy.sum(axis=0)
        return gx, gW, gb

    def _channel_last_gradients(self, indexes, gy) -> tuple:
        """``(gx, gW)`` after a forward pass on channel-last rows: ``gx`` channel-last."""
        gx = gW = None
        n, c, h, w = self.x_shape
        if 0 in indexes:
            g = onednn_matmul.product(gy, self._Wc)
            gx = (gy.dot(self._Wc) if g is None else g).reshape(n, h, w, c).transpose(0, 3, 1, 2)
        if 1 in indexes:
            g = onednn_matmul.product(gy.T, self._rows)
            gW = _columns_chainer(gy.T.dot(self._rows) if g is None else g, self.x_shape)
        return gx, gW

    def reference(self, x, W, b=None):
        return F.linear(x, W, b)


def fast_node(x, W, b) -> LinearNumPy | None:
    """The fast node for ``linear(x, W, b)`` (not yet applied), or None for Chainer's."""
    if not use_fast(x, W, b) or x.ndim < 2 or W.ndim != 2 or x.size == 0:
        return None
    if x.size // len(x) != W.shape[1] or (b is not None and b.shape != (W.shape[0],)):
        return None  # Chainer's function raises its own error
    return LinearNumPy()


def linear(x, W, b=None, n_batch_axes: int = 1):
    """Drop-in for :func:`chainer.functions.linear`, one node on NumPy.

    NumPy float32/float64 inputs with ``n_batch_axes=1`` take
    :class:`LinearNumPy`; anything else (CuPy, float16, more batch axes, a
    shape Chainer would refuse) goes to Chainer's function.
    """
    node = fast_node(x, W, b) if n_batch_axes == 1 else None
    if node is None:
        return F.linear(x, W, b, n_batch_axes=n_batch_axes)
    y, = node.apply((x, W) if b is None else (x, W, b))
    return y


class Linear(L.Linear):
    """:class:`chainer.links.Linear` using :func:`~gan_trainer.ops.linear`.

    Same constructor, parameters and saved names; snapshots load either way.
    """

    def forward(self, x, n_batch_axes: int = 1):
        if self.W.array is None:
            self._initialize_params(int(numpy.prod(x.shape[n_batch_axes:])))
        return linear(x, self.W, self.b, n_batch_axes=n_batch_axes)
