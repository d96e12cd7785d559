"""Schedules: the factors by hand, the extension's writes, and exact resume of every new option."""

import json
import math

import chainer
import numpy
import pytest

from gan_trainer import files
from gan_trainer.datasets import Data
from gan_trainer.optimizers import OptimizerSpec, make_optimizer
from gan_trainer.run import RunConfig, build_trainer
from gan_trainer.schedules import Schedule, lr_factor, optimizer_lr_setter, ramp
from gan_trainer.testing import fake_images, tiny_discriminator


@pytest.mark.parametrize('iteration, kwargs, expected', [
    # Warm-up: (t + 1) / warmup, then 1 without a decay.
    (0, {'warmup': 4}, 0.25),
    (3, {'warmup': 4}, 1.0),
    (50, {'warmup': 4}, 1.0),
    # Linear from 1 at the start to the floor at the end (total 100).
    (25, {'shape': 'linear'}, 0.75),
    (100, {'shape': 'linear', 'floor': 0.2}, 0.2),
    (50, {'shape': 'linear', 'floor': 0.2}, 0.6),
    # Cosine: (1 + cos(pi u)) / 2 of the way down.
    (25, {'shape': 'cosine'}, (1 + math.cos(math.pi / 4)) / 2),
    (50, {'shape': 'cosine', 'floor': 0.5}, 0.75),
    # The decay starts at half the run: flat before, half-way down at 75.
    (40, {'shape': 'linear', 'decay_start': 0.5}, 1.0),
    (75, {'shape': 'linear', 'decay_start': 0.5}, 0.5),
    # Warm-up of 20 and a decay from 20 to 100: at 60 the linear is half down.
    (60, {'shape': 'linear', 'warmup': 20}, 0.5),
    (10, {'shape': 'cosine', 'warmup': 20}, 11 / 20),
])
def test_lr_factor_by_hand(iteration, kwargs, expected):
    assert lr_factor(iteration, 100, **kwargs) == pytest.approx(expected, rel=1e-12)


def test_ramp_is_a_cosine_between_its_ends():
    assert ramp(0, 80, 0.9, 0.99) == 0.9
    assert ramp(80, 80, 0.9, 0.99) == pytest.approx(0.99)
    assert ramp(40, 80, 0.9, 0.99) == pytest.approx(0.945)
    assert ramp(200, 80, 0.05, 0.005) == pytest.approx(0.005)


def test_unknown_shape_is_refused():
    with pytest.raises(ValueError, match="unknown lr schedule 'step'"):
        lr_factor(0, 10, shape='step')


@pytest.mark.parametrize('spec, attr, lr', [
    (OptimizerSpec('adam', lr=1e-3), 'alpha', 1e-3),
    (OptimizerSpec('sgd', lr=0.1, momentum=0.9, nesterov=True), 'lr', 0.1),
    (OptimizerSpec('rmsprop', lr=0.05), 'lr', 0.05)])
def test_the_learning_rate_of_each_optimizer_is_what_the_schedule_writes(spec, attr, lr):
    optimizer = make_optimizer(tiny_discriminator(), spec)
    base, setter = optimizer_lr_setter(optimizer)
    assert base == lr
    setter(base / 4)
    assert getattr(optimizer.hyperparam, attr) == base / 4
    if attr == 'lr':  # RMSprop's alpha is its decay: untouched
        assert getattr(optimizer.hyperparam, 'alpha', None) != base / 4


class FakeTrainer:
    def __init__(self, iteration):
        self.updater = type('U', (), {'iteration': iteration})()


def test_the_extension_sets_each_update_the_value_of_its_iteration():
    seen = []
    schedule = Schedule({'x': (lambda t: 10.0 * t, seen.append)})
    schedule.initialize(FakeTrainer(3))  # a resumed run sets its iteration's value first
    observation = {}
    with chainer.Reporter().scope(observation):
        schedule(FakeTrainer(4))
    assert seen == [30.0, 40.0] and observation == {'x': 30.0}


# --- exact resume with every new option --------------------------------------

TINY = {'base_width': 4, 'batchsize': 8, 'display_interval': 1, 'preview_interval': 100,
        'eval_interval': 100, 'progress': False, 'snapshot_interval': 3}


def data():
    return Data.of(fake_images(32, channels=1, size=8, seed=0),
                   fake_images(8, channels=1, size=8, seed=1))


def weights(out, iteration):
    with numpy.load(str(out / f'gen_iter_{iteration}.npz')) as g, \
            numpy.load(str(out / f'dis_iter_{iteration}.npz')) as d:
        return {**{'g' + k: g[k] for k in g.files}, **{'d' + k: d[k] for k in d.files}}


@pytest.mark.slow
@pytest.mark.parametrize('options', [
    {'lr_schedule': 'cosine', 'lr_warmup': 2, 'lr_floor': 0.1},
    {'lr_schedule': 'linear', 'lr_decay_start': 0.5, 'beta2_start': 0.9, 'beta1': 0.0},
    {'loss': 'rpgan', 'penalty': 'r1,r2', 'penalty_weight': 0.5, 'penalty_weight_end': 0.05,
     'penalty_every': 2, 'dis_norm': 'none', 'reuse_fakes': False},
    {'ema': 0.99, 'ema_rampup': 0.5, 'lecam': 0.3, 'bcr': 1.0},
], ids=['cosine-warmup', 'linear-beta2', 'rpgan-r1r2-lazy', 'ema-lecam-bcr'])
def test_a_resumed_run_with_each_schedule_equals_the_uninterrupted_one(tmp_path, options):
    straight, split = tmp_path / 'straight', tmp_path / 'split'
    build_trainer(RunConfig(out=str(straight), iteration=6, **TINY, **options),
                  data=data(), log=None).run()
    # Interrupted at 3 (as by Ctrl-C after the snapshot of iteration 3): the
    # run's length, and so its schedules, are those of a 6-iteration run.
    interrupted = build_trainer(RunConfig(out=str(split), iteration=6, **TINY, **options),
                                data=data(), log=None)
    interrupted.stop_trigger = chainer.training.triggers.IntervalTrigger(3, 'iteration')
    interrupted.run()
    assert not (split / 'gen_iter_6.npz').exists()
    build_trainer(RunConfig(out=str(split), iteration=6, resume='auto', **TINY, **options),
                  data=data(), log=None).run()
    a, b = weights(straight, 6), weights(split, 6)
    assert a.keys() == b.keys()
    for key in a:
        assert numpy.array_equal(a[key], b[key]), key
    # The scheduled values were applied (and logged) along the way.
    log = json.loads((straight / files.LOG).read_text())
    if 'lr_schedule' in options:
        lrs = [entry['lr/gen'] for entry in log]
        assert lrs[-1] < lrs[2] and len(set(lrs)) > 2
    if 'penalty_weight_end' in options:
        assert log[0]['penalty_weight'] > log[-1]['penalty_weight'] > 0.05
    if 'lecam' in options:
        assert all('dis/lecam' in e and 'dis/bcr' in e for e in log)
