"""Measuring what a generator makes: FID, KID, precision/recall and class scores.

Everything here compares *features* of images (see
:mod:`gan_trainer.metrics.features`), computed by a feature network:

* :mod:`~gan_trainer.metrics.classifier`: a digit classifier trained on the
  built-in digits, whose weights ship with the package, for offline use;
* :mod:`~gan_trainer.metrics.onnx_features`: Inception-v3 (the standard FID
  network) or any other network, from an ONNX file the user provides;
* :mod:`~gan_trainer.metrics.distances`: FID, KID, precision and recall;
* :mod:`~gan_trainer.metrics.classes`: Inception Score, class coverage and
  label accuracy from the class probabilities;
* :mod:`~gan_trainer.metrics.quality`: all of them at once against the
  statistics of a real set, as the ``QualityReport`` extension and
  ``benchmarks/quality.py`` use them.

The protocol (reference set, sample counts, thresholds) is described in
``docs/metrics.md``.
"""

from gan_trainer.metrics.classes import (
    class_coverage,
    class_histogram,
    inception_score,
    label_accuracy,
)
from gan_trainer.metrics.classifier import DigitsClassifier, load_digits_classifier
from gan_trainer.metrics.distances import fid, frechet_distance, kid, precision_recall
from gan_trainer.metrics.onnx_features import FeatureNetError, OnnxFeatures, inception_features
from gan_trainer.metrics.quality import RealStatistics

__all__ = [
    'DigitsClassifier',
    'FeatureNetError',
    'OnnxFeatures',
    'RealStatistics',
    'class_coverage',
    'class_histogram',
    'fid',
    'frechet_distance',
    'inception_features',
    'inception_score',
    'kid',
    'label_accuracy',
    'load_digits_classifier',
    'precision_recall',
]
