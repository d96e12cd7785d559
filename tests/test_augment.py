"""gan_trainer.augment, and GANUpdater(augment=...): DiffAugment and ADA in the one loop."""

import copy

import chainer
import chainer.functions as F
import numpy
import pytest
from chainer import gradient_check, training
from chainer.backends import cuda
from helpers import reported

from gan_trainer import GANUpdater
from gan_trainer import augment as augment_module
from gan_trainer.augment import ADA_TARGET, DEFAULT_POLICY, DiffAugment, get_augment, parse_policy
from gan_trainer.iterators import train_iterator
from gan_trainer.losses import NONSATURATING
from gan_trainer.penalties import R1
from gan_trainer.testing import fake_images, tiny_discriminator, tiny_generator

OPERATIONS = ['brightness', 'saturation', 'contrast', 'translation', 'cutout']


def images(shape=(4, 3, 8, 8), dtype=numpy.float64, seed=0):
    return numpy.random.RandomState(seed).uniform(-1, 1, shape).astype(dtype)


def with_seed(op, seed=3, apply=None):
    """``op`` as a function of x alone, drawing the same numbers on every call."""
    def f(x):
        mask = numpy.ones(len(x), bool) if apply is None else apply
        return op(x, numpy.random.RandomState(seed), mask)
    return f


# --- each operation: the reference's values, and its gradients -----------------------------------


def test_color_operations_match_the_reference_formulas():
    x = images()
    draws = numpy.random.RandomState(3).uniform(0, 1, (4, 1, 1, 1))
    bright = with_seed(augment_module.brightness)(x).array
    numpy.testing.assert_allclose(bright, x + draws - 0.5)
    sat = with_seed(augment_module.saturation)(x).array
    mean_c = x.mean(axis=1, keepdims=True)
    numpy.testing.assert_allclose(sat, (x - mean_c) * draws * 2 + mean_c)
    con = with_seed(augment_module.contrast)(x).array
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    numpy.testing.assert_allclose(con, (x - mean) * (draws + 0.5) + mean)


def reference_translation(x, dy, dx):
    """The reference's gather, written as loops: pad by one zero pixel, clamp."""
    b, _, h, w = x.shape
    pad = numpy.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = numpy.empty_like(x)
    for n in range(b):
        for i in range(h):
            for j in range(w):
                out[n, :, i, j] = pad[n, :, min(max(i + dy[n] + 1, 0), h + 1),
                                      min(max(j + dx[n] + 1, 0), w + 1)]
    return out


def test_translation_shifts_each_image_by_up_to_an_eighth_filled_with_zero():
    x = images((6, 2, 16, 8))
    out = with_seed(augment_module.translation)(x).array
    rng = numpy.random.RandomState(3)
    dy, dx = rng.randint(-2, 3, size=6), rng.randint(-1, 2, size=6)  # 16/8 and 8/8 pixels
    numpy.testing.assert_array_equal(out, reference_translation(x, dy, dx))
    assert (dy != 0).any() and (dx != 0).any()


def test_cutout_zeroes_a_half_side_square_clipped_to_the_image():
    x = images((50, 1, 8, 8)) + 3  # no pixel is 0 before the cutout
    out = with_seed(augment_module.cutout)(x).array
    rng = numpy.random.RandomState(3)
    cy, cx = rng.randint(0, 9, size=50), rng.randint(0, 9, size=50)  # even side 4: 0..8
    for n in range(50):
        expect = x[n].copy()
        expect[:, max(cy[n] - 2, 0):cy[n] + 2, max(cx[n] - 2, 0):cx[n] + 2] = 0
        numpy.testing.assert_array_equal(out[n], expect)
    assert (out == 0).sum(axis=(1, 2, 3)).min() >= 4  # a corner still cuts 2x2


@pytest.mark.parametrize('name', OPERATIONS)
def test_each_operation_passes_gradient_checks(name):
    op = with_seed(getattr(augment_module, name))
    x = images((3, 2, 8, 8))
    gy = images((3, 2, 8, 8), seed=1)
    gradient_check.check_backward(op, x, gy, dtype=numpy.float64, atol=1e-6, rtol=1e-5)
    # Twice differentiable: a gradient penalty through the augmentation needs it.
    ggx = images((3, 2, 8, 8), seed=2)
    gradient_check.check_double_backward(op, x, gy, ggx, dtype=numpy.float64,
                                         atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize('name', OPERATIONS)
def test_an_image_the_operation_skips_is_unchanged(name):
    x = images()
    apply = numpy.array([True, False, True, False])
    out = with_seed(getattr(augment_module, name), apply=apply)(x).array
    numpy.testing.assert_array_equal(out[~apply], x[~apply])
    assert not numpy.array_equal(out[apply], x[apply])


# --- DiffAugment: policies, probability, ADA ------------------------------------------------------


def test_policies_combine_in_the_order_given():
    x = images()
    out = DiffAugment('cutout,translation')(x, numpy.random.RandomState(0)).array
    rng = numpy.random.RandomState(0)
    h = augment_module.cutout(chainer.Variable(x), rng, numpy.ones(4, bool))
    expect = augment_module.translation(h, rng, numpy.ones(4, bool)).array
    numpy.testing.assert_array_equal(out, expect)
    assert DiffAugment().operations == [augment_module.brightness, augment_module.saturation,
                                        augment_module.contrast, augment_module.translation,
                                        augment_module.cutout]


@pytest.mark.parametrize('policy', ['colour', 'color,,cutout', '', 'translation, flip'])
def test_bad_policy_names_are_rejected_with_one_line(policy):
    with pytest.raises(ValueError, match='unknown augmentation') as error:
        parse_policy(policy)
    assert '\n' not in str(error.value) and 'valid: color, cutout, translation' in str(error.value)
    with pytest.raises(ValueError, match='unknown augmentation'):
        GANUpdater(chainer.iterators.SerialIterator(fake_images(8), 4, shuffle=False), optimizers(),
                   augment=policy)


def test_probability_zero_is_the_identity_and_an_intermediate_one_skips_some_images():
    x = images((64, 1, 8, 8))
    numpy.testing.assert_array_equal(DiffAugment(p=0)(x, numpy.random.RandomState(0)).array, x)
    out = DiffAugment('translation', p=0.5)(x, numpy.random.RandomState(0)).array
    unchanged = numpy.array([numpy.array_equal(a, b) for a, b in zip(out, x)])
    # About half of the images are shifted (a drawn shift of (0, 0) leaves one as it is).
    assert 15 < unchanged.sum() < 45


def test_ada_moves_p_by_its_step_every_interval_and_stays_in_0_1():
    ada = DiffAugment(target=0.6, interval=2, speed=80)
    assert ada.p == 0 and ada.stats() == {'augment_p': 0.0}
    overfit = numpy.array([1.0, 2.0, 0.5, -1.0], numpy.float32)  # r_t = 0.5 < 0.6
    ada.observe(overfit)
    assert ada.p == 0  # first of the interval's two steps
    ada.observe(overfit)
    assert ada.p == 0  # r_t below the target: p would go down, and stays at 0
    for _ in range(2):
        ada.observe(numpy.ones(4, numpy.float32))  # r_t = 1
    assert ada.p == pytest.approx(8 / 80)  # 2 steps of 4 reals over 80
    for _ in range(40):
        ada.observe(numpy.ones(4, numpy.float32))
    assert ada.p == 1
    assert DiffAugment().stats() == {} and DiffAugment().p == 1
    DiffAugment().observe(overfit)  # no-op when not adaptive


@pytest.mark.parametrize('kwargs, message', [
    ({'target': 1.5}, 'ADA target must be in'),
    ({'p': -0.1}, 'probability p must be in'),
    ({'target': 0.6, 'interval': 0}, 'ADA interval must be a positive integer'),
    ({'target': 0.6, 'speed': 0}, 'ADA speed must be a positive number'),
])
def test_bad_numbers_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DiffAugment(**kwargs)


def test_get_augment_names():
    assert get_augment(None) is None and get_augment('none') is None
    ada = get_augment('ada')
    assert ada.policy == DEFAULT_POLICY and ada.target == ADA_TARGET and ada.p == 0
    assert get_augment('ada', target=0.8).target == 0.8
    assert get_augment('translation', target=0.5).adaptive
    assert not get_augment('translation,cutout').adaptive
    with pytest.raises(ValueError, match='needs an augmentation policy'):
        get_augment('none', target=0.6)


# --- in the updater ------------------------------------------------------------------------------


def optimizers(gen=None, dis=None):
    opts = {}
    for name, net in (('gen', gen or tiny_generator()), ('dis', dis or tiny_discriminator())):
        opts[name] = chainer.optimizers.Adam(1e-2, beta1=0.5)
        opts[name].setup(net)
    return opts


def make_updater(data=None, *, gen=None, dis=None, seed=0, shuffle_seed=None, **options):
    data = fake_images(40) if data is None else data
    if shuffle_seed is None:
        it = chainer.iterators.SerialIterator(data, 4, shuffle=False)
    else:
        it = train_iterator(data, 4, seed=shuffle_seed)  # saves its shuffling: exact resume
    return GANUpdater(it, optimizers(gen, dis), device=-1, seed=seed, **options)


def record_inputs(link):
    """Replaces ``link.forward`` by one that records a copy of every input."""
    calls, forward = [], link.forward

    def recording(x):
        calls.append(numpy.array(getattr(x, 'array', x)))
        return forward(x)

    link.forward = recording
    return calls


def test_dis_step_augments_the_real_and_the_fake_batch_apart():
    updater = make_updater(augment='color,translation,cutout')
    gen = copy.deepcopy(updater.gen)
    rng = copy.deepcopy(updater.rng)
    seen = record_inputs(updater.dis)
    updater.dis_step()
    # The same draws, replayed: z, then the reals' augmentation, then the fakes'.
    z = updater.make_hidden(4, rng=rng)
    with chainer.using_config('enable_backprop', False):
        fakes = gen(z).array
    aug = DiffAugment('color,translation,cutout')
    real = aug(fake_images(40)[:4], rng).array
    fake = aug(fakes, rng).array
    assert len(seen) == 2
    numpy.testing.assert_array_equal(seen[0], real)
    numpy.testing.assert_allclose(seen[1], fake, rtol=1e-6)
    assert not numpy.allclose(seen[0], fake_images(40)[:4])
    assert not numpy.allclose(seen[1], fakes)


def test_gen_step_augments_the_fakes_and_its_gradient_flows_through_it():
    updater = make_updater(augment='translation,cutout')
    updater.dis_step()
    gen, dis = copy.deepcopy(updater.gen), copy.deepcopy(updater.dis)
    rng = copy.deepcopy(updater.rng)
    seen = record_inputs(updater.dis)
    updater.gen_step()
    # Replayed: z, then the augmentation, then G's loss through both.
    x = gen(updater.make_hidden(4, rng=rng))
    x_aug = DiffAugment('translation,cutout')(x, rng)
    assert len(seen) == 1
    numpy.testing.assert_allclose(seen[0], x_aug.array, rtol=1e-6)
    gen.cleargrads()  # Chainer starts grads as NaN arrays
    NONSATURATING.gen(F.flatten(dis(x_aug))).backward()
    expect = {name: p.grad.copy() for name, p in gen.namedparams()}
    for name, p in updater.gen.namedparams():
        numpy.testing.assert_allclose(p.grad, expect[name], rtol=1e-5, atol=1e-8, err_msg=name)
    # Without the augmentation in the graph, G's gradient would be another one.
    gen.cleargrads()
    NONSATURATING.gen(F.flatten(dis(x))).backward()
    assert not numpy.allclose(gen.project.W.grad, expect['/project/W'])


def test_with_reuse_fakes_the_gen_step_augments_the_kept_fakes_afresh():
    updater = make_updater(augment='translation,cutout', reuse_fakes=True)
    updater.dis_step(keep_fakes=True)
    kept = updater._kept_fakes[0][0].array.copy()  # (fake batches, labels, z)
    rng = copy.deepcopy(updater.rng)
    seen = record_inputs(updater.dis)
    updater.gen_step()
    expect = DiffAugment('translation,cutout')(kept, rng).array
    numpy.testing.assert_allclose(seen[0], expect, rtol=1e-6)
    assert not numpy.allclose(seen[0], kept)
    assert all(numpy.abs(p.grad).sum() > 0 for p in updater.gen.params())


def test_the_penalty_takes_its_gradient_through_the_augmentation_of_the_reals():
    updater = make_updater(augment='translation', penalty=R1(gamma=10.0))
    dis = copy.deepcopy(updater.dis)
    rng = copy.deepcopy(updater.rng)
    reported = updater.dis_step()
    # Replayed: z, the reals' and the fakes' draws, then the penalty's own.
    updater.make_hidden(4, rng=rng)
    aug = DiffAugment('translation')
    aug(fake_images(40)[:4], rng), aug(numpy.zeros((4, 1, 8, 8), numpy.float32), rng)
    x = chainer.Variable(fake_images(40)[:4])
    y = F.sum(dis(aug(x, rng)))
    (gx,) = chainer.grad([y], [x])
    expect = 10.0 / 2 * numpy.mean(numpy.sum(gx.array ** 2, axis=(1, 2, 3)))
    assert float(reported['penalty']) == pytest.approx(expect, rel=1e-5)
    assert expect > 0


def run_trainer(updater, iterations, out, snapshot_at=None):
    trainer = training.Trainer(updater, (iterations, 'iteration'), out=str(out))
    trainer.extend(training.extensions.LogReport(trigger=(1, 'iteration')))
    if snapshot_at:
        trainer.extend(training.extensions.snapshot(filename='snap'),
                       trigger=(snapshot_at, 'iteration'))
    return trainer


def params(link):
    return {name: p.array.copy() for name, p in link.namedparams()}


def ada():
    # Adjusts every 3 D steps (mid-interval at the snapshot) by 12/60 = 0.2;
    # with this low target p rises from 0 to about 0.7 by the snapshot.
    return DiffAugment(target=0.3, interval=3, speed=60)


def test_a_resumed_run_with_ada_equals_the_uninterrupted_one_bit_for_bit(tmp_path):
    data = fake_images(12)
    # seed=1: draws with which p moves before the snapshot at 5 (checked below).
    straight = make_updater(data, shuffle_seed=1, augment=ada(), n_dis=2, seed=1)
    trainer = run_trainer(straight, 8, tmp_path / 'a')
    trainer.run()
    p_history = [entry['dis/augment_p'] for entry in trainer.get_extension('LogReport').log]
    assert 0 < p_history[4] < 1  # p moved, so its saved value matters

    first = make_updater(data, shuffle_seed=1, augment=ada(), n_dis=2, seed=1)
    run_trainer(first, 5, tmp_path / 'b', snapshot_at=5).run()
    resumed = make_updater(data, shuffle_seed=5, augment=ada(), n_dis=2, seed=99,
                           gen=tiny_generator(seed=7), dis=tiny_discriminator(seed=7))
    trainer = run_trainer(resumed, 8, tmp_path / 'c')
    chainer.serializers.load_npz(str(tmp_path / 'b' / 'snap'), trainer)
    assert resumed.augment.p == first.augment.p > 0 and resumed.augment._steps == 1
    trainer.run()
    for a, b in ((straight.gen, resumed.gen), (straight.dis, resumed.dis)):
        pa, pb = params(a), params(b)
        for name in pa:
            numpy.testing.assert_array_equal(pa[name], pb[name], err_msg=name)
    assert straight.augment.p == resumed.augment.p
    assert straight.augment._steps == resumed.augment._steps
    later = [entry['dis/augment_p'] for entry in trainer.get_extension('LogReport').log]
    assert later == p_history  # the 5 restored entries and the 3 new ones


@pytest.mark.parametrize('separate_batches', [True, False])
def test_ada_in_the_loop_reports_p_with_any_batching_and_n_dis(separate_batches):
    updater = make_updater(augment=DiffAugment(target=0.1, interval=1, speed=8), n_dis=2,
                           separate_batches=separate_batches)
    observation = reported(updater)
    # Two D steps, each moving p by +-4/8 from 0: the mean over them is reported.
    assert float(observation['dis/augment_p']) in (0.0, 0.25, 0.5, 0.75)
    assert updater.augment.p in (0.0, 0.5, 1.0)
    assert numpy.isfinite(float(observation['dis/loss']))


def test_a_plain_callable_is_an_augmentation_too():
    calls = []

    def flip(x, rng):
        calls.append(rng)
        return F.flip(x, axis=3)

    updater = make_updater(augment=flip)
    updater.update()
    assert len(calls) == 3 and all(rng is updater.rng for rng in calls)


# --- on CuPy -------------------------------------------------------------------------------------


def gpu_count() -> int:
    if not cuda.available:
        return 0
    try:
        return cuda.cupy.cuda.runtime.getDeviceCount()
    except Exception:  # noqa: BLE001 - a CUDA runtime error means "no GPU" here
        return 0


@pytest.mark.gpu
@pytest.mark.skipif(gpu_count() == 0, reason='needs CuPy and a GPU')
def test_on_cupy_the_augmentation_draws_and_computes_what_numpy_does():
    x = images((4, 3, 8, 8), dtype=numpy.float32)
    x_gpu = chainer.Variable(cuda.to_gpu(x))
    out = DiffAugment(p=0.7)(x_gpu, numpy.random.RandomState(0))
    assert isinstance(out.array, cuda.cupy.ndarray)
    expect = DiffAugment(p=0.7)(x, numpy.random.RandomState(0)).array
    numpy.testing.assert_allclose(cuda.to_cpu(out.array), expect, rtol=1e-5, atol=1e-6)
    out.grad = cuda.cupy.ones_like(out.array)
    out.backward()
    assert isinstance(x_gpu.grad, cuda.cupy.ndarray)
    ada = DiffAugment(target=0.6, interval=1, speed=4)
    ada.observe(cuda.cupy.ones(4, numpy.float32))
    assert ada.p == 1.0
