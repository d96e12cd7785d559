"""Batch normalization in one pass over channel-last rows (NumPy), and its CuPy twin.

**NumPy** (:class:`BatchNormalizationNumPy`). Chainer's CPU batch
normalization reduces over axes ``(0, 2, 3)`` of an ``(N, C, H, W)`` array
and broadcasts per-channel vectors back with ``expand_dims``, which costs
strided reductions and temporaries. Here the map is viewed as rows
``(N*H*W, C)`` (free for the channel-last maps the fast convolutions make),
so every reduction is a contiguous column sum and every broadcast a row
vector; the normalized ``x_hat`` is kept for the backward pass, which is
then three column sums and two row-vector products. Float32 rows go to
oneDNN's kernel instead where it is loaded and switched on
(:mod:`.onednn_norm`: fewer passes, all threads, ReLU fused); the NumPy
arithmetic stays for float64, the switch off, and what oneDNN refuses.

**CuPy** (:class:`BatchNormalizationCuPy`). CuPy 14 dropped cuDNN, so
Chainer 7's GPU batch normalization computes the batch statistics with
``x.mean(axis=(0, 2, 3))`` and ``x.var(axis=(0, 2, 3))`` of an ``(N, C, H,
W)`` array. Measured on an H100 this was the largest single cost of a
DCGAN step (``benchmarks/throughput.py --device gpu --profile``). Here
every reduction first sums the contiguous ``H*W`` axis of the ``(N, C,
H*W)`` view, which gives ``N*C`` independent sums, and then sums the small
``(N, C)`` result over ``N``. The squared deviations and ``sum(gy *
x_hat)`` are reduction kernels that read ``x`` once without temporaries,
and the output and the input gradient are one elementwise kernel each.
``x_hat`` is recomputed in those kernels instead of being stored.

Training-mode statistics follow Chainer exactly in both: the batch
variance is the biased one, and the running variance is updated with the
unbiased one (``m / (m - 1)`` times it), with ``running = decay * running +
(1 - decay) * batch``. Double backprop (gradient penalties) re-runs
Chainer's own function. Both nodes live in this one module (the CuPy node
extends the NumPy one) so that :func:`batch_normalization` picks either
without an import cycle; CuPy itself is only touched for CuPy inputs.
"""

from __future__ import annotations

import chainer
import chainer.functions as F
import numpy
from chainer.backends import cuda

from gan_trainer.ops import onednn_norm
from gan_trainer.ops._common import (
    FastNode,
    as_rows,
    from_rows,
    reference_backward,
    use_fast,
    use_fast_cupy,
    variables,
)
from gan_trainer.ops.activation import (
    activate,
    activate_in_place,
    activated,
    activation_grad,
    check_activation,
)


class BatchNormalizationNumPy(FastNode):
    """Training-mode batch normalization over all axes but axis 1, then
    ``activation`` (None, ``'relu'`` or ``'leaky_relu'``) in the same node."""

    def __init__(self, eps: float, running_mean, running_var, decay: float, *,
                 activation=None, slope: float = 0.2):
        self.eps = eps
        self.running_mean = running_mean
        self.running_var = running_var
        self.decay = decay
        self.activation = activation
        self.slope = slope
        self._onednn = None  # (problem, rows, mean, var, workspace) of a oneDNN forward

    def forward(self, inputs):
        self.retain_inputs((0, 1, 2))
        if self.activation is not None:
            # The backward pass needs only this output (the activation's).
            self.retain_outputs((0,))
        return self.normalize(*inputs),

    def normalize(self, x, gamma, beta) -> numpy.ndarray:
        """The forward pass on arrays, no graph; keeps what :meth:`gradients` needs.

        Also the second part of a fused block (:mod:`.blocks`). Float32
        maps go to oneDNN where it is loaded and switched on
        (:mod:`.onednn_norm`), the rest to the NumPy arithmetic below.
        """
        rows = as_rows(x)                      # (M, C)
        m = rows.shape[0]
        self._onednn = None
        prob = (onednn_norm.problem(rows.shape, self.eps, self.activation == 'relu')
                if onednn_norm.available(x, gamma, beta) else None)
        if prob is not None:
            rows = onednn_norm.rows_for(rows)
            gamma, beta = numpy.ascontiguousarray(gamma), numpy.ascontiguousarray(beta)
            y, mean, var, ws = prob.forward(rows, gamma, beta)
            if self.activation == 'leaky_relu':  # oneDNN fuses ReLU only (see there)
                activate_in_place(y, self.activation, self.slope)
            self._onednn = (prob, rows, mean, var, ws)
        else:
            mean = rows.mean(axis=0)
            x_hat = rows - mean
            var = numpy.einsum('ij,ij->j', x_hat, x_hat) / m
            inv_std = 1 / numpy.sqrt(var + self.eps)
            x_hat *= inv_std
            y = x_hat * gamma
            y += beta
            if self.activation is not None:
                # In place: the separate node's pass and array are saved.
                activate_in_place(y, self.activation, self.slope)
            self.x_hat, self.inv_std = x_hat, inv_std
        if self.running_mean is not None:
            d = self.decay
            self.running_mean *= d
            self.running_mean += (1 - d) * mean
            self.running_var *= d
            self.running_var += (1 - d) * (m / max(m - 1, 1)) * var
        return from_rows(y, x.shape)

    def backward(self, indexes, grad_outputs):
        if chainer.config.enable_backprop:
            return reference_backward(self, indexes, grad_outputs, self.reference)
        gamma = self.get_retained_inputs()[1].array
        y = self.get_retained_outputs()[0].array if self.activation is not None else None
        grads = self.gradients(gamma, grad_outputs[0].array, y, 0 in indexes)
        return variables(*(grads[i] for i in indexes))

    def gradients(self, gamma, gy, y, need_x: bool) -> tuple:
        """``(gx, ggamma, gbeta)`` on arrays (``gx`` None unless ``need_x``); ``y`` is
        the output, which the activation's derivative needs (None without one)."""
        if self._onednn is not None:
            return self._onednn_gradients(gamma, gy, y, need_x)
        if self.activation is not None:
            gy = activation_grad(y, gy, self.activation, self.slope)
        shape = gy.shape
        gy = as_rows(gy)
        x_hat = self.x_hat
        m = gy.shape[0]
        gbeta = gy.sum(axis=0)
        ggamma = numpy.einsum('ij,ij->j', gy, x_hat)
        gx = None
        if need_x:
            # gx = gamma * inv_std * (gy - (x_hat * ggamma + gbeta) / m)
            gx = x_hat * (ggamma / -m)
            gx -= gbeta / m
            gx += gy
            gx *= gamma * self.inv_std
            gx = from_rows(gx, shape)
        return gx, ggamma.astype(gamma.dtype, copy=False), gbeta

    def _onednn_gradients(self, gamma, gy, y, need_x: bool) -> tuple:
        prob, rows, mean, var, ws = self._onednn
        if self.activation == 'leaky_relu':  # ReLU's mask is in the workspace
            gy = activation_grad(y, gy, self.activation, self.slope)
        shape = gy.shape
        gx, ggamma, gbeta = prob.backward(rows, mean, var, ws,
                                          onednn_norm.rows_for(as_rows(gy)),
                                          numpy.ascontiguousarray(gamma))
        return (from_rows(gx, shape) if need_x else None), ggamma, gbeta

    def reference(self, x, gamma, beta):
        y = F.batch_normalization(x, gamma, beta, eps=self.eps)
        return activate(y, self.activation, self.slope)


# --- CuPy ----------------------------------------------------------------------


def _channel_sums(x3):
    """``(N, C, K)`` -> per-channel sums ``(C,)``: the contiguous axis first."""
    return x3.sum(axis=2).sum(axis=0)


def _squared_deviations(x3, s1, inv_m):
    """Per-channel ``sum((x - mean)**2)`` of ``(N, C, K)``, ``mean = s1 * inv_m``.

    One pass over ``x`` and no temporary: the mean is formed in the kernel.
    """
    return cuda.reduce(
        'T x, T s1, T inv_m', 'T y', '(x - s1 * inv_m) * (x - s1 * inv_m)', 'a + b',
        'y = a', '0', 'gan_trainer_bn_sqdev')(x3, s1[None, :, None], inv_m, axis=2).sum(axis=0)


def _statistics(s1, s2, inv_m, eps):
    """Mean, biased variance and ``1 / sqrt(var + eps)`` from the two sums, in one kernel."""
    return cuda.elementwise(
        'T s1, T s2, T inv_m, T eps', 'T mean, T var, T inv_std',
        'mean = s1 * inv_m; var = s2 * inv_m; inv_std = rsqrt(var + eps);',
        'gan_trainer_bn_stats')(s1, s2, inv_m, eps)


def _gy_x_hat(gy3, x3, mean, inv_std):
    """Per-channel ``sum(gy * (x - mean) * inv_std)``: gamma's gradient."""
    return cuda.reduce(
        'T gy, T x, T mean, T inv_std', 'T y', 'gy * (x - mean) * inv_std', 'a + b',
        'y = a', '0', 'gan_trainer_bn_gy_xhat')(
            gy3, x3, mean[None, :, None], inv_std[None, :, None], axis=2).sum(axis=0)


class BatchNormalizationCuPy(BatchNormalizationNumPy):
    """Training-mode batch normalization over all axes but axis 1, on CuPy.

    Same arguments, statistics and double backprop as the NumPy node it
    extends; only the forward and backward computations differ.
    """

    def forward(self, inputs):
        self.retain_inputs((0, 1, 2))
        x, gamma, beta = inputs
        xp = cuda.cupy
        x3 = xp.ascontiguousarray(x).reshape(x.shape[0], x.shape[1], -1)
        m = x3.shape[0] * x3.shape[2]
        inv_m = x.dtype.type(1 / m)
        s1 = _channel_sums(x3)
        s2 = _squared_deviations(x3, s1, inv_m)
        mean, var, inv_std = _statistics(s1, s2, inv_m, x.dtype.type(self.eps))
        self.mean, self.inv_std = mean, inv_std
        y = cuda.elementwise(
            'T x, T mean, T inv_std, T gamma, T beta', 'T y',
            'y = (x - mean) * inv_std * gamma + beta', 'gan_trainer_bn_fwd')(
                x3, mean[None, :, None], inv_std[None, :, None],
                gamma[None, :, None], beta[None, :, None])
        if self.running_mean is not None:
            # As Chainer: the running statistics keep their own dtype (U).
            u = self.running_mean.dtype.type
            cuda.elementwise(
                'T mean, T var, U decay, U adjust', 'U r_mean, U r_var',
                'r_mean = r_mean * decay + mean * (1 - decay);'
                'r_var = r_var * decay + var * (1 - decay) * adjust;',
                'gan_trainer_bn_running')(
                    mean, var, u(self.decay), u(m / max(m - 1, 1)),
                    self.running_mean, self.running_var)
        return y.reshape(x.shape),

    def backward(self, indexes, grad_outputs):
        if chainer.config.enable_backprop:
            return reference_backward(self, indexes, grad_outputs, self.reference)
        x, gamma = (v.array for v in self.get_retained_inputs()[:2])
        gy = grad_outputs[0].array
        xp = cuda.cupy
        n, c = x.shape[:2]
        x3 = xp.ascontiguousarray(x).reshape(n, c, -1)
        gy3 = xp.ascontiguousarray(gy).reshape(n, c, -1)
        m = n * x3.shape[2]
        mean, inv_std = self.mean, self.inv_std
        gbeta = _channel_sums(gy3)
        ggamma = _gy_x_hat(gy3, x3, mean, inv_std)
        gx = None
        if 0 in indexes:
            gx = cuda.elementwise(
                'T gy, T x, T mean, T inv_std, T gamma, T ggamma, T gbeta, T inv_m', 'T gx',
                'gx = gamma * inv_std * (gy - ((x - mean) * inv_std * ggamma + gbeta) * inv_m)',
                'gan_trainer_bn_bwd')(
                    gy3, x3, mean[None, :, None], inv_std[None, :, None],
                    gamma[None, :, None], ggamma[None, :, None], gbeta[None, :, None],
                    x.dtype.type(1 / m)).reshape(x.shape)
        grads = {0: gx, 1: ggamma, 2: gbeta}
        return variables(*(grads[i] for i in indexes))


def batch_normalization(x, gamma, beta, *, eps: float = 2e-5, running_mean=None,
                        running_var=None, decay: float = 0.9, activation=None,
                        slope: float = 0.2):
    """Drop-in for :func:`chainer.functions.batch_normalization` (axis 1), fast on NumPy.

    Normalizes ``x`` ``(N, C, ...)`` per channel with the batch's statistics
    and updates ``running_mean`` / ``running_var`` in place when given.
    CuPy float32/float64 inputs get :class:`BatchNormalizationCuPy`
    (Chainer's GPU function is slow without cuDNN, which CuPy 14 dropped);
    float16 and other inputs go to Chainer's function.

    ``activation`` (``'relu'``, ``'leaky_relu'`` with ``slope``) is applied
    to the output: inside the NumPy node (one node and one pass fewer per
    layer), else as a separate function; the values are the same.
    """
    check_activation(activation, slope)
    if activation == 'tanh':
        raise ValueError("batch_normalization fuses 'relu' and 'leaky_relu' only")
    if x.ndim >= 2 and use_fast_cupy(x, gamma, beta) and gamma.shape == beta.shape == (
            x.shape[1],):
        y, = BatchNormalizationCuPy(eps, running_mean, running_var, decay).apply((x, gamma, beta))
        return activated(y, activation, slope)
    if (not use_fast(x, gamma, beta) or x.ndim < 2
            or not gamma.shape == beta.shape == (x.shape[1],)):  # Chainer's error
        y = F.batch_normalization(x, gamma, beta, eps=eps, running_mean=running_mean,
                                  running_var=running_var, decay=decay)
        return activated(y, activation, slope)
    y, = BatchNormalizationNumPy(eps, running_mean, running_var, decay, activation=activation,
                                 slope=slope).apply((x, gamma, beta))
    return y

