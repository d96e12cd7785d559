"""GeneratorEMA: the moving average of G, against hand computation."""

import copy

import chainer
import numpy
import pytest

from gan_trainer.ema import GeneratorEMA
from gan_trainer.testing import tiny_generator


def arrays(link):
    out = {name: p.array.copy() for name, p in link.namedparams()}
    for name, sub in link.namedlinks():
        for attr in sub._persistent:
            value = getattr(sub, attr)
            if hasattr(value, 'dtype') and value.dtype.kind == 'f':
                out[f'{name}/{attr}'] = value.copy()
    return out


def perturb(gen, seed):
    rng = numpy.random.RandomState(seed)
    for p in gen.params():
        p.array += rng.standard_normal(p.shape).astype(p.dtype)
    with chainer.using_config('train', True):  # moves BN running statistics
        gen(rng.standard_normal((4, 4)).astype(numpy.float32))


def test_update_is_the_exponential_average_of_params_and_bn_statistics():
    gen = tiny_generator()
    ema = GeneratorEMA(gen, decay=0.9)
    start = arrays(gen)
    perturb(gen, 1)
    after_one = arrays(gen)
    ema.update(gen, iteration=5)
    perturb(gen, 2)
    after_two = arrays(gen)
    ema.update(gen, iteration=6)
    got = arrays(ema.target)
    assert any('avg_mean' in k for k in got)
    for key, value in got.items():
        expected = 0.81 * start[key] + 0.09 * after_one[key] + 0.1 * after_two[key]
        numpy.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-6, err_msg=key)


def test_before_start_the_average_copies_gen():
    gen = tiny_generator()
    ema = GeneratorEMA(gen, decay=0.99, start=10)
    perturb(gen, 1)
    ema.update(gen, iteration=9)
    for key, value in arrays(ema.target).items():
        numpy.testing.assert_array_equal(value, arrays(gen)[key])


def test_target_is_an_independent_copy():
    gen = tiny_generator()
    ema = GeneratorEMA(gen)
    before = arrays(ema.target)
    perturb(gen, 1)
    for key, value in arrays(ema.target).items():
        numpy.testing.assert_array_equal(value, before[key])


def test_serialize_round_trip(tmp_path):
    gen = tiny_generator()
    ema = GeneratorEMA(gen, decay=0.5)
    perturb(gen, 1)
    ema.update(gen, 0)
    chainer.serializers.save_npz(str(tmp_path / 'ema.npz'), ema)
    other = GeneratorEMA(tiny_generator(seed=3), decay=0.5)
    chainer.serializers.load_npz(str(tmp_path / 'ema.npz'), other)
    for key, value in arrays(other.target).items():
        numpy.testing.assert_array_equal(value, arrays(ema.target)[key])


def z_batch(seed, n=6):
    return numpy.random.RandomState(seed).standard_normal((n, 4)).astype(numpy.float32)


def test_with_the_g_steps_z_the_average_keeps_batchnorm_statistics_of_its_own():
    gen = tiny_generator()
    ema = GeneratorEMA(gen, decay=0.9)
    expected = copy.deepcopy(ema.target)
    perturb(gen, 1)
    z = z_batch(7)
    ema.update(gen, iteration=5, z=z)
    # By hand: average the weights, then one training-mode forward on z.
    new = dict(gen.namedparams())
    for name, p in expected.namedparams():
        p.array[...] = 0.9 * p.array + 0.1 * new[name].array
    with chainer.using_config('train', True):
        expected(z)
    got, want, of_gen = arrays(ema.target), arrays(expected), arrays(gen)
    stats = [key for key in got if 'avg_' in key]
    assert stats
    for key in got:
        numpy.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6, err_msg=key)
    # ... which are not the average of G's statistics.
    start = arrays(tiny_generator())
    assert any(not numpy.allclose(got[k], 0.9 * start[k] + 0.1 * of_gen[k]) for k in stats)


def test_bn_stats_average_averages_gs_statistics_even_with_z():
    gen = tiny_generator()
    ema = GeneratorEMA(gen, decay=0.9, bn_stats='average')
    start = arrays(gen)
    perturb(gen, 1)
    ema.update(gen, iteration=5, z=z_batch(7))
    after = arrays(gen)
    for key, value in arrays(ema.target).items():
        numpy.testing.assert_allclose(value, 0.9 * start[key] + 0.1 * after[key],
                                      rtol=1e-5, atol=1e-6, err_msg=key)


def test_before_start_the_average_copies_gen_statistics_too_with_z():
    gen = tiny_generator()
    ema = GeneratorEMA(gen, decay=0.99, start=10)
    perturb(gen, 1)
    ema.update(gen, iteration=9, z=z_batch(7))
    for key, value in arrays(ema.target).items():
        numpy.testing.assert_array_equal(value, arrays(gen)[key])


@pytest.mark.parametrize('kwargs', [{'decay': 1.0}, {'decay': -0.1}, {'start': -1},
                                    {'bn_stats': 'mean'}])
def test_bad_settings(kwargs):
    with pytest.raises(ValueError, match='EMA'):
        GeneratorEMA(tiny_generator(), **kwargs)


@pytest.mark.parametrize('iteration, expected', [
    # decay 0.999: half-life ln(0.5)/ln(0.999) = 692.8 updates; ramp 0.05 per update.
    (0, 0.5 ** (1 / 0.05)),            # update 1: half-life 0.05
    (99, 0.5 ** (1 / 5.0)),            # update 100: half-life 5
    (9_999, 0.5 ** (1 / 500.0)),       # update 10,000: half-life 500
    (20_000, 0.999),                   # past 13,856 updates: the full half-life
])
def test_ema_rampup_grows_the_half_life_with_the_run(iteration, expected):
    ema = GeneratorEMA(tiny_generator(), decay=0.999, rampup=0.05)
    assert ema.decay_at(iteration) == pytest.approx(expected, rel=1e-9)
    assert GeneratorEMA(tiny_generator(), decay=0.999).decay_at(iteration) == 0.999


def test_ema_rampup_counts_from_start_and_is_checked():
    ema = GeneratorEMA(tiny_generator(), decay=0.99, start=10, rampup=0.5)
    assert ema.decay_at(9) == 0.0
    assert ema.decay_at(10) == pytest.approx(0.5 ** (1 / 0.5))
    for bad in (0, -1.0, 'x'):
        with pytest.raises(ValueError, match='EMA rampup must be a number > 0'):
            GeneratorEMA(tiny_generator(), rampup=bad)
