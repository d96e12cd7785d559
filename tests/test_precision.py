"""mixed16 on the CPU: the nets build and train, loss scaling skips overflows, not the run."""

import chainer
import numpy
import pytest
from chainer import training

from gan_trainer import GANUpdater, precision
from gan_trainer.extensions import DivergenceMonitor, NaNGuard, TrainingDiverged
from gan_trainer.testing import fake_images, tiny_discriminator, tiny_generator


def mixed16_updater(*, lr=2e-4, interval=1000, n_images=16, seed=0):
    with chainer.using_config('dtype', chainer.mixed16):
        gen, dis = tiny_generator(), tiny_discriminator()
    opts = {}
    for name, net in (('gen', gen), ('dis', dis)):
        opts[name] = chainer.optimizers.Adam(alpha=lr, beta1=0.5)
        opts[name].setup(net)
    precision.configure_optimizers(opts, 'mixed16', interval=interval)
    # float32 images, as every dataset gives them: D casts at its entrance.
    iterator = chainer.iterators.SerialIterator(fake_images(n_images), 4, shuffle=False)
    return GANUpdater(iterator, opts, device=-1, seed=seed)


def observe(updater):
    observation = {}
    reporter = chainer.Reporter()
    reporter.add_observer('gen', updater.gen)
    reporter.add_observer('dis', updater.dis)
    with reporter.scope(observation):
        updater.update()
    return {k: float(getattr(v, 'array', v)) for k, v in observation.items()}


def test_resolve_dtype_names_the_valid_values():
    assert precision.resolve_dtype('float32') == numpy.float32
    assert precision.resolve_dtype('mixed16') is chainer.mixed16
    with pytest.raises(ValueError, match=r"^dtype must be one of float32, mixed16, got 'half'$"):
        precision.resolve_dtype('half')


def test_mixed16_nets_keep_batchnorm_in_float32_and_train_with_finite_losses():
    updater = mixed16_updater()
    dtypes = {name: p.array.dtype for name, p in updater.gen.namedparams()}
    assert dtypes['/project/W'] == numpy.float16
    assert dtypes['/bn0/gamma'] == numpy.float32
    assert updater.dis.bns[0].avg_var.dtype == numpy.float32
    before = updater.gen.project.W.array.copy()
    scales = []
    for _ in range(4):
        observation = observe(updater)
        assert all(numpy.isfinite(v) for v in observation.values()), observation
        assert observation['gen/skipped'] == 0 and observation['dis/skipped'] == 0
        scales.append(observation['gen/loss_scale'])
        assert updater.gen.project.W.array.dtype == numpy.float16
    # Dynamic scaling: 1 for the first update, doubled after each without overflow.
    assert scales == [1.0, 2.0, 4.0, 8.0]
    assert updater.get_optimizer('gen')._loss_scale == 16.0
    assert not numpy.array_equal(updater.gen.project.W.array, before)
    # The float32 master copy is what Adam updates.
    master = updater.gen.project.W.update_rule._fp32_param
    assert master.array.dtype == numpy.float32
    numpy.testing.assert_array_equal(master.array.astype(numpy.float16),
                                     updater.gen.project.W.array)


def test_the_backward_pass_uses_the_optimizers_current_scale():
    # The gradient D's update sees is the scaled one divided again: the
    # same as without scaling, up to float16 rounding.
    updater = mixed16_updater()
    for _ in range(3):
        observe(updater)
    assert updater.get_optimizer('dis')._loss_scale == 8.0
    assert updater.get_optimizer('gen')._loss_scale == 8.0
    observe(updater)
    # backward(loss_scale=...) leaves the scale on every parameter it
    # reached, for the update rule to divide the gradient by.
    assert updater.dis.convs[0].W._loss_scale == 8.0
    assert updater.gen.project.W._loss_scale == 8.0


def overflow(updater, name):
    """Sets ``name``'s optimizer to the largest scale, at which its gradients overflow."""
    updater.get_optimizer(name)._loss_scale = 65504.0
    # Large read-out weights make large gradients (about 1000 / 4 per
    # feature), which the scale takes past float16's 65504.
    updater.dis.out.W.array[...] = numpy.float16(1000)


def test_an_overflow_is_skipped_and_halves_the_scale_without_warnings(recwarn):
    updater = mixed16_updater()
    overflow(updater, 'dis')
    opt = updater.get_optimizer('dis')
    before = {n: p.array.copy() for n, p in updater.dis.namedparams()}
    observation = observe(updater)
    assert observation['dis/skipped'] == 1.0 and observation['dis/loss_scale'] == 65504.0
    assert opt._loss_scale == 32752.0
    for name, param in updater.dis.namedparams():
        numpy.testing.assert_array_equal(param.array, before[name], err_msg=name)
    # Chainer warned once per gradient array; the batched check does not.
    assert not [w for w in recwarn if 'Non finite number' in str(w.message)]


def guarded_trainer(updater, stop):
    trainer = training.Trainer(updater, (stop, 'iteration'))
    trainer.extend(NaNGuard(max_skips=3))
    trainer.extend(DivergenceMonitor(window=10))
    return trainer


def test_the_guard_lets_overflow_skips_pass_and_the_monitor_leaves_them_out():
    # seed=3: z with which G's overflow is skipped, then the run recovers.
    updater = mixed16_updater(seed=3)
    overflow(updater, 'gen')
    trainer = guarded_trainer(updater, 4)
    monitor = trainer.get_extension('divergence_monitor')
    skipped = []

    @training.make_extension(trigger=(1, 'iteration'), priority=0)
    def record(trainer):
        obs = trainer.observation
        skipped.append(obs['gen/skipped'] > 0 or obs['dis/skipped'] > 0)

    trainer.extend(record)
    trainer.run()
    assert updater.iteration == 4
    assert skipped[0] and not all(skipped)
    # The monitor kept only the iterations in which both networks trained.
    assert len(monitor._history) == skipped.count(False)


def test_updates_skipped_at_scale_1_again_and_again_stop_the_run():
    updater = mixed16_updater(n_images=64)
    # Gradients that are not finite at any scale: D's update must give up.
    updater.dis.out.W.array[...] = numpy.float16(60000)
    trainer = guarded_trainer(updater, 30)
    with pytest.raises(TrainingDiverged) as excinfo:
        trainer.run(show_loop_exception_msg=False)
    assert str(excinfo.value) == (
        'training stopped at iteration 3: dis: 3 updates in a row skipped at loss scale 1 '
        '(its gradients are not finite even unscaled)')


def test_a_mixed16_run_validates_draws_grids_and_snapshots(tmp_path):
    from chainer.training import extensions

    from gan_trainer import GANEvaluator
    from gan_trainer.extensions import ImageGrid

    updater = mixed16_updater()
    trainer = training.Trainer(updater, (2, 'iteration'), out=str(tmp_path))
    test = chainer.iterators.SerialIterator(fake_images(8), 4, repeat=False, shuffle=False)
    trainer.extend(GANEvaluator(test, {'gen': updater.gen, 'dis': updater.dis}, seed=0),
                   trigger=(2, 'iteration'))
    trainer.extend(ImageGrid(rows=2, cols=2), trigger=(2, 'iteration'))
    trainer.extend(NaNGuard())
    trainer.extend(extensions.LogReport(trigger=(2, 'iteration')))
    trainer.extend(extensions.snapshot_object(updater.gen, 'gen.npz'), trigger=(2, 'iteration'))
    trainer.run()
    log = trainer.get_extension('LogReport').log[-1]
    for key in ('gen/loss', 'validation/gen/loss', 'gen/loss_scale', 'dis/skipped'):
        assert numpy.isfinite(log[key]), key
    assert (tmp_path / 'preview' / 'latest.png').is_file()
    with numpy.load(tmp_path / 'gen.npz') as saved:
        assert saved['project/W'].dtype == numpy.float16
        assert saved['bn0/avg_var'].dtype == numpy.float32
