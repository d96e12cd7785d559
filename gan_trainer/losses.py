"""GAN losses as pure functions of the discriminator's logits.

A GAN loss here is a :class:`GANLoss`: three functions that each take D's raw
outputs (logits, any shape, one per image) and return a scalar
``chainer.Variable``:

* ``dis_real(y_real)``: D's loss on real images,
* ``dis_fake(y_fake)``: D's loss on generated images,
* ``gen(y_fake)``: G's loss on generated images.

D's loss is ``dis_real + dis_fake``; keeping the two halves separate lets the
updater feed real and fake batches through D in separate passes (so
BatchNorm never mixes them) and report ``dis/loss_real`` and
``dis/loss_fake``. With ``sigmoid(y)`` the probability D assigns to "real",
``softplus(-y) = -log(sigmoid(y))`` and ``softplus(y) = -log(1 - sigmoid(y))``
give the cross-entropy terms without overflow for large ``|y|``.

Choose a loss by name through :data:`LOSSES`; adding a GAN variant means
adding an entry here, not a new training loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import chainer
import chainer.functions as F

LossFn = Callable[[chainer.Variable], chainer.Variable]


class GANLoss(NamedTuple):
    """The three halves of a GAN objective; each maps logits to a scalar."""

    dis_real: LossFn
    dis_fake: LossFn
    gen: LossFn


def bce_real(y: chainer.Variable) -> chainer.Variable:
    """``mean(-log sigmoid(y))``: cross-entropy with target "real" (1)."""
    return F.mean(F.softplus(-y))


def bce_fake(y: chainer.Variable) -> chainer.Variable:
    """``mean(-log(1 - sigmoid(y)))``: cross-entropy with target "fake" (0)."""
    return F.mean(F.softplus(y))


def gen_minimax(y_fake: chainer.Variable) -> chainer.Variable:
    """G minimises ``mean(log(1 - sigmoid(y)))`` (Goodfellow et al. 2014).

    This is the original (saturating) minimax game: when D confidently
    rejects the fakes early in training, its gradient vanishes.
    """
    return -F.mean(F.softplus(y_fake))


#: The DCGAN paper's loss: G maximises ``log D(G(z))`` instead of minimising
#: ``log(1 - D(G(z)))`` (the "-log D trick"), which keeps G's gradient strong
#: while D wins; D's loss is the usual binary cross-entropy.
NONSATURATING = GANLoss(dis_real=bce_real, dis_fake=bce_fake, gen=bce_real)

#: The original minimax objective of Goodfellow et al. (2014).
MINIMAX = GANLoss(dis_real=bce_real, dis_fake=bce_fake, gen=gen_minimax)

#: Loss names accepted by ``GANUpdater(loss=...)`` and ``--loss``.
LOSSES: dict[str, GANLoss] = {
    'nonsaturating': NONSATURATING,
    'minimax': MINIMAX,
}


def get_loss(loss: str | GANLoss) -> GANLoss:
    """Returns the :class:`GANLoss` named ``loss`` (or ``loss`` itself).

    Raises:
        ValueError: for an unknown name; the message lists the valid ones.
    """
    if isinstance(loss, GANLoss):
        return loss
    try:
        return LOSSES[loss]
    except KeyError:
        raise ValueError(
            f'unknown loss {loss!r}; valid losses: {", ".join(sorted(LOSSES))}'
        ) from None
