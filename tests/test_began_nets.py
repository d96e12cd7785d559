"""BEGAN's own networks (gan_trainer.nets.began, ``--arch began``): layers, numbers, a run."""

import json

import chainer
import chainer.functions as F
import numpy as np
import pytest
from chainer import gradient_check
from helpers import assert_same_weights

from gan_trainer import files
from gan_trainer.cli.train import parse_config
from gan_trainer.datasets import Data
from gan_trainer.nets import (
    BEGANDiscriminator,
    BEGANGenerator,
    build_discriminator,
    build_generator,
)
from gan_trainer.nets.began import n_scales
from gan_trainer.run import PRESETS, RunConfig, build_trainer, read_record
from gan_trainer.run.options import ConfigError
from gan_trainer.run.parts import build_networks, make_loss
from gan_trainer.testing import fake_images


@pytest.mark.parametrize('size, scales', [(28, 3), (32, 3), (64, 4), (8, 1), (16, 2), (7, 1)])
def test_scales_halve_the_side_until_it_is_at_most_8(size, scales):
    assert n_scales(size) == scales


def test_the_layers_are_the_papers():
    # The digits: 28 -> 14 -> 7. Encoder: conv to n, then per scale i two 3x3 convs
    # of i*n channels and (but the last) a stride-2 3x3 conv; a linear layer to h.
    dis = BEGANDiscriminator(size=28, width=4, code_dim=5)
    convs = [(c.W.shape, c.stride) for c in [dis.conv_in, *dis.convs]]
    assert convs == [((4, 1, 3, 3), (1, 1)),
                     ((4, 4, 3, 3), (1, 1)), ((4, 4, 3, 3), (1, 1)), ((4, 4, 3, 3), (2, 2)),
                     ((8, 4, 3, 3), (1, 1)), ((8, 8, 3, 3), (1, 1)), ((8, 8, 3, 3), (2, 2)),
                     ((12, 8, 3, 3), (1, 1)), ((12, 12, 3, 3), (1, 1))]
    assert dis.encode.W.shape == (5, 12 * 7 * 7)
    # G has the decoder's structure: same parameter shapes when z has h dimensions.
    gen = BEGANGenerator(size=28, n_hidden=5, width=4)
    shapes = sorted((n, p.shape) for n, p in gen.decoder.namedparams())
    assert shapes == sorted((n, p.shape) for n, p in dis.decoder.namedparams())
    assert gen.decoder.project.W.shape == (4 * 7 * 7, 5) and len(gen.decoder.convs) == 6
    assert not any('gamma' in n or 'beta' in n for n, _ in dis.namedparams())


def _reference_decoder(dec, code, tanh):
    """The decoder by Chainer's own functions: repeat each pixel 2x2 between scales."""
    s0 = dec.start_side
    h = F.reshape(F.linear(code, dec.project.W, dec.project.b), (len(code), dec.width, s0, s0))
    for i, conv in enumerate(dec.convs):
        if i and i % dec.repeats == 0:
            h = F.unpooling_2d(h, 2, outsize=(2 * h.shape[2], 2 * h.shape[3]), cover_all=False)
        h = F.elu(F.convolution_2d(h, conv.W, conv.b, pad=1))
    y = F.convolution_2d(h, dec.out.W, dec.out.b, pad=1)
    return F.tanh(y) if tanh else y


@pytest.mark.parametrize('tanh', [True, False])
def test_generator_is_the_decoder_computed_by_chainers_own_functions(tanh):
    gen = BEGANGenerator(size=16, n_hidden=3, width=4, tanh=tanh)
    z = np.random.RandomState(0).uniform(-1, 1, (2, 3)).astype(np.float32)
    y = gen(z).array
    assert y.shape == (2, 1, 16, 16)
    np.testing.assert_allclose(y, _reference_decoder(gen.decoder, z, tanh).array,
                               rtol=1e-4, atol=1e-5)
    if tanh:
        assert np.abs(y).max() < 1


def test_error_is_the_mean_absolute_reconstruction_error_without_tanh():
    dis = BEGANDiscriminator(size=16, channels=2, width=3, code_dim=4)
    x = np.random.RandomState(1).uniform(-1, 1, (3, 2, 16, 16)).astype(np.float32)
    reconstruction = dis.reconstruct(x).array
    np.testing.assert_allclose(dis(x).array, np.abs(reconstruction - x).mean(axis=(1, 2, 3)),
                               rtol=1e-5)
    # The paper's reconstruction is not bounded: the last conv, scaled up, leaves [-1, 1].
    dis.decoder.out.W.array *= 1e3
    assert np.abs(dis.reconstruct(x).array).max() > 1
    with pytest.raises(ValueError, match=r'x must have shape \(B, 2, 16, 16\)'):
        dis(x[:, :1])


def test_gradients_of_both_nets_match_finite_differences():
    rng = np.random.RandomState(2)
    with chainer.using_config('dtype', np.float64):
        gen = BEGANGenerator(size=16, n_hidden=2, width=2, repeats=1)
        dis = BEGANDiscriminator(size=16, width=2, code_dim=2, repeats=1)
    z = rng.uniform(-1, 1, (2, 2))
    x = rng.uniform(-1, 1, (2, 1, 16, 16))
    gradient_check.check_backward(lambda z: gen(z), z, rng.randn(2, 1, 16, 16),
                                  params=tuple(gen.params()), eps=1e-4, atol=1e-4, rtol=1e-3)
    gradient_check.check_backward(lambda x: dis(x), x, rng.randn(2),
                                  params=tuple(dis.params()), eps=1e-4, atol=1e-4, rtol=1e-3)


def test_configs_rebuild_the_nets_and_bad_arguments_are_named():
    gen = BEGANGenerator(size=28, n_hidden=7, width=3, repeats=3, tanh=False, init='normal')
    dis = BEGANDiscriminator(size=28, width=3, code_dim=6, tanh=True)
    for net, build in ((gen, build_generator), (dis, build_discriminator)):
        rebuilt = build(net.config())
        assert type(rebuilt) is type(net) and rebuilt.config() == net.config()
    assert gen.config()['arch'] == dis.config()['arch'] == 'began'
    for kwargs, words in [({'init': 'he'}, 'init must be one of normal, glorot'),
                          ({'repeats': 0}, 'repeats must be a positive integer'),
                          ({'width': 0}, 'width must be a positive integer')]:
        with pytest.raises(ValueError, match=words):
            BEGANDiscriminator(size=28, **kwargs)
    with pytest.raises(ValueError, match=r'z must have shape \(B, 7\)'):
        gen(np.zeros((2, 5), np.float32))


def test_the_run_option_reaches_the_nets():
    config = RunConfig(arch='began', loss='began', base_width=5, n_hidden=9, init='glorot')
    gen, dis = build_networks(config, (1, 28, 28))
    assert isinstance(gen, BEGANGenerator) and isinstance(dis, BEGANDiscriminator)
    assert (gen.width, gen.n_hidden, dis.width, gen.init) == (5, 9, 5, 'glorot')


@pytest.mark.parametrize('options, flag, words', [
    ({'arch': 'began'}, 'arch', "needs loss 'began'"),
    ({'arch': 'began', 'loss': 'began', 'widths': (8, 16)}, 'widths', "not of arch 'began'"),
    ({'arch': 'began', 'loss': 'began', 'gen_activation': 'elu'}, 'gen_activation',
     "not of arch 'began'"),
    ({'loss': 'began', 'arch': 'resnet'}, 'loss', 'began needs an autoencoder D'),
])
def test_arch_began_errors_are_one_line(options, flag, words):
    with pytest.raises(ConfigError) as error:
        RunConfig(**options)
    assert error.value.option == flag and words in str(error.value)
    assert '\n' not in str(error.value)


@pytest.mark.parametrize('argv, flag', [
    (['--preset', 'began', '--arch', 'began', '--gen_norm', 'batch'], 'gen_norm'),
    (['--preset', 'began', '--arch', 'began', '--dis_norm', 'batch'], 'dis_norm'),
    (['--preset', 'began', '--dis_norm', 'batch'], 'dis_norm'),
    (['--arch', 'resnet', '--dis_norm', 'batch'], 'dis_norm'),
])
def test_a_normalisation_the_nets_do_not_have_is_refused(argv, flag, capsys):
    with pytest.raises(SystemExit) as stop:
        parse_config(argv)
    said = capsys.readouterr().err
    assert stop.value.code == 2 and said.count('\n') == 1
    assert f'--{flag}' in said and "'batch' would have no effect" in said, said


def test_none_and_an_unset_normalisation_are_accepted():
    config = parse_config(['--preset', 'began', '--arch', 'began', '--gen_norm', 'none',
                           '--dis_norm', 'none'])
    assert (config.arch, config.gen_norm, config.dis_norm) == ('began', 'none', 'none')
    assert parse_config(['--preset', 'began', '--arch', 'began']).dis_norm == 'batch'
    # The DCGAN nets have BatchNorm: there the flag is taken.
    assert parse_config(['--preset', 'began', '--gen_norm', 'batch']).gen_norm == 'batch'


def test_a_run_of_the_papers_nets_resumes_bit_for_bit(tmp_path):
    data = Data.of(fake_images(16, channels=1, size=16, seed=1),
                   fake_images(4, channels=1, size=16))
    config = PRESETS['began'].replace(
        arch='began', base_width=3, n_hidden=4, batchsize=4, iteration=4, snapshot_interval=2,
        display_interval=2, preview_interval=2, eval_interval=2, progress=False)
    straight, out = tmp_path / 'straight', tmp_path / 'run'
    build_trainer(config.replace(out=str(straight)), data=data, log=None).run()
    build_trainer(config.replace(out=str(out), iteration=2), data=data, log=None).run()
    record = json.loads((out / files.CONFIG).read_text())
    assert record['gen']['arch'] == record['dis']['arch'] == 'began'
    resumed = build_trainer(read_record(str(out)).config.replace(
        out=str(out), iteration=4, resume='auto'), data=data, log=None)
    assert isinstance(resumed.updater.dis, BEGANDiscriminator)
    resumed.run()
    for net in ('gen', 'dis'):
        assert_same_weights(straight / f'{net}_iter_4.npz', out / f'{net}_iter_4.npz')
    log = json.loads((out / 'log').read_text())
    assert all(0 <= e['dis/k_t'] <= 1 for e in log)


def test_k0_and_lambda_k_reach_the_loss_and_need_loss_began():
    loss = make_loss(RunConfig(loss='began', began_k0=0.25, began_lambda_k=0.01))
    assert (loss.state.k, loss.state.lambda_k, loss.state.gamma) == (0.25, 0.01, 0.5)
    # One observed D step from k0: k + lambda_k (gamma L(x) - L(G(z))), by hand.
    assert loss.state.observe(np.array([0.4]), np.array([0.1]))['k_t'] == pytest.approx(
        0.25 + 0.01 * (0.5 * 0.4 - 0.1))
    assert make_loss(RunConfig(loss='began')).state.k == 0.0
    for options, flag, words in [({'began_k0': 0.1}, 'began_k0', "needs loss 'began'"),
                                 ({'began_lambda_k': 0.1}, 'began_lambda_k', "needs loss 'began'"),
                                 ({'loss': 'began', 'began_k0': 1.5}, 'began_k0',
                                  'must be in [0, 1]')]:
        with pytest.raises(ConfigError) as error:
            RunConfig(**options)
        assert error.value.option == flag and words in str(error.value)
