"""The updater, the extensions and the scripts on a GPU (CuPy), with tiny nets.

Every test here is marked ``gpu`` and skipped, not failed, where CuPy or a
GPU is missing (``pytest -m gpu`` selects them on a CUDA machine). The file
imports without CuPy: CuPy is reached only through ``chainer.backends.cuda``
inside the tests.

What a GPU changes, and therefore what is checked: the arrays must stay
CuPy arrays through an update (parameters, optimizer steps, BatchNorm and
spectral-norm state, the EMA's copy of G), the extensions must bring what
they write back to the CPU themselves, and the numbers must agree with the
NumPy run up to the rounding of cuDNN (and TF32 convolutions on Ampere or
newer GPUs), hence the loose tolerances where CPU and GPU are compared.
"""

import json

import chainer
import numpy
import pytest
from chainer import gradient_check, training
from chainer.backends import cuda
from chainer.training import extensions
from helpers import grid_side, read_png, reported, run, succeeded, to_float, train, weights
from PIL import Image

from gan_trainer import GANEvaluator, GANUpdater, ops
from gan_trainer.ema import GeneratorEMA
from gan_trainer.extensions import DivergenceMonitor, ImageGrid, NaNGuard
from gan_trainer.ops.normalization import BatchNormalizationCuPy
from gan_trainer.penalties import get_penalty
from gan_trainer.run import get_preset
from gan_trainer.testing import (
    fake_dataset,
    tiny_conditional_discriminator,
    tiny_conditional_generator,
    tiny_discriminator,
    tiny_generator,
)

GPU = '@cupy:0'


def gpu_count() -> int:
    """Number of GPUs CuPy can use here; 0 without CuPy, a driver or a GPU."""
    if not cuda.available:
        return 0
    try:
        return cuda.cupy.cuda.runtime.getDeviceCount()
    except Exception:  # noqa: BLE001 - a CUDA runtime error means "no GPU" here
        return 0


pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(gpu_count() == 0, reason='needs CuPy and a GPU'),
]

# Test name -> (preset, options changed from it).
CASES = {
    'dcgan': ('dcgan', {}),
    'wgan-gp': ('wgan-gp', {}),  # double backprop through D, n_dis 5
    'sngan': ('sngan', {}),  # spectral norm's power iteration state
    'lsgan': ('lsgan', {}),
    'r1': ('dcgan', {'penalty': 'r1', 'dis_norm': 'none'}),
    'conditional': ('dcgan', {'conditional': True}),  # CBN in G, projection in D
}


def make_updater(case, device, *, sgd=None, ema_decay=None):
    """One GANUpdater for ``case`` on ``device``, from the same seeded tiny nets.

    Args:
        case: A key of :data:`CASES`.
        device: ``'@numpy'`` or :data:`GPU`.
        sgd: Learning rate of plain SGD instead of the preset's Adam (an
            update is then proportional to the gradient, so CPU and GPU
            updates can be compared).
        ema_decay: Keep an EMA of G with this decay.
    """
    preset, changes = CASES[case]
    options = get_preset(preset).to_dict(saved_only=False)
    options.update(changes)
    conditional = options.pop('conditional', False)
    dis_options = {'norm': options['dis_norm'], 'spectral_norm': options['spectral_norm']}
    if conditional:
        gen = tiny_conditional_generator(mode='cbn')
        dis = tiny_conditional_discriminator(mode='projection', **dis_options)
    else:
        gen, dis = tiny_generator(), tiny_discriminator(**dis_options)
    gen.to_device(device)
    dis.to_device(device)
    ema = GeneratorEMA(gen, decay=ema_decay) if ema_decay is not None else None
    optimizers = {}
    for name, net in (('gen', gen), ('dis', dis)):
        if sgd is None:
            optimizers[name] = chainer.optimizers.Adam(
                alpha=options['lr'], beta1=options['beta1'], beta2=options['beta2'])
        else:
            optimizers[name] = chainer.optimizers.SGD(lr=sgd)
        optimizers[name].setup(net)
    # 16 labelled 8x8 images in batches of 4, in order: the same batches on
    # every device; z (and WGAN-GP's eps, and G's labels) come from the
    # updater's NumPy random state, so they are the same too.
    iterator = chainer.iterators.SerialIterator(fake_dataset(16), 4, shuffle=False)
    return GANUpdater(
        iterator, optimizers, device=device, loss=options['loss'], n_dis=options['n_dis'],
        penalty=get_penalty(options['penalty'], options['penalty_weight']),
        conditional=conditional, ema=ema, seed=0)


def params(link):
    """{name: NumPy copy} of the parameters of ``link``."""
    return {name: cuda.to_cpu(p.array).copy() for name, p in link.namedparams()}


def arrays_of(link):
    """(name, array) of every parameter and array-valued persistent of ``link``."""
    for name, param in link.namedparams():
        yield name, param.array
    for name, sub in link.namedlinks():
        for attr in sorted(sub._persistent):
            value = getattr(sub, attr)
            if hasattr(value, 'dtype'):  # BatchNorm's N is a Python int
                yield f'{name}/{attr}', value


def assert_on_gpu(link):
    cupy = cuda.cupy
    for name, array in arrays_of(link):
        assert isinstance(array, cupy.ndarray), f'{name} is a {type(array).__name__}'


@pytest.mark.parametrize('case', list(CASES))
def test_an_iteration_on_the_gpu_reports_finite_values_and_updates_both_nets(case):
    updater = make_updater(case, GPU)
    before = {'gen': params(updater.gen), 'dis': params(updater.dis)}
    observation = reported(updater)

    keys = {'gen/loss', 'dis/loss', 'dis/loss_real', 'dis/loss_fake', 'dis/acc_real',
            'dis/acc_fake'}
    if updater.penalty is not None:
        keys.add('dis/penalty')
    assert set(observation) == keys
    for key, value in observation.items():
        assert numpy.isfinite(value), (key, value)
    for name, net in (('gen', updater.gen), ('dis', updater.dis)):
        assert_on_gpu(net)
        after = params(net)
        changed = [k for k in after if not numpy.array_equal(after[k], before[name][k])]
        assert changed, f'no parameter of {name} changed'


@pytest.mark.parametrize('case', ['dcgan', 'wgan-gp', 'sngan', 'conditional'])
def test_an_iteration_on_the_gpu_matches_the_cpu(case):
    runs = {}
    for device in ('@numpy', GPU):
        updater = make_updater(case, device, sgd=0.01)
        before = {'gen': params(updater.gen), 'dis': params(updater.dis)}
        observation = reported(updater)
        steps = {}
        for name, net in (('gen', updater.gen), ('dis', updater.dis)):
            steps.update({f'{name}{k}': v - before[name][k] for k, v in params(net).items()})
        runs[device] = observation, steps
    (cpu_obs, cpu_steps), (gpu_obs, gpu_steps) = runs['@numpy'], runs[GPU]

    # Losses, not accuracies: a logit within rounding of 0 may flip sides.
    for key in cpu_obs:
        if 'acc' not in key:
            assert gpu_obs[key] == pytest.approx(cpu_obs[key], rel=1e-2, abs=1e-3), key
    assert sorted(cpu_steps) == sorted(gpu_steps)
    for name, cpu_step in cpu_steps.items():
        scale = float(numpy.abs(cpu_step).max())
        numpy.testing.assert_allclose(gpu_steps[name], cpu_step, rtol=0.05,
                                      atol=0.05 * scale + 1e-7, err_msg=name)


def test_the_ema_on_the_gpu_averages_in_place():
    updater = make_updater('dcgan', GPU, ema_decay=0.5)
    initial = params(updater.gen)
    updater.update()
    assert_on_gpu(updater.ema.target)
    trained = params(updater.gen)
    for name, value in params(updater.ema.target).items():
        numpy.testing.assert_allclose(value, 0.5 * initial[name] + 0.5 * trained[name],
                                      rtol=1e-5, atol=1e-6, err_msg=name)


def test_the_evaluator_on_the_gpu_matches_the_cpu():
    results = {}
    for device in ('@numpy', GPU):
        gen, dis = tiny_generator(), tiny_discriminator()
        gen.to_device(device)
        dis.to_device(device)
        iterator = chainer.iterators.SerialIterator(
            fake_dataset(8), 4, repeat=False, shuffle=False)
        evaluator = GANEvaluator(iterator, {'gen': gen, 'dis': dis}, device=device, seed=3)
        results[device] = {key: to_float(value) for key, value in evaluator().items()}
    cpu, gpu = results['@numpy'], results[GPU]
    assert set(gpu) == {'validation/gen/loss', 'validation/dis/loss',
                        'validation/dis/accuracy'}
    for key in ('validation/gen/loss', 'validation/dis/loss'):
        assert gpu[key] == pytest.approx(cpu[key], rel=1e-3, abs=1e-4), key
    assert 0 <= gpu['validation/dis/accuracy'] <= 1


def gpu_trainer(out, *, seed=0):
    """4 iterations of a DCGAN with an EMA of G on the GPU, with the run's extensions."""
    updater = make_updater('dcgan', GPU, ema_decay=0.5)
    if seed:  # other initial weights (a resumed run gets them from the snapshot)
        for link, other in ((updater.gen, tiny_generator(seed=seed)),
                            (updater.dis, tiny_discriminator(seed=seed))):
            other.to_device(GPU)
            link.copyparams(other)
    trainer = training.Trainer(updater, (4, 'iteration'), out=str(out))
    every2 = (2, 'iteration')
    test = chainer.iterators.SerialIterator(fake_dataset(8, seed=1), 4, repeat=False,
                                            shuffle=False)
    trainer.extend(GANEvaluator(test, {'gen': updater.ema.target, 'dis': updater.dis},
                                device=GPU, seed=0), trigger=every2)
    trainer.extend(ImageGrid(rows=2, cols=3), trigger=every2)
    trainer.extend(NaNGuard())
    trainer.extend(DivergenceMonitor())
    trainer.extend(extensions.LogReport(trigger=every2))
    for name, net in (('gen', updater.gen), ('gen_ema', updater.ema.target)):
        trainer.extend(extensions.snapshot_object(net, name + '_iter_{.updater.iteration}.npz'),
                       trigger=every2)
    trainer.extend(extensions.snapshot(filename='snapshot_iter_{.updater.iteration}'),
                   trigger=every2)
    return trainer


def test_extensions_on_the_gpu_write_grids_validate_and_resume(tmp_path):
    straight_out, resumed_out = tmp_path / 'straight', tmp_path / 'resumed'
    # Deterministic cuDNN algorithms: two GPU runs of the same steps agree.
    with chainer.using_config('cudnn_deterministic', True):
        straight = gpu_trainer(straight_out)
        straight.run()
        resumed = gpu_trainer(resumed_out, seed=7)
        chainer.serializers.load_npz(str(straight_out / 'snapshot_iter_2'), resumed)
        assert resumed.updater.iteration == 2
        # The snapshot's G and EMA are now on the GPU.
        for net, saved in ((resumed.updater.gen, 'gen_iter_2.npz'),
                           (resumed.updater.ema.target, 'gen_ema_iter_2.npz')):
            assert_on_gpu(net)
            saved = weights(straight_out / saved)
            for name, value in params(net).items():
                numpy.testing.assert_array_equal(value, saved[name.lstrip('/')], err_msg=name)
        resumed.run()

    # The image grid: brought back to the CPU and written at 2 and 4.
    preview = straight_out / 'preview'
    assert sorted(p.name for p in preview.iterdir()) == [
        'image_00000002.png', 'image_00000004.png', 'latest.png']
    latest = read_png(preview / 'latest.png')
    assert latest.shape[:2] == (grid_side(2, 8), grid_side(3, 8))
    numpy.testing.assert_array_equal(latest, read_png(preview / 'image_00000004.png'))

    # Validation and training values in the log, all finite.
    log = json.loads((straight_out / 'log').read_text())
    assert [entry['iteration'] for entry in log] == [2, 4]
    for entry in log:
        for key in ('gen/loss', 'dis/loss', 'validation/gen/loss', 'validation/dis/loss',
                    'validation/dis/accuracy'):
            assert numpy.isfinite(entry[key]), (entry['iteration'], key)

    # The EMA is an average, not a copy of G, and stays on the GPU.
    updater = straight.updater
    assert_on_gpu(updater.ema.target)
    assert not all(numpy.array_equal(params(updater.gen)[k], v)
                   for k, v in params(updater.ema.target).items())

    # The resumed run ends where the uninterrupted one did.
    for net in ('gen', 'dis'):
        a = params(getattr(straight.updater, net))
        b = params(getattr(resumed.updater, net))
        for name in a:
            numpy.testing.assert_allclose(b[name], a[name], rtol=1e-5, atol=1e-6,
                                          err_msg=net + name)
    assert sorted(p.name for p in (resumed_out / 'preview').iterdir()) == [
        'image_00000004.png', 'latest.png']


# ------------------------------------------------------------------ the scripts


@pytest.fixture(scope='module')
def gpu_run(tmp_path_factory):
    """The 6-iteration digits run of test_examples.py on GPU 0, with an EMA of G."""
    out = tmp_path_factory.mktemp('gpu') / 'result'
    return out, succeeded(train('--gpu', '0', '--ema', '0.5', '--out', out))


@pytest.mark.slow
def test_training_on_the_gpu_writes_grids_logs_and_snapshots(gpu_run):
    out, _ = gpu_run
    for name in ('gen_iter_6.npz', 'dis_iter_6.npz', 'gen_ema_iter_6.npz', 'snapshot_iter_6',
                 'config.json', 'loss.png'):
        assert (out / name).is_file(), name
    latest = read_png(out / 'preview' / 'latest.png')
    assert latest.shape == (grid_side(10, 28), grid_side(10, 28))
    log = json.loads((out / 'log').read_text())
    assert [entry['iteration'] for entry in log] == [3, 6]
    for entry in log:
        for key in ('gen/loss', 'dis/loss', 'validation/gen/loss', 'validation/dis/loss'):
            assert numpy.isfinite(entry[key]), (entry['iteration'], key)


@pytest.mark.slow
def test_generate_on_the_gpu_draws_what_the_cpu_draws(gpu_run, tmp_path):
    out, _ = gpu_run
    grids = {}
    for gpu in ('0', '-1'):
        path = tmp_path / f'grid{gpu}.png'
        proc = succeeded(run('generate.py', out / 'gen_iter_6.npz', '--rows', 3, '--cols', 4,
                             '--gpu', gpu, '--out', path))
        assert 'gen_ema_iter_6.npz' in proc.stdout  # the EMA twin is used on either device
        grids[gpu] = read_png(path).astype(int)
    assert grids['0'].shape == (grid_side(3, 28), grid_side(4, 28))
    # The same z through the same weights: at most a step of rounding apart.
    assert numpy.abs(grids['0'] - grids['-1']).max() <= 2


@pytest.mark.slow
def test_a_folder_on_the_gpu_trains_with_loader_processes(tmp_path):
    # The loader processes are forked after CUDA is initialised; they only
    # decode images and never touch the GPU.
    folder = tmp_path / 'images'
    folder.mkdir()
    rng = numpy.random.RandomState(0)
    for i in range(10):
        Image.fromarray(rng.randint(0, 256, (12, 12, 3)).astype(numpy.uint8)).save(
            folder / f'{i}.png')
    out = tmp_path / 'result'
    succeeded(train('--gpu', '0', '--dataset', folder, '--size', '8', '--loaderjob', '2',
                    '--out', out))
    assert read_png(out / 'preview' / 'latest.png').shape == (
        grid_side(10, 8), grid_side(10, 8), 3)
    assert (out / 'gen_iter_6.npz').is_file()


# gan_trainer.ops' batch normalization for CuPy (Chainer's is slow without
# cuDNN, which CuPy 14 dropped), against Chainer's own on the same GPU.
BN_SHAPES = [(8, 5), (6, 4, 3, 5), (5, 3, 7, 7), (4, 16, 2, 2)]


def bn_on_gpu(fast, x, gamma, beta, gy):
    """y, the three gradients and the running statistics, back on the CPU."""
    cupy = cuda.cupy
    xs = [chainer.Variable(cupy.asarray(a)) for a in (x, gamma, beta)]
    running = cupy.zeros(x.shape[1], x.dtype), cupy.ones(x.shape[1], x.dtype)
    with chainer.using_config('gan_trainer_fast', fast):
        y = ops.batch_normalization(*xs, running_mean=running[0], running_var=running[1],
                                    decay=0.7)
        assert isinstance(y.creator, BatchNormalizationCuPy) is fast
        y.grad = cupy.asarray(gy)
        y.backward()
    return [cuda.to_cpu(a) for a in (y.array, xs[0].grad, xs[1].grad, xs[2].grad, *running)]


@pytest.mark.parametrize('shape', BN_SHAPES)
@pytest.mark.parametrize('dtype', [numpy.float32, numpy.float64])
def test_batch_normalization_on_cupy_matches_chainers(shape, dtype):
    rng = numpy.random.RandomState(sum(shape))
    # An offset and a scale, so that a variance computed carelessly
    # (E[x^2] - E[x]^2) would show.
    x = (rng.randn(*shape) * 3 + 5).astype(dtype)
    gamma = rng.uniform(0.5, 1.5, shape[1]).astype(dtype)
    beta = rng.randn(shape[1]).astype(dtype)
    gy = rng.randn(*shape).astype(dtype)
    fast = bn_on_gpu(True, x, gamma, beta, gy)
    reference = bn_on_gpu(False, x, gamma, beta, gy)
    tol = {'rtol': 1e-4, 'atol': 1e-4} if dtype == numpy.float32 else {'rtol': 1e-10, 'atol': 1e-10}
    names = ['y', 'gx', 'ggamma', 'gbeta', 'running_mean', 'running_var']
    for name, a, b in zip(names, fast, reference):
        numpy.testing.assert_allclose(a, b, err_msg=name, **tol)
    # Hand check of the statistics: the biased variance normalizes, the
    # unbiased one enters the running variance.
    axes = (0,) + tuple(range(2, len(shape)))
    m = x.size // shape[1]
    numpy.testing.assert_allclose(fast[4], 0.3 * x.mean(axis=axes), rtol=1e-5)
    numpy.testing.assert_allclose(fast[5], 0.7 + 0.3 * x.var(axis=axes) * m / (m - 1), rtol=1e-5)


def test_batch_normalization_on_cupy_passes_gradient_checks():
    cupy = cuda.cupy
    rng = numpy.random.RandomState(3)
    inputs = [cupy.asarray(a) for a in (rng.randn(4, 3, 2, 3), rng.uniform(0.5, 1.5, 3),
                                        rng.randn(3))]
    gy = cupy.asarray(rng.randn(4, 3, 2, 3))
    ggs = [cupy.asarray(rng.randn(*a.shape)) for a in inputs]
    # float64 inputs and the default tolerances, as the CPU nodes' checks.
    gradient_check.check_backward(ops.batch_normalization, inputs, gy)
    # Double backprop (gradient penalties) goes through Chainer's function.
    gradient_check.check_double_backward(ops.batch_normalization, inputs, gy, ggs)


def test_get_device_prints_one_line_saying_which_path_instead_of_chainers_advice():
    import warnings

    from gan_trainer.device import get_device

    # Chainer gave its advice once as it was imported (gan_trainer_compat's
    # filter ignored it for CuPy >= 13); let its check give it again, under
    # the filters in force, which still hold that one.
    cuda.check_cuda_available._already_warned = False
    lines = []
    with warnings.catch_warnings(record=True) as caught:
        device = get_device(0, announce=lines.append)
        chainer.get_device(GPU)  # Chainer's own check, after ours
    messages = [str(w.message) for w in caught]
    assert device.xp is cuda.cupy
    if cuda._cupy_major >= 13:
        assert not any('reinstall CuPy' in m for m in messages), messages
    assert len(lines) == 1 and lines[0].startswith('--gpu 0: '), lines
    if cuda.cudnn_enabled:
        assert ', cuDNN ' in lines[0]
    else:
        assert ', no cuDNN: ' in lines[0]
    print(lines[0])  # for gpu_check.sh's log


def test_cupy_13_uses_cudnn_from_the_wheel():
    import gan_trainer_compat

    if cuda._cupy_major != 13:
        pytest.skip(f'CuPy {cuda._cupy_major}: the cuDNN 8 wheel is for CuPy 13')
    assert gan_trainer_compat.CUDNN_STATUS.startswith('cuDNN from nvidia-cudnn-cu12 8.'), (
        gan_trainer_compat.CUDNN_STATUS)
    assert cuda.cudnn_enabled
    assert 'libcudnn.so.8' in gan_trainer_compat.PRELOADED
    # A convolution through cuDNN agrees with Chainer's own kernels.
    rng = numpy.random.RandomState(0)
    x = cuda.cupy.asarray(rng.randn(2, 3, 9, 9).astype(numpy.float32))
    w = cuda.cupy.asarray(rng.randn(4, 3, 4, 4).astype(numpy.float32))
    ys = {}
    for mode in ('always', 'never'):
        with chainer.using_config('use_cudnn', mode):
            ys[mode] = cuda.to_cpu(chainer.functions.convolution_2d(x, w, stride=2, pad=1).array)
    numpy.testing.assert_allclose(ys['always'], ys['never'], rtol=5e-3, atol=5e-3)


def matmul_errors():
    """Relative error of a float32 product against float64, with TF32 on and off."""
    import os

    from gan_trainer.device import configure_tf32

    cupy = cuda.cupy
    rng = numpy.random.RandomState(0)
    a, b = rng.randn(256, 512), rng.randn(512, 256)
    exact = a @ b
    names = ('GAN_TRAINER_TF32', 'CUPY_TF32', 'NVIDIA_TF32_OVERRIDE')
    saved = {name: os.environ.get(name) for name in names}
    errors = {}
    try:
        for on in (True, False):
            configure_tf32(on)
            y = cuda.to_cpu(cupy.asarray(a, numpy.float32) @ cupy.asarray(b, numpy.float32))
            errors[on] = float(numpy.abs(y - exact).max() / numpy.abs(exact).max())
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        configure_tf32(None)  # back to what this process had
    return errors


def test_tf32_switches_cupys_float32_products():
    errors = matmul_errors()
    if int(cuda.cupy.cuda.Device(0).compute_capability) < 80:
        pytest.skip('no TF32 before compute capability 8.0')
    # TF32 rounds each factor to 10 mantissa bits: errors near 1e-3, float32 near 1e-6.
    assert errors[False] < 1e-5, errors
    assert errors[True] > 10 * errors[False], errors
    print(f'float32 product error: TF32 on {errors[True]:.2e}, off {errors[False]:.2e}')


def test_mixed16_trains_on_the_gpu():
    from gan_trainer import precision

    with chainer.using_config('dtype', chainer.mixed16):
        gen, dis = tiny_generator(), tiny_discriminator()
    gen.to_device(GPU)
    dis.to_device(GPU)
    optimizers = {}
    for name, net in (('gen', gen), ('dis', dis)):
        optimizers[name] = chainer.optimizers.Adam(alpha=2e-4, beta1=0.5)
        optimizers[name].setup(net)
    precision.configure_optimizers(optimizers, 'mixed16')
    iterator = chainer.iterators.SerialIterator(fake_dataset(16), 4, shuffle=False)
    updater = GANUpdater(iterator, optimizers, device=GPU, seed=0)
    for _ in range(4):
        observation = reported(updater)
        assert all(numpy.isfinite(v) for v in observation.values()), observation
    assert gen.project.W.array.dtype == numpy.float16
    assert_on_gpu(gen)
    assert updater.get_optimizer('gen')._loss_scale == 16.0


def test_the_guard_checks_cupy_arrays_in_one_transfer(monkeypatch):
    from gan_trainer import finite

    updater = make_updater('dcgan', GPU, ema_decay=0.5)
    trainer = training.Trainer(updater, (10, 'iteration'))
    reporter = chainer.Reporter()
    reporter.add_observer('gen', updater.gen)
    reporter.add_observer('dis', updater.dis)
    with reporter.scope(trainer.observation):
        updater.update()
    transfers, real = [], finite.to_host
    monkeypatch.setattr(finite, 'to_host', lambda a: transfers.append(a.shape) or real(a))
    NaNGuard()(trainer)
    assert transfers == [(9,)]
    updater.dis.bns[0].avg_var[0] = numpy.inf
    with pytest.raises(Exception, match='persistent dis/bns/0/avg_var holds inf'):
        NaNGuard()(trainer)
