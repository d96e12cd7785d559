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
in chainer-gan-lib's ``cramer/updater.py``. Unlike that updater, the
penalty here is differentiated exactly (double backpropagation through
``f(h(x))``); chainer-gan-lib's hand-written backward holds ``df/dh`` at the
interpolates constant, which drops one term of the penalty's gradient with
respect to D's weights (``benchmarks/ganlib_check.py`` shows the size of
that term, and that with it held constant the two updaters agree).

Each norm is ``sqrt(sum of squares + 1e-12)``: the plain square root has an
infinite derivative at 0 (``h(x) = 0`` for a D with zero weights), and the
``1e-12`` moves a norm by at most ``1e-6``.
"""

from __future__ import annotations

import chainer
import chainer.functions as F

__all__ = ['critic', 'dis_loss', 'distance', 'gen_loss', 'penalty_critic']

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


def penalty_critic(h, y_fakes) -> chainer.Variable:
    """What the gradient penalty differentiates: ``f(x)`` from ``h(x)``, ``h(x_g')`` constant."""
    other = y_fakes[1]
    return critic(h, other.array if isinstance(other, chainer.Variable) else other)
