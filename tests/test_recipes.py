"""The write-ups' recipes train: nets, optimizers per net, soft labels, z.

Each recipe is the settings a preset will carry, at toy widths (8x8 images,
batch 4): one ``GANUpdater`` step must give finite losses and move both
nets, and a run with every stochastic option (D noise and dropout, noisy
labels, truncated z, Nesterov velocities) must resume exactly.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import chainer
import numpy
import pytest
from chainer import training

from gan_trainer import GANUpdater
from gan_trainer.iterators import train_iterator
from gan_trainer.latent import get_sampler, global_seed
from gan_trainer.nets import build_discriminator, build_generator
from gan_trainer.optimizers import OptimizerSpec, make_optimizer
from gan_trainer.run import get_preset
from gan_trainer.testing import fake_dataset, fake_images

SMALL = {'size': 8, 'widths': [4, 8]}

RECIPES = {
    # jacobgil/keras-dcgan (master): dense head, upsample + 5x5 conv, tanh;
    # D 5x5 conv + tanh + max-pooling, Dense + tanh; SGD Nesterov for both;
    # one concatenated batch (D has no BN). With its pull request #13's
    # noisy labels (capped at 1) and truncated z.
    'keras-dcgan': {
        'gen': {**SMALL, 'n_hidden': 6, 'upsample': 'nearest', 'ksize': 5, 'activation': 'tanh',
             'fc_width': 16},
        'dis': {**SMALL, 'downsample': 'max_pool', 'ksize': 5, 'activation': 'tanh',
             'norm': 'none', 'fc_width': 16},
        'opt_gen': OptimizerSpec('sgd', lr=5e-4, momentum=0.9, nesterov=True),
        'opt_dis': OptimizerSpec('sgd', lr=5e-4, momentum=0.9, nesterov=True),
        'updater': {'separate_batches': False, 'real_label': (0.7, 1.0),
                 'z_dist': get_sampler('truncated_normal', threshold=1.0)}},
    # The Keras DCGAN notes: upsample + 3x3 conv + BN + ELU; D 3x3 stride-2
    # convs without BN, Dense + LeakyReLU; Adam per net; G step first.
    'keras-dcgan-notes': {
        'gen': {**SMALL, 'n_hidden': 6, 'upsample': 'nearest', 'ksize': 3, 'activation': 'elu'},
        'dis': {**SMALL, 'ksize': 3, 'norm': 'none', 'fc_width': 16},
        'opt_gen': OptimizerSpec('adam', lr=2e-4, beta1=0.5),
        'opt_dis': OptimizerSpec('adam', lr=1e-5, beta1=0.1),
        'updater': {'order': 'gen_first', 'z_dist': 'uniform'}},
    # chainer/chainer examples/dcgan: D noise 0.2, BN without gamma; Adam
    # 2e-4/0.5 with weight decay 1e-4 on both; z uniform.
    'chainer-example': {
        'gen': {**SMALL, 'n_hidden': 6},
        'dis': {**SMALL, 'noise_sigma': 0.2, 'bn_gamma': False},
        'opt_gen': OptimizerSpec('adam', lr=2e-4, beta1=0.5, weight_decay=1e-4),
        'opt_dis': OptimizerSpec('adam', lr=2e-4, beta1=0.5, weight_decay=1e-4),
        'updater': {'z_dist': 'uniform'}},
    # TensorFlow's DCGAN tutorial: 5x5 kernels, LeakyReLU in G; D dropout
    # 0.3 without BN; Adam(1e-4) (beta1 0.9) for both; z normal.
    'tf-gan': {
        'gen': {**SMALL, 'n_hidden': 6, 'ksize': 5, 'activation': 'leaky_relu'},
        'dis': {**SMALL, 'ksize': 5, 'norm': 'none', 'dropout': 0.3},
        'opt_gen': OptimizerSpec('adam', lr=1e-4, beta1=0.9),
        'opt_dis': OptimizerSpec('adam', lr=1e-4, beta1=0.9),
        'updater': {}},
}


def make_updater(recipe, *, seed=0, net_seed=0, shuffle_seed=None, conditional=False):
    with global_seed(net_seed):
        gen_config, dis_config = dict(recipe['gen']), dict(recipe['dis'])
        if conditional:
            gen_config.update(arch='conditional', n_classes=2)
            dis_config.update(arch='conditional', n_classes=2)
        gen, dis = build_generator(gen_config), build_discriminator(dis_config)
    optimizers = {'gen': make_optimizer(gen, recipe['opt_gen']),
                  'dis': make_optimizer(dis, recipe['opt_dis'])}
    data = fake_dataset(24) if conditional else fake_images(24)
    it = (chainer.iterators.SerialIterator(data, 4, shuffle=False) if shuffle_seed is None
          else train_iterator(data, 4, seed=shuffle_seed))
    return GANUpdater(it, optimizers, device=-1, seed=seed, conditional=conditional,
                      **recipe['updater'])


def params(link):
    return {name: p.array.copy() for name, p in link.namedparams()}


@pytest.mark.parametrize('conditional', [False, True])
@pytest.mark.parametrize('name', sorted(RECIPES))
def test_each_recipe_trains_with_finite_losses(name, conditional):
    updater = make_updater(RECIPES[name], conditional=conditional)
    before = {'gen': params(updater.gen), 'dis': params(updater.dis)}
    reporter = chainer.Reporter()
    reporter.add_observer('gen', updater.gen)
    reporter.add_observer('dis', updater.dis)
    for _ in range(2):
        observation = {}
        with reporter.scope(observation):
            updater.update()
        for key in ('gen/loss', 'dis/loss', 'dis/loss_real', 'dis/loss_fake'):
            assert numpy.isfinite(float(observation[key].array if hasattr(
                observation[key], 'array') else observation[key])), key
    for net in ('gen', 'dis'):
        after = params(getattr(updater, net))
        assert all(numpy.isfinite(a).all() for a in after.values())
        assert any(not numpy.array_equal(after[k], before[net][k]) for k in after), net


def test_a_run_with_every_stochastic_option_resumes_exactly(tmp_path):
    recipe = dict(RECIPES['keras-dcgan'], dis={**RECIPES['chainer-example']['dis'],
                                                 'dropout': 0.2, 'fc_width': 8})

    def trainer(updater, stop, out, snapshot_at=None):
        t = training.Trainer(updater, (stop, 'iteration'), out=str(out))
        if snapshot_at:
            t.extend(training.extensions.snapshot(filename='snap'),
                     trigger=(snapshot_at, 'iteration'))
        return t

    straight = make_updater(recipe, shuffle_seed=1)
    trainer(straight, 6, tmp_path / 'a').run()
    first = make_updater(recipe, shuffle_seed=1)
    trainer(first, 3, tmp_path / 'b', snapshot_at=3).run()
    resumed = make_updater(recipe, seed=9, net_seed=9, shuffle_seed=5)
    t = trainer(resumed, 6, tmp_path / 'c')
    chainer.serializers.load_npz(str(tmp_path / 'b' / 'snap'), t)
    t.run()
    for net in ('gen', 'dis'):
        a, b = params(getattr(straight, net)), params(getattr(resumed, net))
        assert all(numpy.array_equal(a[k], b[k]) for k in a), net


@pytest.mark.process
@pytest.mark.parametrize('args, first_column', [
    (('--only', 'dcgan', 'keras-dcgan'), ['dcgan', 'keras-dcgan']),
    (('--stages',), ['keras-dcgan stage 0', 'keras-dcgan stage 1', 'keras-dcgan-notes stage 0']),
])
def test_recipe_steps_benchmark_times_what_it_names(args, first_column):
    # Figures depend on the machine and are never asserted; the rows are.
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, 'benchmarks/recipe_steps.py', '--batchsize', '2', '--iters', '1',
         '--repeats', '1', *args], cwd=repo, capture_output=True, text=True, timeout=300,
        check=False)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith('cpu: ') and 'AVX-512' in lines[0]
    rows = [re.match(r'^(.+?)( +\d+\.\d+)+$', line) for line in lines[3:]]
    assert all(rows) and [r.group(1) for r in rows] == first_column


def _torch_python():
    python = os.environ.get('TORCH_PYTHON', '/work/venv-torch/bin/python')
    ok = os.path.isfile(python) and subprocess.run(
        [python, '-c', 'import torch'], capture_output=True, check=False).returncode == 0
    return python if ok else None


@pytest.mark.process
@pytest.mark.skipif(_torch_python() is None, reason='no Python with torch (TORCH_PYTHON)')
def test_recipe_steps_times_the_presets_nets_in_pytorch_with_as_many_parameters():
    # recipe_steps.py itself fails when PyTorch's nets have other parameter
    # counts than the preset's; every write-up preset must pass that check.
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, 'benchmarks/recipe_steps.py', '--batchsize', '2', '--iters', '1',
         '--repeats', '1', '--torch'], cwd=repo, capture_output=True, text=True, timeout=600,
        check=False, env={**os.environ, 'TORCH_PYTHON': _torch_python()})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[2].split()[-2:] == ['torch', 'ours/torch']
    assert [line.split()[0] for line in lines[3:]] == [
        'dcgan', 'keras-dcgan', 'keras-dcgan-notes', 'chainer-example', 'tf-gan']


@pytest.mark.process
def test_torch_presets_refuses_what_it_cannot_build_in_one_line():
    python = _torch_python()
    if python is None:
        pytest.skip('no Python with torch (TORCH_PYTHON)')
    repo = Path(__file__).resolve().parents[1]
    run = {'gen': {'size': 8, 'channels': 1, 'n_hidden': 4, 'widths': [4], 'ksize': 4,
                   'upsample': 'bilinear'}, 'dis': {}}
    proc = subprocess.run([python, 'benchmarks/peers/torch_presets.py', '--config',
                           json.dumps(run)], cwd=repo, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("torch_presets.py: error: G option upsample='bilinear' is "
                                   'not built here')


# --- the keras-dcgan preset against the original (benchmarks/peers) ----------

def _preset_updater(name, size=16, **changes):
    """The preset's own nets (toy widths, ``size`` square: D's 'valid' conv needs more than
    8), optimizers and loop on a fixed batch of 4."""
    from gan_trainer.run.parts import build_networks

    config = get_preset(name).replace(widths=(4, 8), gen_fc=8, dis_fc=8, batchsize=4,
                                      **changes)
    gen, dis = build_networks(config, (1, size, size))
    optimizers = {'gen': make_optimizer(gen, config.optimizer_spec('gen')),
                  'dis': make_optimizer(dis, config.optimizer_spec('dis'))}
    it = chainer.iterators.SerialIterator(fake_images(4, size=size), 4, shuffle=False)
    updater = GANUpdater(it, optimizers, device=-1, seed=0, loss=config.loss,
                         z_dist=config.z_dist, separate_batches=config.separate_batches,
                         eval_fakes=config.eval_fakes)
    return updater


@pytest.mark.parametrize('project_norm, keeps_z', [('unit', True), ('channel', False)])
def test_keras_dcgan_preset_g_keeps_depending_on_z_whatever_its_biases(project_norm, keeps_z):
    # The collapse of the preset before project_norm='unit' (benchmarks/RESULTS.md):
    # per channel, bn0 counts the projection's biases, which differ between
    # the s0 x s0 positions, as variance, so once they outgrow what z
    # contributes, bn0 divides z's part away and every sample gets the same
    # map. keras-dcgan's BatchNorm after its Dense layer normalises each unit
    # over the batch: what varies over the batch is z's part alone, at
    # variance 1 whatever the biases.
    # G's 2x2 start map at 8x8 (D, irrelevant here, 'same' to fit 8x8), with
    # the N(0, 0.02) weights and BatchNorm epsilon of the run that collapsed
    # (the preset's Glorot weights give z a larger part from the start, and
    # its Keras epsilon 1e-3 is near z's part at these toy widths).
    updater = _preset_updater('keras-dcgan', 8, gen_project_norm=project_norm,
                              dis_padding='same', init='normal', bn_eps=2e-5)
    assert get_preset('keras-dcgan').gen_project_norm == 'unit'
    gen = updater.gen
    # At toy widths z's part of the projection is near BatchNorm's eps; scaled
    # up it is 1e-2, as at the preset's widths, and the biases 1e5 times that.
    gen.project.W.array *= 10
    gen.project.b.array[:] = numpy.arange(gen.project.b.size, dtype=numpy.float32)
    gen.bn0.gamma.array[:] = 1
    z = updater.make_hidden(128)
    with chainer.using_config('train', True), chainer.no_backprop_mode():
        h = gen.project(chainer.functions.tanh(gen.fc(z)))
        s0 = gen.start_side
        if project_norm == 'unit':
            h = chainer.functions.reshape(gen.bn0(h), (128, -1, s0, s0))
        else:
            h = gen.bn0(chainer.functions.reshape(h, (128, -1, s0, s0)))
    spread = h.array.std(axis=0).mean()  # over the batch, per unit of the map
    assert (spread > 0.9) == keeps_z and (spread < 0.1) == (not keeps_z)


def test_keras_dcgan_preset_d_step_is_the_originals_sgd_step():
    # keras-dcgan's D step: Nesterov SGD (lr 5e-4, momentum 0.9) on the mean
    # binary cross-entropy over the 2B images of one concatenated batch. Its
    # first step from zero velocity moves every weight by -(1 + m) lr g.
    # The preset's loss is the sum of the real and the fake mean (2x that
    # gradient), so its D learning rate is half the original's.
    # Its fakes come from G in inference mode (Keras' g.predict).
    updater = _preset_updater('keras-dcgan')
    assert updater.eval_fakes
    dis = updater.dis
    x_real = fake_images(4, size=16)  # the iterator's first batch
    state = updater.rng.get_state()
    z = updater.make_hidden(4)
    with chainer.using_config('train', False), chainer.no_backprop_mode():
        x_fake = updater.gen(z).array
    updater.rng.set_state(state)
    x = numpy.concatenate([x_real, x_fake])
    labels = numpy.array([1] * 4 + [0] * 4, numpy.float32)
    y = chainer.functions.flatten(dis(x))
    p = chainer.functions.sigmoid(y)
    bce = -chainer.functions.mean(labels * chainer.functions.log(p)
                                  + (1 - labels) * chainer.functions.log(1 - p))
    dis.cleargrads()
    bce.backward()
    expected = {name: param.array - (1 + 0.9) * 5e-4 * param.grad
                for name, param in dis.namedparams()}
    updater.dis_step()
    for name, param in dis.namedparams():
        numpy.testing.assert_allclose(param.array, expected[name], rtol=1e-5, atol=1e-7)
