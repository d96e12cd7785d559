"""Distances between two sets of feature vectors: FID, KID, precision and recall.

Each function takes features, not images: ``(n, d)`` arrays from a feature
network (the digits classifier's 128-d penultimate layer, Inception-v3's
2048-d pool3, or anything else), one row per image. Everything is computed in
float64 NumPy on the CPU; for the sample counts used during training (a few
thousand) each call takes well under a second.

* :func:`fid` -- Fréchet distance between Gaussians fitted to the two sets
  (Heusel et al. 2017). Biased: it shrinks as the sample count grows, so
  compare FIDs only at equal sample counts.
* :func:`kid` -- squared MMD with a cubic polynomial kernel, unbiased,
  averaged over random subsets (Bińkowski et al. 2018). About 0 for two
  samples of one distribution, whatever their size.
* :func:`precision_recall` -- the k-nearest-neighbour manifolds of
  Kynkäänniemi et al. 2019: precision is the share of generated samples
  that fall inside the real manifold (quality), recall the share of real
  samples inside the generated one (coverage).
"""

from __future__ import annotations

import numpy


def _as_features(x, name: str) -> numpy.ndarray:
    x = numpy.asarray(x, dtype=numpy.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(
            f'{name} must be a non-empty (n, d) array of features, got shape {x.shape}'
        )
    return x


def gaussian_stats(features) -> tuple[numpy.ndarray, numpy.ndarray]:
    """Mean ``(d,)`` and covariance ``(d, d)`` of ``features`` ``(n, d)``, n >= 2.

    The covariance is the unbiased one (divided by ``n - 1``), as in the
    reference FID code.
    """
    x = _as_features(features, 'features')
    if len(x) < 2:
        raise ValueError('a covariance needs at least 2 samples')
    return x.mean(axis=0), numpy.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])


def _sqrt_psd(a: numpy.ndarray) -> numpy.ndarray:
    """Square root of a symmetric positive semi-definite matrix."""
    w, v = numpy.linalg.eigh((a + a.T) / 2)
    return (v * numpy.sqrt(numpy.clip(w, 0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

    ``||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))``. The trace of the
    square root is computed as ``Tr((S1^(1/2) S2 S1^(1/2))^(1/2))``, which has
    the same eigenvalues but is symmetric: no complex parts to discard and no
    failure for singular covariances (fewer samples than dimensions), where
    ``scipy.linalg.sqrtm(S1 @ S2)`` needs the reference code's epsilon.

    Returns:
        The distance, a float >= 0 (up to rounding).
    """
    mu1, mu2 = numpy.asarray(mu1, numpy.float64), numpy.asarray(mu2, numpy.float64)
    s1, s2 = numpy.asarray(sigma1, numpy.float64), numpy.asarray(sigma2, numpy.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != mu1.shape * 2:
        raise ValueError(
            f'shapes do not match: mu {mu1.shape} and {mu2.shape}, sigma {s1.shape} and {s2.shape}'
        )
    root1 = _sqrt_psd(s1)
    middle = numpy.linalg.eigvalsh(root1 @ s2 @ root1)
    tr_covmean = numpy.sqrt(numpy.clip(middle, 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + numpy.trace(s1) + numpy.trace(s2) - 2 * tr_covmean)


def fid(features_a, features_b) -> float:
    """Fréchet Inception Distance between two sets of features ``(n, d)``, ``(m, d)``.

    0 means the two sets have the same mean and covariance; lower is better.
    With Inception-v3 pool3 features and 50,000 samples this is the number
    papers report; with other features or fewer samples it is only
    comparable to numbers computed the same way.
    """
    return frechet_distance(*gaussian_stats(features_a), *gaussian_stats(features_b))


def _cubic_kernel(a: numpy.ndarray, b: numpy.ndarray) -> numpy.ndarray:
    """``(a @ b.T / d + 1) ** 3``, in place (``**`` is several times slower)."""
    k = a @ b.T
    k /= a.shape[1]
    k += 1
    cube = k * k
    cube *= k
    return cube


def mmd2_unbiased(x: numpy.ndarray, y: numpy.ndarray) -> float:
    """Unbiased MMD^2 between ``x`` ``(m, d)`` and ``y`` ``(n, d)``, cubic polynomial kernel.

    The kernel is ``k(a, b) = (a . b / d + 1) ** 3`` (Bińkowski et al. 2018,
    Eq. 7); the diagonals ``k(x_i, x_i)`` are left out of the within-set
    means, which makes the estimate unbiased (it can be slightly negative).
    """
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ValueError('the unbiased MMD needs at least 2 samples in each set')
    k_xx, k_yy, k_xy = _cubic_kernel(x, x), _cubic_kernel(y, y), _cubic_kernel(x, y)
    within_x = (k_xx.sum() - numpy.trace(k_xx)) / (m * (m - 1))
    within_y = (k_yy.sum() - numpy.trace(k_yy)) / (n * (n - 1))
    return float(within_x + within_y - 2 * k_xy.mean())


def kid(
    features_a, features_b, *, n_subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """Kernel Inception Distance: MMD^2 averaged over random subsets.

    As in the reference implementation, each of ``n_subsets`` rounds draws
    ``subset_size`` rows (without replacement) from each set and computes
    :func:`mmd2_unbiased`; the subsets bound the cost at ``O(subset_size^2)``
    per round.

    Args:
        features_a: ``(n, d)`` features, e.g. of real images.
        features_b: ``(m, d)`` features, e.g. of generated images.
        n_subsets: Rounds to average; 100 in the paper, fewer during
            training (the mean is still unbiased, only noisier).
        subset_size: Rows per set and round; lowered to the smaller set's
            size when that is smaller.
        seed: Seed of the subset draws, so equal inputs give equal results.

    Returns:
        ``(mean, std)`` over the rounds; the mean is about 0 for two samples
        of one distribution and positive otherwise.
    """
    a, b = _as_features(features_a, 'features_a'), _as_features(features_b, 'features_b')
    if a.shape[1] != b.shape[1]:
        raise ValueError(f'feature sizes differ: {a.shape[1]} and {b.shape[1]}')
    if n_subsets < 1:
        raise ValueError(f'n_subsets must be at least 1, got {n_subsets}')
    size = min(subset_size, len(a), len(b))
    rng = numpy.random.RandomState(seed)
    values = [
        mmd2_unbiased(
            a[rng.choice(len(a), size, replace=False)], b[rng.choice(len(b), size, replace=False)]
        )
        for _ in range(n_subsets)
    ]
    return float(numpy.mean(values)), float(numpy.std(values))


def _squared_distances(x: numpy.ndarray, y: numpy.ndarray) -> numpy.ndarray:
    """``(len(x), len(y))`` squared Euclidean distances, clipped at 0."""
    d = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2 * x @ y.T
    return numpy.clip(d, 0, None)


def knn_radii(features, k: int = 3, *, batchsize: int = 1000) -> numpy.ndarray:
    """Distance of each row of ``features`` to its ``k``-th nearest other row.

    These radii define the k-NN manifold of a set (Kynkäänniemi et al.
    2019): the union of the balls around its points. The point itself
    (distance 0) is not counted, as in the reference code.

    Returns:
        float64 ``(n,)`` radii.
    """
    x = _as_features(features, 'features')
    if not 1 <= k < len(x):
        raise ValueError(f'k must be in 1..{len(x) - 1} for {len(x)} samples, got {k}')
    radii = []
    for i in range(0, len(x), batchsize):
        d = _squared_distances(x[i : i + batchsize], x)
        # Column k of the sorted row: column 0 is the point itself.
        radii.append(numpy.partition(d, k, axis=1)[:, k])
    return numpy.sqrt(numpy.concatenate(radii))


def manifold_coverage(points, centers, radii, *, batchsize: int = 1000) -> float:
    """Share of ``points`` inside at least one ball ``(centers[j], radii[j])``."""
    p, c = _as_features(points, 'points'), _as_features(centers, 'centers')
    r2 = numpy.asarray(radii, numpy.float64) ** 2
    inside = [
        (_squared_distances(p[i : i + batchsize], c) <= r2[None, :]).any(axis=1)
        for i in range(0, len(p), batchsize)
    ]
    return float(numpy.concatenate(inside).mean())


def precision_recall(real, fake, *, k: int = 3, real_radii=None) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019).

    Precision: the share of ``fake`` inside the k-NN manifold of ``real``
    (are the samples realistic?). Recall: the share of ``real`` inside the
    k-NN manifold of ``fake`` (is all of the data covered?). The radii
    depend on the sample count, so use sets of equal size, as the paper does.

    Args:
        real: ``(n, d)`` real features.
        fake: ``(m, d)`` generated features.
        k: Neighbourhood size; 3 in the paper.
        real_radii: :func:`knn_radii` of ``real``, when already computed.

    Returns:
        ``(precision, recall)``, each in [0, 1].
    """
    real, fake = _as_features(real, 'real'), _as_features(fake, 'fake')
    if real_radii is None:
        real_radii = knn_radii(real, k)
    precision = manifold_coverage(fake, real, real_radii)
    recall = manifold_coverage(real, fake, knn_radii(fake, k))
    return precision, recall
