"""ImageGrid: per-iteration grids in a real Trainer, a fixed z, eval mode, no RNG side effects."""

import os

import chainer
import numpy
import pytest
from helpers import make_trainer, read_png

from gan_trainer.extensions import ImageGrid
from gan_trainer.image import tile_images
from gan_trainer.latent import global_seed
from gan_trainer.nets.dcgan import Generator

N_HIDDEN = 4  # tiny_generator's default


class GlobalRNGGenerator(Generator):
    """A generator with its own ``make_hidden`` that draws from NumPy's global RNG.

    This is the convention of Chainer's DCGAN example; the updater calls it
    instead of its own sampler.
    """

    def make_hidden(self, batchsize):
        return numpy.random.standard_normal((batchsize, self.n_hidden)).astype(numpy.float32)


def expected_grid(gen, z, rows, cols):
    """What the grid must show: G(z) in eval mode, tiled with padding 2."""
    with chainer.using_config('train', False), chainer.no_backprop_mode():
        return tile_images(gen(z).array, rows, cols)


def bn_stats(gen):
    """BatchNorm running statistics; a train-mode forward pass changes them."""
    return {
        f'{path}/{stat}': getattr(link, stat).copy()
        for path, link in gen.namedlinks()
        if isinstance(link, chainer.links.BatchNormalization)
        for stat in ('avg_mean', 'avg_var')
    }


@pytest.mark.parametrize('rows, cols, channels', [(2, 3, 1), (3, 2, 3), (1, 1, 1)])
def test_writes_a_grid_per_trigger_and_latest_inside_a_trainer(tmp_path, rows, cols, channels):
    trainer = make_trainer(tmp_path, channels=channels, stop=4)
    trainer.extend(ImageGrid(rows=rows, cols=cols, seed=5), trigger=(2, 'iteration'))
    trainer.run()

    preview = tmp_path / 'preview'
    # Also proves that the temporary '.latest.tmp.png' was renamed away.
    assert sorted(os.listdir(preview)) == ['image_00000002.png', 'image_00000004.png', 'latest.png']
    # 8x8 images with 2 pixels of padding around and between cells.
    height, width = rows * 8 + (rows + 1) * 2, cols * 8 + (cols + 1) * 2
    shape = (height, width) if channels == 1 else (height, width, 3)
    grids = {name: read_png(preview / name) for name in os.listdir(preview)}
    assert all(grid.shape == shape for grid in grids.values())
    assert (preview / 'latest.png').read_bytes() == (preview / 'image_00000004.png').read_bytes()
    # Training between iterations 2 and 4 changed G, so the grids differ.
    assert not numpy.array_equal(grids['image_00000002.png'], grids['image_00000004.png'])

    # The grid is G(z) for z from RandomState(seed), with G in eval mode.
    gen = trainer.updater.gen
    z = numpy.random.RandomState(5).standard_normal((rows * cols, N_HIDDEN)).astype(numpy.float32)
    numpy.testing.assert_array_equal(grids['latest.png'], expected_grid(gen, z, rows, cols))


def test_two_calls_give_identical_pixels_and_leave_every_rng_and_bn_state_alone(tmp_path):
    trainer = make_trainer(tmp_path)
    gen = trainer.updater.gen
    # Non-trivial running statistics, so train mode and eval mode differ.
    with chainer.using_config('train', True), chainer.no_backprop_mode():
        gen(numpy.random.RandomState(1).standard_normal((16, N_HIDDEN)).astype(numpy.float32))
    grid = ImageGrid(rows=2, cols=2, seed=3)
    latest = tmp_path / 'preview' / 'latest.png'

    numpy.random.seed(123)
    global_state = numpy.random.get_state()
    updater_state = trainer.updater.rng.get_state()
    stats = bn_stats(gen)
    assert len(stats) == 4  # bn0 and bns/0, mean and variance

    grid(trainer)
    first = read_png(latest)
    grid(trainer)
    second = read_png(latest)

    numpy.testing.assert_array_equal(first, second)
    after = numpy.random.get_state()
    assert after[0] == global_state[0]
    numpy.testing.assert_array_equal(after[1], global_state[1])
    assert after[2:] == global_state[2:]
    after = trainer.updater.rng.get_state()
    numpy.testing.assert_array_equal(after[1], updater_state[1])
    assert after[2:] == updater_state[2:]
    for name, value in bn_stats(gen).items():
        numpy.testing.assert_array_equal(value, stats[name], err_msg=name)

    z = numpy.random.RandomState(3).standard_normal((4, N_HIDDEN)).astype(numpy.float32)
    numpy.testing.assert_array_equal(first, expected_grid(gen, z, 2, 2))
    # The same z in train mode (batch statistics) would give other pixels,
    # so the comparison above really checks eval mode.
    with chainer.using_config('train', True), chainer.no_backprop_mode():
        train_mode = tile_images(gen(z).array, 2, 2)
    assert not numpy.array_equal(first, train_mode)
    assert sorted(os.listdir(tmp_path / 'preview')) == ['image_00000000.png', 'latest.png']


def test_generator_with_its_own_make_hidden_gets_the_same_z_at_every_call(tmp_path):
    with global_seed(0):
        gen = GlobalRNGGenerator(size=8, channels=1, n_hidden=N_HIDDEN, widths=[4, 8])
    trainer = make_trainer(tmp_path, gen=gen, stop=2)
    grid = ImageGrid(rows=2, cols=3, seed=7)
    latest = tmp_path / 'preview' / 'latest.png'

    numpy.random.seed(1)
    grid(trainer)
    first = read_png(latest)
    numpy.random.seed(2)  # a different global stream: the grid must not care
    state = numpy.random.get_state()
    grid(trainer)
    second = read_png(latest)

    numpy.testing.assert_array_equal(first, second)
    numpy.testing.assert_array_equal(numpy.random.get_state()[1], state[1])
    assert numpy.random.get_state()[2] == state[2]
    # make_hidden ran under global_seed(7): the z of RandomState(7).
    z = numpy.random.RandomState(7).standard_normal((6, N_HIDDEN)).astype(numpy.float32)
    numpy.testing.assert_array_equal(first, expected_grid(gen, z, 2, 3))

    # Training in between changes G but not z: the grid follows the new G.
    trainer.run()
    grid(trainer)
    numpy.testing.assert_array_equal(read_png(latest), expected_grid(gen, z, 2, 3))
    assert not numpy.array_equal(read_png(latest), first)


@pytest.mark.parametrize('rows, cols', [(0, 3), (3, 0), (-1, -1)])
def test_rejects_an_empty_grid(rows, cols):
    with pytest.raises(ValueError, match=f'{rows}x{cols}'):
        ImageGrid(rows=rows, cols=cols)
