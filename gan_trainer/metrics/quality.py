"""All the quality metrics of a set of generated images, against one real set.

:class:`RealStatistics` embeds a real image set once (the training set, for
FID as Heusel et al. define it) and keeps what every later comparison needs:
the features, their mean and covariance, and the k-NN radii of a fixed
subset for precision/recall. :meth:`RealStatistics.measure` then embeds
generated images and returns every metric in one dict, which is what
:class:`~gan_trainer.extensions.QualityReport` reports during training and
``benchmarks/quality.py`` prints. :func:`real_images` turns a dataset
into the array of real images it needs.
"""

from __future__ import annotations

import numpy

from gan_trainer.datasets import ArrayDataset
from gan_trainer.metrics.classes import (
    COVERAGE_THRESHOLD,
    class_coverage,
    inception_score,
    label_accuracy,
)
from gan_trainer.metrics.distances import (
    frechet_distance,
    gaussian_stats,
    kid,
    knn_radii,
    precision_recall,
)
from gan_trainer.metrics.features import FeatureNet

#: At most this many real images are embedded as the reference by
#: :func:`real_images`: all of the 4,500 training digits, while a large
#: folder costs at most 10,000 forward passes of the feature network.
MAX_REFERENCE = 10_000


def real_images(dataset, *, limit: int = MAX_REFERENCE, seed: int = 0) -> numpy.ndarray:
    """The images of ``dataset`` as one array, at most ``limit`` of them.

    Args:
        dataset: A dataset of images or ``(image, label)`` tuples.
        limit: A larger dataset contributes a fixed random subset
            (``RandomState(seed)``) of this size, in index order.
        seed: Seed of that subset.

    Returns:
        float32 ``(n, C, H, W)``.
    """
    n = len(dataset)
    if n == 0:
        raise ValueError('the reference dataset is empty')
    index = numpy.arange(n)
    if n > limit:
        index = numpy.sort(numpy.random.RandomState(seed).choice(n, limit, replace=False))
    first = dataset[0]
    if isinstance(dataset, ArrayDataset) and n <= limit:
        return numpy.asarray(dataset.images, numpy.float32)  # no copy per example
    pick = (lambda e: e[0]) if isinstance(first, tuple) else (lambda e: e)
    return numpy.stack([numpy.asarray(pick(dataset[int(i)]), numpy.float32) for i in index])


class RealStatistics:
    """Features and statistics of a real image set, computed once.

    Args:
        embed: The feature network (see :mod:`gan_trainer.metrics.features`).
        images: Real images ``(n, C, H, W)`` in [-1, 1], n >= 2.
        k: Neighbourhood size of precision/recall (3, as in the paper).
        kid_subsets: Subsets KID averages over. 10 rather than the paper's
            100: with 1,000 samples that keeps KID near 0.5 s on a CPU, and
            the mean stays unbiased (only a little noisier).
        kid_subset_size: Rows per set in each KID subset (1,000 as in the paper).
        coverage_threshold: Share a class needs to count as appearing.
        seed: Seed of the precision/recall subset and the KID subsets.

    Attributes:
        features (numpy.ndarray): ``(n, d)`` float64 features of ``images``.
        mu, sigma (numpy.ndarray): Their mean ``(d,)`` and covariance ``(d, d)``.
    """

    def __init__(
        self,
        embed: FeatureNet,
        images,
        *,
        k: int = 3,
        kid_subsets: int = 10,
        kid_subset_size: int = 1000,
        coverage_threshold: float = COVERAGE_THRESHOLD,
        seed: int = 0,
    ) -> None:
        self.embed = embed
        self.k, self.kid_subsets, self.kid_subset_size = k, kid_subsets, kid_subset_size
        self.coverage_threshold, self.seed = coverage_threshold, seed
        features, _ = embed(images)
        self.features = numpy.asarray(features, numpy.float64)
        self.mu, self.sigma = gaussian_stats(self.features)
        self._neighbourhoods = {}

    def neighbourhood(self, m: int) -> tuple[numpy.ndarray, numpy.ndarray]:
        """A fixed random subset of ``min(m, n)`` real features and their k-NN radii.

        The k-NN radii shrink as a set grows, so precision/recall compare
        ``m`` generated samples with ``m`` real ones, as Kynkäänniemi et al.
        do; the subset and its radii are computed once per ``m``.
        """
        m = min(m, len(self.features))
        if m not in self._neighbourhoods:
            rng = numpy.random.RandomState(self.seed)
            subset = self.features[numpy.sort(rng.choice(len(self.features), m, replace=False))]
            self._neighbourhoods[m] = subset, knn_radii(subset, self.k)
        return self._neighbourhoods[m]

    def compare(self, features, probs=None, labels=None) -> dict[str, float]:
        """Every metric of already-embedded generated images.

        Args:
            features: ``(m, d)`` features of the generated images, m >= k + 1.
            probs: ``(m, K)`` class probabilities, or None.
            labels: ``(m,)`` classes a conditional generator was asked for, or None.

        Returns:
            ``{'fid', 'kid', 'precision', 'recall'}``, plus ``'is'``,
            ``'classes'`` and ``'class_kl'`` when ``probs`` is given, plus
            ``'label_accuracy'`` when ``labels`` is given too.
        """
        features = numpy.asarray(features, numpy.float64)
        result = {'fid': frechet_distance(self.mu, self.sigma, *gaussian_stats(features))}
        result['kid'], _ = kid(
            self.features,
            features,
            n_subsets=self.kid_subsets,
            subset_size=self.kid_subset_size,
            seed=self.seed,
        )
        real, radii = self.neighbourhood(len(features))
        result['precision'], result['recall'] = precision_recall(
            real, features, k=self.k, real_radii=radii
        )
        if probs is not None:
            result['is'] = inception_score(probs)
            classes, kl = class_coverage(probs, threshold=self.coverage_threshold)
            result['classes'], result['class_kl'] = float(classes), kl
            if labels is not None:
                result['label_accuracy'] = label_accuracy(probs, labels)
        return result

    def measure(self, images, labels=None) -> dict[str, float]:
        """Embeds generated images ``(m, C, H, W)`` and returns :meth:`compare`'s dict."""
        features, probs = self.embed(images)
        return self.compare(features, probs, labels)
