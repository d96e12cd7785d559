"""The least-squares GAN's loss term as one node: ``0.5 mean((y - c)^2)``.

Written with Chainer's functions (:func:`gan_trainer.losses.least_squares_real`
before this module), each of the default run's three loss terms per
iteration was four nodes forward (``y - 1``, ``square``, ``mean``, ``* 0.5``)
and, since Chainer's backward passes are themselves built of functions,
five more nodes in the backward pass (the constants, the mean's broadcast,
the square's two products): about forty nodes an iteration for a sum over
64 numbers, each costing Chainer's bookkeeping, several times the
arithmetic (``benchmarks/profile_run.py --nodes`` lists the nodes of a run).
:func:`half_mean_square` is one node with the same arithmetic, operation
for operation, on NumPy or CuPy arrays:

* forward ``d = y + (-c)``, ``d * d``, its ``mean()`` and ``0.5 *`` it, in
  ``y``'s dtype, as Chainer's functions do;
* backward ``((0.5 * gy) * (1 / n)) * 2.0``, a scalar in ``y``'s dtype,
  times ``d``: the products Chainer's backward pass computes, in its
  order, so the gradient has the same bits (``tests/test_losses.py``
  compares both, value and gradient, bit for bit).

Double backprop (a penalty that differentiates a loss) runs Chainer's own
functions at the retained input, as the other fast nodes do.
"""

from __future__ import annotations

import chainer
import chainer.functions as F
from chainer import backend

from gan_trainer.ops._common import FastNode, reference_backward, variables


class HalfMeanSquare(FastNode):
    """``0.5 * mean((y - target)^2)`` of a float array ``y``, a scalar (0-d) output."""

    def __init__(self, target: float):
        self.target = target

    def forward(self, inputs):
        y, = inputs
        self.retain_inputs((0,))
        xp = backend.get_array_module(y)
        dtype = y.dtype.type
        d = y + dtype(-self.target) if self.target != 0 else y
        self.d = d
        loss = dtype(0.5) * xp.asarray(xp.square(d, dtype=y.dtype).mean())
        return xp.asarray(loss, dtype=y.dtype),

    def backward(self, indexes, grad_outputs):
        if chainer.config.enable_backprop:
            return reference_backward(self, indexes, grad_outputs, self.reference)
        gy = grad_outputs[0].array
        dtype = gy.dtype.type
        d = self.d
        scale = dtype(2.0) * (dtype(1.0 / d.size) * (dtype(0.5) * gy))
        return variables(scale * d)

    def reference(self, y):
        return 0.5 * F.mean(F.square(y - self.target if self.target != 0 else y))


def half_mean_square(y, target: float = 0.0) -> chainer.Variable:
    """``0.5 mean((y - target)^2)``: Chainer's ``0.5 * F.mean(F.square(y - target))``
    in one node (the same bits, value and gradient; see the module docstring)."""
    return HalfMeanSquare(float(target)).apply((y,))[0]
