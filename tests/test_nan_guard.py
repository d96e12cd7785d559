"""NaNGuard: what it detects, how it names it, and that no snapshot of it is written.

Also: every array a snapshot saves is guarded (BatchNorm statistics, optimizer
state, the EMA of G), and one iteration's checks cost one device-to-host
transfer (counted with a NumPy array type that stands for device arrays).
"""

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
from gan_trainer.ema import GeneratorEMA
from gan_trainer.extensions import DivergenceMonitor, NaNGuard, TrainingDiverged
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
    # The guard leaves the reported values in the observation as host numbers.
    assert isinstance(trainer.observation['gen/loss'], numpy.float64)
    assert math.isfinite(trainer.observation['gen/loss'])


@pytest.mark.gpu
def test_cupy_arrays_are_checked_too():
    cupy = pytest.importorskip('cupy')
    observation = {'gen/loss': cupy.array(NAN, cupy.float32)}
    assert NaNGuard().check_observation(observation) == 'gen/loss is nan'
    dis = tiny_discriminator()
    dis.convs[1].W.array[0, 0, 0, 0] = NAN
    dis.to_device('@cupy:0')
    assert NaNGuard().check_params(optimizers(dis=dis)) == 'parameter dis/convs/1/W holds nan'


# ------------------------------------------- every number a snapshot saves


def huge_lr_trainer(out, lr=1e9):
    """Tiny nets, Adam with learning rate ``lr``, D and trainer snapshots every iteration."""
    gen, dis = tiny_generator(), tiny_discriminator()
    opts = {}
    for name, net in (('gen', gen), ('dis', dis)):
        opts[name] = chainer.optimizers.Adam(alpha=lr, beta1=0.5)
        opts[name].setup(net)
    iterator = chainer.iterators.SerialIterator(
        fake_images(16), 4,
        order_sampler=chainer.iterators.ShuffleOrderSampler(numpy.random.RandomState(0)))
    # seed=3: z with which the first update leaves D finite and the second
    # overflows its BatchNorm statistics (issue 16's repro).
    updater = GANUpdater(iterator, opts, device=-1, seed=3)
    trainer = training.Trainer(updater, (8, 'iteration'), out=str(out))
    every = (1, 'iteration')
    trainer.extend(extensions.snapshot_object(dis, 'dis_iter_{.updater.iteration}.npz'),
                   trigger=every)
    trainer.extend(extensions.snapshot(), trigger=every)
    trainer.extend(NaNGuard())
    return trainer


def test_a_huge_learning_rate_stops_before_inf_batchnorm_statistics_are_saved(tmp_path):
    # Issue 16's repro (train_dcgan.py --lr 1e9 exited 0 with avg_var = inf
    # in dis_iter_N.npz): the first update leaves D's losses and weights
    # finite, but its BatchNorm running variance overflows.
    trainer = huge_lr_trainer(tmp_path)
    # NumPy warns of the overflows on the way.
    with pytest.warns(RuntimeWarning), pytest.raises(TrainingDiverged) as excinfo:
        trainer.run(show_loop_exception_msg=False)
    assert str(excinfo.value) == (
        'training stopped at iteration 2: persistent dis/bns/0/avg_var holds inf')
    assert not numpy.isfinite(trainer.updater.dis.bns[0].avg_var).all()
    assert saved(tmp_path) == ['dis_iter_1.npz', 'snapshot_iter_1']
    for name in saved(tmp_path):
        with numpy.load(tmp_path / name) as f:
            for key in f.files:
                if f[key].dtype.kind == 'f':
                    assert numpy.isfinite(f[key]).all(), (name, key)


def updated_optimizers(ema_decay=None):
    """Optimizers of tiny nets after one real iteration (Adam state exists)."""
    opts = optimizers()
    ema = GeneratorEMA(opts['gen'].target, decay=ema_decay) if ema_decay else None
    iterator = chainer.iterators.SerialIterator(fake_images(8), 4, shuffle=False)
    updater = GANUpdater(iterator, opts, device=-1, seed=0, ema=ema)
    updater.update()
    return updater


@pytest.mark.parametrize('corrupt, problem', [
    (lambda u: u.dis.bns[0].avg_mean.__setitem__(1, NAN),
     'persistent dis/bns/0/avg_mean holds nan'),
    (lambda u: u.gen.bn0.avg_var.__setitem__(0, INF),
     'persistent gen/bn0/avg_var holds inf'),
    (lambda u: u.dis.convs[0].W.update_rule.state['m'].__setitem__((0, 0, 0, 0), NAN),
     'optimizer state dis/convs/0/W/m holds nan'),
    (lambda u: u.gen.project.W.update_rule.state['v'].__setitem__((0, 0), INF),
     'optimizer state gen/project/W/v holds inf'),
    (lambda u: u.ema.target.deconvs[0].W.array.__setitem__((0, 0, 0, 0), NAN),
     'parameter gen_ema/deconvs/0/W holds nan'),
    (lambda u: u.ema.target.bns[0].avg_var.__setitem__(0, -INF),
     'persistent gen_ema/bns/0/avg_var holds inf'),
], ids=['bn-mean', 'bn-var', 'adam-m', 'adam-v', 'ema-param', 'ema-bn'])
def test_every_saved_array_is_checked_and_named(corrupt, problem):
    updater = updated_optimizers(ema_decay=0.5)
    guard = NaNGuard()
    assert guard.check({}, guard.groups(updater)) is None
    corrupt(updater)
    assert guard.check({}, guard.groups(updater)) == problem
    trainer = scripted_trainer(5, {'gen/loss': 0.5}, updater.get_all_optimizers())
    trainer.updater.ema = updater.ema
    with pytest.raises(TrainingDiverged, match=f'^training stopped at iteration 5: {problem}$'):
        guard(trainer)


# ------------------------------------------------- host transfers, counted


class DeviceArray(numpy.ndarray):
    """A NumPy array standing for a GPU array: every host conversion is counted.

    On CuPy each ``float()``, ``bool()``, ``item()`` or ``tolist()`` of an
    array waits for the GPU and copies back; here they add to ``implicit``.
    Results of NumPy operations on such arrays stay DeviceArrays (reductions
    included), so a conversion anywhere downstream is counted too.
    """

    implicit = 0
    __array_priority__ = 1.0  # concatenate returns the subtype of highest priority

    def __array_wrap__(self, array, context=None, return_scalar=False):
        return numpy.asarray(array).view(DeviceArray)

    def _count(self):
        DeviceArray.implicit += 1

    def __float__(self):
        self._count()
        return float(self.view(numpy.ndarray).reshape(()))

    def __int__(self):
        self._count()
        return int(self.view(numpy.ndarray).reshape(()))

    def __bool__(self):
        self._count()
        return bool(self.view(numpy.ndarray).reshape(()))

    def __index__(self):
        self._count()
        return int(self.view(numpy.ndarray).reshape(()))

    def item(self, *args):
        self._count()
        return self.view(numpy.ndarray).item(*args)

    def tolist(self):
        self._count()
        return self.view(numpy.ndarray).tolist()

    def __format__(self, spec):
        self._count()
        return format(self.view(numpy.ndarray).reshape(()).item(), spec)


def count_transfers(monkeypatch):
    """Counts (by shape) the explicit transfers of gan_trainer.finite."""
    from gan_trainer import finite

    transfers, real = [], finite.to_host
    monkeypatch.setattr(finite, 'to_host', lambda a: transfers.append(a.shape) or real(
        a.view(numpy.ndarray)))
    return transfers


def on_device(array):
    return array.view(DeviceArray)


def move_to_fake_device(updater, observation):
    """Every array the extensions read, as a DeviceArray."""
    links = [updater.gen, updater.dis, updater.ema.target]
    for link in links:
        for param in link.params():
            param.array = on_device(param.array)
            state = getattr(param.update_rule, 'state', None) or {}
            for key in state:
                state[key] = on_device(state[key])
        for sub in link.links():
            for attr in sub._persistent:
                value = getattr(sub, attr)
                if isinstance(value, numpy.ndarray):
                    setattr(sub, attr, on_device(value))
    for key, value in observation.items():
        value = value.array if isinstance(value, chainer.Variable) else value
        observation[key] = on_device(numpy.asarray(value))


def test_one_iteration_of_checks_costs_one_transfer(monkeypatch):
    # The operations the checks use keep the fake device type, so that a
    # conversion after them would be counted.
    x = on_device(numpy.array([1.0, NAN], numpy.float32))
    for result in (numpy.isfinite(numpy.concatenate([x, x])).all(keepdims=True),
                   x.reshape((2, 1)).ravel(), x[:1].reshape((1,)).astype(numpy.float64)):
        assert type(result) is DeviceArray

    updater = updated_optimizers(ema_decay=0.5)
    trainer = training.Trainer(updater, (10, 'iteration'))
    reporter = chainer.Reporter()
    reporter.add_observer('gen', updater.gen)
    reporter.add_observer('dis', updater.dis)
    with reporter.scope(trainer.observation):
        updater.update()
    reported = {key: float(getattr(value, 'array', value))
                for key, value in trainer.observation.items()}
    move_to_fake_device(updater, trainer.observation)
    transfers = count_transfers(monkeypatch)
    DeviceArray.implicit = 0
    # What runs every iteration: the guard, the monitor, the log's summary.
    for extension in (NaNGuard(), DivergenceMonitor(window=2),
                      extensions.LogReport(trigger=(50, 'iteration'))):
        extension(trainer)
    assert DeviceArray.implicit == 0
    # One vector: the 6 reported values and one flag for each of gen, dis
    # and gen_ema (before: a float() per value and per network, 8 in all,
    # and 3 more in the monitor).
    assert transfers == [(9,)]
    # What the guard put back is what was reported, now on the host.
    assert trainer.observation == reported
    assert all(type(v) is numpy.float64 for v in trainer.observation.values())


def test_a_divergence_monitor_alone_reads_its_three_values_in_one_transfer(monkeypatch):
    transfers = count_transfers(monkeypatch)
    observation = {key: on_device(numpy.array(v, numpy.float32)) for key, v in
                   (('dis/acc_real', 1.0), ('dis/acc_fake', 0.5), ('gen/loss', 2.0))}
    trainer = scripted_trainer(1, observation, {})
    DeviceArray.implicit = 0
    monitor = DivergenceMonitor(window=2)
    monitor(trainer)
    assert DeviceArray.implicit == 0 and transfers == [(3,)]
    assert list(monitor._history) == [(0.75, 2.0)]


# ------------------------------------------------- views of one buffer, reduced as it


def test_views_that_tile_a_buffer_are_reduced_as_the_buffer():
    from gan_trainer import finite
    base = numpy.zeros(30, numpy.float32)
    views = [base[10:30].reshape(4, 5), base[:10].reshape(2, 5)]  # any order
    other = numpy.zeros(3, numpy.float32)
    plan = finite._tiled([views[0], other, views[1]])
    assert len(plan) == 2 and plan[0] is base and plan[1] is other
    base[17] = NAN
    assert finite.reduce_to_host([], [[views[0], other, views[1]]])[1] == [False]


@pytest.mark.parametrize('pieces', [
    [(0, 10), (20, 30)],   # a gap: the buffer holds numbers no view holds
    [(0, 10), (10, 20)],   # the buffer's end not reached
    [(0, 20), (10, 30)],   # overlapping views
])
def test_views_that_do_not_tile_their_buffer_are_reduced_one_by_one(pieces):
    from gan_trainer import finite
    base = numpy.zeros(30, numpy.float32)
    views = [base[a:b] for a, b in pieces]
    plan = finite._tiled(views)
    assert len(plan) == len(views) and all(p is v for p, v in zip(plan, views))
    base[:] = NAN
    for a, b in pieces:
        base[a:b] = 0  # every view finite, the rest of the buffer not
    assert finite.reduce_to_host([], [views])[1] == [True]


@pytest.mark.parametrize('state', ['m', 'v', 'param'])
def test_the_fused_adams_flat_buffers_are_checked_and_a_culprit_named(state):
    """gan_trainer.ops.Adam keeps parameters and state as views of flat buffers: the
    guard reduces the buffers, and still names the array that went bad."""
    from gan_trainer import finite, ops
    opts = {}
    for name, net in (('gen', tiny_generator()), ('dis', tiny_discriminator())):
        opts[name] = ops.Adam()
        opts[name].setup(net)
    iterator = chainer.iterators.SerialIterator(fake_images(8), 4, shuffle=False)
    updater = GANUpdater(iterator, opts, device=-1, seed=0)
    updater.update()
    guard = NaNGuard()
    groups = guard.groups(updater)
    arrays = [a for _, a in groups['dis']]
    assert len(finite._tiled(arrays)) < len(arrays) - 10  # params, m and v: three buffers
    assert guard.check({}, groups) is None
    W = updater.dis.convs[1].W
    target = W.array if state == 'param' else W.update_rule.state[state]
    target[0, 0, 0, 0] = NAN
    name = 'parameter dis/convs/1/W' if state == 'param' else f'optimizer state dis/convs/1/W/{state}'
    assert guard.check({}, guard.groups(updater)) == f'{name} holds nan'
