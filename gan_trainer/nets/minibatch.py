"""Minibatch discrimination (Salimans et al. 2016): D sees statistics across the batch.

A D that scores each image on its own cannot tell a batch of one digit
repeated 64 times from a varied one, so a generator that collapses onto a
few modes is not punished for it. Salimans et al. ("Improved Techniques for
Training GANs", section 3.2) let each image's score depend on how close it is
to the other images of its batch: D's features ``f(x_i)`` (``A`` numbers) are
multiplied by a learned tensor ``T`` (``A x B x C``) into ``B`` rows
``M_i,b`` of ``C`` numbers each, and for every kernel ``b``

    ``o(x_i)_b = sum_{j != i} exp(-||M_i,b - M_j,b||_1)``

counts (softly) the images of the batch that are near ``x_i`` in that
kernel's space. The ``B`` counts are appended to the features before D's
read-out. The sum leaves out ``j = i`` (whose term is always 1), as the
authors' code does (improved-gan's ``MinibatchLayer`` adds 1e6 on the
diagonal) and as chainer-gan-lib's ``minibatch_discrimination/net.py``
does (it subtracts 1); ``T`` has no bias, because a bias cancels in
``M_i,b - M_j,b`` and would only be a parameter that never receives a
gradient. The defaults ``B = 100``, ``C = 5`` are chainer-gan-lib's (its
CIFAR-10 D) and the paper's order of magnitude.

D computes the statistics over the batch it is given: with the updater's
``separate_batches=True`` (the default) a real batch is compared with
itself and a fake batch with itself, which is the point (a collapsed fake
batch has large counts, a real one does not). Memory and time grow with
``batch^2 * B * C``: 64 x 64 x 500 numbers at the default batch, small
beside the convolutions.
"""

from __future__ import annotations

import chainer
import chainer.functions as F
import chainer.links as L
from chainer import initializers

__all__ = ['MinibatchDiscrimination']


class MinibatchDiscrimination(chainer.Chain):
    """Appends ``B`` cross-batch closeness counts to each row of features.

    Args:
        in_size: ``A``, the number of features per image.
        kernels: ``B``, how many closeness counts (kernels) to append.
        kernel_dim: ``C``, the dimension of each kernel's space.
        initialW: Initializer of ``T`` (stored as the weight of the linear
            link ``T``, shape ``(B * C, A)``); N(0, 0.02) as the DCGAN nets.
    """

    def __init__(self, in_size: int, kernels: int = 100, kernel_dim: int = 5,
                 initialW=None) -> None:
        super().__init__()
        self.kernels = kernels
        self.kernel_dim = kernel_dim
        with self.init_scope():
            self.T = L.Linear(in_size, kernels * kernel_dim, nobias=True,
                              initialW=initialW or initializers.Normal(0.02))

    def counts(self, h) -> chainer.Variable:
        """``o(x_i)_b`` for every image ``i`` and kernel ``b``: ``(N, A) -> (N, B)``."""
        n = h.shape[0]
        m = F.reshape(self.T(h), (n, self.kernels, self.kernel_dim))  # (N, B, C)
        shape = (n, n, self.kernels, self.kernel_dim)
        # |M_i,b - M_j,b| for every pair (i, j): (N, N, B, C), then the L1 norm over C.
        diff = F.broadcast_to(F.expand_dims(m, 1), shape) - F.broadcast_to(
            F.expand_dims(m, 0), shape)
        l1 = F.sum(F.absolute(diff), axis=3)  # (N, N, B)
        # The sum over j includes j = i, whose term is exp(0) = 1: take it out.
        return F.sum(F.exp(-l1), axis=1) - 1.0

    def forward(self, h) -> chainer.Variable:
        """``(N, A)`` features (or any ``(N, ...)``, flattened) -> ``(N, A + B)``."""
        h = F.reshape(h, (h.shape[0], -1))
        return F.concat([h, self.counts(h)], axis=1)
