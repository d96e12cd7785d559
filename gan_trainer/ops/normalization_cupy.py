"""Batch normalization for CuPy without cuDNN, reducing one contiguous axis at a time.

CuPy 14 dropped cuDNN, so Chainer 7's GPU batch normalization computes the
batch statistics with ``x.mean(axis=(0, 2, 3))`` and ``x.var(axis=(0, 2,
3))`` of an ``(N, C, H, W)`` array. Measured on an H100 this was the largest
single cost of a DCGAN step (``benchmarks/throughput.py --device gpu
--profile``). Here every reduction first sums the contiguous ``H*W`` axis
of the ``(N, C, H*W)`` view, which gives ``N*C`` independent sums, and then
sums the small ``(N, C)`` result over ``N``. The squared deviations and
``sum(gy * x_hat)`` are reduction kernels that read ``x`` once without
temporaries, and the output and the input gradient are one elementwise
kernel each. ``x_hat`` is recomputed in those kernels instead of being
stored.

The statistics follow Chainer exactly (biased batch variance, running
variance updated with the unbiased one). Double backprop (gradient
penalties) re-runs Chainer's own function, as the CPU nodes do.
"""

from __future__ import annotations

import chainer
from chainer.backends import cuda

from gan_trainer.ops._common import reference_backward, variables
from gan_trainer.ops.normalization import BatchNormalization


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


class BatchNormalizationCuPy(BatchNormalization):
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
