"""NaNGuard: what it detects, how it names it, and that no snapshot of it is written."""

import math
import os
import types

import chainer
import chainer.functions as F
import numpy
import pytest
from chainer import training
from chainer.training import extensions

from gan_trainer import GANUpdater
from gan_trainer.extensions import NaNGuard, TrainingDiverged
from gan_trainer.losses import GANLoss, bce_fake, bce_real
from gan_trainer.testing import fake_images, tiny_discriminator, tiny_generator

NAN, INF = float('nan'), float('inf')


@pytest.mark.parametrize(
    'value, problem',
    [
        (chainer.Variable(numpy.array(NAN, numpy.float32)), 'is nan'),
        (numpy.array(INF, numpy.float32), 'is inf'),
        (numpy.float64(-INF), 'is -inf'),
        (-INF, 'is -inf'),
        (numpy.array([[NAN]], numpy.float32), 'is nan'),  # one element: a scalar
        (numpy.array([0.5, INF, NAN], numpy.float32), 'contains nan'),
        (numpy.array([0.5, INF], numpy.float32), 'contains inf'),
    ],
)
def test_a_non_finite_report_is_named(value, problem):
    observation = {'dis/loss': numpy.float32(0.7), 'gen/loss': value, 'note': 'text'}
    assert NaNGuard().check_observation(observation) == f'gen/loss {problem}'


def test_finite_and_non_float_reports_pass():
    observation = {
        'gen/loss': chainer.Variable(numpy.array(1e30, numpy.float32)),
        'dis/acc_real': numpy.float32(1.0),
        'count': numpy.array(3),
        'iteration': 7,
        'flag': True,
        'name': 'x',
    }
    assert NaNGuard().check_observation(observation) is None


def test_keys_limit_what_is_checked():
    observation = {'gen/loss': NAN, 'dis/loss': 0.5}
    assert NaNGuard(keys=['dis/loss', 'missing']).check_observation(observation) is None
    assert NaNGuard(keys=['gen/loss']).check_observation(observation) == 'gen/loss is nan'


def optimizers(gen=None, dis=None):
    result = {}
    for name, net in (('gen', gen or tiny_generator()), ('dis', dis or tiny_discriminator())):
        result[name] = chainer.optimizers.Adam()
        result[name].setup(net)
    return result


@pytest.mark.parametrize('value, kind', [(NAN, 'nan'), (INF, 'inf'), (-INF, 'inf')])
def test_a_non_finite_parameter_is_named(value, kind):
    dis = tiny_discriminator()
    dis.convs[1].W.array[0, 0, 1, 1] = value
    assert NaNGuard().check_params(optimizers(dis=dis)) == f'parameter dis/convs/1/W holds {kind}'


def test_huge_but_finite_parameters_are_no_false_alarm():
    # float32's largest values: their float64 sum cannot overflow.
    gen = tiny_generator()
    for param in gen.params():
        param.array[...] = numpy.finfo(numpy.float32).max
    assert NaNGuard().check_params(optimizers(gen=gen)) is None


def scripted_trainer(iteration, observation, opts):
    updater = types.SimpleNamespace(iteration=iteration, get_all_optimizers=lambda: opts)
    return types.SimpleNamespace(updater=updater, observation=observation)


@pytest.mark.parametrize('interval, checked', [(1, [3, 4]), (2, [4]), (0, [])])
def test_param_interval_spaces_the_parameter_checks(interval, checked):
    dis = tiny_discriminator()
    dis.out.b.array[...] = NAN
    opts = optimizers(dis=dis)
    guard = NaNGuard(param_interval=interval)
    raised = []
    for iteration in (3, 4):
        try:
            guard(scripted_trainer(iteration, {'gen/loss': 0.5}, opts))
        except TrainingDiverged as e:
            assert (
                str(e)
                == f'training stopped at iteration {iteration}: parameter dis/out/b holds nan'
            )
            raised.append(iteration)
    assert raised == checked


def test_negative_param_interval_is_refused():
    with pytest.raises(ValueError, match='param_interval'):
        NaNGuard(param_interval=-1)


def test_the_guard_runs_before_every_writer():
    assert NaNGuard.priority > training.PRIORITY_WRITER
    assert NaNGuard.priority > extensions.snapshot().priority
    assert NaNGuard.trigger == (1, 'iteration')


def make_trainer(out, *, gen_loss=None, stop=6):
    """Tiny GAN with a trainer snapshot and a G snapshot after every iteration."""
    gen, dis = tiny_generator(), tiny_discriminator()
    loss = GANLoss(bce_real, bce_fake, gen_loss or (lambda y: F.mean(F.softplus(-y))))
    iterator = chainer.iterators.SerialIterator(
        fake_images(16),
        4,
        order_sampler=chainer.iterators.ShuffleOrderSampler(numpy.random.RandomState(0)),
    )
    updater = GANUpdater(iterator, optimizers(gen, dis), device=-1, loss=loss, seed=0)
    trainer = training.Trainer(updater, (stop, 'iteration'), out=str(out))
    trainer.extend(
        extensions.snapshot_object(gen, 'gen_iter_{.updater.iteration}.npz'),
        trigger=(1, 'iteration'),
    )
    trainer.extend(extensions.snapshot(), trigger=(1, 'iteration'))
    trainer.extend(NaNGuard())
    return trainer


def saved(out):
    return sorted(os.listdir(out))


def test_a_nan_loss_stops_training_and_keeps_the_snapshot_before_it(tmp_path):
    calls = []

    def gen_loss(y):  # turns NaN at the 4th G step, i.e. iteration 4
        calls.append(1)
        loss = F.mean(F.softplus(-y))
        return loss * NAN if len(calls) == 4 else loss

    trainer = make_trainer(tmp_path, gen_loss=gen_loss)
    with pytest.raises(TrainingDiverged) as excinfo:
        trainer.run(show_loop_exception_msg=False)
    assert str(excinfo.value) == 'training stopped at iteration 4: gen/loss is nan'
    assert saved(tmp_path) == [
        'gen_iter_1.npz',
        'gen_iter_2.npz',
        'gen_iter_3.npz',
        'snapshot_iter_1',
        'snapshot_iter_2',
        'snapshot_iter_3',
    ]
    # The G update of iteration 4 did make G's weights NaN: that state was
    # never saved, and the newest snapshot holds finite weights.
    assert any(not numpy.isfinite(p.array).all() for p in trainer.updater.gen.params())
    with numpy.load(tmp_path / 'gen_iter_3.npz') as f:
        assert all(numpy.isfinite(f[k]).all() for k in f.files)


def test_a_nan_parameter_with_finite_losses_is_caught_in_the_same_iteration(tmp_path):
    trainer = make_trainer(tmp_path)

    # Stands for an update that broke D after the losses were computed.
    @training.make_extension(trigger=(1, 'iteration'), priority=NaNGuard.priority + 1)
    def break_dis_at_3(trainer):
        if trainer.updater.iteration == 3:
            trainer.updater.dis.convs[0].b.array[0] = INF

    trainer.extend(break_dis_at_3)
    with pytest.raises(
        TrainingDiverged,
        match=r'^training stopped at iteration 3: '
        r'parameter dis/convs/0/b holds inf$',
    ):
        trainer.run(show_loop_exception_msg=False)
    assert saved(tmp_path) == [
        'gen_iter_1.npz',
        'gen_iter_2.npz',
        'snapshot_iter_1',
        'snapshot_iter_2',
    ]


def test_a_healthy_run_is_not_stopped(tmp_path):
    trainer = make_trainer(tmp_path, stop=3)
    trainer.run()
    assert trainer.updater.iteration == 3
    assert math.isfinite(float(trainer.observation['gen/loss'].array))


@pytest.mark.gpu
def test_cupy_arrays_are_checked_too():
    cupy = pytest.importorskip('cupy')
    observation = {'gen/loss': cupy.array(NAN, cupy.float32)}
    assert NaNGuard().check_observation(observation) == 'gen/loss is nan'
    dis = tiny_discriminator()
    dis.convs[1].W.array[0, 0, 0, 0] = NAN
    dis.to_device('@cupy:0')
    assert NaNGuard().check_params(optimizers(dis=dis)) == 'parameter dis/convs/1/W holds nan'
