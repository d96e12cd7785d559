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

The losses in :data:`LOSSES`:

* ``'nonsaturating'`` (Goodfellow et al. 2014, the DCGAN paper's choice):
  binary cross-entropy for D, ``-log D(G(z))`` for G. The default.
* ``'minimax'`` (Goodfellow et al. 2014): the original saturating game;
  mostly of historical and didactic interest.
* ``'hinge'`` (Lim & Ye 2017; Miyato et al. 2018, SNGAN): D minimises
  ``mean(relu(1 - y_real)) + mean(relu(1 + y_fake))``, G minimises
  ``-mean(y_fake)``. D stops pushing a logit once it is beyond the margin,
  so its gradient is zero there; the usual choice with spectral norm.
* ``'lsgan'`` (Mao et al. 2017, codes a=0, b=1, c=1): least squares,
  ``0.5 mean((y_real - 1)^2) + 0.5 mean(y_fake^2)`` for D and
  ``0.5 mean((y_fake - 1)^2)`` for G. Fakes far on the correct side of the
  boundary are still pulled towards it, which fights vanishing gradients.
  Here D's targets are 0 and 1, so its natural decision threshold is 0.5;
  the ``dis/acc_*`` values the updater reports still threshold at 0.
* ``'wasserstein'`` (Arjovsky et al. 2017): D is a critic maximising
  ``mean(y_real) - mean(y_fake)``, G minimises ``-mean(y_fake)``. Only
  meaningful with a Lipschitz constraint on D, in practice the gradient
  penalty :class:`gan_trainer.penalties.WGANGP` (Gulrajani et al. 2017),
  a D without BatchNorm and several D steps per G step (``n_dis=5``). The
  critic's values have no fixed offset, so the reported accuracies (sign of
  the logit) are only a rough indication.

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


def hinge_real(y: chainer.Variable) -> chainer.Variable:
    """``mean(relu(1 - y))``: zero (and no gradient) once ``y > 1``."""
    return F.mean(F.relu(1 - y))


def hinge_fake(y: chainer.Variable) -> chainer.Variable:
    """``mean(relu(1 + y))``: zero (and no gradient) once ``y < -1``."""
    return F.mean(F.relu(1 + y))


def gen_linear(y_fake: chainer.Variable) -> chainer.Variable:
    """``-mean(y)``: G raises D's score of its fakes (hinge and WGAN)."""
    return -F.mean(y_fake)


def least_squares_real(y: chainer.Variable) -> chainer.Variable:
    """``0.5 mean((y - 1)^2)``: least squares towards the "real" code 1."""
    return 0.5 * F.mean(F.square(y - 1))


def least_squares_fake(y: chainer.Variable) -> chainer.Variable:
    """``0.5 mean(y^2)``: least squares towards the "fake" code 0."""
    return 0.5 * F.mean(F.square(y))


def critic_real(y: chainer.Variable) -> chainer.Variable:
    """``-mean(y)``: the critic raises its score of real images."""
    return -F.mean(y)


def critic_fake(y: chainer.Variable) -> chainer.Variable:
    """``mean(y)``: the critic lowers its score of generated images."""
    return F.mean(y)


#: The DCGAN paper's loss: G maximises ``log D(G(z))`` instead of minimising
#: ``log(1 - D(G(z)))`` (the "-log D trick"), which keeps G's gradient strong
#: while D wins; D's loss is the usual binary cross-entropy.
NONSATURATING = GANLoss(dis_real=bce_real, dis_fake=bce_fake, gen=bce_real)

#: The original minimax objective of Goodfellow et al. (2014).
MINIMAX = GANLoss(dis_real=bce_real, dis_fake=bce_fake, gen=gen_minimax)

#: Hinge loss (Lim & Ye 2017; SNGAN, Miyato et al. 2018).
HINGE = GANLoss(dis_real=hinge_real, dis_fake=hinge_fake, gen=gen_linear)

#: Least-squares GAN (Mao et al. 2017) with codes a=0 (fake), b=1 (real),
#: c=1 (what G wants D to say about its fakes).
LSGAN = GANLoss(dis_real=least_squares_real, dis_fake=least_squares_fake, gen=least_squares_real)

#: Wasserstein GAN (Arjovsky et al. 2017); pair it with a gradient penalty.
WASSERSTEIN = GANLoss(dis_real=critic_real, dis_fake=critic_fake, gen=gen_linear)

#: Loss names accepted by ``GANUpdater(loss=...)`` and ``--loss``.
LOSSES: dict[str, GANLoss] = {
    'nonsaturating': NONSATURATING,
    'minimax': MINIMAX,
    'hinge': HINGE,
    'lsgan': LSGAN,
    'wasserstein': WASSERSTEIN,
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
