"""Denoising feature matching (Warde-Farley & Bengio 2017): a denoiser on D's features guides G.

"Improving Generative Adversarial Networks with Denoising Feature Matching"
(ICLR 2017) adds a second signal to G's loss. A denoising autoencoder
``r`` is trained, beside D, on D's features of *real* images: it learns to
map ``phi(x) + noise`` back to ``phi(x)``, and so (Alain & Bengio 2014)
``r(h) - h`` points towards where the real features are dense. G then
minimises ``weight * mean((phi(G(z)) - r(phi(G(z))))^2)`` with ``r``'s
output held constant: it moves its fakes' features the way the denoiser
would move them, towards the data's feature distribution, on top of the
usual adversarial loss.

The pieces here follow chainer-gan-lib's ``dfm`` (``dfm/updater.py`` and
``dfm/net.py``, pfnet-research), which this package is compared with step
for step (``benchmarks/ganlib_check.py``):

* :class:`Denoiser`: a fully connected net of ``depth`` layers (10), each
  but the last followed by batch normalization and LeakyReLU(0.2), as wide
  as the features by default (chainer-gan-lib: 2048 features, 2048 units);
  Chainer's default initialization.
* :class:`DenoisingFeatureMatching`: the two losses. The denoiser's:
  ``mean((r(phi(x) + sigma * n) - phi(x))^2)``, ``n ~ N(0, 1)`` per feature,
  ``sigma = 1``, on D's features of the D step's real batch (constants: the
  denoiser's loss does not train D). G's: ``weight = 0.03`` times the mean
  square above, the reconstruction computed with the denoiser in evaluation
  mode (BatchNorm's running averages) and without a graph.

The features are what D's read-out sees (``Discriminator.forward_with_features``:
the last feature map, after its activation); chainer-gan-lib takes its D's
last batch-normalized map before the activation. The noise is drawn from
the updater's random state on the CPU, so a run repeats and resumes exactly.
"""

from __future__ import annotations

import itertools

import chainer
import chainer.functions as F
import chainer.links as L
import numpy

from gan_trainer import ops

__all__ = ['Denoiser', 'DenoisingFeatureMatching', 'check_discriminator']


def check_discriminator(dis) -> None:
    """Raises a one-line ValueError unless ``dis`` can give its features (``forward_with_features``)."""
    if callable(getattr(dis, 'forward_with_features', None)):
        return
    raise ValueError(f'dfm needs a D with forward_with_features(x) -> (outputs, features), '
                     f'such as gan_trainer.nets.Discriminator; {type(dis).__name__} has none')


class Denoiser(chainer.Chain):
    """A deep fully connected denoiser of D's ``(B, F)`` features.

    Args:
        in_size: ``F``, the number of features per image.
        width: Units of each hidden layer; ``in_size`` by default.
        depth: Linear layers (at least 2); chainer-gan-lib's has 10.
    """

    def __init__(self, in_size: int, *, width: int | None = None, depth: int = 10) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError(f'the denoiser needs at least 2 layers, got depth={depth}')
        self.in_size = in_size
        self.width = width or in_size
        self.depth = depth
        sizes = [in_size] + [self.width] * (depth - 1) + [in_size]
        with self.init_scope():
            self.linears = chainer.ChainList(*[
                L.Linear(n_in, n_out) for n_in, n_out in itertools.pairwise(sizes)])
            self.bns = chainer.ChainList(*[
                L.BatchNormalization(self.width) for _ in range(depth - 1)])

    def config(self) -> dict:
        """The JSON-able constructor kwargs."""
        return {'in_size': self.in_size, 'width': self.width, 'depth': self.depth}

    def forward(self, h) -> chainer.Variable:
        """``(B, F)`` noisy features -> ``(B, F)`` denoised ones."""
        h = F.reshape(h, (h.shape[0], self.in_size))
        for linear, bn in zip(self.linears[:-1], self.bns):
            h = ops.leaky_relu(bn(linear(h)), slope=0.2)
        return self.linears[-1](h)


class DenoisingFeatureMatching:
    """The denoiser's loss and G's feature-matching term.

    Args:
        weight: The G term's weight (chainer-gan-lib: 0.03).
        noise_sigma: Standard deviation of the Gaussian noise the denoiser
            learns to remove (chainer-gan-lib: 1).
    """

    def __init__(self, weight: float = 0.03, *, noise_sigma: float = 1.0) -> None:
        if not weight >= 0:
            raise ValueError(f'the DFM weight must be >= 0, got {weight}')
        if not noise_sigma > 0:
            raise ValueError(f'the DFM noise_sigma must be > 0, got {noise_sigma}')
        self.weight = float(weight)
        self.noise_sigma = float(noise_sigma)

    def denoiser_loss(self, denoiser: chainer.Link, features_real,
                      rng: numpy.random.RandomState) -> chainer.Variable:
        """``mean((r(f + sigma n) - f)^2)`` on real features ``f`` (constants), ``n`` from ``rng``."""
        f = features_real.array if isinstance(features_real, chainer.Variable) else features_real
        noise = rng.standard_normal(size=f.shape).astype(f.dtype)
        noise = chainer.backend.get_device_from_array(f).send(noise)
        return F.mean_squared_error(denoiser(f + self.noise_sigma * noise), f)

    def update_denoiser(self, optimizer: chainer.Optimizer, loss: chainer.Variable, *,
                        loss_scale: float | None = None):
        """The denoiser's backward pass and update (``optimizer``'s target); returns the loss's array.

        The updater computes ``loss`` (:meth:`denoiser_loss`, a forward pass
        in training mode, which moves the denoiser's BatchNorm averages)
        before G's term reads the denoiser, and updates its weights after:
        chainer-gan-lib's order.
        """
        optimizer.target.cleargrads()
        loss.backward(loss_scale=loss_scale)  # the optimizer's, under dynamic loss scaling
        optimizer.update()
        loss.unchain_backward()
        return loss.array

    def gen_loss(self, denoiser: chainer.Link, features_fake) -> chainer.Variable:
        """``weight * mean((f - r(f))^2)`` on fake features ``f``, ``r(f)`` a constant."""
        with chainer.using_config('train', False), chainer.no_backprop_mode():
            target = denoiser(features_fake.array).array
        return self.weight * F.mean_squared_error(features_fake, target)

    def __repr__(self) -> str:
        return (f'DenoisingFeatureMatching(weight={self.weight:g}, '
                f'noise_sigma={self.noise_sigma:g})')
