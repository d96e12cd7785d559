"""Latent samplers and paths: truncated normal moments, lerp and slerp closed forms."""

import math

import numpy
import pytest

from gan_trainer.latent import (
    SAMPLERS,
    get_sampler,
    lerp,
    slerp,
    truncated_normal,
    truncated_normal_sampler,
)


def unit(i, n=4):
    v = numpy.zeros(n, numpy.float32)
    v[i] = 1
    return v


@pytest.mark.parametrize('path', [lerp, slerp])
@pytest.mark.parametrize('steps', [2, 3, 7])
def test_endpoints_are_exact_and_shapes_follow_the_input(path, steps):
    rng = numpy.random.RandomState(0)
    z0, z1 = rng.standard_normal((2, 3, 5)).astype(numpy.float32)
    out = path(z0, z1, steps)
    assert out.shape == (steps, 3, 5) and out.dtype == numpy.float32
    numpy.testing.assert_array_equal(out[0], z0)
    numpy.testing.assert_array_equal(out[-1], z1)


def test_lerp_is_the_straight_line():
    a, b = numpy.array([0.0, 2.0]), numpy.array([4.0, -2.0])
    numpy.testing.assert_allclose(lerp(a, b, 5), [[0, 2], [1, 1], [2, 0], [3, -1], [4, -2]])


def test_slerp_midpoint_of_orthogonal_unit_vectors():
    a, b = unit(0), unit(1)
    mid = slerp(a, b, 3)[1]
    numpy.testing.assert_allclose(mid, (a + b) / numpy.sqrt(2), atol=1e-7)


def test_slerp_follows_the_circle_at_every_step():
    # Between orthogonal unit vectors, point t is cos(t pi/2) a + sin(t pi/2) b.
    t = numpy.linspace(0, 1, 6)[:, None]
    expected = numpy.cos(t * numpy.pi / 2) * unit(0) + numpy.sin(t * numpy.pi / 2) * unit(2)
    numpy.testing.assert_allclose(slerp(unit(0), unit(2), 6), expected, atol=1e-7)


def test_slerp_keeps_the_norm_of_equal_norm_endpoints():
    rng = numpy.random.RandomState(1)
    z0, z1 = rng.standard_normal((2, 100))
    z1 *= numpy.linalg.norm(z0) / numpy.linalg.norm(z1)
    norms = numpy.linalg.norm(slerp(z0, z1, 11), axis=-1)
    numpy.testing.assert_allclose(norms, numpy.linalg.norm(z0), rtol=1e-6)
    # lerp cuts through the inside of the sphere.
    assert numpy.linalg.norm(lerp(z0, z1, 3)[1]) < 0.9 * numpy.linalg.norm(z0)


def test_slerp_interpolates_each_row_of_a_batch_on_its_own():
    rng = numpy.random.RandomState(2)
    z0, z1 = rng.standard_normal((2, 4, 6)).astype(numpy.float32)
    batch = slerp(z0, z1, 5)
    for i in range(4):
        numpy.testing.assert_allclose(batch[:, i], slerp(z0[i], z1[i], 5), rtol=1e-6)


@pytest.mark.parametrize(
    'z1',
    [unit(0) * 3, -unit(0), -2 * unit(0), numpy.zeros(4, numpy.float32)],
    ids=['parallel', 'antiparallel', 'antiparallel_longer', 'zero'],
)
def test_slerp_falls_back_to_lerp_when_the_circle_is_undefined(z1):
    out = slerp(unit(0), z1, 5)
    assert numpy.isfinite(out).all()
    numpy.testing.assert_allclose(out, lerp(unit(0), z1, 5), atol=1e-7)


@pytest.mark.parametrize('path', [lerp, slerp])
@pytest.mark.parametrize(
    'z0, z1, steps',
    [(numpy.zeros(3), numpy.zeros(4), 3), (numpy.zeros(3), numpy.zeros(3), 1), (1.0, 2.0, 3)],
    ids=['shapes_differ', 'one_step', 'scalars'],
)
def test_bad_input_is_a_value_error(path, z0, z1, steps):
    with pytest.raises(ValueError):
        path(z0, z1, steps)


def truncated_variance(a):
    """Var of N(0, 1) conditioned on |z| <= a: 1 - 2 a phi(a) / (2 Phi(a) - 1)."""
    phi = math.exp(-a * a / 2) / math.sqrt(2 * math.pi)
    return 1 - 2 * a * phi / math.erf(a / math.sqrt(2))


@pytest.mark.parametrize('threshold', [2.0, 1.0, 0.5])
def test_truncated_normal_stays_within_its_bound_with_the_right_moments(threshold):
    z = truncated_normal(numpy.random.RandomState(0), 400, 500, threshold=threshold)
    assert z.shape == (400, 500) and z.dtype == numpy.float32
    assert numpy.abs(z).max() <= threshold
    assert numpy.abs(z).max() > 0.99 * threshold  # truncated, not shrunk
    # 200,000 draws: the standard errors of mean and variance are < 0.003.
    assert abs(z.mean()) < 0.01
    assert z.var() == pytest.approx(truncated_variance(threshold), abs=0.01)


def test_truncated_normal_default_is_two_sigma_and_repeatable():
    a = get_sampler('truncated_normal')(numpy.random.RandomState(3), 64, 10)
    b = truncated_normal(numpy.random.RandomState(3), 64, 10, threshold=2.0)
    numpy.testing.assert_array_equal(a, b)
    assert 'truncated_normal' in SAMPLERS
    c = get_sampler('truncated_normal', threshold=1.0)(numpy.random.RandomState(3), 64, 10)
    numpy.testing.assert_array_equal(c, truncated_normal_sampler(1.0)(
        numpy.random.RandomState(3), 64, 10))
    assert numpy.abs(c).max() <= 1.0 < numpy.abs(a).max()


@pytest.mark.parametrize('call, message', [
    (lambda: truncated_normal_sampler(0), 'threshold must be a finite number > 0'),
    (lambda: truncated_normal_sampler(float('inf')), 'threshold must be a finite number > 0'),
    (lambda: get_sampler('truncated_normal', threshold=-1), 'threshold must be'),
    (lambda: get_sampler('normal', threshold=1.0),
     "a z threshold is for z_dist 'truncated_normal' only"),
])
def test_bad_truncation_settings_are_one_line_errors(call, message):
    with pytest.raises(ValueError, match=message) as info:
        call()
    assert '\n' not in str(info.value)
