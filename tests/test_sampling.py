"""Sampling: repeatable z, eval-mode generation in batches, ranking by D."""

import chainer
import chainer.functions as F
import numpy
import pytest

from gan_trainer.latent import lerp, slerp
from gan_trainer.sampling import draw_hidden, generate, interpolation_grid, nice_samples, score
from gan_trainer.testing import (
    fake_images,
    tiny_conditional_generator,
    tiny_discriminator,
    tiny_generator,
)


def trained_pair(channels=1):
    """Tiny nets with BatchNorm statistics far from the initial 0 and 1."""
    gen = tiny_generator(channels=channels)
    dis = tiny_discriminator(channels=channels)
    with chainer.using_config('train', True), chainer.no_backprop_mode():
        z = numpy.random.RandomState(0).standard_normal((32, gen.n_hidden)) * 3 + 1
        dis(gen(z.astype(numpy.float32)))
        dis(fake_images(32, channels=channels))
    return gen, dis


class ConstantImages(chainer.Chain):
    """A hand-made G: image i is filled with ``tanh(z[i, 0])``, shape (B, 1, 4, 4)."""

    n_hidden = 2

    def forward(self, z):
        value = F.tanh(z[:, :1]).reshape(len(z), 1, 1, 1)
        return F.broadcast_to(value, (len(z), 1, 4, 4))


class MeanPixel(chainer.Chain):
    """A hand-made D: the logit of an image is its mean pixel value."""

    def forward(self, x):
        return F.mean(x, axis=(1, 2, 3))


@pytest.mark.parametrize('z_dist', ['normal', 'uniform'])
def test_draw_hidden_is_repeatable_by_seed(z_dist):
    z = draw_hidden(6, 5, z_dist=z_dist, seed=3)
    assert z.shape == (6, 5) and z.dtype == numpy.float32
    numpy.testing.assert_array_equal(z, draw_hidden(6, 5, z_dist=z_dist, seed=3))
    assert not numpy.array_equal(z, draw_hidden(6, 5, z_dist=z_dist, seed=4))
    rng = numpy.random.RandomState(3)
    expected = rng.standard_normal((6, 5)) if z_dist == 'normal' else rng.uniform(-1, 1, (6, 5))
    numpy.testing.assert_array_equal(z, expected.astype(numpy.float32))


def test_draw_hidden_leaves_the_global_rng_alone():
    numpy.random.seed(5)
    state = numpy.random.get_state()
    draw_hidden(10, 3, seed=1)
    numpy.testing.assert_array_equal(numpy.random.get_state()[1], state[1])
    assert numpy.random.get_state()[2] == state[2]


@pytest.mark.parametrize('channels', [1, 3])
@pytest.mark.parametrize('n', [1, 7, 12])
def test_generate_returns_eval_mode_images_independent_of_batchsize(channels, n):
    gen, _ = trained_pair(channels)
    avg_mean = gen.bn0.avg_mean.copy()
    z = draw_hidden(n, gen.n_hidden, seed=2)

    small = generate(gen, z, batchsize=3)
    large = generate(gen, z, batchsize=100)

    assert type(small) is numpy.ndarray
    assert small.shape == (n, channels, 8, 8) and small.dtype == numpy.float32
    assert small.min() >= -1 and small.max() <= 1
    # Eval-mode BatchNorm makes each image depend on its own z only; batch
    # statistics would make batches of 3 and of 12 disagree.
    numpy.testing.assert_allclose(small, large, rtol=0, atol=1e-6)
    numpy.testing.assert_array_equal(gen.bn0.avg_mean, avg_mean)
    with chainer.using_config('train', False), chainer.no_backprop_mode():
        numpy.testing.assert_allclose(large, gen(z).array, rtol=0, atol=1e-6)
    if n > 1:
        with chainer.using_config('train', True), chainer.no_backprop_mode():
            train_mode = gen(z).array
        assert not numpy.allclose(large, train_mode, atol=1e-3)


def test_score_returns_one_eval_mode_logit_per_image_in_any_batchsize():
    _, dis = trained_pair()
    images = fake_images(10, seed=4)
    logits = score(dis, images, batchsize=3)
    assert logits.shape == (10,)
    with chainer.using_config('train', False), chainer.no_backprop_mode():
        numpy.testing.assert_allclose(logits, dis(images).array, rtol=0, atol=1e-6)
    numpy.testing.assert_allclose(score(dis, images, batchsize=100), logits, rtol=0, atol=1e-6)


@pytest.mark.parametrize('n', [1, 5, 20])
@pytest.mark.parametrize('batchsize', [3, 100])
def test_nice_samples_keeps_the_top_n_of_a_real_discriminator(n, batchsize):
    gen, dis = trained_pair()
    z = draw_hidden(20, gen.n_hidden, seed=8)
    images = generate(gen, z)
    scores = score(dis, images)
    assert len(numpy.unique(scores)) == 20  # no ties, so the order is unique
    expected = images[numpy.argsort(-scores)[:n]]

    kept = nice_samples(gen, dis, z, n, batchsize=batchsize)

    assert kept.shape == (n, 1, 8, 8) and kept.dtype == numpy.float32
    numpy.testing.assert_allclose(kept, expected, rtol=0, atol=1e-6)
    kept_scores = score(dis, kept)
    assert numpy.all(numpy.diff(kept_scores) <= 0)  # highest first
    numpy.testing.assert_allclose(kept_scores, numpy.sort(scores)[::-1][:n], rtol=0, atol=1e-5)


def test_nice_samples_with_hand_made_nets_picks_the_known_images():
    # Image i is constant tanh(z[i, 0]) and D scores the mean pixel, so the
    # brightest images, i.e. the largest z[:, 0], must win, in that order.
    first = numpy.array([0.1, -2.0, 3.0, 0.5, 1.0, -0.3, 0.7], numpy.float32)
    z = numpy.stack([first, numpy.zeros_like(first)], axis=1)

    kept = nice_samples(ConstantImages(), MeanPixel(), z, 3, batchsize=2)

    expected = numpy.tanh(numpy.array([3.0, 1.0, 0.7], numpy.float32))
    assert kept.shape == (3, 1, 4, 4)
    numpy.testing.assert_allclose(
        kept, numpy.broadcast_to(expected[:, None, None, None], (3, 1, 4, 4)), rtol=1e-6
    )
    assert len(nice_samples(ConstantImages(), MeanPixel(), z, 7)) == 7


@pytest.mark.parametrize('n', [0, -1, 8, 100])
def test_nice_samples_rejects_an_impossible_n(n):
    z = numpy.zeros((7, 2), numpy.float32)
    with pytest.raises(ValueError, match=f'cannot keep {n} of 7'):
        nice_samples(ConstantImages(), MeanPixel(), z, n)


@pytest.mark.parametrize('mode, path', [('linear', lerp), ('spherical', slerp)])
def test_interpolation_grid_rows_walk_between_the_pairs_of_an_elementwise_generator(mode, path):
    # ConstantImages works element by element, so its images are exactly
    # tanh(z[:, 0]) whatever the batch: the end columns are G(z0) and G(z1).
    z = draw_hidden(6, 2, seed=3).reshape(3, 2, 2)
    grid = interpolation_grid(ConstantImages(), z, 5, mode=mode, batchsize=4)
    assert grid.shape == (15, 1, 4, 4) and grid.dtype == numpy.float32
    cells = grid.reshape(3, 5, 1, 4, 4)
    numpy.testing.assert_array_equal(cells[:, 0], generate(ConstantImages(), z[:, 0]))
    numpy.testing.assert_array_equal(cells[:, -1], generate(ConstantImages(), z[:, 1]))
    for r in range(3):
        first = path(z[r, 0], z[r, 1], 5)[:, 0]
        numpy.testing.assert_allclose(cells[r, :, 0, 0, 0], numpy.tanh(first), rtol=1e-6)


@pytest.mark.parametrize('mode', ['linear', 'spherical'])
def test_interpolation_grid_end_columns_are_the_generators_images_of_the_pairs(mode):
    gen, _ = trained_pair()
    z = draw_hidden(8, gen.n_hidden, seed=4).reshape(4, 2, -1)
    cells = interpolation_grid(gen, z, 6, mode=mode).reshape(4, 6, 1, 8, 8)
    # Equal inputs; only the BLAS blocking of a different batch may differ.
    numpy.testing.assert_allclose(cells[:, 0], generate(gen, z[:, 0]), rtol=0, atol=1e-6)
    numpy.testing.assert_allclose(cells[:, -1], generate(gen, z[:, 1]), rtol=0, atol=1e-6)
    assert not numpy.allclose(cells[:, 2], cells[:, 0], atol=1e-4)


def test_interpolation_grid_keeps_one_label_per_row_of_a_conditional_generator():
    gen = tiny_conditional_generator(n_classes=3)
    z = draw_hidden(4, gen.n_hidden, seed=5).reshape(2, 2, -1)
    cells = interpolation_grid(gen, z, 3, labels=[2, 0]).reshape(2, 3, 1, 8, 8)
    expected = generate(gen, z[:, 1], numpy.array([2, 0], numpy.int32))
    numpy.testing.assert_allclose(cells[:, -1], expected, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match='one per row'):
        interpolation_grid(gen, z, 3, labels=[1, 2, 0])


@pytest.mark.parametrize(
    'z_shape, steps, mode',
    [((2, 3, 4), 3, 'linear'), ((2, 4), 3, 'linear'), ((2, 2, 4), 1, 'linear'),
     ((2, 2, 4), 3, 'cubic')],
    ids=['three_per_row', 'no_pairs', 'one_step', 'unknown_mode'],
)
def test_interpolation_grid_rejects_bad_input(z_shape, steps, mode):
    with pytest.raises(ValueError):
        interpolation_grid(ConstantImages(), numpy.zeros(z_shape, numpy.float32), steps, mode=mode)
