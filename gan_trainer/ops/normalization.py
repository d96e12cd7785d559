"""Batch normalization for NumPy in one pass over channel-last rows.

Chainer's CPU batch normalization reduces over axes ``(0, 2, 3)`` of an
``(N, C, H, W)`` array and broadcasts per-channel vectors back with
``expand_dims``, which costs strided reductions and temporaries. Here the
map is viewed as rows ``(N*H*W, C)`` (free for the channel-last maps the
fast convolutions make), so every reduction is a contiguous column sum and
every broadcast a row vector; the normalized ``x_hat`` is kept for the
backward pass, which is then three column sums and two row-vector products.

Training-mode statistics follow Chainer exactly: the batch variance is
the biased one, and the running variance is updated with the unbiased
one (``m / (m - 1)`` times it), with ``running = decay * running + (1 -
decay) * batch``.
"""

from __future__ import annotations

import chainer
import chainer.functions as F
import numpy

from gan_trainer.ops._common import (
    as_rows,
    from_rows,
    reference_backward,
    use_fast,
    use_fast_cupy,
    variables,
)


class BatchNormalization(chainer.FunctionNode):
    """Training-mode batch normalization over all axes but axis 1."""

    def __init__(self, eps: float, running_mean, running_var, decay: float):
        self.eps = eps
        self.running_mean = running_mean
        self.running_var = running_var
        self.decay = decay

    def forward(self, inputs):
        self.retain_inputs((0, 1, 2))
        x, gamma, beta = inputs
        rows = as_rows(x)                      # (M, C)
        m = rows.shape[0]
        mean = rows.mean(axis=0)
        x_hat = rows - mean
        var = numpy.einsum('ij,ij->j', x_hat, x_hat) / m
        inv_std = 1 / numpy.sqrt(var + self.eps)
        x_hat *= inv_std
        y = x_hat * gamma
        y += beta
        self.x_hat, self.inv_std = x_hat, inv_std
        if self.running_mean is not None:
            d = self.decay
            self.running_mean *= d
            self.running_mean += (1 - d) * mean
            self.running_var *= d
            self.running_var += (1 - d) * (m / max(m - 1, 1)) * var
        return from_rows(y, x.shape),

    def backward(self, indexes, grad_outputs):
        if chainer.config.enable_backprop:
            return reference_backward(self, indexes, grad_outputs, self.reference)
        gamma = self.get_retained_inputs()[1].array
        gy = as_rows(grad_outputs[0].array)
        x_hat = self.x_hat
        m = gy.shape[0]
        gbeta = gy.sum(axis=0)
        ggamma = numpy.einsum('ij,ij->j', gy, x_hat)
        gx = None
        if 0 in indexes:
            # gx = gamma * inv_std * (gy - (x_hat * ggamma + gbeta) / m)
            gx = x_hat * (ggamma / -m)
            gx -= gbeta / m
            gx += gy
            gx *= gamma * self.inv_std
            gx = from_rows(gx, grad_outputs[0].shape)
        grads = {0: gx, 1: ggamma.astype(gamma.dtype, copy=False), 2: gbeta}
        return variables(*(grads[i] for i in indexes))

    def reference(self, x, gamma, beta):
        return F.batch_normalization(x, gamma, beta, eps=self.eps)


def batch_normalization(x, gamma, beta, *, eps: float = 2e-5, running_mean=None,
                        running_var=None, decay: float = 0.9):
    """Drop-in for :func:`chainer.functions.batch_normalization` (axis 1), fast on NumPy.

    Normalizes ``x`` ``(N, C, ...)`` per channel with the batch's statistics
    and updates ``running_mean`` / ``running_var`` in place when given.
    CuPy float32/float64 inputs get
    :class:`~gan_trainer.ops.normalization_cupy.BatchNormalizationCuPy`
    (Chainer's GPU function is slow without cuDNN, which CuPy 14 dropped);
    float16 and other inputs go to Chainer's function.
    """
    if x.ndim >= 2 and use_fast_cupy(x, gamma, beta):
        # Imported here: that module extends this one's node.
        from gan_trainer.ops.normalization_cupy import BatchNormalizationCuPy

        y, = BatchNormalizationCuPy(eps, running_mean, running_var, decay).apply((x, gamma, beta))
        return y
    if not use_fast(x, gamma, beta) or x.ndim < 2:
        return F.batch_normalization(x, gamma, beta, eps=eps, running_mean=running_mean,
                                     running_var=running_var, decay=decay)
    y, = BatchNormalization(eps, running_mean, running_var, decay).apply((x, gamma, beta))
    return y
