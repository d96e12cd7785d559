"""BEGAN's equilibrium: the state ``k_t`` of the ``began`` loss (Berthelot et al. 2017).

In BEGAN ("Boundary Equilibrium Generative Adversarial Networks") D is an
autoencoder (:class:`~gan_trainer.nets.AutoencoderDiscriminator`) and its
outputs are reconstruction errors ``L(v) = mean |v - D(v)|``, one per
image. The players minimise

* D: ``L_D = mean L(x) - k_t mean L(G(z))``,
* G: ``L_G = mean L(G(z))``,

and ``k_t`` (in [0, 1], starting at 0) is moved after every D step by
``k_{t+1} = clip(k_t + lambda_k (gamma mean L(x) - mean L(G(z))), 0, 1)``:
it lets D attend to the fakes only as much as keeps
``E[L(G(z))] = gamma E[L(x)]``, the equilibrium whose ``gamma`` (the
"diversity ratio", 0.5 in chainer-gan-lib's ``example.sh``) trades sample
diversity (high) for quality (low). The paper's convergence measure
``M = mean L(x) + |gamma mean L(x) - mean L(G(z))|`` falls as training
converges; the updater reports it as ``dis/measure`` beside ``dis/k_t``.

:class:`BEGANEquilibrium` is the loss's state (``GANLoss.state``): the
updater calls :meth:`~BEGANEquilibrium.observe` with D's outputs after each
D step and saves ``k_t`` in snapshots through
:meth:`~BEGANEquilibrium.serialize`, so a resumed run continues with the
same ``k_t``. The update uses the same outputs as D's loss of that step
(before D's update), as chainer-gan-lib's ``began/updater.py`` does; the
paper's Algorithm 1 takes ``L(G(z_G))`` from G's own batch instead, which in
the package's default step order (the G step after the D step) is not yet
computed when D's step ends. ``k_t`` is a Python float, so the update and
its snapshot are exact and the same on NumPy and CuPy.
"""

from __future__ import annotations

import chainer
import chainer.functions as F

__all__ = ['BEGANEquilibrium', 'mean_error']


def mean_error(y: chainer.Variable) -> chainer.Variable:
    """``mean L(v)``: the batch's mean reconstruction error (D's real term, G's loss)."""
    return F.mean(y)


class BEGANEquilibrium:
    """``k_t`` and its update, the state of the ``began`` loss.

    Args:
        gamma: The diversity ratio, in (0, 1]; 0.5 in chainer-gan-lib's
            ``example.sh`` (the paper shows 0.3 to 0.7).
        lambda_k: ``k_t``'s learning rate: 0.001 (paper and chainer-gan-lib).
        k: The starting ``k_t``: 0 (the paper).
    """

    def __init__(self, gamma: float = 0.5, *, lambda_k: float = 0.001, k: float = 0.0) -> None:
        if not 0 < gamma <= 1:
            raise ValueError(f'BEGAN gamma must be in (0, 1], got {gamma}')
        if not lambda_k >= 0:
            raise ValueError(f'BEGAN lambda_k must be >= 0, got {lambda_k}')
        if not 0 <= k <= 1:
            raise ValueError(f'BEGAN k (the starting k_t) must be in [0, 1], got {k}')
        self.gamma = float(gamma)
        self.lambda_k = float(lambda_k)
        self.k = float(k)

    def dis_fake(self, y_fake: chainer.Variable) -> chainer.Variable:
        """D's fake term ``-k_t mean L(G(z))``, with the current ``k_t``."""
        return -self.k * F.mean(y_fake)

    def observe(self, y_real, y_fake) -> dict[str, float]:
        """Moves ``k_t`` by one step from D's outputs (arrays) of a D step.

        Returns:
            ``{'k_t': the new k_t, 'measure': M}`` for the updater to report
            (``M`` of the outputs given, before the update of ``k_t``).
        """
        real, fake = float(y_real.mean()), float(y_fake.mean())
        balance = self.gamma * real - fake
        measure = real + abs(balance)
        self.k = min(max(self.k + self.lambda_k * balance, 0.0), 1.0)
        return {'k_t': self.k, 'measure': measure}

    def serialize(self, serializer) -> None:
        """Saves or restores ``k_t``."""
        self.k = float(serializer('k', self.k))

    def __repr__(self) -> str:
        return (f'BEGANEquilibrium(gamma={self.gamma:g}, lambda_k={self.lambda_k:g}, '
                f'k={self.k:g})')
