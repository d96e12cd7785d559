"""2x2 max- and average-pooling with stride 2 for NumPy, from four strided views.

Chainer's CPU pooling builds im2col columns (a padded copy of the input laid
out window by window), takes ``argmax`` over them and, backward, scatters
the gradient back with col2im: for keras-dcgan's discriminator (two 2x2
max-poolings of a 256-image batch) that was about 40% of an iteration
here. A 2x2 window with stride 2 needs none of it: the four corners of
the windows are the strided views ``x[:, :, i::2, j::2]``, so the
maximum (or the mean) is three elementwise passes over quarter-size
arrays, in the input's memory layout (channel-last maps stay
channel-last). The backward pass of the maximum sends each gradient to
the first corner that holds the maximum, in the order (0, 0), (0, 1),
(1, 0), (1, 1), which is the window Chainer's ``argmax`` picks, so ties
(a saturated tanh gives many exact 1.0s) go where Chainer sends them.

Odd sides are floored, as ``cover_all=False`` (Keras' ``'valid'``)
pooling does: the last row or column is dropped, and gets no gradient.
Double backprop (a gradient penalty through a pooling D) runs Chainer's
function instead (:func:`~gan_trainer.ops._common.reference_backward`).
"""

from __future__ import annotations

import chainer
import chainer.functions as F
import numpy

from gan_trainer.ops._common import FastNode, reference_backward, use_fast, variables

#: The four corners of each 2x2 window, in the order of Chainer's argmax.
_CORNERS = ((0, 0), (0, 1), (1, 0), (1, 1))


def chainer_max_pooling_2x2(x):
    """Chainer's function that :func:`max_pooling_2x2` replaces (fallback and reference)."""
    return F.max_pooling_2d(x, 2, stride=2, cover_all=False)


def chainer_average_pooling_2x2(x):
    """Chainer's function that :func:`average_pooling_2x2` replaces (fallback and reference)."""
    return F.average_pooling_2d(x, 2, stride=2)


def _corners(x: numpy.ndarray) -> list[numpy.ndarray]:
    """The views of each window's four corners, ``(N, C, H // 2, W // 2)`` each."""
    h, w = (x.shape[2] // 2) * 2, (x.shape[3] // 2) * 2
    return [x[:, :, i:h:2, j:w:2] for i, j in _CORNERS]


class MaxPooling2x2(FastNode):
    """``max`` over each 2x2 window, stride 2, no padding."""

    def forward(self, inputs):
        x, = inputs
        self.retain_inputs((0,))
        a, b, c, d = _corners(x)
        y = numpy.maximum(a, b)
        numpy.maximum(y, c, out=y)
        numpy.maximum(y, d, out=y)
        self.retain_outputs((0,))
        return y,

    def backward(self, indexes, grad_outputs):
        if chainer.config.enable_backprop:
            return reference_backward(self, indexes, grad_outputs, chainer_max_pooling_2x2)
        x = self.get_retained_inputs()[0].array
        y = self.get_retained_outputs()[0].array
        gy = grad_outputs[0].array
        gx = numpy.zeros_like(x)
        taken = None
        for corner, (view, out) in enumerate(zip(_corners(x), _corners(gx))):
            if corner == len(_CORNERS) - 1:
                hit = ~taken  # the maximum is here if it was nowhere before
            else:
                hit = view == y
                if taken is None:
                    taken = hit  # not changed before the next corner's hit is made
                else:
                    hit &= ~taken
                    taken |= hit
            numpy.multiply(gy, hit, out=out)
        return variables(gx)


class AveragePooling2x2(FastNode):
    """The mean of each 2x2 window, stride 2, no padding."""

    def forward(self, inputs):
        x, = inputs
        self.retain_inputs((0,))
        a, b, c, d = _corners(x)
        y = numpy.add(a, b)
        y += c
        y += d
        y *= y.dtype.type(0.25)
        return y,

    def backward(self, indexes, grad_outputs):
        if chainer.config.enable_backprop:
            return reference_backward(self, indexes, grad_outputs, chainer_average_pooling_2x2)
        gy = grad_outputs[0].array
        gx = numpy.zeros_like(self.get_retained_inputs()[0].array)  # x's layout
        quarter = gy * gy.dtype.type(0.25)
        for out in _corners(gx):
            out[...] = quarter
        return variables(gx)


def _fits(x) -> bool:
    """Maps the fast nodes pool: NumPy float, 4-d, both sides at least 2 (else Chainer's)."""
    return use_fast(x) and x.ndim == 4 and min(x.shape[2:]) >= 2


def max_pooling_2x2(x):
    """Drop-in for ``F.max_pooling_2d(x, 2, stride=2, cover_all=False)``, fast on NumPy."""
    if not _fits(x):
        return chainer_max_pooling_2x2(x)
    y, = MaxPooling2x2().apply((x,))
    return y


def average_pooling_2x2(x):
    """Drop-in for ``F.average_pooling_2d(x, 2, stride=2)``, fast on NumPy.

    For odd sides this floors like :func:`max_pooling_2x2`, where Chainer's
    average pooling (which has no ``cover_all`` of its own) also floors.
    """
    if not _fits(x):
        return chainer_average_pooling_2x2(x)
    y, = AveragePooling2x2().apply((x,))
    return y
