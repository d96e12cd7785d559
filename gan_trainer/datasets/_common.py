"""What the dataset modules share: their error, labelled arrays, and resizing image arrays."""

from __future__ import annotations

from typing import Any

import chainer
import numpy as np
from PIL import Image

# Anything Chainer iterators accept: __len__ plus __getitem__ with ints/slices.
Dataset = Any


class DatasetError(ValueError):
    """A dataset spec or folder cannot be used; the message names it and why."""


def _check_size(size) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise DatasetError(f'image size must be a positive integer, got {size!r}')
    return int(size)


class ArrayDataset(chainer.datasets.TupleDataset):
    """``(image, label)`` pairs from two arrays that stay readable as wholes.

    Chainer's ``TupleDataset`` keeps its arrays private; what needs every
    image at once (the quality metrics' reference set, the digits
    classifier's training) reads :attr:`images` and :attr:`labels` instead
    of copying the examples one by one.

    Args:
        images: Float32 ``(N, C, H, W)`` in [-1, 1].
        labels: Int32 ``(N,)``.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        super().__init__(images, labels)
        self.images, self.labels = images, labels


def resize_chw(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of float32 ``(..., C, H, W)`` images to ``size x size``."""
    if images.shape[-2:] == (size, size):
        return images
    flat = images.reshape((-1, *images.shape[-2:]))
    # Mode 'F' keeps float precision, so no second rounding to 8 bits.
    out = np.stack(
        [
            np.asarray(
                Image.fromarray(plane, mode='F').resize((size, size), Image.Resampling.BILINEAR)
            )
            for plane in flat
        ]
    )
    return np.clip(out, -1.0, 1.0).reshape((*images.shape[:-2], size, size))
