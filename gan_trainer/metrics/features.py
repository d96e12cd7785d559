"""What a feature network is, and how images are fitted to its input.

A *feature network* is any callable ``embed(images) -> (features, probs)``:

* ``images``: float32 ``(n, C, H, W)`` in [-1, 1], as the generator and
  the datasets of this package produce them;
* ``features``: float ``(n, d)``, the vectors FID, KID and precision/recall
  compare (for Inception-v3, the 2,048-d pool3 activations);
* ``probs``: float ``(n, K)`` class probabilities, or ``None`` when the
  network has no classifier head (then the class-based scores are skipped).

The package provides two: :meth:`DigitsClassifier.embed
<gan_trainer.metrics.classifier.DigitsClassifier.embed>` (trained on the
built-in digits, offline) and :class:`~gan_trainer.metrics.onnx_features.OnnxFeatures`
(Inception-v3 or any network exported to ONNX). Any other function with the
same signature works too, e.g. one that wraps a PyTorch model.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy

from gan_trainer.datasets import resize_chw

#: The type of a feature network (see the module docstring).
FeatureNet = Callable[[numpy.ndarray], tuple[numpy.ndarray, 'numpy.ndarray | None']]

# ITU-R 601 luma, as datasets.py converts RGB to gray.
_LUMA = numpy.array([0.299, 0.587, 0.114], numpy.float32)


def fit_images(images, *, size: int, channels: int) -> numpy.ndarray:
    """Returns ``images`` as float32 ``(n, channels, size, size)``.

    Gray images are repeated to 3 channels and RGB ones converted to luma
    for a 1-channel network; other sides are resized bilinearly (Pillow,
    the same resize :func:`gan_trainer.datasets.get_digits` uses), so a
    generator trained at 32x32 can be measured by a 28x28 network.

    Raises:
        ValueError: For arrays that are not ``(n, 1 or 3, H, W)``.
    """
    x = numpy.asarray(images, numpy.float32)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f'expected images of shape (n, 1 or 3, H, W), got {x.shape}')
    if x.shape[1] != channels:
        if channels == 3:
            x = numpy.repeat(x, 3, axis=1)
        elif channels == 1:
            x = numpy.tensordot(x, _LUMA, axes=([1], [0]))[:, None]
        else:
            raise ValueError(f'cannot convert {x.shape[1]}-channel images to {channels} channels')
    return resize_chw(x, size) if x.shape[2:] != (size, size) else x
