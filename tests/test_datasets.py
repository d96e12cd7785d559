"""Tests for gan_trainer.datasets: built-in digits, image folders, load_dataset."""

import io
import os
import pickle
import warnings

import chainer
import numpy as np
import pytest
from PIL import Image

from gan_trainer.datasets import (
    Data,
    DatasetError,
    ImageFolderDataset,
    SkippedFilesWarning,
    get_digits,
    image_shape,
    load_dataset,
)
from gan_trainer.datasets import digits as datasets  # the built-in set's module
from gan_trainer.image import load_image

ONE_STEP = 1 / 127.5  # one uint8 level in [-1, 1] units


def _save(path, img, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kwargs)
    return path


def _flat(mode, size, colour):
    return Image.new(mode, size, colour)


def _to_unit(level):
    return level / 127.5 - 1


# ---------------------------------------------------------------- digits


@pytest.mark.parametrize('split,n', [('train', 4500), ('test', 500)])
def test_digits_shapes_range_and_classes(split, n):
    ds = get_digits(split)
    assert len(ds) == n
    images, labels = chainer.dataset.concat_examples(ds[:])
    assert images.shape == (n, 1, 28, 28) and images.dtype == np.float32
    assert labels.dtype == np.int32
    assert images.min() == -1.0 and images.max() == 1.0
    # Stratified: every class present, exactly 10% of each class held out.
    np.testing.assert_array_equal(np.bincount(labels, minlength=10), [n // 10] * 10)


def test_digits_split_is_disjoint_and_deterministic(monkeypatch):
    train = chainer.dataset.concat_examples(get_digits('train')[:])[0]
    test = chainer.dataset.concat_examples(get_digits('test')[:])[0]
    # Parse and split again from scratch, as a new process would.
    monkeypatch.setattr(datasets, '_DIGITS_CACHE', {})
    np.random.rand()  # the split must not depend on the global RNG
    again = chainer.dataset.concat_examples(get_digits('test')[:])[0]
    np.testing.assert_array_equal(test, again)
    train_rows = {row.tobytes() for row in train.reshape(len(train), -1)}
    test_rows = {row.tobytes() for row in test.reshape(len(test), -1)}
    # The 5,000 digits are distinct images, so no row may appear in both.
    assert not train_rows & test_rows


@pytest.mark.parametrize('size', [8, 32, 64])
def test_digits_resized(size):
    image, _ = get_digits('test', size=size)[0]
    assert image.shape == (1, size, size) and image.dtype == np.float32
    assert -1 <= image.min() and image.max() <= 1 and image.max() > 0


@pytest.mark.parametrize(
    'split,size,match', [('valid', 28, 'split'), ('train', 0, 'size'), ('train', 2.5, 'size')]
)
def test_digits_bad_arguments(split, size, match):
    with pytest.raises(DatasetError, match=match):
        get_digits(split, size=size)


def test_the_shipped_digits_are_the_documented_5000_images():
    # The checksum of the uint8 table (784 pixels, then the label, per row)
    # given in gan_trainer/data/NOTICE.md, the licence notice beside the file.
    import hashlib

    with np.load(datasets.DIGITS_FILE) as f:
        images, labels = f['images'], f['labels']
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    table = np.concatenate([images.reshape(5000, 784), labels[:, None]], axis=1)
    digest = hashlib.sha256(np.ascontiguousarray(table).tobytes()).hexdigest()
    notice = (datasets.DIGITS_FILE.parent / 'NOTICE.md').read_text()
    assert digest in notice and 'CC BY-SA 3.0' in notice


@pytest.mark.parametrize('content', [None, b'not an npz file'])
def test_a_missing_or_damaged_digits_file_is_one_line(tmp_path, monkeypatch, content):
    path = tmp_path / 'digits.npz'
    if content is not None:
        path.write_bytes(content)
    monkeypatch.setattr(datasets, 'DIGITS_FILE', path)
    monkeypatch.setattr(datasets, '_DIGITS_CACHE', {})
    with pytest.raises(DatasetError, match='reinstall gan_trainer') as excinfo:
        get_digits()
    assert str(path) in str(excinfo.value) and '\n' not in str(excinfo.value)


# ---------------------------------------------------------------- folders


def _jpeg_bytes(img, **kwargs):
    buffer = io.BytesIO()
    img.save(buffer, format='JPEG', **kwargs)
    return buffer.getvalue()


@pytest.fixture
def tree(tmp_path):
    """Two classes of uniformly coloured images in many formats and modes."""
    root = tmp_path / 'data'
    a, b = root / 'apples', root / 'bananas'
    palette = Image.new('P', (12, 9))
    palette.putpalette([10, 20, 30] + [0] * 765)
    rgba = Image.new('RGBA', (9, 12), (200, 0, 0, 0))  # fully transparent
    _save(a / 'rgb.png', _flat('RGB', (12, 12), (255, 0, 0)))
    _save(a / 'rgba.png', rgba)
    _save(a / 'pal.png', palette)
    _save(a / 'gray.jpg', _flat('L', (16, 16), 100), quality=95)
    _save(b / 'deep.png', Image.fromarray(np.full((10, 10), 128 * 257, np.uint16)))
    _save(b / 'cmyk.jpg', _flat('CMYK', (16, 16), (0, 255, 255, 0)), quality=95)
    _save(b / 'x.bmp', _flat('RGB', (8, 8), (0, 0, 255)))
    _save(b / 'y.webp', _flat('RGB', (8, 8), (0, 255, 0)), lossless=True)
    _save(b / 'deeper' / 'la.PNG', _flat('LA', (8, 8), (0, 0)))
    (b / 'notes.txt').write_text('not an image')
    _save(root / '.hidden' / 'h.png', _flat('RGB', (8, 8), 0))
    return root


# (relative path, label, expected RGB level of the uniform image)
EXPECTED = [
    ('apples/gray.jpg', 0, (100, 100, 100)),
    ('apples/pal.png', 0, (10, 20, 30)),
    ('apples/rgb.png', 0, (255, 0, 0)),
    ('apples/rgba.png', 0, (255, 255, 255)),  # transparent -> white
    ('bananas/cmyk.jpg', 1, (255, 0, 0)),
    ('bananas/deep.png', 1, (128, 128, 128)),  # 16-bit rescaled, not clipped
    ('bananas/deeper/la.PNG', 1, (255, 255, 255)),
    ('bananas/x.bmp', 1, (0, 0, 255)),
    ('bananas/y.webp', 1, (0, 255, 0)),
]


@pytest.mark.parametrize('gray', [False, True])
def test_folder_labels_modes_and_values(tree, gray):
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # a clean folder must not warn
        ds = ImageFolderDataset(tree, size=6, gray=gray)
    assert ds.class_names == ['apples', 'bananas']
    rel = [p[len(str(tree)) + 1 :].replace('\\', '/') for p in ds.paths]
    assert rel == [r for r, _, _ in EXPECTED]
    assert len(ds) == len(EXPECTED)
    for i, (name, label, rgb) in enumerate(EXPECTED):
        image, got_label = ds[i]
        assert got_label == label and got_label.dtype == np.int32
        assert image.shape == ((1 if gray else 3), 6, 6)
        assert image.dtype == np.float32
        assert -1 <= image.min() and image.max() <= 1
        if gray:
            luma = (299 * rgb[0] + 587 * rgb[1] + 114 * rgb[2]) / 1000
            expected = np.full((1, 1, 1), _to_unit(luma))
        else:
            expected = _to_unit(np.array(rgb, np.float64)).reshape(3, 1, 1)
        lossy = name.endswith('.jpg')  # JPEG colour conversion is approximate
        np.testing.assert_allclose(
            image,
            np.broadcast_to(expected, image.shape),
            atol=(6 if lossy else 1) * ONE_STEP,
            err_msg=name,
        )


def test_folder_centre_crop_keeps_the_middle(tmp_path):
    thirds = np.zeros((30, 90, 3), np.uint8)
    thirds[:, :30, 0] = 255  # red left
    thirds[:, 30:60, 1] = 255  # green centre
    thirds[:, 60:, 2] = 255  # blue right
    _save(tmp_path / 'wide.png', Image.fromarray(thirds))
    _save(tmp_path / 'tall.png', Image.fromarray(thirds.transpose(1, 0, 2).copy()))
    ds = ImageFolderDataset(tmp_path, size=8)
    for i in range(2):
        image = ds[i][0]
        # Away from the crop border only green survives; red/blue would mean
        # the crop was off-centre or the image was squashed.
        green = np.broadcast_to(np.reshape([-1, 1, -1], (3, 1, 1)), (3, 4, 4))
        np.testing.assert_allclose(image[:, 2:6, 2:6], green, atol=2 * ONE_STEP)
        assert image[1].mean() > 0.8


def test_folder_unlabelled_and_mixed(tmp_path):
    _save(tmp_path / 'flat' / 'a.png', _flat('RGB', (4, 4), 0))
    _save(tmp_path / 'flat' / 'b.png', _flat('RGB', (4, 4), 0))
    ds = ImageFolderDataset(tmp_path / 'flat', size=4)
    assert ds.class_names == [] and list(ds.labels) == [0, 0]
    _save(tmp_path / 'mixed' / 'loose.png', _flat('RGB', (4, 4), 0))
    _save(tmp_path / 'mixed' / 'zebra' / 'z.png', _flat('RGB', (4, 4), 0))
    ds = ImageFolderDataset(tmp_path / 'mixed', size=4)
    assert ds.class_names == ['.', 'zebra'] and list(ds.labels) == [0, 1]


def test_folder_skips_broken_files_with_one_warning(tree):
    jpeg = _jpeg_bytes(
        Image.fromarray(np.random.RandomState(0).randint(0, 256, (64, 64, 3), np.uint8))
    )
    truncated = tree / 'apples' / 'cut.jpg'
    truncated.write_bytes(jpeg[: len(jpeg) // 2])
    with Image.open(truncated) as img:
        img.verify()  # passes: only a full decode finds the damage
    (tree / 'bananas' / 'fake.png').write_text('just text')
    with pytest.warns(SkippedFilesWarning) as record:
        ds = ImageFolderDataset(tree, size=4)
    assert len(record) == 1
    message = str(record[0].message)
    assert 'cut.jpg' in message and 'fake.png' in message and '2 ' in message
    assert len(ds) == len(EXPECTED)
    assert sorted(p for p, _ in ds.skipped) == [str(truncated), str(tree / 'bananas' / 'fake.png')]


def test_folder_warning_lists_ten_then_counts(tmp_path):
    _save(tmp_path / 'good.png', _flat('L', (4, 4), 0))
    for i in range(13):
        (tmp_path / f'bad{i:02d}.png').write_bytes(b'\x89PNG nope')
    with pytest.warns(SkippedFilesWarning, match='and 3 more') as record:
        ImageFolderDataset(tmp_path, size=4)
    message = str(record[0].message)
    assert 'bad09.png' in message and 'bad10.png' not in message


@pytest.mark.parametrize(
    'setup,match',
    [
        ('missing', 'does not exist'),
        ('file', 'not a folder'),
        ('empty', 'no image files'),
        ('text_only', 'no image files'),
        ('all_broken', 'could be decoded'),
    ],
)
def test_folder_errors_name_the_folder(tmp_path, setup, match):
    root = tmp_path / 'my_images'
    if setup == 'file':
        root.write_text('x')
    elif setup != 'missing':
        root.mkdir()
    if setup == 'text_only':
        (root / 'readme.txt').write_text('x')
    if setup == 'all_broken':
        (root / 'a.jpg').write_text('x')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', SkippedFilesWarning)
        with pytest.raises(DatasetError, match=match) as info:
            ImageFolderDataset(root)
    assert str(root) in str(info.value) and '\n' not in str(info.value)


def test_folder_pickles_for_worker_processes(tree):
    ds = ImageFolderDataset(tree, size=4)
    clone = pickle.loads(pickle.dumps(ds))
    np.testing.assert_array_equal(clone[3][0], ds[3][0])
    assert clone.class_names == ds.class_names


# ---------------------------------------------------------------- load_dataset


@pytest.mark.parametrize('n,n_train,n_test', [(1, 1, 1), (2, 1, 1), (40, 38, 2)])
def test_load_dataset_folder_split(tmp_path, n, n_train, n_test):
    for i in range(n):
        _save(tmp_path / f'{i:03d}.png', _flat('L', (3, 5), i))
    train, test = load_dataset(str(tmp_path), gray=True)
    assert (len(train), len(test)) == (n_train, n_test)
    assert image_shape(train) == (1, 64, 64)
    if n > 1:  # held-out images are not trained on
        levels = {float(train[i][0][0, 0, 0]) for i in range(len(train))}
        assert not levels & {float(test[i][0][0, 0, 0]) for i in range(len(test))}


def test_load_dataset_folder_named_like_a_builtin(tmp_path, monkeypatch):
    _save(tmp_path / 'digits' / 'a.png', _flat('RGB', (4, 4), 0))
    monkeypatch.chdir(tmp_path)
    train, _ = load_dataset('digits', size=4)
    assert isinstance(train, ImageFolderDataset) and image_shape(train) == (3, 4, 4)


def test_load_dataset_digits():
    data = load_dataset('digits', size=32)
    train, test = data
    assert (len(train), len(test)) == (4500, 500)
    assert image_shape(test) == (1, 32, 32) == data.shape
    assert data.class_names == tuple('0123456789') and data.n_classes == 10
    assert not data.decodes_files and data.name == 'digits'


def test_load_dataset_folder_returns_its_facts(tmp_path):
    for name in ('cats', 'dogs'):
        for i in range(3):
            _save(tmp_path / name / f'{i}.png', _flat('RGB', (5, 5), (i, 0, 0)))
    data = load_dataset(str(tmp_path), size=8)
    assert data.shape == (3, 8, 8) == image_shape(data.train)
    assert data.class_names == ('cats', 'dogs') and data.n_classes == 2
    assert not data.decodes_files and (len(data.train), len(data.test)) == (5, 1)  # in memory
    assert load_dataset(str(tmp_path), size=8, cache_bytes=0).decodes_files
    flat = load_dataset(str(tmp_path / 'cats'), size=8, gray=True)
    assert flat.class_names == () and flat.n_classes == 1 and flat.shape == (1, 8, 8)


def test_data_of_wraps_your_own_datasets():
    images = np.zeros((6, 3, 4, 4), np.float32)
    data = Data.of(chainer.datasets.TupleDataset(images, np.zeros(6, np.int32)), n_classes=3)
    assert data.shape == (3, 4, 4) and data.class_names == ('0', '1', '2')
    assert data.test is data.train and not data.decodes_files


@pytest.mark.parametrize('name,channels,side', [('mnist', 1, 28), ('cifar10', 3, 32)])
@pytest.mark.parametrize('size,gray', [(None, False), (16, True)])
def test_load_dataset_downloads_are_shifted_lazily(monkeypatch, name, channels, side, size, gray):
    def fake(**kwargs):
        assert kwargs['scale'] == 2.0 and kwargs['ndim'] == 3
        images = np.zeros((2, channels, side, side), np.float32)
        images[1] = 2.0  # chainer's scale=2.0 gives [0, 2]
        labels = np.array([3, 4], np.int32)
        return (chainer.datasets.TupleDataset(images, labels),) * 2

    monkeypatch.setattr(chainer.datasets, 'get_' + name, fake)
    data = load_dataset(name, size=size, gray=gray)
    train = data.train
    assert isinstance(train, chainer.datasets.TransformDataset)
    assert data.shape == ((1 if gray else channels), size or side, size or side)
    out = size or side
    c = 1 if gray else channels
    (black, label0), (white, _) = train[0], train[1]
    assert black.shape == (c, out, out) and label0 == 3
    np.testing.assert_allclose(black, -1.0, atol=1e-6)
    np.testing.assert_allclose(white, 1.0, atol=1e-6)
    pickle.dumps(train)


def test_load_dataset_offline_download(monkeypatch):
    def offline(**kwargs):
        raise OSError('[Errno -3] Temporary failure\nin name resolution')

    monkeypatch.setattr(chainer.datasets, 'get_mnist', offline)
    with pytest.raises(DatasetError, match='online') as info:
        load_dataset('mnist')
    assert 'mnist' in str(info.value) and '\n' not in str(info.value)


@pytest.mark.parametrize(
    'spec,match', [('no_such_dataset_xyz', 'unknown dataset'), ('FILE', 'not a folder')]
)
def test_load_dataset_bad_spec(tmp_path, spec, match):
    if spec == 'FILE':
        spec = tmp_path / 'a.png'
        _save(spec, _flat('L', (2, 2), 0))
    with pytest.raises(DatasetError, match=match):
        load_dataset(spec)


@pytest.mark.parametrize(
    'example,shape', [(np.zeros((3, 4, 5)), (3, 4, 5)), ((np.zeros((1, 2, 2)), 7), (1, 2, 2))]
)
def test_image_shape(example, shape):
    assert image_shape([example]) == shape


@pytest.mark.parametrize('dataset', [[], [np.zeros((4, 4))]])
def test_image_shape_errors(dataset):
    with pytest.raises(ValueError):
        image_shape(dataset)


def test_a_folder_in_memory_gives_the_decoded_images_bit_for_bit(tmp_path):
    rng = np.random.RandomState(0)
    for i in range(5):  # photos of odd sizes, a gray one, and a broken file among them
        pixels = rng.randint(0, 256, (13 + i, 9 + 2 * i, 3)).astype(np.uint8)
        _save(tmp_path / 'a' / f'{i}.jpg', Image.fromarray(pixels))
    _save(tmp_path / 'b' / 'gray.png', Image.fromarray(rng.randint(0, 256, (7, 7)).astype(np.uint8)))
    (tmp_path / 'a' / '2b.png').write_bytes(b'not an image')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', SkippedFilesWarning)
        for gray in (False, True):
            cached = ImageFolderDataset(tmp_path, size=6, gray=gray)
            lazy = ImageFolderDataset(tmp_path, size=6, gray=gray, cache_bytes=0)
            assert cached.cached and not lazy.cached and cached.paths == lazy.paths
            assert len(cached) == 6 and [os.path.basename(p) for p, _ in cached.skipped] == ['2b.png']
            for i in range(len(cached)):
                (x, label), (y, label_lazy) = cached[i], lazy[i]
                assert x.dtype == np.float32 and x.shape == (1 if gray else 3, 6, 6)
                np.testing.assert_array_equal(x, y)
                np.testing.assert_array_equal(x, load_image(cached.paths[i], size=6, gray=gray))
                assert label == label_lazy
    # Memory: the budget counts every candidate file (7) at 3x6x6 bytes; over it, lazy.
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', SkippedFilesWarning)
        assert not ImageFolderDataset(tmp_path, size=6, cache_bytes=7 * 108 - 1).cached
        assert ImageFolderDataset(tmp_path, size=6, cache_bytes=7 * 108).cached


def test_a_folder_in_memory_does_not_read_its_files_again(tmp_path):
    for i in range(3):
        _save(tmp_path / f'{i}.png', _flat('RGB', (5, 5), (40 * i, 0, 0)))
    cached = ImageFolderDataset(tmp_path, size=4)
    lazy = ImageFolderDataset(tmp_path, size=4, cache_bytes=0)
    os.remove(tmp_path / '1.png')
    np.testing.assert_allclose(cached[1][0][0], 40 / 127.5 - 1, atol=1e-6)
    with pytest.raises(DatasetError, match=r"cannot read image '.*1\.png'"):
        lazy[1]


@pytest.mark.parametrize('bad', [-1, True, 1.5, '1'])
def test_a_bad_cache_budget_is_one_clear_error(tmp_path, bad):
    _save(tmp_path / '0.png', _flat('RGB', (5, 5), (0, 0, 0)))
    with pytest.raises(ValueError, match=f'cache_bytes must be an integer >= 0, got {bad!r}'):
        ImageFolderDataset(tmp_path, size=4, cache_bytes=bad)
