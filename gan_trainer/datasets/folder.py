"""Image folders: a user's pictures, one subfolder per class, decoded once or lazily."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import chainer
import numpy as np
from PIL import Image

from gan_trainer.datasets._common import DatasetError, _check_size
from gan_trainer.image import load_image, open_regular_file, to_float

#: Extensions (lower case) that :class:`ImageFolderDataset` picks up.
IMAGE_EXTENSIONS = ('.bmp', '.jpeg', '.jpg', '.png', '.webp')
#: The most memory :class:`ImageFolderDataset` keeps its decoded pixels in by default.
CACHE_BYTES = 1 << 30
_MAX_LISTED = 10  # skipped files named in a warning before "and N more"


class SkippedFilesWarning(UserWarning):
    """Some files in an image folder could not be decoded and were left out."""


class LargeImageWarning(UserWarning):
    """Some images of a folder are over Pillow's decompression-bomb warning limit."""


def _decode(path: str, size: int | None = None,
            gray: bool = False) -> tuple[str | None, bool, np.ndarray | None]:
    """``(why path cannot be decoded or None, whether Pillow called it a bomb,
    its uint8 pixels at size x size or None)``.

    With ``size`` the file is decoded as training reads it
    (:func:`~gan_trainer.image.load_image`) and the pixels are returned;
    without, only far enough to know that it decodes.

    Pillow warns (``DecompressionBombWarning``) about images over
    ``Image.MAX_IMAGE_PIXELS`` (89 million pixels) without naming the file,
    and raises above twice that; the warning is caught here so that the
    dataset can name the files in one warning of its own.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always', Image.DecompressionBombWarning)
        pixels = None
        try:
            if size is not None:
                pixels = load_image(path, size=size, gray=gray, raw=True)
            else:
                with open_regular_file(path) as f, Image.open(f) as img:
                    img.draft(None, (64, 64))
                    # verify() misses truncated JPEGs; only a real decode finds them.
                    img.load()
        # Plugins raise OSError, ValueError, SyntaxError, EOFError, struct.error,
        # DecompressionBombError...; any of them means: leave the file out.
        except Exception as e:  # noqa: BLE001
            return f'{type(e).__name__}: {e}'.splitlines()[0], False, None
    large = any(issubclass(w.category, Image.DecompressionBombWarning) for w in caught)
    return None, large, pixels


def _listed(items: Sequence[str]) -> str:
    """``'a, b, c and 7 more'``: at most :data:`_MAX_LISTED` items named."""
    text = ', '.join(items[:_MAX_LISTED])
    if len(items) > _MAX_LISTED:
        text += f' and {len(items) - _MAX_LISTED} more'
    return text


class ImageFolderDataset(chainer.dataset.DatasetMixin):
    """Images from a folder tree, decoded once or lazily, as ``(image, label)`` pairs.

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
    When the folder's pixels at ``size`` fit in ``cache_bytes`` (1 GiB by
    default: 20,000 RGB images at 128, 87,000 at 64), that decode is the
    only one: the uint8 pixels are kept (:attr:`cached`) and every epoch
    reads them from memory, the same values a decode would give. A folder
    of small PNGs or of JPEG photos (decoded at a reduced scale) costs
    little to decode, but every epoch's decoding in loader processes took
    a share of the cores from the networks: on two cores the default run
    was markedly faster per iteration from memory
    (``benchmarks/folder_speed.py`` measures it; the figures are in
    benchmarks/RESULTS.md, "A folder from memory"). A larger folder, or
    ``cache_bytes=0``, keeps only the paths, decodes lazily, and pickles
    cheaply for loader processes.

    Args:
        root: Folder to read.
        size: Side length of the square output images; see
            :func:`gan_trainer.image.load_image`.
        gray: Yield 1-channel luminance images instead of RGB.
        cache_bytes: Keep the decoded pixels when they take at most this
            much memory (0: never); see above.

    Attributes:
        root (str): The folder given.
        paths (list[str]): Readable image files, sorted.
        labels (numpy.ndarray): int32 label of each path.
        class_names (list[str]): Class of each label value; see above.
        skipped (list[tuple[str, str]]): ``(path, reason)`` of files left out.
        cached (bool): Whether the pixels are kept in memory (see above).

    Raises:
        DatasetError: If ``root`` is missing, not a folder, holds no image
            files, or none of them can be decoded.
    """

    def __init__(self, root: str | os.PathLike, *, size: int = 64, gray: bool = False,
                 cache_bytes: int = CACHE_BYTES):
        super().__init__()
        self.root = os.fspath(root)
        self.size = _check_size(size)
        self.gray = bool(gray)
        if isinstance(cache_bytes, bool) or not isinstance(cache_bytes, (int, np.integer)) \
                or cache_bytes < 0:
            raise ValueError(f'cache_bytes must be an integer >= 0, got {cache_bytes!r}')
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

        shape = (1 if self.gray else 3, self.size, self.size)
        self.cached = len(candidates) * int(np.prod(shape)) <= cache_bytes
        pixels = np.empty((len(candidates), *shape), np.uint8) if self.cached else None
        self.paths, labels, self.skipped, large = [], [], [], []
        for rel in candidates:
            path = os.path.join(self.root, *rel)
            error, is_large, image = _decode(path, self.size if self.cached else None, self.gray)
            if error is not None:
                self.skipped.append((path, error))
                continue
            if is_large:
                large.append(os.path.relpath(path, self.root))
            if self.cached:
                pixels[len(self.paths)] = image
            self.paths.append(path)
            labels.append(label_of.get(rel[0] if len(rel) > 1 else '.', 0))
        self.labels = np.asarray(labels, dtype=np.int32)
        self._pixels = pixels[:len(self.paths)] if self.cached else None

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
                f'limit) and decode slowly{"" if self.cached else " every epoch"}: '
                f'{_listed(large)}',
                LargeImageWarning,
                stacklevel=2,
            )

    def __len__(self) -> int:
        return len(self.paths)

    def get_example(self, i: int) -> tuple[np.ndarray, np.int32]:
        """Image ``i``: from memory when :attr:`cached`, else decoded now.

        Returns:
            tuple: float32 ``(C, size, size)`` image in [-1, 1] and its int32
            label.
        """
        if self._pixels is not None:
            return to_float(self._pixels[i]), self.labels[i]
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
