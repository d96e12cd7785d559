"""Gradient penalties on the discriminator, through double backpropagation.

A penalty is a callable ``penalty(d, x_real, x_fake, rng)`` returning a
scalar ``chainer.Variable`` that the updater adds to D's loss. It measures
``grad_x D(x)``, the gradient of D's logit with respect to its input image,
so its own gradient with respect to D's parameters needs a second backward
pass through the first one: ``chainer.grad(..., enable_double_backprop=True)``
keeps the graph of the input gradient so that ``loss.backward()`` can
differentiate it. The penalties, chosen by name through :data:`PENALTIES`:

* ``'wgan-gp'``, :class:`WGANGP` (Gulrajani et al. 2017): keeps the WGAN
  critic 1-Lipschitz by pulling the gradient norm towards 1 at random points
  between real and fake images. Use with the ``'wasserstein'`` loss,
  ``n_dis=5`` and Adam(1e-4, beta1=0, beta2=0.9).
* ``'r1'``, :class:`R1` (Mescheder et al. 2018): penalises the squared
  gradient norm on real images only, which makes D flat on the data and
  stabilises training with the non-saturating or hinge losses.
* ``'dragan'``, :class:`DRAGAN` (Kodali et al. 2017): WGAN-GP's two-sided
  penalty at randomly perturbed real images, for the cross-entropy loss.
* ``'r2'``, :class:`R2`: the same zero-centred penalty on the fakes
  (Mescheder et al. 2018 define it beside R1). R3GAN (Huang et al. 2024)
  uses R1 and R2 together with the relativistic loss: with R1 alone their
  runs diverged, with both D is smooth around both distributions.

Several penalties are summed when named together, ``'r1,r2'``
(:class:`PenaltySum`, reported as one ``dis/penalty``); a weight given
then applies to each.

BatchNorm: Chainer 7 supports double backprop through
``L.BatchNormalization`` in train mode (its ``BatchNormalizationGrad`` is
itself differentiable), so a penalty runs with the DCGAN discriminator.
In train mode, however, the gradient of one example's logit depends on the
other examples of the batch through the batch statistics, so the per-example
gradient norm that WGAN-GP constrains is no longer per example; Gulrajani et
al. therefore use no BatchNorm in the critic, and so do this package's
WGAN-GP presets. Each penalty call is one more forward pass through D, which
also updates BatchNorm's running averages once more.

The interpolation weights are drawn from the caller's ``RandomState`` on the
CPU, then sent to the images' device, so a resumed run (with the saved random
state) draws the same weights, on NumPy and CuPy alike.
"""

from __future__ import annotations

from collections.abc import Callable

import chainer
import chainer.functions as F
import numpy

#: ``d(x) -> logits`` of shape ``(B,)`` or ``(B, 1)``; the updater passes a
#: closure, so a conditional D's labels are the caller's business.
Discriminator = Callable[[chainer.Variable], chainer.Variable]
Penalty = Callable[..., chainer.Variable]


def _array(x):
    """The data of ``x`` (a Variable or an array), without its graph."""
    return x.array if isinstance(x, chainer.Variable) else x


def input_gradient(d: Discriminator, x) -> chainer.Variable:
    """``grad_x sum(d(x))``, kept differentiable w.r.t. D's parameters.

    Summing the logits gives each example's own gradient in one backward
    pass, because example ``i``'s logit depends only on image ``i`` (up to
    BatchNorm's batch statistics in train mode, see the module docstring).

    Args:
        d: Maps images ``(B, ...)`` to logits ``(B,)`` or ``(B, 1)``.
        x: A fresh leaf ``chainer.Variable`` of images ``(B, ...)``.

    Returns:
        The gradient, shape ``(B, ...)`` like ``x``, with a graph back into
        D's parameters. ``x.grad`` and the parameters' ``grad`` are not set.
    """
    # Penalties are also evaluated under no_backprop_mode (validation); the
    # input gradient needs a graph there all the same.
    with chainer.force_backprop_mode():
        y = d(x)
        (grad,) = chainer.grad([F.sum(y)], [x], enable_double_backprop=True)
    return grad


def _sum_of_squares(grad: chainer.Variable) -> chainer.Variable:
    """``||grad_i||^2`` over all non-batch axes: ``(B, ...) -> (B,)``."""
    return F.sum(F.square(grad), axis=tuple(range(1, grad.ndim)))


class WGANGP:
    """WGAN-GP's two-sided gradient penalty (Gulrajani et al. 2017).

    ``weight * mean_i (||grad_x D(x_hat_i)||_2 - target)^2`` at
    ``x_hat = eps * x_real + (1 - eps) * x_fake``, one ``eps ~ U[0, 1)`` per
    example, the norm over all of an example's pixels and channels.

    The norm is ``sqrt(||g||^2 + 1e-12)``: the plain square root has an
    infinite derivative at ``g = 0`` (which a D with zero weights, e.g.
    zero-initialised, reaches), and the ``1e-12`` changes the norm by at most
    ``1e-6``.

    Args:
        weight: lambda in the paper; 10 is its value for every experiment.
        target: The gradient norm aimed for (the Lipschitz constant); 1 for
            a 1-Lipschitz critic. Karras et al. (2018) use larger targets.
    """

    #: Added to the squared norm before the square root (see above).
    norm_eps: float = 1e-12

    def __init__(self, weight: float = 10.0, *, target: float = 1.0) -> None:
        if weight < 0:
            raise ValueError(f'WGAN-GP weight must be >= 0, got {weight}')
        self.weight = float(weight)
        self.target = float(target)

    def __call__(
        self, d: Discriminator, x_real, x_fake, rng: numpy.random.RandomState
    ) -> chainer.Variable:
        """Computes the penalty.

        Args:
            d: Maps images to logits ``(B,)`` or ``(B, 1)``.
            x_real: Real images ``(B, C, H, W)``, array or Variable.
            x_fake: Generated images of the same shape. Only their data are
                used: no gradient flows into G through the penalty.
            rng: Draws the interpolation weights ``eps``.

        Returns:
            The scalar penalty, with a graph into D's parameters.
        """
        x_real, x_fake = _array(x_real), _array(x_fake)
        if x_real.shape != x_fake.shape:
            raise ValueError(
                f'x_real and x_fake must have the same shape, got {x_real.shape} and {x_fake.shape}'
            )
        # (B, 1, 1, 1): one mixing weight per example, drawn on the CPU so
        # NumPy and CuPy runs (and resumed runs) draw the same numbers.
        shape = (len(x_real),) + (1,) * (x_real.ndim - 1)
        eps = rng.uniform(0.0, 1.0, size=shape).astype(x_real.dtype)
        eps = chainer.backend.get_device_from_array(x_real).send(eps)
        x_hat = chainer.Variable(eps * x_real + (1 - eps) * x_fake)
        grad = input_gradient(d, x_hat)
        norm = F.sqrt(_sum_of_squares(grad) + self.norm_eps)  # (B,)
        return self.weight * F.mean(F.square(norm - self.target))

    def __repr__(self) -> str:
        return f'WGANGP(weight={self.weight:g}, target={self.target:g})'


class R1:
    """R1 regularisation on real data (Mescheder et al. 2018).

    ``gamma / 2 * mean_i ||grad_x D(x_real_i)||_2^2``: pushes D's gradient
    on the data towards zero, so that D cannot build a steep wall that makes
    G (and D itself) oscillate around the equilibrium.

    Args:
        gamma: Strength; 10 is the paper's value for CelebA/LSUN-sized
            images (smaller images and datasets often want less).
    """

    def __init__(self, gamma: float = 10.0) -> None:
        if gamma < 0:
            raise ValueError(f'R1 gamma must be >= 0, got {gamma}')
        self.gamma = float(gamma)

    def __call__(
        self, d: Discriminator, x_real, x_fake=None, rng: numpy.random.RandomState | None = None
    ) -> chainer.Variable:
        """Computes the penalty.

        Args:
            d: Maps images to logits ``(B,)`` or ``(B, 1)``.
            x_real: Real images ``(B, C, H, W)``, array or Variable.
            x_fake: Ignored (R1 looks at real data only).
            rng: Ignored (R1 draws nothing).

        Returns:
            The scalar penalty, with a graph into D's parameters.
        """
        grad = input_gradient(d, chainer.Variable(_array(x_real)))
        return self.gamma / 2 * F.mean(_sum_of_squares(grad))

    def __repr__(self) -> str:
        return f'R1(gamma={self.gamma:g})'


class DRAGAN:
    """DRAGAN's gradient penalty around perturbed real data (Kodali et al. 2017).

    ``weight * mean_i (||grad_x D(x_p_i)||_2 - target)^2`` at
    ``x_p = x_real + scale * std(x_real) * u``, ``u ~ U[0, 1)`` per pixel:
    WGAN-GP's penalty, but in a small neighbourhood of the data instead of on
    the lines between real and fake images, because that is where Kodali et
    al. locate the sharp gradients of the mode-collapsing local equilibria.
    It is meant for the ordinary cross-entropy loss (``nonsaturating``), with
    ``n_dis=2`` and Adam(1e-4, 0, 0.9) as in chainer-gan-lib's
    ``example.sh``, and a D without BatchNorm.

    Following chainer-gan-lib's ``dragan/updater.py`` (the Chainer code this
    package is compared with): ``std`` is taken per pixel over the batch
    (``std(x, axis=0)``, NumPy's population standard deviation), the
    penalty is at ``x_p`` itself, and the gradient is of D's logit (its
    updater computes a sigmoid of the output but back-propagates ones from
    the logit). The authors' TensorFlow code differs in two details: one
    standard deviation of the whole batch, and a random point between
    ``x_real`` and ``x_p``.

    The norm has WGAN-GP's ``1e-12`` under the square root (see
    :class:`WGANGP`). The perturbation is drawn from the caller's random
    state on the CPU (one draw of ``x_real``'s shape), so runs repeat and
    resume exactly on NumPy and CuPy alike.

    Args:
        weight: lambda (chainer-gan-lib's ``--lam``): 10.
        scale: The perturbation's size in standard deviations: 0.5.
        target: The gradient norm aimed for: 1.
    """

    norm_eps: float = WGANGP.norm_eps

    def __init__(self, weight: float = 10.0, *, scale: float = 0.5,
                 target: float = 1.0) -> None:
        if weight < 0:
            raise ValueError(f'DRAGAN weight must be >= 0, got {weight}')
        self.weight = float(weight)
        self.scale = float(scale)
        self.target = float(target)

    def perturb(self, x_real, rng: numpy.random.RandomState):
        """``x_real + scale * std(x_real, axis=0) * u``, ``u ~ U[0, 1)`` from ``rng``."""
        x = _array(x_real)
        u = rng.uniform(0.0, 1.0, size=x.shape).astype(x.dtype)
        u = chainer.backend.get_device_from_array(x).send(u)
        return x + self.scale * u * x.std(axis=0, keepdims=True)

    def __call__(
        self, d: Discriminator, x_real, x_fake=None, rng: numpy.random.RandomState | None = None
    ) -> chainer.Variable:
        """Computes the penalty.

        Args:
            d: Maps images to logits ``(B,)`` or ``(B, 1)``.
            x_real: Real images ``(B, C, H, W)``, array or Variable.
            x_fake: Ignored (DRAGAN looks around real data only).
            rng: Draws the perturbation.

        Returns:
            The scalar penalty, with a graph into D's parameters.
        """
        if rng is None:
            raise ValueError('DRAGAN draws its perturbation from rng; pass a RandomState')
        grad = input_gradient(d, chainer.Variable(self.perturb(x_real, rng)))
        norm = F.sqrt(_sum_of_squares(grad) + self.norm_eps)  # (B,)
        return self.weight * F.mean(F.square(norm - self.target))

    def __repr__(self) -> str:
        return f'DRAGAN(weight={self.weight:g}, scale={self.scale:g}, target={self.target:g})'


class R2(R1):
    """R2 regularisation on generated data (Mescheder et al. 2018; R3GAN).

    ``gamma / 2 * mean_i ||grad_x D(x_fake_i)||_2^2``: R1's zero-centred
    penalty at the fakes instead of the reals, so that D is also flat where
    G's samples are, and G's gradient from D does not grow without bound.

    Args:
        gamma: Strength (R3GAN uses the same value as for R1).
    """

    def __call__(
        self, d: Discriminator, x_real, x_fake, rng: numpy.random.RandomState | None = None
    ) -> chainer.Variable:
        """Computes the penalty on ``x_fake`` (only its data: nothing flows into G)."""
        grad = input_gradient(d, chainer.Variable(_array(x_fake)))
        return self.gamma / 2 * F.mean(_sum_of_squares(grad))

    def __repr__(self) -> str:
        return f'R2(gamma={self.gamma:g})'


class PenaltySum:
    """Several penalties added together (``get_penalty('r1,r2')``).

    Args:
        penalties: The penalties, each called with the same arguments.
    """

    def __init__(self, penalties) -> None:
        self.penalties = tuple(penalties)

    def __call__(self, d: Discriminator, x_real, x_fake, rng=None) -> chainer.Variable:
        total = None
        for penalty in self.penalties:
            value = penalty(d, x_real, x_fake, rng)
            total = value if total is None else total + value
        return total

    def __repr__(self) -> str:
        return ' + '.join(map(repr, self.penalties))


def penalty_weight(penalty) -> float:
    """The strength of ``penalty`` (``WGANGP.weight``, ``R1.gamma``; a sum's first term's)."""
    if isinstance(penalty, PenaltySum):
        return penalty_weight(penalty.penalties[0])
    return penalty.weight if isinstance(penalty, (WGANGP, DRAGAN)) else penalty.gamma


def set_penalty_weight(penalty, value: float) -> None:
    """Sets the strength of ``penalty`` (of each term of a sum): the schedules' door."""
    if isinstance(penalty, PenaltySum):
        for term in penalty.penalties:
            set_penalty_weight(term, value)
    elif isinstance(penalty, (WGANGP, DRAGAN)):
        penalty.weight = float(value)
    else:
        penalty.gamma = float(value)


#: Penalty names accepted by :func:`get_penalty` (``--penalty``); several
#: joined by commas are summed.
PENALTIES: dict[str, type] = {
    'wgan-gp': WGANGP,
    'r1': R1,
    'r2': R2,
    'dragan': DRAGAN,
}


def penalty_names(name: str) -> list[str]:
    """The names in ``'r1,r2'``, checked: known, none twice.

    Raises:
        ValueError: for an unknown or repeated name (the message lists the valid ones).
    """
    names = [n.strip() for n in name.split(',')]
    for n in names:
        if n not in PENALTIES:
            raise ValueError(
                f'unknown penalty {n!r}; valid penalties: {", ".join(sorted(PENALTIES))}, '
                'none, or several joined by commas (r1,r2)') from None
    if len(set(names)) != len(names):
        raise ValueError(f'penalty {name!r} names a penalty twice')
    return names


def get_penalty(name: str | Penalty | None, weight: float | None = None) -> Penalty | None:
    """Builds the penalty named ``name``.

    Args:
        name: A key of :data:`PENALTIES`, several joined by commas
            (``'r1,r2'``, summed), ``None`` or ``'none'`` for no penalty,
            or a penalty object, returned as it is.
        weight: The penalty's strength (``WGANGP``'s ``weight``, ``R1``'s
            and ``R2``'s ``gamma``, each term's of a sum); the class default
            (10 for all) if ``None``. Ignored when there is no penalty, so a
            CLI can always pass it.

    Returns:
        A penalty instance (a :class:`PenaltySum` for several), or ``None``.

    Raises:
        ValueError: for an unknown name (the message lists the valid ones),
            or a ``weight`` given with a penalty object.
    """
    if name is None or name == 'none':
        return None
    if not isinstance(name, str):
        if weight is not None:
            raise ValueError(f'weight={weight} cannot be applied to the penalty object {name!r}')
        return name
    made = [PENALTIES[n]() if weight is None else PENALTIES[n](weight)
            for n in penalty_names(name)]
    return made[0] if len(made) == 1 else PenaltySum(made)
