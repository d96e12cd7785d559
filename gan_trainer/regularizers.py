"""Regularizers of D's outputs: LeCam and balanced consistency regularization.

A regularizer is a term added to D's loss in every D step, computed from
D's outputs rather than its input gradients (those are the penalties of
:mod:`gan_trainer.penalties`). The updater calls each one as

    term = regularizer(discriminate, x_real, x_fake, y_real, y_fake, rng)

with ``discriminate`` mapping images to D's outputs ``(B,)`` (through the
run's augmentation and labels), the step's real and fake batches (arrays)
and D's outputs on them (Variables with their graph), and the updater's
random state; it reports the term as ``dis/NAME`` and saves the
regularizer's state (``serialize``) in trainer snapshots. Both are meant
for small datasets, where D memorises the training images:

* :class:`LeCam` (Tseng, Jiang, Liu, Yang, Yang, "Regularizing Generative
  Adversarial Networks under Limited Data", CVPR 2021; google/lecam-gan):
  ``weight * (mean(relu(y_real - a_fake)^2) + mean(relu(a_real - y_fake)^2))``
  where ``a_real`` and ``a_fake`` are moving averages (decay 0.99) of D's
  mean output on reals and fakes. D's outputs on reals are kept from rising
  far above what it says of fakes on average, and vice versa, which bounds
  how far apart the two can drift (the paper ties it to an LeCam
  divergence). The authors use weights from 0.01 to 0.3 (BigGAN on
  CIFAR-10: 0.3).
* :class:`ConsistencyRegularization` (bCR: Zhao, Singh, Odena, Zhang, Zhang,
  "Improved Consistency Regularization for GANs", AAAI 2021): ``weight *
  (mean((D(x_real) - D(T(x_real)))^2) + mean((D(x_fake) - D(T(x_fake)))^2))``
  with ``T`` a semantics-preserving augmentation, so D must give an image
  and its slightly shifted copy the same score, real or fake. The paper's
  ``T`` is a flip and a translation; digits are not mirror-symmetric, so the
  default here is the translation alone (:func:`gan_trainer.augment.translation`,
  up to 1/8 of the side). The paper's weight is 10 for both halves. Two more
  forward and backward passes through D per D step.

Their effect on this package's digits is measured by
``benchmarks/recipes.py`` (candidates ``lecam`` and ``bcr``; the table is in
docs/results.md).
"""

from __future__ import annotations

import math

import chainer
import chainer.functions as F
import numpy

from gan_trainer.augment import get_augment


def _check_weight(name: str, weight: float) -> float:
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) \
            or not math.isfinite(weight) or weight < 0:
        raise ValueError(f'{name} weight must be a finite number >= 0, got {weight!r}')
    return float(weight)


class LeCam:
    """LeCam regularization of D's outputs (see the module docstring).

    Args:
        weight: lambda, the term's strength.
        decay: Of the moving averages of D's mean outputs; the first step
            starts them at that step's means.
    """

    name = 'lecam'

    def __init__(self, weight: float, *, decay: float = 0.99) -> None:
        self.weight = _check_weight('LeCam', weight)
        if not 0 <= decay < 1:
            raise ValueError(f'LeCam decay must be in [0, 1), got {decay!r}')
        self.decay = float(decay)
        # Moving averages of mean(y_real) and mean(y_fake): 0-d arrays on
        # D's device (no transfer per step), NaN before the first step.
        self.average_real = numpy.array(numpy.nan, numpy.float32)
        self.average_fake = numpy.array(numpy.nan, numpy.float32)

    def _follow(self, average, y, first: bool):
        xp = chainer.backend.get_array_module(y)
        mean = y.array.mean(dtype=numpy.float32)
        if first:  # the first step: start at its means
            return mean
        return self.decay * xp.asarray(average) + (1 - self.decay) * mean

    def __call__(self, discriminate, x_real, x_fake, y_real, y_fake, rng=None):
        """The term for this D step; the averages first take in this step's outputs."""
        # A host-side check of the saved value (a NumPy array until the
        # first step replaces it by one on D's device): no transfer per step.
        first = isinstance(self.average_real, numpy.ndarray) and numpy.isnan(self.average_real)
        self.average_real = self._follow(self.average_real, y_real, first)
        self.average_fake = self._follow(self.average_fake, y_fake, first)
        a_real = self.average_real.astype(y_real.dtype)
        a_fake = self.average_fake.astype(y_fake.dtype)
        term = (F.mean(F.square(F.relu(y_real - a_fake)))
                + F.mean(F.square(F.relu(a_real - y_fake))))
        return self.weight * term

    def serialize(self, serializer) -> None:
        """Saves/restores the two moving averages (so a resumed run continues exactly)."""
        for attr in ('average_real', 'average_fake'):
            value = getattr(self, attr)
            if isinstance(serializer, chainer.serializer.Deserializer):
                setattr(self, attr, numpy.asarray(serializer(attr, numpy.asarray(value))))
            else:
                serializer(attr, chainer.backend.CpuDevice().send(value))

    def __repr__(self) -> str:
        return f'LeCam(weight={self.weight:g}, decay={self.decay:g})'


class ConsistencyRegularization:
    """Balanced consistency regularization, bCR (see the module docstring).

    Args:
        weight: lambda of both halves (real and fake).
        policy: The augmentation ``T``: a policy of
            :func:`gan_trainer.augment.get_augment` (``'translation'`` by
            default; ``'translation,cutout'`` is stronger).
    """

    name = 'bcr'

    def __init__(self, weight: float, *, policy: str = 'translation') -> None:
        self.weight = _check_weight('bCR', weight)
        self.policy = policy
        self.augment = get_augment(policy)

    def __call__(self, discriminate, x_real, x_fake, y_real, y_fake, rng):
        """The term: D's outputs on ``T(x)`` against its outputs on ``x``, for both halves."""
        y_real_t = discriminate(self.augment(x_real, rng))
        y_fake_t = discriminate(self.augment(x_fake, rng))
        term = (F.mean(F.square(y_real - y_real_t))
                + F.mean(F.square(y_fake - y_fake_t)))
        return self.weight * term

    def __repr__(self) -> str:
        return f'ConsistencyRegularization(weight={self.weight:g}, policy={self.policy!r})'
