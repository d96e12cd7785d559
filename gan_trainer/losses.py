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
* ``'rpgan'`` (relativistic pairing GAN, Jolicoeur-Martineau 2019; the loss
  of R3GAN, Huang et al. 2024): D minimises ``mean(softplus(-(y_real -
  y_fake)))`` and G ``mean(softplus(-(y_fake - y_real)))``, real image ``i``
  paired with fake image ``i``. D is asked how much more real a real image
  looks than a fake one, not whether each is real, so every fake is
  pulled towards the data it is compared with and D cannot win by moving
  all its outputs at once. The halves do not separate: :attr:`GANLoss.dis`
  takes both logits, and G's loss needs D's logits on real images too
  (:attr:`GANLoss.gen_needs_real`), which the updater's G step computes on
  the real batch of its last D step. R3GAN pairs it with R1 and R2
  (``--penalty r1,r2``, :mod:`gan_trainer.penalties`): with R1 alone they
  report divergence, with both a stable game covering every mode of
  Stacked MNIST.
* ``'wasserstein'`` (Arjovsky et al. 2017): D is a critic maximising
  ``mean(y_real) - mean(y_fake)``, G minimises ``-mean(y_fake)``. Only
  meaningful with a Lipschitz constraint on D, in practice the gradient
  penalty :class:`gan_trainer.penalties.WGANGP` (Gulrajani et al. 2017),
  a D without BatchNorm and several D steps per G step (``n_dis=5``). The
  critic's values have no fixed offset, so the reported accuracies (sign of
  the logit) are only a rough indication.
* ``'cramer'`` (Bellemare et al. 2017, :mod:`gan_trainer.cramer`): D maps
  each image to a vector (``out_dim=256``); G minimises the energy distance
  between real and fake vectors, estimated with two independent fake
  batches, and D maximises a surrogate of it, with WGAN-GP's penalty on its
  critic (``--penalty wgan-gp``). How that penalty is differentiated is an
  option, ``get_loss('cramer', penalty='ganlib')`` (the default:
  chainer-gan-lib's, ``df/dh`` held constant) or ``penalty='exact'``
  (:mod:`gan_trainer.cramer` says why the default is chainer-gan-lib's).
* ``'began'`` (Berthelot et al. 2017, :mod:`gan_trainer.began`): D is an
  autoencoder whose outputs are reconstruction errors; the equilibrium
  variable ``k_t`` is the loss's own state, so :func:`get_loss` makes a new
  one each time (``get_loss('began', gamma=0.5)``).

Soft and noisy labels (label smoothing: Salimans et al. 2016; ganhacks and
keras-dcgan's pull request #13 draw each real image's target from U(0.7,
1.2)) replace D's target 1 for real images by a value ``t`` per image. They
are defined where the loss has a target: the cross-entropy losses
(``t softplus(-y) + (1 - t) softplus(y)``, the cross-entropy of
``sigmoid(y)`` against ``t``, for ``0 < t <= 1``) and LSGAN
(``0.5 (y - t)^2``, any ``t > 0``). :data:`SOFT_REAL` maps a loss's
``dis_real`` to its soft version (so a custom ``GANLoss`` built from
:func:`bce_real` has one too), :func:`soft_real` looks it up, and
:func:`check_real_label` validates a setting. Hinge, Wasserstein and the
relativistic losses have no target to soften (nor have BEGAN's and the
Cramér GAN's).

Choose a loss by name through :data:`LOSSES` (or :func:`get_loss`, which
also makes the losses of :data:`LOSS_MAKERS`); adding a GAN variant means
adding an entry here, not a new training loop.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import chainer
import chainer.functions as F

from gan_trainer import cramer
from gan_trainer.began import BEGANEquilibrium, mean_error
from gan_trainer.ops.least_squares import half_mean_square

LossFn = Callable[[chainer.Variable], chainer.Variable]
#: ``(logits (B,), targets (B,)) -> scalar``: D's loss on real images with soft targets.
SoftLossFn = Callable[[chainer.Variable, object], chainer.Variable]
#: ``(logits (B,), logits (B,)) -> scalar``: a loss of two batches' outputs at once.
PairLossFn = Callable[[chainer.Variable, chainer.Variable], chainer.Variable]


class GANLoss(NamedTuple):
    """The loss functions of a GAN objective, and D's decision boundary.

    A loss whose halves separate (every loss here but ``rpgan``) is three
    functions: ``dis_real`` and ``dis_fake`` map D's outputs on the real and
    the fake batch to D's two loss terms, ``gen`` maps D's outputs on the
    fakes to G's loss (:attr:`functions` is the three of them).
    ``GANLoss(dis_real, dis_fake, gen)`` makes a loss of your own.

    A loss that couples real and fake outputs (a relativistic one) sets
    ``dis`` instead, ``dis(y_real, y_fake) -> scalar``, D's whole loss, and
    leaves ``dis_real`` and ``dis_fake`` ``None``; with ``gen_needs_real``
    its ``gen`` is called as ``gen(y_fake, y_real)``, D's outputs on a real
    batch of the same size beside those on the fakes (the updater's G step
    then runs the frozen D on the real batch of its last D step, see
    :class:`~gan_trainer.GANUpdater`). :meth:`dis_loss` and :meth:`gen_loss`
    call either kind the same way, so the updater and the evaluator hold
    one code path.

    ``boundary`` is the score between "fake" and "real": D calls an image
    real when its output is above it (``dis/acc_real``, ``dis/acc_fake``,
    ``validation/dis/accuracy``, ADA's overfitting signal). 0 for logits,
    hinge, critics and relativistic logits; 0.5 for LSGAN, whose codes are 0
    and 1; ``None`` for D outputs that do not say "real" or "fake" on their
    own (BEGAN's reconstruction errors, the Cramér GAN's vectors): no
    accuracy is reported and ADA is refused.

    What chainer-gan-lib's algorithms added to the loop, each a field:

    * ``dis_output``: what D's outputs are, checked against the D when the
      updater is made: ``'logit'`` (one number per image, the default),
      ``'reconstruction_error'`` (an autoencoder D, BEGAN) or ``'vector'``
      (several numbers per image, ``(B, K)``, the Cramér GAN's critic).
    * ``n_fakes``: how many independent fake batches a step draws (2 for the
      Cramér GAN's unbiased energy distance); with more than 1, ``y_fake``
      is the tuple of their outputs, in ``dis`` and ``gen`` alike.
    * ``critic``: ``critic(h, y_fake) -> (B,)``, what a gradient penalty
      differentiates in place of D's raw outputs ``h`` (the Cramér GAN's
      ``f``, which depends on the step's fakes); ``None``: the outputs.
    * ``state``: an object the loss's functions read that changes as
      training goes (BEGAN's ``k_t``): the updater calls
      ``state.observe(y_real, y_fake)`` with the arrays of D's outputs after
      each D step and reports what it returns under ``dis/``, and saves it
      in snapshots with ``state.serialize``. Such a loss is made anew for
      each run by :func:`get_loss` (:data:`LOSS_MAKERS`), never shared.
    """

    dis_real: LossFn | None
    dis_fake: LossFn | None
    gen: LossFn | PairLossFn
    boundary: float | None = 0.0
    dis: PairLossFn | None = None
    gen_needs_real: bool = False
    dis_output: str = 'logit'
    n_fakes: int = 1
    critic: Callable | None = None
    state: Any = None

    @property
    def functions(self) -> tuple[LossFn, LossFn, LossFn]:
        """``(dis_real, dis_fake, gen)``: the three functions, without the boundary."""
        return (self.dis_real, self.dis_fake, self.gen)

    @property
    def coupled(self) -> bool:
        """Whether D's loss needs both outputs at once (``dis`` is set)."""
        return self.dis is not None

    def dis_loss(self, y_real, y_fake, *, dis_real: LossFn | None = None):
        """D's loss and its real and fake terms: ``(loss, loss_real, loss_fake)``.

        The two terms are ``None`` for a coupled loss, which has no
        separate terms to report.

        Args:
            y_real: D's outputs on the real batch.
            y_fake: D's outputs on the fake batch.
            dis_real: A replacement for ``self.dis_real`` (the updater's
                soft targets); only for a loss whose halves separate.
        """
        if self.dis is not None:
            return self.dis(y_real, y_fake), None, None
        loss_real = (dis_real or self.dis_real)(y_real)
        loss_fake = self.dis_fake(y_fake)
        return loss_real + loss_fake, loss_real, loss_fake

    def gen_loss(self, y_fake, y_real=None):
        """G's loss from D's outputs on the fakes (and on reals if :attr:`gen_needs_real`)."""
        if self.gen_needs_real:
            if y_real is None:
                raise ValueError('this loss compares fakes with reals: gen_loss needs y_real')
            return self.gen(y_fake, y_real)
        return self.gen(y_fake)


def bce_real(y: chainer.Variable) -> chainer.Variable:
    """``mean(-log sigmoid(y))``: cross-entropy with target "real" (1)."""
    return F.mean(F.softplus(-y))


def bce_fake(y: chainer.Variable) -> chainer.Variable:
    """``mean(-log(1 - sigmoid(y)))``: cross-entropy with target "fake" (0)."""
    return F.mean(F.softplus(y))


def bce_real_soft(y: chainer.Variable, t) -> chainer.Variable:
    """``mean(t softplus(-y) + (1 - t) softplus(y))``: cross-entropy against targets ``t``.

    ``t`` (an array shaped like ``y``, or a scalar) is the target
    probability of "real"; ``t = 1`` gives exactly :func:`bce_real`. Both
    softplus terms stay finite for large ``|y|``.
    """
    return F.mean(t * F.softplus(-y) + (1 - t) * F.softplus(y))


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
    """``0.5 mean((y - 1)^2)``: least squares towards the "real" code 1.

    One node (:func:`gan_trainer.ops.least_squares.half_mean_square`): the
    bits of ``0.5 * F.mean(F.square(y - 1))`` without its nine nodes.
    """
    return half_mean_square(y, 1.0)


def least_squares_real_soft(y: chainer.Variable, t) -> chainer.Variable:
    """``0.5 mean((y - t)^2)``: least squares towards the code ``t`` per image."""
    return 0.5 * F.mean(F.square(y - t))


def least_squares_fake(y: chainer.Variable) -> chainer.Variable:
    """``0.5 mean(y^2)``: least squares towards the "fake" code 0 (one node, as
    :func:`least_squares_real`)."""
    return half_mean_square(y, 0.0)


def critic_real(y: chainer.Variable) -> chainer.Variable:
    """``-mean(y)``: the critic raises its score of real images."""
    return -F.mean(y)


def critic_fake(y: chainer.Variable) -> chainer.Variable:
    """``mean(y)``: the critic lowers its score of generated images."""
    return F.mean(y)


def relativistic_dis(y_real: chainer.Variable, y_fake: chainer.Variable) -> chainer.Variable:
    """``mean(softplus(-(y_real - y_fake)))``: D says each real looks more real than its fake.

    Real ``i`` is paired with fake ``i`` (RpGAN, Jolicoeur-Martineau 2019):
    the cross-entropy of ``sigmoid(y_real - y_fake)`` against "the real one
    is real". ``softplus`` keeps it finite for any difference.
    """
    return F.mean(F.softplus(y_fake - y_real))


def relativistic_gen(y_fake: chainer.Variable, y_real: chainer.Variable) -> chainer.Variable:
    """``mean(softplus(-(y_fake - y_real)))``: G makes each fake look more real than its real."""
    return F.mean(F.softplus(y_real - y_fake))


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
LSGAN = GANLoss(dis_real=least_squares_real, dis_fake=least_squares_fake, gen=least_squares_real,
                boundary=0.5)

#: The relativistic pairing GAN (RpGAN, Jolicoeur-Martineau 2019; R3GAN's
#: loss, Huang et al. 2024): D's and G's losses both compare paired real and
#: fake outputs. Pair it with R1 and R2 (``penalties.get_penalty('r1,r2')``).
RPGAN = GANLoss(dis_real=None, dis_fake=None, gen=relativistic_gen, dis=relativistic_dis,
                gen_needs_real=True)

def cramer_loss(penalty: str = 'ganlib') -> GANLoss:
    """The Cramér GAN's loss (Bellemare et al. 2017, :mod:`gan_trainer.cramer`).

    A critic of several outputs, the energy distance over two fake batches;
    pair it with the WGAN-GP penalty, which then differentiates the critic
    ``f``. ``penalty`` says how (a key of
    :data:`gan_trainer.cramer.PENALTY_CRITICS`): ``'ganlib'``,
    chainer-gan-lib's, ``df/dh`` held constant (trains on the digits), or
    ``'exact'``, double backpropagation through ``f`` (diverges there).
    """
    try:
        critic = cramer.PENALTY_CRITICS[penalty]
    except (KeyError, TypeError):
        raise ValueError(f"the cramer loss's penalty must be one of "
                         f"{', '.join(cramer.PENALTY_CRITICS)}, got {penalty!r}") from None
    return GANLoss(dis_real=None, dis_fake=None, gen=cramer.gen_loss, dis=cramer.dis_loss,
                   gen_needs_real=True, boundary=None, dis_output='vector', n_fakes=2,
                   critic=critic)


#: The Cramér GAN with its default penalty (:func:`cramer_loss`).
CRAMER = cramer_loss()

#: Wasserstein GAN (Arjovsky et al. 2017); pair it with a gradient penalty.
WASSERSTEIN = GANLoss(dis_real=critic_real, dis_fake=critic_fake, gen=gen_linear)

#: Loss names accepted by ``GANUpdater(loss=...)`` and ``--loss``.
LOSSES: dict[str, GANLoss] = {
    'nonsaturating': NONSATURATING,
    'minimax': MINIMAX,
    'hinge': HINGE,
    'lsgan': LSGAN,
    'rpgan': RPGAN,
    'wasserstein': WASSERSTEIN,
    'cramer': CRAMER,
}


def began(gamma: float = 0.5, *, lambda_k: float = 0.001, k0: float = 0.0) -> GANLoss:
    """BEGAN's loss (Berthelot et al. 2017) with an equilibrium ``k_t`` of its own.

    D's outputs are reconstruction errors (an autoencoder D,
    :class:`~gan_trainer.nets.AutoencoderDiscriminator` or
    :class:`~gan_trainer.nets.BEGANDiscriminator`): D minimises
    ``mean L(x) - k_t mean L(G(z))``, G ``mean L(G(z))``, and ``k_t``, from
    ``k0`` (the paper: 0), follows ``gamma`` at the rate ``lambda_k``
    (:class:`~gan_trainer.began.BEGANEquilibrium`).
    """
    state = BEGANEquilibrium(gamma, lambda_k=lambda_k, k=k0)
    return GANLoss(dis_real=mean_error, dis_fake=state.dis_fake, gen=mean_error, boundary=None,
                   dis_output='reconstruction_error', state=state)


#: Losses made from options (name -> function of them), one table: a name
#: that is also in :data:`LOSSES` (``cramer``) gives that shared loss when
#: asked for without options; one that is not (``began``, whose ``k_t`` is
#: the state of one run) is made anew at every call of :func:`get_loss`.
LOSS_MAKERS: dict[str, Callable[..., GANLoss]] = {
    'began': began,
    'cramer': cramer_loss,
}


def loss_names() -> list[str]:
    """Every loss name :func:`get_loss` accepts (``--loss``), sorted."""
    return sorted({*LOSSES, *LOSS_MAKERS})


def get_loss(loss: str | GANLoss, **options) -> GANLoss:
    """Returns the :class:`GANLoss` named ``loss`` (or ``loss`` itself).

    Args:
        loss: A name of :func:`loss_names`, or a loss.
        options: The options of a loss of :data:`LOSS_MAKERS` (``began``'s
            ``gamma``, ``cramer``'s ``penalty``).

    Raises:
        ValueError: for an unknown name (the message lists the valid ones),
            or options for a loss that takes none.
    """
    if isinstance(loss, GANLoss):
        return loss
    if loss in LOSSES and not options:
        return LOSSES[loss]
    if loss in LOSS_MAKERS:
        return LOSS_MAKERS[loss](**options)
    if loss in LOSSES:
        raise ValueError(f'the {loss} loss takes no options, got {", ".join(options)}')
    raise ValueError(f'unknown loss {loss!r}; valid losses: {", ".join(loss_names())}')


#: D's loss on real images (a ``GANLoss.dis_real``) -> its version with soft
#: targets. A loss whose ``dis_real`` is not here has no targets to soften.
SOFT_REAL: dict[LossFn, SoftLossFn] = {
    bce_real: bce_real_soft,
    least_squares_real: least_squares_real_soft,
}


def soft_real(loss: str | GANLoss) -> SoftLossFn | None:
    """D's real-image loss of ``loss`` with soft targets, or ``None`` if it has no targets."""
    loss = get_loss(loss)
    return None if loss.coupled else SOFT_REAL.get(loss.dis_real)


def _loss_name(loss: GANLoss) -> str:
    if isinstance(loss.state, BEGANEquilibrium):
        return 'began'
    if loss.dis is cramer.dis_loss:
        return 'cramer'
    return next((name for name, value in LOSSES.items() if value is loss), 'given')


def output_kind(dis) -> str | None:
    """What ``dis`` says it outputs (a :attr:`GANLoss.dis_output`), or None if it does not say.

    ``dis.output_kind`` when it has one (the autoencoder D); else from
    ``dis.out_dim`` (the package's D: 1 is a logit, more a vector).
    """
    kind = getattr(dis, 'output_kind', None)
    if kind is not None:
        return kind
    out_dim = getattr(dis, 'out_dim', None)
    if out_dim is None:
        return None
    return 'vector' if out_dim > 1 else 'logit'


def check_discriminator(loss: GANLoss, dis) -> None:
    """Raises a one-line ValueError if ``dis``'s outputs are not what ``loss`` reads.

    A D that does not say what it outputs (no ``output_kind``, no
    ``out_dim``) is given the benefit of the doubt.
    """
    kind, need = output_kind(dis), loss.dis_output
    if kind is None or kind == need:
        return
    name, cls = _loss_name(loss), type(dis).__name__
    if need == 'reconstruction_error':
        raise ValueError(f'the {name} loss needs an autoencoder D, whose outputs are '
                         'reconstruction errors (gan_trainer.nets.AutoencoderDiscriminator); '
                         f'{cls} outputs {"logits" if kind == "logit" else "vectors"}')
    if kind == 'reconstruction_error':
        raise ValueError(f"{cls} outputs reconstruction errors, not logits: train it with "
                         f"loss 'began' (the {name} loss reads logits)")
    if need == 'vector':
        raise ValueError(f'the {name} loss compares vectors: it needs a D of several outputs '
                         f'per image (out_dim=256, as chainer-gan-lib), and {cls} outputs one')
    raise ValueError(f"{cls} outputs {dis.out_dim} numbers per image, and the {name} loss reads "
                     "one logit (use loss 'cramer', or out_dim=1)")


def check_real_label(real_label, loss: str | GANLoss) -> tuple[float, float] | None:
    """Validates a real-image target setting for ``loss`` and returns it as a range.

    Args:
        real_label: ``None`` (the hard target 1 of the loss's own
            ``dis_real``), a number ``t`` (one-sided label smoothing, e.g.
            0.9), or a pair ``(lo, hi)``: each real image's target drawn
            from U(lo, hi) (noisy labels, e.g. keras-dcgan's 0.7-1.2).
        loss: The loss, by name or as a :class:`GANLoss`.

    Returns:
        ``None`` for ``None``, else ``(lo, hi)`` (``lo == hi`` for a number).

    Raises:
        ValueError: If the loss has no targets (hinge, wasserstein), the
            value is not a finite number or pair with ``0 < lo <= hi``, or,
            for the cross-entropy losses, ``hi > 1``: a target above 1 is not
            a probability, and the cross-entropy against it has no minimum
            (D would push those logits to infinity).
    """
    if real_label is None:
        return None
    loss = get_loss(loss)
    name = _loss_name(loss)
    soft = soft_real(loss)
    if soft is None:
        valid = ', '.join(k for k, v in LOSSES.items() if soft_real(v) is not None)
        raise ValueError(f'real_label is not defined for the {name} loss (it has no target '
                         f'to soften); use it with {valid}')
    pair = real_label if isinstance(real_label, (tuple, list)) else (real_label, real_label)
    if (len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, numbers.Real)
                              or not math.isfinite(v) for v in pair)
            or not 0 < pair[0] <= pair[1]):
        raise ValueError(f'real_label must be a number t > 0 or a range (lo, hi) with '
                         f'0 < lo <= hi, got {real_label!r}')
    lo, hi = float(pair[0]), float(pair[1])
    if soft is bce_real_soft and hi > 1:
        raise ValueError(
            f'real_label {real_label!r} goes above 1 with the {name} loss: a cross-entropy '
            f'target above 1 is not a probability and has no minimum (D pushes those '
            f'logits to infinity); use at most 1, e.g. ({lo:g}, 1.0)')
    return lo, hi
