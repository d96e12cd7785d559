"""The Cramér GAN's energy distance and critic (Bellemare et al. 2017).

"The Cramer Distance as a Solution to Biased Wasserstein Gradients" trains G
to minimise the energy distance between the data and G's distribution, as
seen through a learned map ``h`` (D, with many outputs: chainer-gan-lib's
``--output_dim 256``). With a real batch ``x_r`` and two independent fake
batches ``x_g``, ``x_g'`` (Algorithm 1):

* G minimises ``||h(x_r) - h(x_g)|| + ||h(x_r) - h(x_g')|| - ||h(x_g) - h(x_g')||``,
  the sample estimate of the energy distance (each term a mean over the
  batch, images paired by index); two fake batches make it unbiased, which
  is the point of the paper: its sample gradients are unbiased where the
  Wasserstein distance's are not.
* D maximises the surrogate ``f(x_r) - f(x_g)`` of the critic
  ``f(x) = ||h(x) - h(x_g')|| - ||h(x)||``, with WGAN-GP's gradient penalty
  on ``f`` (not on ``h``) at random points between ``x_r`` and ``x_g``
  (lambda 10, five D steps per G step, Adam 1e-4/0.5/0.9 in
  chainer-gan-lib's ``example.sh``).

The functions here are the ``cramer`` loss of :mod:`gan_trainer.losses`: a
coupled loss (D's loss takes the real and both fake outputs at once) of
two fake batches, whose ``critic`` tells the updater what a gradient penalty
differentiates. In the critic of the penalty ``h(x_g')`` is a constant, as
in chainer-gan-lib's ``cramer/updater.py``.

How the penalty's gradient with respect to D's weights is taken is a
choice, :data:`PENALTY_CRITICS` (``get_loss('cramer', penalty=...)``,
``--cramer_penalty``):

* ``'ganlib'`` (the default, and the ``cramer`` preset's):
  :func:`linearised_critic`, chainer-gan-lib's penalty. Its hand-written
  backward pass holds ``c = df/dh`` at the interpolates constant, so the
  penalty ``(||J^T c|| - 1)^2`` (``J = dh/dx``) is differentiated through
  ``J`` only. Its value is the exact penalty's.
* ``'exact'``: :func:`penalty_critic`, double backpropagation through
  ``f(h(x))``, which adds the term through ``c``: ``dc/dh`` holds the
  curvature of the two norms, ``(I - u u^T) / ||.||``, as large as
  ``1 / ||h||`` or ``1 / ||h - h(x_g')||``.

Why chainer-gan-lib's is the default: on the built-in digits the exact
penalty diverges. With the ``cramer`` preset, seed 0, 600 iterations
(``examples/train_dcgan.py --preset cramer --cramer_penalty exact``), its
penalty went from 8 to 63 at iteration 400 and 3.4e6 at 600, and G drew
noise (FID 401 by ``benchmarks/fid_of.py``); with ``ganlib`` the penalty
fell from 7 to 3.5, G's loss fell throughout, and G drew rough digits (FID
190 at 600 iterations). Figures and commands: benchmarks/RESULTS.md,
"Issue 28: the Cramér preset's penalty". The paper's Algorithm 1 writes
the penalty on ``f`` without saying how its gradient is taken;
``benchmarks/ganlib_check.py`` shows that with the linearised critic the
one loop's gradients are chainer-gan-lib's to float32 rounding, and that
the dropped term is the whole difference between the two.

Each norm is ``sqrt(sum of squares + 1e-12)``: the plain square root has an
infinite derivative at 0 (``h(x) = 0`` for a D with zero weights), and the
``1e-12`` moves a norm by at most ``1e-6``.
"""

from __future__ import annotations

import chainer
import chainer.functions as F

__all__ = ['PENALTY_CRITICS', 'critic', 'critic_gradient', 'dis_loss', 'distance', 'gen_loss',
           'linearised_critic', 'penalty_critic']

#: Added under every square root (see the module docstring).
NORM_EPS = 1e-12


def distance(a, b) -> chainer.Variable:
    """``||a_i - b_i||_2`` per row: ``(B, K), (B, K) -> (B,)``."""
    return F.sqrt(F.sum(F.square(a - b), axis=1) + NORM_EPS)


def _norm(a) -> chainer.Variable:
    return F.sqrt(F.sum(F.square(a), axis=1) + NORM_EPS)


def critic(h, h_other) -> chainer.Variable:
    """``f = ||h - h(x_g')|| - ||h||`` per row: ``(B, K), (B, K) -> (B,)``."""
    return distance(h, h_other) - _norm(h)


def dis_loss(y_real, y_fakes) -> chainer.Variable:
    """D's loss: ``-mean(f(x_r) - f(x_g))``, both fakes' outputs ``(y_g, y_g')`` in the graph."""
    y_fake, y_other = y_fakes
    return -F.mean(critic(y_real, y_other) - critic(y_fake, y_other))


def gen_loss(y_fakes, y_real) -> chainer.Variable:
    """G's loss: the energy distance ``mean(||r - g|| + ||r - g'|| - ||g - g'||)``."""
    y_fake, y_other = y_fakes
    return F.mean(distance(y_real, y_fake) + distance(y_real, y_other)
                  - distance(y_fake, y_other))


def _array(x):
    return x.array if isinstance(x, chainer.Variable) else x


def penalty_critic(h, y_fakes) -> chainer.Variable:
    """The exact penalty's critic: ``f(x)`` from ``h(x)``, ``h(x_g')`` constant."""
    return critic(h, _array(y_fakes[1]))


def critic_gradient(h, other):
    """``c = df/dh = (h - h') / ||h - h'|| - h / ||h||`` per row, as arrays: ``(B, K)``.

    ``h`` and ``other`` (``h(x_g')``) are arrays (NumPy or CuPy); the norms
    are :func:`distance`'s, with :data:`NORM_EPS`.
    """
    xp = chainer.backend.get_array_module(h)
    d = h - other
    return (d / xp.sqrt(xp.sum(d * d, axis=1, keepdims=True) + NORM_EPS)
            - h / xp.sqrt(xp.sum(h * h, axis=1, keepdims=True) + NORM_EPS))


def linearised_critic(h, y_fakes) -> chainer.Variable:
    """chainer-gan-lib's penalty critic: ``f`` to first order in ``h``, ``df/dh`` a constant.

    ``f(a) + c . (h - a)`` per row, with ``a = h.array`` and ``c =``
    :func:`critic_gradient` at ``a``, both constants: the value is ``f``'s,
    and the gradient in the image is ``J^T c``, also ``f``'s, so the
    gradient penalty reads the exact penalty's value; but differentiating
    that gradient with respect to D's weights goes through ``J`` alone,
    as chainer-gan-lib's ``dis.differentiable_backward(dydh)`` of a
    ``dydh`` computed from a detached ``h_mid``.
    """
    a, other = h.array, _array(y_fakes[1])
    c = critic_gradient(a, other)
    offset = critic(a, other).array - (c * a).sum(axis=1)
    return F.sum(h * c, axis=1) + offset


#: ``--cramer_penalty``: how the gradient penalty differentiates the critic
#: (see the module docstring). The first is the default.
PENALTY_CRITICS = {
    'ganlib': linearised_critic,
    'exact': penalty_critic,
}
