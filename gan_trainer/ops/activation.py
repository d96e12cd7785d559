"""LeakyReLU for NumPy without boolean-mask indexing.

Chainer's CPU LeakyReLU copies its input and multiplies the negative
entries through a boolean mask (``y[x < 0] *= slope``), a gather and a
scatter that cost ~35 times more than the arithmetic (8.4 ms against 0.24
ms on a 64x14x14x64 map here). For ``0 < slope <= 1``, ``leaky_relu(x) =
max(x, slope * x)``: two vectorised passes into one new array, which keeps
the input's memory layout (channel-last maps stay channel-last). The
backward pass builds the factor ``1`` or ``slope`` from the sign of the
*output* (the input's, for a positive slope) with arithmetic, not masks.
"""

from __future__ import annotations

import chainer
import chainer.functions as F
import numpy

from gan_trainer.ops._common import reference_backward, use_fast, variables


class LeakyReLU(chainer.FunctionNode):
    """``max(x, slope * x)`` for ``0 < slope <= 1``."""

    def __init__(self, slope: float):
        self.slope = slope

    def forward(self, inputs):
        x, = inputs
        self.retain_inputs((0,))  # for double backprop only; x is alive anyway
        y = numpy.multiply(x, x.dtype.type(self.slope))
        numpy.maximum(x, y, out=y)
        self.retain_outputs((0,))
        return y,

    def backward(self, indexes, grad_outputs):
        if chainer.config.enable_backprop:
            return reference_backward(self, indexes, grad_outputs, self.reference)
        y = self.get_retained_outputs()[0].array
        gy = grad_outputs[0].array
        # Chainer 7's convention: slope for x <= 0, 1 for x > 0. The factor is
        # built arithmetically: numpy.where/copyto with a random mask branch
        # per element and run ~9x slower.
        slope = gy.dtype.type(self.slope)
        gx = (y > 0).astype(gy.dtype)
        gx *= 1 - slope
        gx += slope
        gx *= gy
        return variables(gx)

    def reference(self, x):
        return F.leaky_relu(x, self.slope)


def leaky_relu(x, slope: float = 0.2):
    """Drop-in for :func:`chainer.functions.leaky_relu`, fast on NumPy.

    The fast path needs ``0 < slope <= 1`` and a NumPy float32/float64
    input; anything else calls Chainer's function.
    """
    if not 0 < slope <= 1 or not use_fast(x):
        return F.leaky_relu(x, slope)
    y, = LeakyReLU(slope).apply((x,))
    return y
