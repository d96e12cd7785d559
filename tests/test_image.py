"""Tests for gan_trainer.image: float [-1, 1] batches to uint8 grids and PNGs."""

import numpy as np
import pytest
from PIL import Image

from gan_trainer.image import (
    load_image,
    save_grid,
    save_image,
    save_images,
    tile_images,
    to_uint8,
)


@pytest.mark.parametrize('dtype', [np.float16, np.float32, np.float64])
def test_to_uint8_maps_endpoints_and_clips(dtype):
    x = np.array([-2.0, -1.0, 0.0, 1.0, 3.0, -1 + 1 / 127.5, np.nan], dtype)
    out = to_uint8(x)
    assert out.dtype == np.uint8
    # 0 -> 127.5 rounds (half to even) to 128; NaN maps to the -1 colour.
    np.testing.assert_array_equal(out, [0, 0, 128, 255, 255, 1, 0])


@pytest.mark.parametrize('values', [np.arange(3), np.ones(2, bool)])
def test_to_uint8_rejects_non_float(values):
    with pytest.raises(TypeError, match='dtype'):
        to_uint8(values)


def test_tile_gray_pixel_by_pixel():
    # Three 1x2 images in a 2x2 grid, padding 1: image i has values a_i, b_i.
    images = np.array([[[[-1.0, 1.0]]], [[[0.0, -1.0]]], [[[1.0, 0.0]]]], np.float32)
    grid = tile_images(images, 2, 2, padding=1, pad_value=7)
    p = 7
    expected = np.array(
        [
            [p, p, p, p, p, p, p],
            [p, 0, 255, p, 128, 0, p],  # images 0 and 1 in row 0
            [p, p, p, p, p, p, p],
            [p, 255, 128, p, p, p, p],  # image 2 in row 1; last cell empty
            [p, p, p, p, p, p, p],
        ],
        np.uint8,
    )
    np.testing.assert_array_equal(grid, expected)


@pytest.mark.parametrize('rows,cols,padding', [(1, 1, 0), (2, 3, 2), (3, 2, 1)])
def test_tile_rgb_shape_and_placement(rows, cols, padding):
    n, h, w = rows * cols, 4, 5
    # Image i is a flat colour whose red channel encodes i.
    images = np.zeros((n, 3, h, w), np.float32)
    for i in range(n):
        images[i, 0] = -1 + 2 * i / n
        images[i, 1] = 1.0
    grid = tile_images(images, rows, cols, padding=padding)
    assert grid.shape == (rows * h + (rows + 1) * padding, cols * w + (cols + 1) * padding, 3)
    assert grid.dtype == np.uint8
    for i in range(n):
        top = padding + (i // cols) * (h + padding)
        left = padding + (i % cols) * (w + padding)
        cell = grid[top : top + h, left : left + w]
        np.testing.assert_array_equal(cell[..., 0], to_uint8(images[i, 0]))
        assert (cell[..., 1] == 255).all() and (cell[..., 2] == 128).all()
    if padding:
        assert (grid[:padding] == 255).all() and (grid[:, :padding] == 255).all()


@pytest.mark.parametrize(
    'shape,rows,cols,match',
    [
        ((5, 1, 2, 2), 2, 2, '5 images'),
        ((4, 2, 2, 2), 2, 2, 'C in'),
        ((4, 2, 2), 2, 2, 'shape'),
        ((1, 3, 2, 2), 0, 2, 'rows'),
        ((1, 3, 2, 2), 1, -1, 'cols'),
    ],
)
def test_tile_errors(shape, rows, cols, match):
    with pytest.raises(ValueError, match=match):
        tile_images(np.zeros(shape, np.float32), rows, cols)


@pytest.mark.parametrize('channels', [1, 3])
def test_save_grid_writes_png_in_new_folder(tmp_path, channels):
    images = np.linspace(-1, 1, 4 * channels * 3 * 3, dtype=np.float32)
    images = images.reshape(4, channels, 3, 3)
    path = save_grid(images, tmp_path / 'a' / 'b' / 'grid.png', 2, 2, padding=1)
    with Image.open(path) as img:
        assert img.format == 'PNG'
        assert img.mode == ('L' if channels == 1 else 'RGB')
        np.testing.assert_array_equal(np.asarray(img), tile_images(images, 2, 2, padding=1))


def test_save_image_without_extension_is_png(tmp_path):
    path = save_image(np.zeros((2, 3), np.uint8), tmp_path / 'noext')
    with Image.open(path) as img:
        assert img.format == 'PNG' and img.size == (3, 2)


@pytest.mark.parametrize('array', [np.zeros((2, 2), np.float32), np.zeros((2, 2, 2), np.uint8)])
def test_save_image_rejects_bad_arrays(tmp_path, array):
    with pytest.raises(ValueError, match='uint8'):
        save_image(array, tmp_path / 'x.png')


@pytest.mark.parametrize('gray', [False, True])
@pytest.mark.parametrize('width,height,size', [(6, 4, 8), (4, 6, 3), (5, 5, 5)])
def test_load_image_shape_and_range(tmp_path, gray, width, height, size):
    pixels = np.random.RandomState(0).randint(0, 256, (height, width, 3), np.uint8)
    path = tmp_path / 'x.png'
    Image.fromarray(pixels).save(path)
    image = load_image(path, size=size, gray=gray)
    assert image.shape == (1 if gray else 3, size, size) and image.dtype == np.float32
    assert -1 <= image.min() and image.max() <= 1
    if (width, height, size) == (5, 5, 5) and not gray:  # no resampling: exact
        np.testing.assert_allclose(image, pixels.transpose(2, 0, 1) / 127.5 - 1, atol=1e-6)


def test_load_image_reduced_jpeg_decode_matches_full_decode(tmp_path):
    # A smooth 256x256 photo-like gradient, decoded at 1/8 scale for size 32.
    y, x = np.mgrid[0:256, 0:256]
    pixels = np.stack([x, y, (x + y) // 2], axis=-1).astype(np.uint8)
    path = tmp_path / 'big.jpg'
    Image.fromarray(pixels).save(path, quality=95)
    with Image.open(path) as full:
        reference = full.convert('RGB').resize((32, 32), Image.Resampling.LANCZOS)
    expected = np.asarray(reference, np.float32).transpose(2, 0, 1) / 127.5 - 1
    np.testing.assert_allclose(load_image(path, size=32), expected, atol=4 / 127.5)


@pytest.mark.parametrize('size', [0, 2.0, True])
def test_load_image_rejects_bad_size(tmp_path, size):
    path = tmp_path / 'x.png'
    Image.new('L', (2, 2)).save(path)
    with pytest.raises(ValueError, match='size'):
        load_image(path, size=size)


@pytest.mark.parametrize('channels', [1, 3])
def test_save_images_writes_one_numbered_png_per_image_with_the_grid_pixels(tmp_path, channels):
    images = np.random.RandomState(0).uniform(-1, 1, (3, channels, 5, 4)).astype(np.float32)
    paths = save_images(images, tmp_path / 'new' / 'folder', start=7)
    assert [p.name for p in paths] == ['000007.png', '000008.png', '000009.png']
    grid = tile_images(images, 1, 3, padding=0)
    for i, path in enumerate(paths):
        with Image.open(path) as img:
            assert img.format == 'PNG' and img.mode == ('L' if channels == 1 else 'RGB')
            np.testing.assert_array_equal(np.asarray(img), grid[:, 4 * i : 4 * i + 4])


@pytest.mark.parametrize(
    'shape, start', [((2, 2, 4, 4), 0), ((4, 4), 0), ((1, 1, 4, 4), -1)],
    ids=['two_channels', 'not_a_batch', 'negative_start'],
)
def test_save_images_rejects_bad_input(tmp_path, shape, start):
    with pytest.raises(ValueError):
        save_images(np.zeros(shape, np.float32), tmp_path, start=start)
    assert not list(tmp_path.iterdir())
