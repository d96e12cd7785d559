"""chainer-gan-lib's algorithms as a run: presets with example.sh's values, options, errors."""

import json

import chainer
import chainer.functions as F
import numpy
import pytest
from helpers import assert_one_line_error, assert_same_weights, succeeded, train_here

from gan_trainer import cramer, files
from gan_trainer.datasets import Data, get_digits
from gan_trainer.dfm import Denoiser
from gan_trainer.nets import AutoencoderDiscriminator
from gan_trainer.run import PRESETS, RunConfig, build_trainer, read_record
from gan_trainer.run.options import ConfigError
from gan_trainer.run.parts import build_networks, make_denoiser, make_loss
from gan_trainer.testing import fake_images


@pytest.mark.parametrize('name, expected', [
    # example.sh: --adam_alpha, --adam_beta1, --adam_beta2, --n_dis, --lam (train.py's defaults
    # 2e-4, 0.0, 0.9 where a line does not set them; its BEGAN and DFM updaters ignore n_dis).
    ('dragan', {'lr': 1e-4, 'beta1': 0.0, 'beta2': 0.9, 'n_dis': 2, 'penalty': 'dragan',
                'penalty_weight': 10.0, 'loss': 'nonsaturating', 'dis_norm': 'none'}),
    ('began', {'lr': 2e-4, 'beta1': 0.0, 'beta2': 0.9, 'n_dis': 1, 'loss': 'began',
               'began_gamma': 0.5, 'gen_norm': 'none'}),
    ('cramer', {'lr': 1e-4, 'beta1': 0.5, 'beta2': 0.9, 'n_dis': 5, 'loss': 'cramer',
                'dis_out_dim': 256, 'penalty': 'wgan-gp', 'penalty_weight': 10.0,
                'cramer_penalty': 'ganlib'}),
    ('dfm', {'lr': 1e-4, 'beta1': 0.5, 'beta2': 0.9, 'n_dis': 1, 'dfm': True}),
    ('minibatch-discrimination', {'lr': 1e-4, 'beta1': 0.0, 'beta2': 0.9, 'n_dis': 1,
                                  'minibatch_discrimination': True, 'dis_bn_gamma': False}),
])
def test_presets_carry_example_sh(name, expected):
    preset = PRESETS[name]
    assert {k: getattr(preset, k) for k in expected} == expected
    # chainer-gan-lib's train.py and loop: batch 64, 128-d uniform z, G and D on one pass.
    assert (preset.batchsize, preset.n_hidden, preset.z_dist, preset.order,
            preset.reuse_fakes) == (64, 128, 'uniform', 'simultaneous', False)


def test_the_networks_each_option_builds():
    shape = (1, 28, 28)
    _, dis = build_networks(RunConfig(loss='began', widths=(8, 16)), shape)
    assert isinstance(dis, AutoencoderDiscriminator) and dis.config()['arch'] == 'autoencoder'
    gen, dis = build_networks(RunConfig(loss='cramer', dis_norm='none', widths=(8, 16),
                                        gen_norm='none'), shape)
    assert dis.out_dim == 256 and gen.norm == 'none'
    _, dis = build_networks(RunConfig(minibatch_discrimination=True, widths=(8, 16)), shape)
    assert (dis.minibatch_kernels, dis.minibatch_dim) == (100, 5)
    config = RunConfig(dfm=True, dfm_width=12, widths=(8, 16))
    _, dis = build_networks(config, shape)
    den = make_denoiser(config, dis)
    assert isinstance(den, Denoiser) and (den.in_size, den.width) == (16 * 7 * 7, 12)
    assert make_loss(RunConfig(loss='began', began_gamma=0.3)).state.gamma == 0.3


@pytest.mark.parametrize('options, flag, words', [
    ({'loss': 'began', 'arch': 'resnet'}, 'loss', 'began needs an autoencoder D'),
    ({'loss': 'began', 'spectral_norm': True}, 'spectral_norm', 'uses the autoencoder D'),
    ({'loss': 'began', 'dfm': True}, 'dfm', 'uses the autoencoder D'),
    ({'began_gamma': 0.4}, 'began_gamma', "needs loss 'began'"),
    ({'cramer_penalty': 'exact'}, 'cramer_penalty', "needs loss 'cramer'"),
    ({'loss': 'cramer', 'cramer_penalty': 'exakt'}, 'cramer_penalty',
     "must be one of ganlib, exact; got 'exakt'"),
    ({'loss': 'cramer', 'dis_out_dim': 1}, 'dis_out_dim', "must be above 1 for loss 'cramer'"),
    ({'dis_out_dim': 8}, 'dis_out_dim', "8 outputs are for loss 'cramer'"),
    ({'loss': 'cramer', 'separate_batches': False}, 'separate_batches', 'three batches'),
    ({'loss': 'cramer', 'augment': 'ada'}, 'augment', "loss 'cramer' has none"),
    ({'dfm_weight': 0.1}, 'dfm_weight', 'needs dfm'),
    ({'minibatch_discrimination': True, 'conditional': True}, 'minibatch_discrimination',
     'not of conditional ones'),
    ({'minibatch_discrimination': True, 'arch': 'resnet'}, 'minibatch_discrimination',
     "not of arch 'resnet'"),
    ({'order': 'simultaneous'}, 'reuse_fakes', "needs order 'dis_first'"),
    ({'loss': 'began', 'lecam': 0.1}, 'lecam', "reads D's logits"),
])
def test_combinations_that_make_no_sense_are_one_line_errors(options, flag, words):
    with pytest.raises(ConfigError) as error:
        RunConfig(**options)
    assert error.value.option == flag and words in str(error.value)
    assert '\n' not in str(error.value)


def test_the_began_presets_d_learns_to_reconstruct_real_digits():
    # Issue 28: the preset's D, Adam with the preset's settings and k_t = 0 (D's
    # loss is then the real error alone), on one fixed batch of real digits. The
    # best image that ignores its input, the batch's pixel-wise median, has the
    # error med (about 0.23 here); an autoencoder that reads its input must go
    # well below it. With chainer-gan-lib's N(0, 0.02) weights (init 'normal')
    # these narrow nets pass almost nothing of the input to the output at the
    # start, L1 drives the background pixels (exactly -1) into tanh's flat tail,
    # and D stays at 0.241, above the median: the preset learned nothing.
    config = PRESETS['began'].replace(widths=(16, 32))  # the preset's nets, narrower
    _, dis = build_networks(config, (1, 28, 28))
    digits = get_digits('train')
    x = numpy.stack([digits[i][0] for i in numpy.random.RandomState(0).permutation(
        len(digits))[:32]])
    optimizer = chainer.optimizers.Adam(alpha=config.lr, beta1=config.beta1, beta2=config.beta2)
    optimizer.setup(dis)
    for _ in range(300):
        loss = F.mean(dis(x))
        dis.cleargrads()
        loss.backward()
        optimizer.update()
    median = float(numpy.abs(x - numpy.median(x, axis=0)).mean())
    assert float(F.mean(dis(x)).array) < 0.7 * median


def test_a_began_run_logs_k_t_and_its_measure(tmp_path):
    out = tmp_path / 'began'
    succeeded(train_here('--preset', 'began', '--out', out))
    log = json.loads((out / 'log').read_text())
    assert {'dis/k_t', 'dis/measure'} <= set(log[-1]) and 'dis/acc_real' not in log[-1]
    assert all(0 <= e['dis/k_t'] <= 1 and numpy.isfinite(e['dis/measure']) for e in log)
    config = json.loads((out / 'config.json').read_text())
    assert config['dis']['arch'] == 'autoencoder' and config['gen']['norm'] == 'none'


def test_a_dfm_run_trains_the_denoiser_and_keeps_it_in_snapshots(tmp_path):
    config = PRESETS['dfm'].replace(widths=(4, 8), dfm_width=8, iteration=2, batchsize=4,
                                    snapshot_interval=2, out=str(tmp_path / 'dfm'),
                                    progress=False)
    trainer = build_trainer(config, log=None)
    den = trainer.updater.get_optimizer('den').target
    before = {n: p.array.copy() for n, p in den.namedparams()}
    trainer.run()
    assert any(not numpy.array_equal(before[n], p.array) for n, p in den.namedparams())
    snapshot = numpy.load(tmp_path / 'dfm' / 'snapshot_iter_2')
    assert any(k.startswith('updater/model:den/') for k in snapshot.files)
    assert any(k.startswith('updater/optimizer:den/') for k in snapshot.files)


#: A Cramér run of a few seconds: the preset on tiny nets and 8x8 images.
_CRAMER_TINY = {'widths': (4, 8), 'batchsize': 4, 'n_dis': 2, 'iteration': 4,
                'snapshot_interval': 2, 'display_interval': 2, 'preview_interval': 2,
                'eval_interval': 2, 'progress': False}
_DATA = Data.of(fake_images(16, channels=1, size=8, seed=1), fake_images(4, channels=1, size=8))


@pytest.mark.parametrize('choice', [None, 'exact'])
def test_cramer_penalty_is_recorded_and_a_resume_keeps_it_bit_for_bit(tmp_path, choice):
    options = {} if choice is None else {'cramer_penalty': choice}
    config = PRESETS['cramer'].replace(**_CRAMER_TINY, **options)
    straight, out = tmp_path / 'straight', tmp_path / 'run'
    build_trainer(config.replace(out=str(straight)), data=_DATA, log=None).run()
    build_trainer(config.replace(out=str(out), iteration=2), data=_DATA, log=None).run()
    record = json.loads((out / files.CONFIG).read_text())
    assert record['run']['cramer_penalty'] == (choice or 'ganlib')  # the preset's
    resumed = build_trainer(read_record(str(out)).config.replace(
        out=str(out), iteration=4, resume='auto'), data=_DATA, log=None)
    expected = cramer.PENALTY_CRITICS[choice or 'ganlib']
    assert resumed.updater.loss.critic is expected
    resumed.run()
    for net in ('gen', 'dis'):
        assert_same_weights(straight / f'{net}_iter_4.npz', out / f'{net}_iter_4.npz')
    # Another penalty is another run: refused by name unless asked for.
    other = 'ganlib' if choice == 'exact' else 'exact'
    with pytest.raises(ConfigError) as refused:
        build_trainer(read_record(str(out)).config.replace(
            out=str(out), iteration=6, resume='auto', cramer_penalty=other), data=_DATA, log=None)
    assert refused.value.option == 'cramer_penalty' and '--allow_change' in str(refused.value)


def test_cramer_penalty_on_the_command_line(tmp_path):
    out = tmp_path / 'cramer'
    succeeded(train_here('--preset', 'cramer', '--n_dis', '1', '--cramer_penalty', 'exact',
                         '--out', out))
    assert json.loads((out / files.CONFIG).read_text())['run']['cramer_penalty'] == 'exact'
    assert_one_line_error(train_here('--cramer_penalty', 'exact', '--out', tmp_path / 'lsgan'),
                          "--cramer_penalty: is the Cramér GAN's: needs loss 'cramer'", 'train_dcgan.py')
    assert not (tmp_path / 'lsgan').exists()
