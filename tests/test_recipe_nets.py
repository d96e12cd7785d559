"""The recipe options of the DCGAN nets: upsampling G, pooling D, fc, noise, ...

The default nets must stay exactly the DCGAN paper's (names, shapes, draw
order, configs); every option is checked against a hand-written forward
pass or ``gradient_check``, through ``config()`` and snapshots, with the
conditional nets, spectral norm, EMA, the fast CPU functions and ONNX.
"""

import copy
import json

import chainer
import chainer.functions as F
import numpy as np
import pytest
from chainer import gradient_check
from chainer.link_hooks import SpectralNormalization

from gan_trainer import ops
from gan_trainer.ema import GeneratorEMA
from gan_trainer.latent import global_seed
from gan_trainer.nets import (
    ConditionalDiscriminator,
    ConditionalGenerator,
    Discriminator,
    Generator,
    build_discriminator,
    build_generator,
)
from gan_trainer.nets._layers import gaussian, upsample, upsample_conv
from gan_trainer.testing import fake_images

F64 = np.float64


def _z(batch, n_hidden=4, seed=0):
    return np.random.RandomState(seed).randn(batch, n_hidden).astype(np.float32)


def _shapes(link):
    return {name: p.shape for name, p in link.namedparams()}


def _state(link):
    serializer = chainer.serializers.DictionarySerializer()
    serializer.save(link)
    return serializer.target


def _eval(net, *args):
    with chainer.using_config('train', False), chainer.no_backprop_mode():
        return net(*args).array


# --- the defaults are today's nets ------------------------------------------

# Today's parameter layout of Generator/Discriminator(size=8, n_hidden=4,
# widths=[4, 8]), written out by hand: a change here breaks old snapshots.
G_LAYOUT = {
    '/project/W': (32, 4), '/project/b': (32,),
    '/bn0/gamma': (8,), '/bn0/beta': (8,),
    '/deconvs/0/W': (8, 4, 4, 4), '/deconvs/0/b': (4,),
    '/bns/0/gamma': (4,), '/bns/0/beta': (4,),
    '/deconvs/1/W': (4, 1, 4, 4), '/deconvs/1/b': (1,),
}
D_LAYOUT = {
    '/convs/0/W': (4, 1, 4, 4), '/convs/0/b': (4,),
    '/convs/1/W': (8, 4, 4, 4), '/convs/1/b': (8,),
    '/bns/0/gamma': (8,), '/bns/0/beta': (8,),
    '/out/W': (1, 32), '/out/b': (1,),
}
BN_STATS = ('avg_mean', 'avg_var', 'N')


def test_default_nets_keep_their_parameter_names_and_shapes():
    gen = Generator(size=8, n_hidden=4, widths=[4, 8])
    dis = Discriminator(size=8, widths=[4, 8])
    assert _shapes(gen) == G_LAYOUT
    assert _shapes(dis) == D_LAYOUT
    assert set(_state(gen)) == {k[1:] for k in G_LAYOUT} | {
        f'{bn}/{s}' for bn in ('bn0', 'bns/0') for s in BN_STATS}
    assert set(_state(dis)) == {k[1:] for k in D_LAYOUT} | {f'bns/0/{s}' for s in BN_STATS}
    cond_g = ConditionalGenerator(n_classes=2, size=8, n_hidden=4, widths=[4, 8])
    cond_d = ConditionalDiscriminator(n_classes=2, size=8, widths=[4, 8])
    assert _shapes(cond_g) == dict(G_LAYOUT, **{'/project/W': (32, 6), '/embed/W': (2, 2)})
    assert _shapes(cond_d) == dict(D_LAYOUT, **{'/embed/W': (2, 32)})


def test_seeded_default_nets_draw_their_weights_in_the_same_order():
    # Each weight is N(0, 0.02) and each BN gain 1 + N(0, 0.02), drawn from
    # the global RNG in creation order; biases and shifts draw nothing.
    def expected(layout, order):
        out = {}
        for name, gain in order:
            shape = layout[name]
            out[name] = np.random.normal(0, 0.02, shape).astype(np.float32) + np.float32(gain)
        return out

    with global_seed(3):
        gen = Generator(size=8, n_hidden=4, widths=[4, 8])
    with global_seed(3):
        want = expected(G_LAYOUT, [('/project/W', 0), ('/bn0/gamma', 1), ('/deconvs/0/W', 0),
                         ('/bns/0/gamma', 1), ('/deconvs/1/W', 0)])
    with global_seed(4):
        dis = Discriminator(size=8, widths=[4, 8])
    with global_seed(4):
        want_d = expected(D_LAYOUT, [('/convs/0/W', 0), ('/convs/1/W', 0), ('/bns/0/gamma', 1),
                           ('/out/W', 0)])
    for net, exp in ((gen, want), (dis, want_d)):
        params = dict(net.namedparams())
        for name, array in exp.items():
            np.testing.assert_array_equal(params[name].array, array, err_msg=name)


def test_default_configs_have_no_recipe_keys():
    assert Generator(size=8, widths=[4]).config() == {
        'size': 8, 'channels': 1, 'n_hidden': 100, 'widths': [4], 'ksize': 4}
    assert Discriminator(size=8, widths=[4]).config() == {
        'size': 8, 'channels': 1, 'widths': [4], 'ksize': 4, 'norm': 'batch',
        'spectral_norm': False}


# --- G: upsampling + convolution, activations, the dense head ------------------


@pytest.mark.parametrize('mode', ['nearest', 'bilinear'])
@pytest.mark.parametrize('size, widths, ksize',
                         [(8, [4, 8], 3), (28, [4, 8], 5), (32, [2, 4, 4], 7)])
def test_upsampling_generator_shapes_and_layout(mode, size, widths, ksize):
    gen = Generator(size=size, channels=3, n_hidden=4, widths=widths, upsample=mode, ksize=ksize)
    x = gen(_z(3))
    assert x.shape == (3, 3, size, size) and np.all(np.abs(x.array) <= 1)
    g_widths = widths[::-1] + [3]
    assert [c.W.shape for c in gen.convs] == [
        (g_widths[i + 1], g_widths[i], ksize, ksize) for i in range(len(widths))]
    assert not hasattr(gen, 'deconvs') and gen.stages is gen.convs


def test_nearest_upsampling_repeats_each_pixel_and_stays_channel_last():
    x = np.arange(2 * 3 * 2 * 4, dtype=np.float32).reshape(2, 3, 2, 4)
    y = upsample(x, 'nearest').array
    np.testing.assert_array_equal(y, x.repeat(2, axis=2).repeat(2, axis=3))
    assert y.transpose(0, 2, 3, 1).flags.c_contiguous  # what ops' convolutions read


@pytest.mark.parametrize('dtype', [np.float16, np.float32, np.float64])
def test_bilinear_upsampling_uses_half_pixel_weights(dtype):
    # Output pixel j of a doubled row sits at input coordinate (j + 0.5) / 2
    # - 0.5, clamped at the borders: weights 1/4 and 3/4 in between.
    n = 3
    m = np.zeros((2 * n, n))
    for j in range(2 * n):
        u = max((j + 0.5) / 2 - 0.5, 0)
        lo = int(u)
        m[j, lo] += 1 - (u - lo)
        m[j, min(lo + 1, n - 1)] += u - lo
    x = np.random.RandomState(0).randn(1, 2, n, n).astype(dtype)
    expected = np.einsum('ai,ncij,bj->ncab', m, x.astype(F64), m)
    y = upsample(x, 'bilinear').array
    assert y.dtype == dtype
    half = dtype == np.float16
    np.testing.assert_allclose(y, expected, rtol=2e-3 if half else 1e-6,
                               atol=1e-3 if half else 1e-7)
    if dtype == np.float32:  # what Chainer's resize_images gives for float32
        np.testing.assert_allclose(
            y, F.resize_images(x, (2 * n, 2 * n), align_corners=False).array, rtol=1e-6)


@pytest.mark.parametrize('mode', ['nearest', 'bilinear'])
def test_upsampling_gradients(mode):
    x = np.random.RandomState(1).randn(2, 3, 3, 4)
    gy = np.random.RandomState(2).randn(2, 3, 6, 8)
    gradient_check.check_backward(lambda v: upsample(v, mode), x, gy, atol=1e-7, rtol=1e-7)


@pytest.mark.parametrize('ksize', [3, 5, 7])
def test_nearest_upsample_conv_runs_as_one_transposed_convolution(ksize):
    # The fused stage (the fast path's) against upsampling then convolving
    # with Chainer's own functions: same values and the same gradients.
    rng = np.random.RandomState(ksize)
    with chainer.using_config('dtype', F64):
        conv = chainer.links.Convolution2D(6, 3, ksize, pad=ksize // 2,
                                           initialW=rng.randn(3, 6, ksize, ksize),
                                           initial_bias=rng.randn(3))
    x = rng.randn(2, 6, 5, 4)
    gy = rng.randn(2, 3, 10, 8)
    results = []
    for fused in (True, False):
        with chainer.using_config(ops.CONFIG_KEY, fused):
            conv.cleargrads()
            v = chainer.Variable(x.copy())
            y = upsample_conv(conv, v, 'nearest')
            y.grad = gy
            y.backward()
            results.append((y.array, v.grad, conv.W.grad.copy(), conv.b.grad.copy()))
    for fused, plain in zip(*results):
        np.testing.assert_allclose(fused, plain, rtol=1e-12, atol=1e-12)


def _f64(make):
    with chainer.using_config('dtype', F64), global_seed(0):
        return make()


def _check_net_gradients(net, args, seed=5):
    y = net(*args)
    gy = np.random.RandomState(seed).randn(*y.shape)
    params = [p for _, p in sorted(net.namedparams())]
    # float64 and a small eps: BN over 4 examples curves the function enough
    # that eps=1e-3 fails even for today's default G.
    gradient_check.check_backward(lambda v: net(v, *args[1:]), args[0], gy, params=params,
                                  eps=1e-5, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize('options', [
    {'upsample': 'nearest', 'activation': 'elu', 'fc_width': 6},
    {'upsample': 'bilinear', 'activation': 'tanh'},
    {'ksize': 3, 'activation': 'leaky_relu'},
    {'upsample': 'nearest', 'activation': 'tanh', 'fc_width': 5, 'project_norm': 'unit'},
])
def test_generator_gradients(options):
    gen = _f64(lambda: Generator(size=8, channels=2, n_hidden=3, widths=[3, 4], **options))
    _check_net_gradients(gen, (np.random.RandomState(0).randn(4, 3),))


def test_generator_recipe_stack_matches_a_hand_written_forward_pass():
    # keras-dcgan's G: Dense + tanh, Dense + BN + tanh, (upsample, conv, BN,
    # tanh), upsample, conv, tanh; here at 8x8 with tiny widths.
    gen = Generator(size=8, n_hidden=4, widths=[3, 5], upsample='nearest', ksize=5,
                    activation='tanh', fc_width=6)
    z = _z(4)

    def bn(link, h):
        return F.batch_normalization(h, link.gamma, link.beta, eps=link.eps)

    def conv(link, h):
        return F.convolution_2d(h.repeat(2, axis=2).repeat(2, axis=3), link.W, link.b, pad=2)

    h = F.tanh(F.linear(z, gen.fc.W, gen.fc.b))
    h = F.tanh(bn(gen.bn0, F.reshape(F.linear(h, gen.project.W, gen.project.b), (4, 5, 2, 2))))
    h = F.tanh(bn(gen.bns[0], conv(gen.convs[0], h.array)))
    expected = F.tanh(conv(gen.convs[1], h.array)).array
    np.testing.assert_allclose(gen(z).array, expected, rtol=1e-5, atol=1e-6)


def test_unit_project_norm_normalises_each_unit_over_the_batch_before_the_reshape():
    # Keras' BatchNormalization after Dense: one mean and variance per unit
    # of the projection, over the batch alone; against the hand-written pass.
    gen = Generator(size=8, n_hidden=4, widths=[3, 5], upsample='nearest', ksize=5,
                    activation='tanh', fc_width=6, project_norm='unit')
    assert gen.bn0.gamma.shape == (5 * 2 * 2,)
    z = _z(6)
    h = np.tanh(z @ gen.fc.W.array.T + gen.fc.b.array) @ gen.project.W.array.T
    h += gen.project.b.array
    h = (h - h.mean(axis=0)) / np.sqrt(h.var(axis=0) + gen.bn0.eps)
    h = np.tanh(h * gen.bn0.gamma.array + gen.bn0.beta.array).reshape(6, 5, 2, 2)
    gen.bns[0].gamma.array[:] = 1  # the hand pass below leaves bns/0 unscaled
    gen.bns[0].beta.array[:] = 0
    h = gen.convs[0](np.repeat(np.repeat(h, 2, axis=2), 2, axis=3).astype(np.float32)).array
    h = np.tanh((h - h.mean(axis=(0, 2, 3), keepdims=True))
                / np.sqrt(h.var(axis=(0, 2, 3), keepdims=True) + gen.bns[0].eps))
    expected = np.tanh(gen.convs[1](np.repeat(np.repeat(h, 2, axis=2), 2, axis=3)).array)
    np.testing.assert_allclose(gen(z).array, expected, rtol=1e-4, atol=1e-5)
    # Every unit after bn0 has mean 0 and variance 1 over the batch, even when
    # a bias dwarfs what z contributes: per channel, the biases' spread over
    # the 2x2 positions would count as variance and z's part would shrink.
    gen.project.b.array[:] = np.arange(20, dtype=np.float32) * 10
    spread = {}
    for norm in ('unit', 'channel'):
        g = Generator(size=8, n_hidden=4, widths=[3, 5], project_norm=norm)
        g.project.W.array[:] = gen.project.W.array[:, :4] * 10
        g.project.b.array[:] = gen.project.b.array
        g.bn0.gamma.array[:] = 1
        with chainer.using_config('train', True):
            h = g.project(_z(64))
            if norm == 'unit':
                h = F.reshape(g.bn0(h), (64, 5, 2, 2))
            else:
                h = g.bn0(F.reshape(h, (64, 5, 2, 2)))
        spread[norm] = h.array.var(axis=0).mean()  # over the batch, per unit
    assert abs(spread['unit'] - 1) < 1e-3 and spread['channel'] < 0.05


def test_keras_generator_without_stage_norm_matches_a_hand_written_forward_pass():
    # keras-dcgan's G as the original has it: one BatchNorm (per unit of the
    # Dense layer), none after the stages; Keras' initialisation and
    # BatchNorm epsilon.
    gen = Generator(size=8, n_hidden=4, widths=[3, 5], upsample='nearest', ksize=5,
                    activation='tanh', fc_width=6, project_norm='unit', stage_norm=False,
                    init='glorot', bn_eps=1e-3)
    assert len(gen.bns) == 0 and gen.bn0.eps == 1e-3
    z = _z(6)

    def conv(link, h):
        return F.convolution_2d(h.repeat(2, axis=2).repeat(2, axis=3), link.W, link.b, pad=2)

    h = F.tanh(F.linear(z, gen.fc.W, gen.fc.b))
    h = F.linear(h, gen.project.W, gen.project.b)
    h = F.tanh(F.batch_normalization(h, gen.bn0.gamma, gen.bn0.beta, eps=1e-3))
    h = F.tanh(conv(gen.convs[0], F.reshape(h, (6, 5, 2, 2)).array))
    expected = F.tanh(conv(gen.convs[1], h.array)).array
    np.testing.assert_allclose(gen(z).array, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('init', ['normal', 'glorot'])
def test_init_draws_the_papers_or_keras_weights(init):
    with global_seed(0):
        gen = Generator(size=28, widths=[64, 128], upsample='nearest', ksize=5, fc_width=1024,
                        init=init)
        dis = Discriminator(size=28, widths=[64, 128], downsample='max_pool', ksize=5,
                            fc_width=1024, init=init)
    for link in (gen.fc, gen.project, gen.convs[0], gen.convs[1], dis.convs[0], dis.convs[1],
                 dis.fc, dis.out):
        w = link.W.array
        fan_in, fan_out = w[0].size, w.shape[0] * w[0, 0].size
        if init == 'glorot':  # U(-a, a), a = sqrt(6 / (fan_in + fan_out)): Keras' default
            a = np.sqrt(6 / (fan_in + fan_out))
            assert np.abs(w).max() <= a and np.abs(w).max() > 0.9 * a
            np.testing.assert_allclose(w.std(), a / np.sqrt(3), rtol=0.15)
        else:
            np.testing.assert_allclose(w.std(), 0.02, rtol=0.15)
        assert (link.b.array == 0).all()
    gammas = np.concatenate([gen.bn0.gamma.array, gen.bns[0].gamma.array])
    assert (gammas == 1).all() == (init == 'glorot')


def test_bn_decay_and_eps_reach_every_batch_normalization():
    gen = Generator(size=8, n_hidden=4, widths=[4, 8], bn_decay=0.99, bn_eps=1e-3)
    dis = Discriminator(size=8, widths=[4, 8], bn_decay=0.99, bn_eps=1e-3, bn_gamma=False)
    cgen = ConditionalGenerator(n_classes=2, size=8, n_hidden=4, widths=[4, 8], mode='cbn',
                                bn_decay=0.99, bn_eps=1e-3)
    links = [gen.bn0, *gen.bns, *dis.bns, cgen.bn0.bn, *(b.bn for b in cgen.bns)]
    assert len(links) == 5 and all((b.decay, b.eps) == (0.99, 1e-3) for b in links)
    with chainer.using_config('train', True):
        gen(_z(4))
    # One batch moves the running mean 1% of the way (Keras' momentum 0.99).
    batch_mean = F.reshape(gen.project(_z(4)), (4, 8, 2, 2)).array.mean(axis=(0, 2, 3))
    np.testing.assert_allclose(gen.bn0.avg_mean, 0.01 * batch_mean, rtol=1e-4, atol=1e-7)


def test_valid_padding_shrinks_the_pooled_stages_after_the_first():
    # keras-dcgan's D: 'same' 28 -> pooled 14, 'valid' 14 -> 10 -> pooled 5.
    dis = Discriminator(size=28, widths=[4, 8], downsample='max_pool', ksize=5,
                        activation='tanh', norm='none', fc_width=6, padding='valid')
    assert dis.start_side == 5 and dis.fc.W.shape == (6, 8 * 5 * 5)
    assert (dis.convs[0].pad, dis.convs[1].pad) == ((2, 2), (0, 0))
    x = fake_images(3, size=28)
    h = F.max_pooling_2d(F.tanh(F.convolution_2d(x, dis.convs[0].W, dis.convs[0].b, pad=2)), 2)
    h = F.max_pooling_2d(F.tanh(F.convolution_2d(h, dis.convs[1].W, dis.convs[1].b)), 2)
    h = F.tanh(F.linear(h, dis.fc.W, dis.fc.b))
    expected = F.flatten(F.linear(h, dis.out.W, dis.out.b)).array
    np.testing.assert_allclose(dis(x).array, expected, rtol=1e-5, atol=1e-6)


# --- D: pooling, the hidden fc, activations, BN without gamma, noise -----------


@pytest.mark.parametrize('mode', ['max_pool', 'avg_pool'])
@pytest.mark.parametrize('size, ksize', [(8, 3), (28, 5), (16, 7)])
def test_pooling_discriminator_shapes(mode, size, ksize):
    dis = Discriminator(size=size, channels=3, widths=[4, 8], downsample=mode, ksize=ksize,
                        fc_width=5)
    assert dis(fake_images(3, size=size, channels=3)).shape == (3,)
    assert [c.W.shape for c in dis.convs] == [(4, 3, ksize, ksize), (8, 4, ksize, ksize)]
    assert [c.stride for c in dis.convs] == [(1, 1)] * 2
    assert dis.fc.W.shape == (5, 8 * (size // 4) ** 2) and dis.out.W.shape == (1, 5)


def test_discriminator_recipe_stack_matches_a_hand_written_forward_pass():
    dis = Discriminator(size=8, widths=[3, 4], downsample='max_pool', ksize=3,
                        activation='tanh', fc_width=5, fc_activation='leaky_relu',
                        bn_gamma=False)
    x = fake_images(4)
    h = F.max_pooling_2d(F.tanh(F.convolution_2d(x, dis.convs[0].W, dis.convs[0].b, pad=1)), 2)
    h = F.convolution_2d(h, dis.convs[1].W, dis.convs[1].b, pad=1)
    h = F.batch_normalization(h, np.ones(4, np.float32), dis.bns[0].beta, eps=dis.bns[0].eps)
    h = F.max_pooling_2d(F.tanh(h), 2)
    h = F.leaky_relu(F.linear(h, dis.fc.W, dis.fc.b), 0.2)
    expected = F.flatten(F.linear(h, dis.out.W, dis.out.b)).array
    np.testing.assert_allclose(dis(x).array, expected, rtol=1e-5, atol=1e-6)
    assert {n for n, _ in dis.bns[0].namedparams()} == {'/beta'}


@pytest.mark.parametrize('options', [
    {'downsample': 'avg_pool', 'activation': 'tanh', 'fc_width': 5},
    {'downsample': 'max_pool', 'norm': 'none', 'ksize': 5},
    {'ksize': 3, 'bn_gamma': False, 'activation': 'elu'},
])
def test_discriminator_gradients(options):
    dis = _f64(lambda: Discriminator(size=8, channels=2, widths=[3, 4], **options))
    x = np.random.RandomState(0).uniform(-1, 1, (4, 2, 8, 8))
    _check_net_gradients(dis, (x,))


def test_noise_and_dropout_act_only_in_training():
    with global_seed(1):
        plain = Discriminator(size=8, widths=[4, 8])
    with global_seed(1):
        noisy = Discriminator(size=8, widths=[4, 8], noise_sigma=0.2, dropout=0.3)
    x = fake_images(4)
    # Same weights (the noise's seed is drawn after them), same eval output.
    np.testing.assert_array_equal(_eval(noisy, x), _eval(plain, x))
    with chainer.no_backprop_mode():
        a, b, c = noisy(x).array, noisy(x).array, plain(x).array
    assert not np.allclose(a, b) and not np.allclose(a, c)
    np.testing.assert_array_equal(_eval(noisy, x), _eval(noisy, x))


@pytest.mark.parametrize('width', [4, 8])  # maps stored channel-first, channel-last
def test_noise_is_added_to_the_input_and_every_hidden_layer(width):
    dis = Discriminator(size=8, widths=[width], norm='none', noise_sigma=0.2, fc_width=3)
    rng = copy.deepcopy(dis.stochastic.rng)
    x = fake_images(2)

    def noise(h, like=None):
        # The net draws in the memory order of the map it adds to (its
        # convolutions' outputs are channel-last from 5 channels on).
        return h + gaussian(rng, h.shape, np.float32, 0.2, like=like)

    with chainer.no_backprop_mode():
        layout = dis.convs[0](x).array
    # The two widths cover both layouts (the fast convolutions' choice).
    assert (layout.strides[1] == layout.itemsize) == (width == 8), layout.strides
    h = F.leaky_relu(noise(F.convolution_2d(noise(x), dis.convs[0].W, dis.convs[0].b,
                                             stride=2, pad=1).array, layout), 0.2)
    h = F.leaky_relu(noise(F.linear(h, dis.fc.W, dis.fc.b).array), 0.2)
    expected = F.flatten(F.linear(h, dis.out.W, dis.out.b)).array
    np.testing.assert_allclose(dis(x).array, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_gaussian_draws_are_normal(dtype):
    rng = np.random.Generator(np.random.PCG64(3))
    z = gaussian(rng, (1001, 999), dtype, scale=0.5) / 0.5  # an odd number of draws
    assert z.shape == (1001, 999) and z.dtype == dtype and z.flags.c_contiguous
    n = z.size
    # Moments of N(0, 1) within 5 standard errors for a million draws.
    assert abs(z.mean()) < 5 / n ** 0.5
    assert abs(z.var() - 1) < 5 * 2 ** 0.5 / n ** 0.5
    assert abs((z ** 3).mean()) < 5 * 15 ** 0.5 / n ** 0.5
    assert abs((z ** 4).mean() - 3) < 5 * 96 ** 0.5 / n ** 0.5
    # Tail masses: P(|z| > 1) = 0.31731, P(|z| > 2) = 0.04550, P(|z| > 3) = 0.00270.
    for k, p in ((1, 0.31731), (2, 0.04550), (3, 0.00270)):
        assert abs((np.abs(z) > k).mean() - p) < 5 * (p * (1 - p) / n) ** 0.5, k
    # The two halves (cos and sin of the same angles) are uncorrelated
    # (n/2 pairs: the bound is about 3.5 standard errors).
    flat = z.reshape(-1)
    half = (n + 1) // 2
    assert abs(np.mean(flat[:half - 1] * flat[half:])) < 5 / n ** 0.5


def test_gaussian_follows_the_state_and_the_layout():
    state = np.random.Generator(np.random.PCG64(5))
    a, b = copy.deepcopy(state), copy.deepcopy(state)
    np.testing.assert_array_equal(gaussian(a, (4, 3, 5, 5), np.float32),
                                  gaussian(b, (4, 3, 5, 5), np.float32))
    like = np.empty((4, 5, 5, 3), np.float32).transpose(0, 3, 1, 2)  # channel-last
    c = copy.deepcopy(state)
    z = gaussian(c, like.shape, np.float32, like=like)
    assert z.strides == like.strides
    # The same draws as in C order, laid out in like's memory order.
    np.testing.assert_array_equal(z.transpose(0, 2, 3, 1).reshape(-1),
                                  gaussian(copy.deepcopy(state), (300,), np.float32))
    # The next draws continue from where these ended.
    np.testing.assert_array_equal(gaussian(c, (7,), np.float32), gaussian(a, (7,), np.float32))


def test_dropout_drops_its_fraction_and_rescales_the_rest():
    st = Discriminator(size=8, widths=[4], dropout=0.3).stochastic
    ones = np.ones((200, 500), np.float32)
    y = st.drop(chainer.Variable(ones)).array
    assert (y == 0).mean() == pytest.approx(0.3, abs=0.01)
    np.testing.assert_allclose(y[y != 0], 1 / 0.7, rtol=1e-6)
    # A channel-last map keeps its layout through the dropout.
    maps = np.ones((4, 5, 5, 6), np.float32).transpose(0, 3, 1, 2)
    assert st.drop(chainer.Variable(maps)).array.strides == maps.strides
    with chainer.using_config('train', False):
        assert st.drop(ones) is ones and st.noise(ones) is ones


def test_noise_random_state_is_saved_with_the_net(tmp_path):
    dis = Discriminator(size=8, widths=[4, 8], noise_sigma=0.2, dropout=0.1)
    x = fake_images(4)
    with chainer.no_backprop_mode():
        dis(x)
    chainer.serializers.save_npz(str(tmp_path / 'dis.npz'), dis)
    with global_seed(9):
        rebuilt = build_discriminator(json.loads(json.dumps(dis.config())))
    chainer.serializers.load_npz(str(tmp_path / 'dis.npz'), rebuilt)
    with chainer.no_backprop_mode():
        for _ in range(2):
            np.testing.assert_array_equal(rebuilt(x).array, dis(x).array)
    assert 'noise_rng' in _state(dis) and 'noise_rng' not in _state(Discriminator(size=8))


def test_spectral_norm_covers_the_hidden_fc():
    dis = Discriminator(size=8, widths=[4], fc_width=3, downsample='avg_pool', norm='none',
                        spectral_norm=True)
    hooked = {name for name, link in dis.namedlinks(skipself=True)
              if any(isinstance(h, SpectralNormalization) for h in link.local_link_hooks.values())}
    assert hooked == {'/convs/0', '/fc', '/out'}


@pytest.mark.parametrize('cls, kwargs, match', [
    (Generator, {'upsample': 'pixelshuffle'},
     "unknown upsample 'pixelshuffle'; valid ones are deconv, nearest, bilinear"),
    (Generator, {'upsample': 'nearest', 'ksize': 4}, "ksize 4 does not fit upsample='nearest'"),
    (Generator, {'ksize': 7}, "ksize 7 does not fit upsample='deconv'"),
    (Generator, {'activation': 'sigmoid'}, "unknown activation 'sigmoid'"),
    (Generator, {'fc_width': 0}, 'fc_width must be at least 1, got 0'),
    (Generator, {'project_norm': 'layer'}, "unknown project_norm 'layer'"),
    (Generator, {'stage_norm': 1}, 'stage_norm must be true or false, got 1'),
    (Generator, {'init': 'he'}, "unknown init 'he'"),
    (Generator, {'bn_decay': 1.0}, r'bn_decay must be in \[0, 1\), got 1.0'),
    (Discriminator, {'bn_eps': 0}, 'bn_eps must be a number above 0, got 0'),
    (Discriminator, {'padding': 'valid'}, "padding='valid' needs downsample='max_pool'"),
    (Discriminator, {'padding': 'full'}, "unknown padding 'full'"),
    (Discriminator, {'downsample': 'max_pool', 'ksize': 4},
     "ksize 4 does not fit downsample='max_pool'"),
    (Discriminator, {'downsample': 'stride', 'ksize': 7},
     "ksize 7 does not fit downsample='stride'"),
    (Discriminator, {'fc_activation': 'tanh'}, "fc_activation='tanh' needs fc_width"),
    (Discriminator, {'bn_gamma': False, 'norm': 'none'}, "bn_gamma=False needs norm='batch'"),
    (Discriminator, {'bn_gamma': 0}, 'bn_gamma must be true or false, got 0'),
    (Discriminator, {'noise_sigma': -0.1}, 'noise_sigma must be at least 0, got -0.1'),
    (Discriminator, {'dropout': 1.0}, r'dropout must be in \[0, 1\), got 1.0'),
    (Discriminator, {'activation': 'swish'}, "unknown activation 'swish'"),
    (Discriminator, {'downsample': 'maxpool'}, "unknown downsample 'maxpool'"),
])
def test_bad_options_and_combinations_are_one_line_errors(cls, kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        cls(size=8, widths=[4], **kwargs)
    assert '\n' not in str(info.value)


# --- configs, snapshots, conditional nets, EMA, fast path, ONNX -------------------

RECIPE_CONFIGS = [
    (build_generator, {'size': 8, 'n_hidden': 4, 'widths': [4, 8], 'upsample': 'nearest',
                       'ksize': 5, 'activation': 'tanh', 'fc_width': 6}),
    (build_generator, {'size': 8, 'n_hidden': 4, 'widths': [4, 8], 'upsample': 'bilinear',
                       'activation': 'elu'}),
    (build_generator, {'arch': 'conditional', 'n_classes': 2, 'mode': 'cbn', 'size': 8,
                       'n_hidden': 4, 'widths': [4, 8], 'upsample': 'nearest', 'fc_width': 5}),
    (build_discriminator, {'size': 8, 'widths': [4, 8], 'downsample': 'max_pool', 'ksize': 5,
                           'norm': 'none', 'activation': 'tanh', 'fc_width': 6}),
    (build_discriminator, {'size': 8, 'widths': [4, 8], 'noise_sigma': 0.2, 'bn_gamma': False,
                           'dropout': 0.1, 'spectral_norm': True}),
    (build_discriminator, {'arch': 'conditional', 'n_classes': 2, 'size': 8, 'widths': [4, 8],
                           'downsample': 'avg_pool', 'fc_width': 5, 'fc_activation': 'tanh'}),
    (build_discriminator, {'arch': 'conditional', 'n_classes': 2, 'mode': 'concat', 'size': 8,
                           'widths': [4, 8], 'ksize': 3, 'noise_sigma': 0.1}),
    (build_generator, {'size': 8, 'n_hidden': 4, 'widths': [4, 8], 'upsample': 'nearest',
                       'activation': 'tanh', 'project_norm': 'unit'}),
    (build_generator, {'size': 8, 'n_hidden': 4, 'widths': [4, 8], 'upsample': 'nearest',
                       'activation': 'tanh', 'stage_norm': False, 'init': 'glorot',
                       'bn_decay': 0.99, 'bn_eps': 1e-3}),
    (build_discriminator, {'size': 8, 'widths': [4, 8], 'downsample': 'max_pool',
                           'ksize': 3, 'padding': 'valid', 'init': 'glorot', 'fc_width': 6}),
    (build_generator, {'arch': 'conditional', 'n_classes': 2, 'mode': 'cbn', 'size': 8,
                       'n_hidden': 4, 'widths': [4, 8], 'project_norm': 'unit'}),
    # The paper's deconvolutions and ReLU: bn0 per unit with the activation
    # inside the BN node, the stages' ReLU inside the deconvolution node.
    (build_generator, {'size': 8, 'n_hidden': 4, 'widths': [4, 8], 'project_norm': 'unit',
                       'stage_norm': False}),
]


def _args(net, batch=4):
    if isinstance(net, (Generator, ConditionalGenerator)):
        args = (_z(batch, net.n_hidden),)
    else:
        args = (fake_images(batch),)
    if hasattr(net, 'n_classes'):
        args += (np.arange(batch, dtype=np.int32) % 2,)
    return args


@pytest.mark.parametrize('build, config', RECIPE_CONFIGS)
def test_recipe_configs_round_trip_through_build_and_snapshots(tmp_path, build, config):
    with global_seed(0):
        net = build(config)
    saved = net.config()
    assert saved == json.loads(json.dumps(saved))
    assert saved.items() >= config.items()
    with chainer.using_config('train', True), chainer.no_backprop_mode():
        net(*_args(net))  # move the BN statistics and the noise's random state
    chainer.serializers.save_npz(str(tmp_path / 'net.npz'), net)
    with global_seed(1):
        rebuilt = build(saved)
    assert _shapes(rebuilt) == _shapes(net)
    chainer.serializers.load_npz(str(tmp_path / 'net.npz'), rebuilt)  # strict
    np.testing.assert_array_equal(_eval(rebuilt, *_args(net)), _eval(net, *_args(net)))


def test_conditional_projection_reads_the_hidden_fc():
    dis = ConditionalDiscriminator(n_classes=3, size=8, widths=[4], fc_width=5,
                                   downsample='max_pool')
    assert dis.embed.W.shape == (3, 5)
    x, t = fake_images(2), np.array([0, 2], np.int32)
    h = dis.head(dis.features(x)).array
    expected = (h @ dis.out.W.array.T)[:, 0] + dis.out.b.array + (dis.embed.W.array[t] * h).sum(1)
    np.testing.assert_allclose(dis(x, t).array, expected, rtol=1e-5, atol=1e-6)


def test_ema_of_an_upsampling_generator():
    gen = Generator(size=8, n_hidden=4, widths=[4, 8], upsample='nearest', fc_width=6)
    ema = GeneratorEMA(gen, decay=0.5)
    for p in gen.params():
        p.array += 1
    ema.update(gen, iteration=1)
    np.testing.assert_allclose(ema.target.convs[0].W.array, gen.convs[0].W.array - 0.5,
                               rtol=1e-6)
    np.testing.assert_allclose(ema.target.fc.W.array, gen.fc.W.array - 0.5, rtol=1e-6)


@pytest.mark.parametrize('build, config', RECIPE_CONFIGS[:2] + RECIPE_CONFIGS[3:5]
                         + RECIPE_CONFIGS[7:10] + RECIPE_CONFIGS[11:])
def test_fast_cpu_functions_match_chainer_on_recipe_nets(build, config):
    # Without what draws anew at each call (noise, dropout, SN's power iteration).
    with global_seed(0):
        net = build({k: v for k, v in config.items()
                     if k not in ('noise_sigma', 'dropout', 'spectral_norm')})
    args = _args(net)
    results = []
    for fast in (True, False):
        with chainer.using_config(ops.CONFIG_KEY, fast):
            net.cleargrads()
            y = net(*args)
            F.sum(y * y).backward()
            results.append((y.array, {n: p.grad.copy() for n, p in net.namedparams()}))
    (y1, g1), (y2, g2) = results
    np.testing.assert_allclose(y1, y2, rtol=1e-4, atol=1e-6)
    for name in g1:
        # atol: a bias before BN has a zero gradient, here rounding noise.
        np.testing.assert_allclose(g1[name], g2[name], rtol=1e-4, atol=1e-5, err_msg=name)


@pytest.mark.parametrize('mode', ['nearest', 'bilinear'])
def test_upsampling_generators_export_to_onnx(tmp_path, mode):
    pytest.importorskip('onnx')
    onnxruntime = pytest.importorskip('onnxruntime')
    from gan_trainer.export import export_onnx

    gen = Generator(size=8, channels=3, n_hidden=4, widths=[4, 8], upsample=mode,
                    activation='elu', fc_width=6)
    with chainer.using_config('train', True), chainer.no_backprop_mode():
        gen(_z(32, seed=1) * 3 + 1)  # BN statistics away from 0 and 1
    export_onnx(gen, tmp_path / 'g.onnx', batchsize=5)
    session = onnxruntime.InferenceSession(str(tmp_path / 'g.onnx'),
                                           providers=['CPUExecutionProvider'])
    z = _z(5, seed=2)
    np.testing.assert_allclose(session.run(None, {'z': z})[0], _eval(gen, z), rtol=0, atol=1e-4)


@pytest.mark.gpu
@pytest.mark.parametrize('build, config', RECIPE_CONFIGS)
def test_cupy_matches_numpy_and_draws_noise_on_the_gpu(build, config):
    cupy = pytest.importorskip('cupy')
    with global_seed(0):
        net = build(config)
    args = _args(net)
    expected = _eval(net, *args)
    net.to_device('@cupy:0')
    gpu_args = tuple(cupy.asarray(a) for a in args)
    y = _eval(net, *gpu_args)
    assert isinstance(y, cupy.ndarray)
    np.testing.assert_allclose(cupy.asnumpy(y), expected, rtol=1e-4, atol=1e-5)
    y = net(*gpu_args)  # train mode: noise and dropout sent to the GPU
    F.sum(y).backward()
    assert isinstance(y.array, cupy.ndarray) and np.isfinite(cupy.asnumpy(y.array)).all()
