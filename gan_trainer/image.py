"""Convert between image arrays and pictures: float [-1, 1] arrays <-> uint8 / files.

Generators in this package emit float images in [-1, 1] with shape
``(N, C, H, W)`` (the range ``tanh`` gives and that :mod:`gan_trainer.datasets`
uses for real data). :func:`to_uint8` maps that range to bytes,
:func:`tile_images` lays a batch out as one padded grid, and
:func:`save_image` / :func:`save_grid` write it to disk with Pillow;
:func:`save_images` writes a batch as one numbered file per image.
:func:`load_image` goes the other way, from any image file to a square float
array, and is what the image-folder dataset decodes with. Nothing here knows
about training; callers move arrays to the CPU (or pass CuPy arrays, which
are moved for them).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import chainer
import numpy as np
from PIL import Image

from gan_trainer.files import atomic_write

_ALPHA_MODES = ('LA', 'La', 'PA', 'RGBA', 'RGBa')


def to_uint8(images) -> np.ndarray:
    """Maps float images in [-1, 1] to uint8 in [0, 255].

    Each value becomes ``round((x + 1) * 127.5)`` after clipping ``x`` to
    [-1, 1], so -1 -> 0, 1 -> 255 and 0 -> 128 (NumPy rounds half to even and
    127.5 rounds up to 128). NaN, which a diverged generator can produce, maps
    to 0 rather than to an undefined cast.

    Args:
        images: Float array of any shape and float dtype. A CuPy array or a
            :class:`chainer.Variable` is moved to the CPU first.

    Returns:
        numpy.ndarray: uint8 array of the same shape.

    Raises:
        TypeError: If the array does not hold floats.
    """
    if isinstance(images, chainer.Variable):
        images = images.array
    images = np.asarray(chainer.backend.CpuDevice().send(images))
    if images.dtype.kind != 'f':
        raise TypeError(f'to_uint8 expects float images in [-1, 1], got dtype {images.dtype}')
    # float16 cannot represent every step of the 0..255 scale exactly.
    x = images.astype(np.promote_types(images.dtype, np.float32), copy=False)
    x = np.nan_to_num(x, nan=-1.0)
    return np.rint((np.clip(x, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)


def tile_images(
    images, rows: int, cols: int, *, padding: int = 2, pad_value: int = 255
) -> np.ndarray:
    """Lays a batch of images out as one grid with padding between cells.

    Image ``i`` goes to row ``i // cols`` and column ``i % cols`` (row-major,
    like reading text). Cells past the last image keep the pad colour, so a
    fixed ``rows x cols`` grid can show a smaller batch.

    Args:
        images: Float array ``(N, C, H, W)`` in [-1, 1] with ``C`` 1 (gray) or
            3 (RGB) and ``N <= rows * cols``; CuPy arrays are accepted.
        rows: Number of grid rows.
        cols: Number of grid columns.
        padding: Pixels of pad colour around and between cells.
        pad_value: Pad grey level in [0, 255]; the default white separates
            the mostly dark digit images clearly.

    Returns:
        numpy.ndarray: uint8 array ``(rows * H + (rows + 1) * padding,
        cols * W + (cols + 1) * padding)`` for gray images, with a trailing
        axis of 3 for RGB.

    Raises:
        ValueError: If the shape is not ``(N, 1|3, H, W)``, the images do not
            fit the grid, or an option is out of range.
    """
    for name, value, low in (('rows', rows, 1), ('cols', cols, 1), ('padding', padding, 0)):
        if not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f'tile_images: {name} must be an integer >= {low}, got {value!r}')
    if not 0 <= pad_value <= 255:
        raise ValueError(f'tile_images: pad_value must be in [0, 255], got {pad_value!r}')
    shape = getattr(images, 'shape', None)
    if shape is None or len(shape) != 4 or shape[1] not in (1, 3):
        raise ValueError(
            'tile_images expects images of shape (N, C, H, W) with '
            f'C in {{1, 3}}, got shape {shape}'
        )
    n, c, h, w = shape
    if n > rows * cols:
        raise ValueError(
            f'tile_images: {n} images do not fit a {rows}x{cols} grid ({rows * cols} cells)'
        )

    pixels = to_uint8(images).transpose(0, 2, 3, 1)  # (N, H, W, C) for PIL
    grid = np.full(
        (rows * h + (rows + 1) * padding, cols * w + (cols + 1) * padding, c), pad_value, np.uint8
    )
    for i in range(n):
        row, col = divmod(i, cols)
        top = padding + row * (h + padding)
        left = padding + col * (w + padding)
        grid[top : top + h, left : left + w] = pixels[i]
    return grid[:, :, 0] if c == 1 else grid


def save_image(array: np.ndarray, path: str | os.PathLike) -> Path:
    """Writes a uint8 image to ``path``, creating missing parent folders.

    The format follows the file extension (use ``.png``: lossless, so grids
    of generated samples keep their exact pixels); a name without a known
    extension is written as PNG. The file is written with
    :func:`gan_trainer.files.atomic_write`.

    Args:
        array: uint8 array ``(H, W)`` (gray), ``(H, W, 3)`` (RGB) or
            ``(H, W, 4)`` (RGBA), e.g. the output of :func:`tile_images`.
        path: Destination file.

    Returns:
        pathlib.Path: The path written.

    Raises:
        ValueError: If ``array`` is not a uint8 image of those shapes.
    """
    array = np.asarray(array)
    if array.dtype != np.uint8 or not (
        array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))
    ):
        raise ValueError(
            'save_image expects a uint8 array (H, W), (H, W, 3) or '
            f'(H, W, 4), got {array.dtype} {array.shape}'
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image_format = Image.registered_extensions().get(path.suffix.lower(), 'PNG')
    # Atomically: a viewer, a GIF maker or a crash never sees half a picture.
    with atomic_write(path) as f:
        Image.fromarray(array).save(f, format=image_format)
    return path


def save_grid(
    images, path: str | os.PathLike, rows: int, cols: int, *, padding: int = 2, pad_value: int = 255
) -> Path:
    """Tiles a batch with :func:`tile_images` and writes it with :func:`save_image`.

    Args:
        images: Float array ``(N, C, H, W)`` in [-1, 1], ``C`` in {1, 3}.
        path: Destination file (PNG recommended).
        rows: Number of grid rows.
        cols: Number of grid columns.
        padding: Pixels of pad colour around and between cells.
        pad_value: Pad grey level in [0, 255].

    Returns:
        pathlib.Path: The path written.
    """
    grid = tile_images(images, rows, cols, padding=padding, pad_value=pad_value)
    return save_image(grid, path)


def save_images(images, folder: str | os.PathLike, *, start: int = 0) -> list[Path]:
    """Writes each image of a batch to its own PNG file ``folder/NNNNNN.png``.

    Image ``i`` becomes ``{start + i:06d}.png``, so files sort in batch order
    and a second call with ``start=len(images)`` continues the numbering.
    The pixels are those :func:`tile_images` puts into a grid cell.

    Args:
        images: Float array ``(N, C, H, W)`` in [-1, 1], ``C`` in {1, 3};
            CuPy arrays are accepted.
        folder: Destination folder, created when missing.
        start: Number of the first file.

    Returns:
        list of pathlib.Path: The files written, in batch order.

    Raises:
        ValueError: If the shape is not ``(N, 1|3, H, W)`` or ``start < 0``.
    """
    shape = getattr(images, 'shape', None)
    if shape is None or len(shape) != 4 or shape[1] not in (1, 3):
        raise ValueError(
            f'save_images expects images of shape (N, C, H, W) with C in {{1, 3}}, got {shape}'
        )
    if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or start < 0:
        raise ValueError(f'save_images: start must be an integer >= 0, got {start!r}')
    pixels = to_uint8(images).transpose(0, 2, 3, 1)  # (N, H, W, C) for PIL
    if shape[1] == 1:
        pixels = pixels[..., 0]
    folder = Path(folder)
    return [save_image(p, folder / f'{start + i:06d}.png') for i, p in enumerate(pixels)]


def _flatten_to_rgb_or_l(img: Image.Image) -> Image.Image:
    """Converts any Pillow mode to 'L' or 'RGB', compositing alpha on white."""
    if img.mode in ('I', 'F') or img.mode.startswith('I;16'):
        # 16/32-bit gray: Pillow's convert('L') clips instead of rescaling.
        scale = 1.0 if img.mode == 'F' else 257.0
        values = np.asarray(img, dtype=np.float64) / scale
        return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))
    if img.mode in ('L', 'RGB') and 'transparency' not in img.info:
        return img
    if img.mode in _ALPHA_MODES or 'transparency' in img.info:
        # Transparent pixels would otherwise show whatever colour they carry.
        rgba = img.convert('RGBA')
        white = Image.new('RGBA', rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert('RGB')
    # 1, P, CMYK, YCbCr, LAB, HSV, ...
    return img.convert('L' if img.mode == '1' else 'RGB')


_NOT_REGULAR = {stat.S_IFIFO: 'a FIFO', stat.S_IFSOCK: 'a socket', stat.S_IFCHR: 'a device',
                stat.S_IFBLK: 'a device', stat.S_IFDIR: 'a folder'}


def open_regular_file(path: str | os.PathLike):
    """Opens ``path`` for reading in binary, refusing anything but a regular file.

    A FIFO named ``cat.png`` would block a reader for ever (until something
    writes into it), and a device could stream without end; they are found
    without blocking (``O_NONBLOCK``, then ``fstat`` of what was opened, so
    the file cannot be swapped in between).

    Raises:
        OSError: When it cannot be opened, or is not a regular file.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NONBLOCK', 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = _NOT_REGULAR.get(stat.S_IFMT(mode), 'not a file')
            raise OSError(errno.EINVAL, f'not a regular file ({kind})')
        return os.fdopen(fd, 'rb')
    except BaseException:
        os.close(fd)
        raise


def load_image(path: str | os.PathLike, *, size: int, gray: bool = False,
               raw: bool = False) -> np.ndarray:
    """Decodes one image file into a float32 ``(C, size, size)`` array.

    The image is scaled so its shorter side is ``size`` (Lanczos) and the
    centre ``size x size`` square is kept, so nothing is stretched.

    Args:
        path: Image file in any format Pillow reads.
        size: Output side length.
        gray: Return one luminance channel instead of three RGB channels.
        raw: Return the uint8 pixels (``(C, size, size)``, 0 to 255) instead;
            :func:`to_float` turns them into exactly what ``raw=False`` gives.

    Returns:
        numpy.ndarray: float32 ``(1 or 3, size, size)`` in [-1, 1] (uint8 in
        [0, 255] with ``raw``).

    Raises:
        ValueError: If ``size`` is not a positive integer.
        OSError: If Pillow cannot read or decode the file.
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f'load_image: size must be a positive integer, got {size!r}')
    with open_regular_file(path) as f, Image.open(f) as opened:
        # JPEG only: decode at 1/2, 1/4 or 1/8 scale when the result is still
        # at least size x size; much faster for photos, same final quality.
        opened.draft(None, (size, size))
        opened.load()  # before the file closes
        img = _flatten_to_rgb_or_l(opened).convert('L' if gray else 'RGB')
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) / 2, (h - side) / 2
    # Resizing just the centre square equals resize-then-crop, at less cost.
    img = img.resize(
        (size, size), Image.Resampling.LANCZOS, box=(left, top, left + side, top + side)
    )
    array = np.asarray(img, dtype=np.uint8)
    array = array[None] if gray else array.transpose(2, 0, 1)
    return np.ascontiguousarray(array) if raw else to_float(array)


def to_float(pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels (0 to 255) as the float32 values in [-1, 1] the networks train on."""
    return np.ascontiguousarray(pixels.astype(np.float32) / np.float32(127.5) - 1)
