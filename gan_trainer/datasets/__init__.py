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
from collections.abc import Iterator

import chainer
import numpy as np

from gan_trainer.datasets._common import (
    ArrayDataset,
    Dataset,
    DatasetError,
    _check_size,
    resize_chw,
)
from gan_trainer.datasets.digits import DIGITS_FILE, get_digits
from gan_trainer.datasets.folder import (
    CACHE_BYTES,
    IMAGE_EXTENSIONS,
    ImageFolderDataset,
    LargeImageWarning,
    SkippedFilesWarning,
)

__all__ = ['CACHE_BYTES', 'DIGITS_FILE', 'IMAGE_EXTENSIONS', 'ArrayDataset', 'Data', 'Dataset', 'DatasetError',
           'ImageFolderDataset', 'LargeImageWarning', 'SkippedFilesWarning', 'get_digits',
           'image_shape', 'load_dataset', 'resize_chw']


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
            image = resize_chw(image, self.size)
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
    spec: str | os.PathLike, *, size: int | None = None, gray: bool = False,
    cache_bytes: int = CACHE_BYTES,
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
        cache_bytes: A folder keeps its decoded pixels in memory when they
            take at most this much (:class:`ImageFolderDataset`); 0 decodes
            every epoch.

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
        dataset = ImageFolderDataset(spec, size=size or 64, gray=gray, cache_bytes=cache_bytes)
        channels = 1 if gray else 3
        shape = (channels, dataset.size, dataset.size)
        classes = tuple(dataset.class_names)
        n = len(dataset)
        if n < 2:
            return Data(spec, dataset, dataset, shape, classes, not dataset.cached)
        n_test = min(1000, max(1, int(n * 0.05)))
        train, test = chainer.datasets.split_dataset_random(dataset, n - n_test, seed=0)
        return Data(spec, train, test, shape, classes, not dataset.cached)
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
