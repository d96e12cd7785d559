"""LeakyReLU and ELU for NumPy without boolean-mask indexing.

Chainer's CPU LeakyReLU copies its input and multiplies the negative
entries through a boolean mask (``y[x < 0] *= slope``), a gather and a
scatter that cost many times more than the arithmetic (no script here
times it alone; ``benchmarks/throughput.py --profile`` shows the step it is
part of). For ``0 < slope <= 1``, ``leaky_relu(x) =
max(x, slope * x)``: two vectorised passes into one new array, which keeps
the input's memory layout (channel-last maps stay channel-last). The
backward pass builds the factor ``1`` or ``slope`` from the sign of the
*output* (the input's, for a positive slope) with arithmetic, not masks.

Chainer's ELU does the same with a mask (``y[x <= 0] = alpha *
expm1(y[x <= 0])``), which on the channel-last maps of the Keras DCGAN
notes' G costs many times ``max(x, alpha * expm1(min(x, 0)))``, three
passes (:class:`ELU`; ``benchmarks/profile_run.py --nodes -- --preset
keras-dcgan-notes`` shows each node's time in a run, figures in
benchmarks/RESULTS.md).
"""

from __future__ import annotations

import chainer
import chainer.functions as F
import numpy

from gan_trainer.ops import onednn_eltwise
from gan_trainer.ops._common import FastNode, reference_backward, use_fast, variables


class _Activated(FastNode):
    """A node whose output is an activation's: the backward pass needs only
    that output (:func:`activation_grad`), or, for a differentiable backward
    pass, Chainer's functions on the retained input (``reference``).
    Subclasses set ``activation`` and ``slope``."""

    def backward(self, indexes, grad_outputs):
        if chainer.config.enable_backprop:
            return reference_backward(self, indexes, grad_outputs, self.reference)
        y = self.get_retained_outputs()[0].array
        return variables(activation_grad(y, grad_outputs[0].array, self.activation, self.slope))

    def forward(self, inputs):
        x, = inputs
        self.retain_inputs((0,))  # for double backprop only; x is alive anyway
        y = self.activate(x)
        self.retain_outputs((0,))
        return y,

    def activate(self, x: numpy.ndarray) -> numpy.ndarray:
        """The activation of ``x`` in a new array (the forward pass on arrays)."""
        raise NotImplementedError


class LeakyReLU(_Activated):
    """``max(x, slope * x)`` for ``0 < slope <= 1``."""

    activation = 'leaky_relu'

    def __init__(self, slope: float):
        self.slope = slope

    def activate(self, x):
        y = numpy.multiply(x, x.dtype.type(self.slope))
        numpy.maximum(x, y, out=y)
        return y

    def reference(self, x):
        return F.leaky_relu(x, self.slope)


class ELU(_Activated):
    """``alpha * expm1(x)`` for ``x <= 0``, ``x`` above, for ``alpha > 0``."""

    activation = 'elu'

    def __init__(self, alpha: float):
        self.slope = alpha

    def activate(self, x):
        y = numpy.minimum(x, 0)  # the input's layout (channel-last maps stay so)
        numpy.expm1(y, out=y)
        if self.slope != 1:
            y *= x.dtype.type(self.slope)
        if self.slope <= 1:
            # alpha * expm1(x) >= x for x <= 0 when alpha <= 1 (equal at 0), and 0 < x above.
            numpy.maximum(x, y, out=y)
        else:
            y += numpy.maximum(x, 0)
        return y

    def reference(self, x):
        return F.elu(x, self.slope)


def elu(x, alpha: float = 1.0):
    """Drop-in for :func:`chainer.functions.elu`, fast on NumPy.

    The fast path needs ``alpha > 0`` (then ``x > 0`` exactly where the
    output is, which the backward pass uses) and a NumPy float32/float64
    input; anything else calls Chainer's function.
    """
    if not alpha > 0 or not use_fast(x):
        return F.elu(x, alpha)
    y, = ELU(alpha).apply((x,))
    return y


def leaky_relu(x, slope: float = 0.2):
    """Drop-in for :func:`chainer.functions.leaky_relu`, fast on NumPy.

    The fast path needs ``0 < slope <= 1`` and a NumPy float32/float64
    input; anything else calls Chainer's function.
    """
    if not 0 < slope <= 1 or not use_fast(x):
        return F.leaky_relu(x, slope)
    y, = LeakyReLU(slope).apply((x,))
    return y


# --- Activations fused into the fast nodes (conv, deconv, BN) ----------------------

#: Activations the fast nodes can apply to their output themselves.
ACTIVATIONS = ('relu', 'leaky_relu', 'tanh')


def check_activation(activation, slope) -> None:
    """Raises ValueError unless ``activation`` is None or in :data:`ACTIVATIONS`
    (LeakyReLU with ``0 < slope <= 1``)."""
    if activation not in (None, *ACTIVATIONS):
        raise ValueError(f'activation must be None or one of {ACTIVATIONS}, got {activation!r}')
    if activation == 'leaky_relu' and not 0 < slope <= 1:
        raise ValueError(f'slope must be in (0, 1] for a fused leaky_relu, got {slope!r}')


def activate(y, activation, slope):
    """Chainer's function for ``activation`` (the reference and the fallback)."""
    if activation is None:
        return y
    if activation == 'relu':
        return F.relu(y)
    if activation == 'leaky_relu':
        return F.leaky_relu(y, slope)
    return F.tanh(y)


def activation_grad(y: numpy.ndarray, gy: numpy.ndarray, activation, slope) -> numpy.ndarray:
    """``gy`` times the activation's derivative, from the activation's output ``y``
    (oneDNN's one pass for (leaky) ReLU where it can, :mod:`.onednn_eltwise`)."""
    if activation is None:
        return gy
    g = onednn_eltwise.activation_grad(y, gy, activation, slope)
    if g is not None:
        return g
    if activation == 'tanh':
        g = numpy.multiply(y, y)
        numpy.subtract(1, g, out=g)
    elif activation == 'elu':  # 1 for y > 0, alpha * exp(x) = y + alpha below
        g = numpy.minimum(y, 0)
        g += y.dtype.type(slope)
        if slope != 1:
            g += (y > 0).astype(y.dtype) * y.dtype.type(1 - slope)
    else:  # relu / leaky relu: 1 for y > 0, else 0 / slope (Chainer 7's convention at 0)
        # Built arithmetically: numpy.where/copyto with a random mask branch
        # per element and run ~9x slower.
        g = (y > 0).astype(y.dtype)
        if activation == 'leaky_relu':
            s = y.dtype.type(slope)
            g *= 1 - s
            g += s
    g *= gy
    return g


def activate_in_place(y: numpy.ndarray, activation, slope) -> None:
    """``activation(y)`` into ``y`` itself (the values of Chainer's functions; oneDNN's
    one pass for (leaky) ReLU where it can, :mod:`.onednn_eltwise`)."""
    if onednn_eltwise.activate_in_place(y, activation, slope):
        return
    if activation == 'relu':
        numpy.maximum(y, 0, out=y)
    elif activation == 'leaky_relu':
        numpy.maximum(y, y * y.dtype.type(slope), out=y)
    else:
        numpy.tanh(y, out=y)


def activated(y, activation, slope):
    """``activation(y)`` as separate functions: this module's LeakyReLU, Chainer's others."""
    return leaky_relu(y, slope) if activation == 'leaky_relu' else activate(y, activation, slope)


class ShiftedActivation(_Activated):
    """``activation(x + shift)`` for a constant ``shift`` (no gradient flows to it).

    Chainer's DCGAN example adds fresh Gaussian noise to each of D's hidden
    maps right before the activation. As two nodes (an add, then the
    activation) that is two passes forward, a new array each, and the
    add's own node in the graph; one node computes the sum into its output
    and activates that in place, and its backward pass needs only the
    output (the activation's derivative), as :func:`activation_grad` does.
    """

    def __init__(self, shift: numpy.ndarray, activation: str, slope: float):
        self.shift, self.activation, self.slope = shift, activation, slope

    def forward(self, inputs):
        x, = inputs
        self.retain_inputs((0,))  # for double backprop only; x is alive anyway
        y = numpy.add(x, self.shift)  # the inputs' layout (channel-last maps stay so)
        activate_in_place(y, self.activation, self.slope)
        self.retain_outputs((0,))
        return y,

    def reference(self, x):
        return activate(x + self.shift, self.activation, self.slope)


def shifted_activation(x, shift, activation: str, slope: float = 0.2):
    """``activation(x + shift)`` as one node on NumPy; ``shift`` is a constant array.

    ``activation`` is one of :data:`ACTIVATIONS`; ``shift`` has ``x``'s
    shape and dtype (best stored in the same layout). Anything the fast path
    does not take (CuPy, float16, the fast functions off) runs as Chainer's
    add and activation.
    """
    check_activation(activation, slope)
    array = x.array if isinstance(x, chainer.Variable) else x
    if activation is None or not use_fast(x) or not isinstance(shift, numpy.ndarray) or (
            shift.dtype != array.dtype or shift.shape != array.shape):
        return activate(x + shift, activation, slope)
    y, = ShiftedActivation(shift, activation, slope).apply((x,))
    return y
