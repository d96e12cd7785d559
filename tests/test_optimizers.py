"""gan_trainer.optimizers: the factory, its specs, and the update rules by hand."""

import json

import chainer
import chainer.links as L
import numpy
import pytest

from gan_trainer import ops
from gan_trainer.optimizers import NesterovSGD, OptimizerSpec, make_optimizer


def quadratic_link(value=(1.0, -2.0)):
    """A link with one parameter ``p``; ``loss = 0.5 * sum(a * p**2)`` has gradient ``a p``."""
    link = chainer.Link()
    with link.init_scope():
        link.p = chainer.Parameter(numpy.array(value, numpy.float64))
    return link


A = numpy.array([1.0, 3.0])


def step(optimizer, link):
    link.cleargrads()
    link.p.grad = A * link.p.array
    optimizer.update()


@pytest.mark.parametrize('settings, cls, hyper', [
    # The package's one-pass Adam (Chainer's, bit for bit: tests/test_ops.py).
    ({}, ops.Adam, {'alpha': 2e-4, 'beta1': 0.5, 'beta2': 0.999, 'eps': 1e-8}),
    ({'lr': 1e-5, 'beta1': 0.1}, ops.Adam, {'alpha': 1e-5, 'beta1': 0.1}),
    ({'name': 'sgd'}, chainer.optimizers.SGD, {'lr': 0.01}),
    ({'name': 'sgd', 'lr': 5e-4, 'momentum': 0.9}, chainer.optimizers.MomentumSGD,
     {'lr': 5e-4, 'momentum': 0.9}),
    ({'name': 'sgd', 'lr': 5e-4, 'momentum': 0.9, 'nesterov': True}, NesterovSGD,
     {'lr': 5e-4, 'momentum': 0.9}),
    ({'name': 'rmsprop', 'lr': 5e-5}, chainer.optimizers.RMSprop,
     {'lr': 5e-5, 'alpha': 0.99, 'eps': 1e-8}),
])
def test_factory_builds_the_right_optimizer_with_its_settings(settings, cls, hyper):
    link = L.Linear(3, 2)
    optimizer = make_optimizer(link, **settings)
    assert type(optimizer) is cls and optimizer.target is link
    assert optimizer.hyperparam.get_dict().items() >= hyper.items()
    assert not optimizer._hookable._pre_update_hooks
    same = make_optimizer(link, OptimizerSpec(**settings))
    assert type(same) is cls and same.hyperparam.get_dict() == optimizer.hyperparam.get_dict()


def test_nesterov_follows_keras_and_pytorch():
    # Keras: v = m v - lr g; p += m v - lr g. Chainer's NesterovAG differs.
    link = quadratic_link()
    optimizer = make_optimizer(link, name='sgd', lr=0.1, momentum=0.9, nesterov=True)
    p, v = link.p.array.copy(), numpy.zeros(2)
    for _ in range(3):
        g = A * p
        v = 0.9 * v - 0.1 * g
        p = p + 0.9 * v - 0.1 * g
        step(optimizer, link)
        numpy.testing.assert_allclose(link.p.array, p, rtol=1e-14)
    other = quadratic_link()
    nesterov_ag = chainer.optimizers.NesterovAG(lr=0.1, momentum=0.9)
    nesterov_ag.setup(other)
    for _ in range(3):
        step(nesterov_ag, other)
    assert not numpy.allclose(other.p.array, p)


def test_momentum_sgd_and_rmsprop_follow_their_formulas():
    link = quadratic_link()
    optimizer = make_optimizer(link, name='sgd', lr=0.1, momentum=0.5)
    p, v = link.p.array.copy(), numpy.zeros(2)
    for _ in range(3):
        v = 0.5 * v - 0.1 * (A * p)
        p = p + v
        step(optimizer, link)
    numpy.testing.assert_allclose(link.p.array, p, rtol=1e-14)

    link = quadratic_link()
    optimizer = make_optimizer(link, name='rmsprop', lr=0.01, rho=0.9, eps=1e-6)
    p, ms = link.p.array.copy(), numpy.zeros(2)
    for _ in range(3):
        g = A * p
        ms = 0.9 * ms + 0.1 * g * g
        p = p - 0.01 * g / (numpy.sqrt(ms) + 1e-6)
        step(optimizer, link)
    numpy.testing.assert_allclose(link.p.array, p, rtol=1e-12)


def test_weight_decay_adds_rate_times_the_parameter_to_its_gradient():
    link = quadratic_link()
    optimizer = make_optimizer(link, name='sgd', lr=0.1, weight_decay=1e-2)
    assert list(optimizer._hookable._pre_update_hooks) == ['weight_decay']
    p = link.p.array.copy()
    step(optimizer, link)
    numpy.testing.assert_allclose(link.p.array, p - 0.1 * (A * p + 1e-2 * p), rtol=1e-14)


def test_nesterov_velocity_is_saved_in_snapshots(tmp_path):
    link = quadratic_link()
    optimizer = make_optimizer(link, name='sgd', lr=0.1, momentum=0.9, nesterov=True)
    step(optimizer, link)
    chainer.serializers.save_npz(str(tmp_path / 'opt.npz'), optimizer)
    resumed_link = quadratic_link(link.p.array.copy())
    resumed = make_optimizer(resumed_link, name='sgd', lr=0.1, momentum=0.9, nesterov=True)
    resumed_link.p.grad = numpy.zeros(2)  # the update rules' state exists after one update
    resumed.update()
    chainer.serializers.load_npz(str(tmp_path / 'opt.npz'), resumed)
    step(optimizer, link)
    step(resumed, resumed_link)
    numpy.testing.assert_array_equal(resumed_link.p.array, link.p.array)


def test_specs_round_trip_through_json_and_fill_in_defaults():
    spec = OptimizerSpec('sgd', lr=5e-4, momentum=0.9, nesterov=True)
    saved = json.loads(json.dumps(spec.to_dict()))
    assert saved == {'name': 'sgd', 'lr': 5e-4, 'momentum': 0.9, 'nesterov': True,
                     'weight_decay': 0.0}
    assert OptimizerSpec.from_dict(saved).settings() == spec.settings()
    assert OptimizerSpec().settings() == {'name': 'adam', 'lr': 2e-4, 'beta1': 0.5,
                                          'beta2': 0.999, 'eps': 1e-8, 'weight_decay': 0.0}
    assert OptimizerSpec('rmsprop').settings() == {'name': 'rmsprop', 'lr': 0.01, 'rho': 0.99,
                                                   'eps': 1e-8, 'weight_decay': 0.0}


def test_updated_ignores_none_and_keeps_only_the_new_optimizers_settings():
    # The Keras DCGAN notes: both nets Adam, D with its own lr and beta1.
    gen = OptimizerSpec('adam', lr=2e-4, beta1=0.5, weight_decay=1e-4)
    dis = gen.updated(lr=1e-5, beta1=0.1, beta2=None)
    assert dis == OptimizerSpec('adam', lr=1e-5, beta1=0.1, weight_decay=1e-4)
    sgd = gen.updated(name='sgd', momentum=0.9)
    assert sgd == OptimizerSpec('sgd', lr=2e-4, momentum=0.9, weight_decay=1e-4)


@pytest.mark.parametrize('settings, message', [
    ({'name': 'adagrad'}, "unknown optimizer 'adagrad'; valid ones are adam, sgd, rmsprop"),
    ({'lr': 0}, 'optimizer lr must be a finite number > 0, got 0'),
    ({'lr': float('nan')}, 'optimizer lr must be a finite number > 0'),
    ({'lr': True}, 'optimizer lr must be a finite number > 0, got True'),
    ({'beta1': 1.0}, r'optimizer beta1 must be in \[0, 1\), got 1.0'),
    ({'beta2': -0.1}, r'optimizer beta2 must be in \[0, 1\)'),
    ({'eps': 0.0}, 'optimizer eps must be a finite number > 0'),
    ({'weight_decay': -1e-4}, 'optimizer weight_decay must be a finite number >= 0'),
    ({'name': 'sgd', 'momentum': 1.0}, r'optimizer momentum must be in \[0, 1\)'),
    ({'name': 'sgd', 'nesterov': True}, 'nesterov=True needs momentum > 0'),
    ({'name': 'sgd', 'momentum': 0.9, 'nesterov': 1}, 'nesterov must be True or False'),
    ({'name': 'sgd', 'beta1': 0.5}, "optimizer setting beta1 applies to adam, not to 'sgd'"),
    ({'momentum': 0.9}, "optimizer setting momentum applies to sgd, not to 'adam'"),
    ({'name': 'adam', 'rho': 0.9}, "setting rho applies to rmsprop, not to 'adam'"),
    ({'alpha': 1e-3}, "unknown optimizer setting 'alpha'"),
])
def test_bad_settings_are_one_line_errors_naming_the_setting(settings, message):
    with pytest.raises(ValueError, match=message) as info:
        make_optimizer(L.Linear(2, 1), **settings)
    assert '\n' not in str(info.value)


def test_spec_and_settings_together_are_refused():
    with pytest.raises(ValueError, match='a spec or settings, not both'):
        make_optimizer(L.Linear(2, 1), OptimizerSpec(), lr=1e-3)


@pytest.mark.gpu
def test_nesterov_on_the_gpu_matches_the_cpu():
    cupy = pytest.importorskip('cupy')
    cpu, gpu = quadratic_link(), quadratic_link()
    gpu.to_device('@cupy:0')
    opts = [make_optimizer(link, name='sgd', lr=0.1, momentum=0.9, nesterov=True)
            for link in (cpu, gpu)]
    for _ in range(3):
        for optimizer, link in zip(opts, (cpu, gpu)):
            link.cleargrads()
            link.p.grad = link.device.xp.asarray(A) * link.p.array
            optimizer.update()
    numpy.testing.assert_allclose(cupy.asnumpy(gpu.p.array), cpu.p.array, rtol=1e-12)
