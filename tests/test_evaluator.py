"""GANEvaluator: validation losses on held-out data, fixed z, eval mode."""

import chainer
import numpy
import pytest

from gan_trainer import GANEvaluator
from gan_trainer.testing import fake_dataset, fake_images, tiny_discriminator, tiny_generator


def evaluate(data, batchsize, gen, dis, **kwargs):
    it = chainer.iterators.SerialIterator(data, batchsize, repeat=False, shuffle=False)
    evaluator = GANEvaluator(it, {'gen': gen, 'dis': dis}, device=-1, **kwargs)
    return {k: float(v) for k, v in evaluator().items()}


def test_reports_validation_keys_matching_a_hand_computation():
    gen, dis = tiny_generator(), tiny_discriminator()
    data = fake_images(8)
    result = evaluate(data, 8, gen, dis, seed=3)
    assert set(result) == {'validation/gen/loss', 'validation/dis/loss',
                           'validation/dis/accuracy'}
    z = numpy.random.RandomState(3).standard_normal((8, 4)).astype(numpy.float32)
    with chainer.using_config('train', False), chainer.no_backprop_mode():
        y_real = dis(data).array.astype(numpy.float64)
        y_fake = dis(gen(z)).array.astype(numpy.float64)
    softplus = lambda v: numpy.log1p(numpy.exp(v))
    assert result['validation/gen/loss'] == pytest.approx(softplus(-y_fake).mean(), rel=1e-5)
    assert result['validation/dis/loss'] == pytest.approx(
        softplus(-y_real).mean() + softplus(y_fake).mean(), rel=1e-5)
    assert result['validation/dis/accuracy'] == pytest.approx(
        ((y_real > 0).sum() + (y_fake < 0).sum()) / 16)


def test_fixed_z_and_running_statistics_make_results_repeatable():
    gen, dis = tiny_generator(), tiny_discriminator()
    # Give BatchNorm non-trivial running statistics first.
    with chainer.using_config('train', True):
        dis(fake_images(16, seed=5))
        gen(numpy.ones((16, 4), numpy.float32))
    means_before = dis.bns[0].avg_mean.copy()
    data = fake_images(16)
    # Evaluation mode: batch statistics do not matter, so the batch size
    # does not change the result; train-mode BN would give other numbers.
    a = evaluate(data, 4, gen, dis)
    b = evaluate(data, 16, gen, dis)
    c = evaluate(data, 4, gen, dis)
    for key in a:
        assert a[key] == pytest.approx(b[key], rel=1e-5)
        assert a[key] == c[key]
    numpy.testing.assert_array_equal(dis.bns[0].avg_mean, means_before)


def test_labelled_data_and_uniform_z():
    result = evaluate(fake_dataset(8), 4, tiny_generator(), tiny_discriminator(),
                      z_dist='uniform', loss='minimax')
    assert all(numpy.isfinite(v) for v in result.values())


def test_target_must_name_gen_and_dis():
    it = chainer.iterators.SerialIterator(fake_images(4), 4, repeat=False)
    with pytest.raises(ValueError, match="keys 'gen' and 'dis'"):
        GANEvaluator(it, {'main': tiny_generator()})
