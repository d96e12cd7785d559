"""Scores from a classifier's class probabilities of generated images.

A classifier trained on the real data (for the built-in digits,
:class:`~gan_trainer.metrics.classifier.DigitsClassifier`) tells which class
each generated image looks like, and how sure it is:

* :func:`inception_score` -- ``exp(E_x KL(p(y|x) || p(y)))`` (Salimans et al.
  2016): high when each image is clearly one class and all classes occur;
  between 1 and the number of classes.
* :func:`class_histogram` and :func:`class_coverage` -- how many classes
  appear, and the KL divergence of their frequencies from uniform: a
  generator that collapsed onto a few modes shows it here first.
* :func:`label_accuracy` -- for a conditional generator, how often the
  classifier agrees with the class it was asked for.
"""

from __future__ import annotations

import numpy

#: Default share of the samples a class needs to count as appearing in
#: :func:`class_coverage`: 1%, a tenth of its share under a uniform
#: distribution of 10 classes, and 10 images in a sample of 1,000, so a
#: class is not counted because of a few misclassified images.
COVERAGE_THRESHOLD = 0.01


def _as_probs(probs) -> numpy.ndarray:
    p = numpy.asarray(probs, numpy.float64)
    if p.ndim != 2 or len(p) == 0:
        raise ValueError(f'probs must be a non-empty (n, classes) array, got shape {p.shape}')
    return p


def _xlogy(x: numpy.ndarray, y: numpy.ndarray) -> numpy.ndarray:
    """``x * log(y)`` with ``0 * log(0) = 0``."""
    safe = numpy.where(x > 0, y, 1.0)
    return numpy.where(x > 0, x * numpy.log(safe), 0.0)


def inception_score(probs) -> float:
    """``exp(mean_i KL(p_i || mean_j p_j))`` for class probabilities ``(n, K)``.

    Computed over the whole set at once (the paper averages over 10 splits
    of 5,000; one split is steadier for the few thousand samples used here).
    """
    p = _as_probs(probs)
    marginal = p.mean(axis=0, keepdims=True)
    kl = (_xlogy(p, p) - _xlogy(p, numpy.broadcast_to(marginal, p.shape))).sum(axis=1)
    return float(numpy.exp(kl.mean()))


def class_histogram(probs, n_classes: int | None = None) -> numpy.ndarray:
    """Counts ``(K,)`` of the most likely class of each image.

    Args:
        probs: Class probabilities or logits ``(n, K)`` (only the argmax is used).
        n_classes: ``K``; the width of ``probs`` by default.
    """
    p = _as_probs(probs)
    return numpy.bincount(p.argmax(axis=1), minlength=n_classes or p.shape[1])


def class_coverage(probs, *, threshold: float = COVERAGE_THRESHOLD) -> tuple[int, float]:
    """How many classes appear, and how far their frequencies are from uniform.

    Args:
        probs: Class probabilities or logits ``(n, K)``.
        threshold: Share of the images a class needs (as the most likely
            class) to count as appearing; see :data:`COVERAGE_THRESHOLD`.

    Returns:
        ``(classes, kl)``: the number of classes with a share ``>= threshold``
        (``K`` at best) and ``KL(frequencies || uniform)`` in nats, 0 for
        perfectly balanced classes and ``log K`` (2.30 for 10 classes) when
        every image is of one class.
    """
    counts = class_histogram(probs)
    share = counts / counts.sum()
    kl = float(_xlogy(share, share * len(share)).sum())
    return int((share >= threshold).sum()), max(kl, 0.0)


def label_accuracy(probs, labels) -> float:
    """Share of images whose most likely class is the requested label ``(n,)``."""
    p = _as_probs(probs)
    labels = numpy.asarray(labels).reshape(-1)
    if len(labels) != len(p):
        raise ValueError(f'{len(labels)} labels for {len(p)} images')
    return float((p.argmax(axis=1) == labels).mean())
