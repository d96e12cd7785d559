"""Tests for gan_trainer.nets.conditional and the tiny conditional builders."""

import json

import chainer
import chainer.functions as F
import chainer.links as L
import numpy as np
import pytest

from gan_trainer import testing
from gan_trainer.latent import global_seed
from gan_trainer.nets import (
    NETS,
    ConditionalDiscriminator,
    ConditionalGenerator,
    build_discriminator,
    build_generator,
)
from gan_trainer.nets.conditional import (
    DISCRIMINATOR_MODES,
    GENERATOR_MODES,
    ConditionalBatchNormalization,
)

N_HIDDEN = 4  # the tiny builders' z size


def _z(batch, n_hidden=N_HIDDEN, seed=0):
    return np.random.RandomState(seed).randn(batch, n_hidden).astype(np.float32)


def _t(*labels):
    return np.array(labels, dtype=np.int32)


def _state(link):
    # What save_npz writes: parameters plus persistent values.
    serializer = chainer.serializers.DictionarySerializer()
    serializer.save(link)
    return serializer.target


def _randomize_cbn(gen, seed=0):
    # A fresh CBN is plain BN for every class (gamma 1, beta 0); training
    # would make the classes differ, and so does this.
    rng = np.random.RandomState(seed)
    for link in gen.links():
        if isinstance(link, ConditionalBatchNormalization):
            link.gamma.W.array[...] = rng.uniform(0.5, 1.5, link.gamma.W.shape)
            link.beta.W.array[...] = rng.uniform(-0.5, 0.5, link.beta.W.shape)


def _eval(f, *args):
    with chainer.using_config('train', False), chainer.no_backprop_mode():
        return f(*args).array


# --- shapes and registration ---------------------------------------------


@pytest.mark.parametrize('size', [28, 32])
@pytest.mark.parametrize('channels', [1, 3])
@pytest.mark.parametrize('g_mode', GENERATOR_MODES)
@pytest.mark.parametrize('d_mode', DISCRIMINATOR_MODES)
def test_output_shapes(size, channels, g_mode, d_mode):
    gen = ConditionalGenerator(
        n_classes=3, size=size, channels=channels, n_hidden=5, base_width=4, mode=g_mode
    )
    dis = ConditionalDiscriminator(
        n_classes=3, size=size, channels=channels, base_width=4, mode=d_mode
    )
    assert gen.n_classes == dis.n_classes == 3 and gen.n_hidden == 5
    t = _t(0, 1, 2, 1)
    x = gen(_z(4, n_hidden=5), t)
    assert x.shape == (4, channels, size, size) and x.dtype == np.float32
    assert np.all(np.abs(x.array) <= 1)
    y = dis(x, t)
    assert y.shape == (4,) and y.dtype == np.float32


def test_registered_as_conditional():
    assert NETS['conditional'] == (ConditionalGenerator, ConditionalDiscriminator)
    gen = build_generator({'arch': 'conditional', 'n_classes': 2, 'size': 8, 'widths': [4]})
    dis = build_discriminator({'arch': 'conditional', 'n_classes': 2, 'size': 8, 'widths': [4]})
    assert type(gen) is ConditionalGenerator and type(dis) is ConditionalDiscriminator
    assert gen.mode == 'concat' and dis.mode == 'projection'  # the defaults


def test_layer_layout():
    # The DCGAN stacks plus the label's links, under the DCGAN names.
    gen = testing.tiny_conditional_generator(mode='concat', n_classes=3)
    assert gen.project.W.shape == (8 * 2 * 2, N_HIDDEN + 3)  # z + n_embed = n_classes
    assert gen.embed.W.shape == (3, 3)
    cbn = testing.tiny_conditional_generator(mode='cbn', n_classes=3)
    assert cbn.project.W.shape == (8 * 2 * 2, N_HIDDEN) and not hasattr(cbn, 'embed')
    norms = [cbn.bn0, *cbn.bns]
    assert all(isinstance(n, ConditionalBatchNormalization) for n in norms)
    assert [n.gamma.W.shape for n in norms] == [(3, 8), (3, 4)]
    assert all(n.bn.gamma is None and n.bn.beta is None for n in norms)  # no own affine
    bns = [link for link in cbn.links() if isinstance(link, L.BatchNormalization)]
    assert len(bns) == len(norms)  # only the affine-free BNs inside the CBNs
    proj = testing.tiny_conditional_discriminator(mode='projection', n_classes=3)
    assert proj.embed.W.shape == (3, 8 * 2 * 2) == (3, proj.out.W.shape[1])
    concat = testing.tiny_conditional_discriminator(mode='concat', n_classes=3, channels=2)
    assert concat.convs[0].W.shape[1] == 2 + 3 and not hasattr(concat, 'embed')


def test_cbn_starts_as_plain_batch_norm():
    gen = testing.tiny_conditional_generator(mode='cbn', n_classes=3)
    for norm in [gen.bn0, *gen.bns]:
        np.testing.assert_array_equal(norm.gamma.W.array, 1)
        np.testing.assert_array_equal(norm.beta.W.array, 0)
    z = _z(3)
    np.testing.assert_array_equal(_eval(gen, z, _t(0, 0, 0)), _eval(gen, z, _t(1, 2, 0)))


def test_cbn_matches_hand_computation():
    cbn = ConditionalBatchNormalization(3, n_classes=2)
    rng = np.random.RandomState(0)
    cbn.gamma.W.array[...] = rng.uniform(0.5, 1.5, (2, 3))
    cbn.beta.W.array[...] = rng.uniform(-1, 1, (2, 3))
    x = rng.randn(4, 3, 2, 2).astype(np.float32)
    t = _t(0, 1, 1, 0)
    with chainer.using_config('train', True):
        y = cbn(x, t).array
    mean = x.mean(axis=(0, 2, 3), keepdims=True)
    var = x.var(axis=(0, 2, 3), keepdims=True)
    normed = (x - mean) / np.sqrt(var + cbn.bn.eps)
    gamma = cbn.gamma.W.array[t][:, :, None, None]
    beta = cbn.beta.W.array[t][:, :, None, None]
    np.testing.assert_allclose(y, gamma * normed + beta, rtol=1e-5, atol=1e-6)


# --- the label matters ----------------------------------------------------


@pytest.mark.parametrize('mode', GENERATOR_MODES)
def test_generator_label_changes_only_its_image(mode):
    gen = testing.tiny_conditional_generator(mode=mode, n_classes=3)
    _randomize_cbn(gen)
    z = np.repeat(_z(1), 3, axis=0)  # the same z three times
    x = _eval(gen, z, _t(0, 1, 2))
    for i in range(3):
        for j in range(i):
            # Fresh BN statistics keep the images tiny: compare relatively.
            assert not np.allclose(x[i], x[j], rtol=1e-3, atol=0), (i, j)
    # In eval mode each image depends on its own label only.
    x2 = _eval(gen, z, _t(0, 2, 2))
    np.testing.assert_allclose(x2[[0, 2]], x[[0, 2]], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(x2[1], x[2], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize('mode', DISCRIMINATOR_MODES)
def test_discriminator_label_changes_only_its_logit(mode):
    dis = testing.tiny_conditional_discriminator(mode=mode, n_classes=3)
    x = np.repeat(testing.fake_images(1), 3, axis=0)  # the same image three times
    y = _eval(dis, x, _t(0, 1, 2))
    assert len(set(y.tolist())) == 3
    y2 = _eval(dis, x, _t(0, 2, 2))
    np.testing.assert_allclose(y2[[0, 2]], y[[0, 2]], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(y2[1], y[2], rtol=1e-6, atol=1e-7)


# --- hand computations ----------------------------------------------------


@pytest.mark.parametrize('spectral_norm', [False, True])
@pytest.mark.parametrize('norm', ['batch', 'none'])
def test_projection_logit_is_linear_plus_inner_product(norm, spectral_norm):
    dis = testing.tiny_conditional_discriminator(
        mode='projection', n_classes=3, norm=norm, spectral_norm=spectral_norm
    )
    x, t = testing.fake_images(4, seed=1), _t(2, 0, 1, 2)
    y = _eval(dis, x, t)
    h = _eval(dis.features, x).reshape(4, -1)  # (B, widths[-1] * s0 * s0)
    if spectral_norm:
        # The links divide their weights by sigma before use (eval mode
        # does not move W_u, so these calls see what forward saw).
        linear = _eval(dis.out, h)[:, 0]
        embed = _eval(dis.embed, t)
    else:
        linear = h @ dis.out.W.array[0] + dis.out.b.array[0]
        embed = dis.embed.W.array[t]
    np.testing.assert_allclose(y, linear + np.sum(embed * h, axis=1), rtol=1e-5, atol=1e-6)


def test_concat_discriminator_sees_one_hot_maps():
    dis = testing.tiny_conditional_discriminator(mode='concat', n_classes=3, channels=2)
    x, t = testing.fake_images(4, channels=2), _t(2, 0, 1, 2)
    maps = np.zeros((4, 3, 8, 8), np.float32)
    maps[np.arange(4), t] = 1
    expected = _eval(dis.out, _eval(dis.features, np.concatenate([x, maps], axis=1)))
    np.testing.assert_array_equal(_eval(dis, x, t), expected[:, 0])


def test_concat_generator_projects_z_and_embedding():
    gen = testing.tiny_conditional_generator(mode='concat', n_classes=3)
    z, t = _z(4), _t(2, 0, 1, 2)
    h = np.concatenate([z, gen.embed.W.array[t]], axis=1)
    np.testing.assert_array_equal(_eval(gen, z, t), _eval(gen.generate, h))


# --- labels as input ------------------------------------------------------


@pytest.mark.parametrize(
    'make', [testing.tiny_conditional_generator, testing.tiny_conditional_discriminator]
)
def test_labels_as_variable_or_any_int_array(make):
    net = make()
    first = _z(4) if isinstance(net, ConditionalGenerator) else testing.fake_images(4)
    t = _t(1, 0, 1, 1)
    expected = _eval(net, first, t)
    np.testing.assert_array_equal(_eval(net, first, chainer.Variable(t)), expected)
    np.testing.assert_array_equal(_eval(net, first, t.astype(np.int64)), expected)
    np.testing.assert_array_equal(_eval(net, first, t.astype(np.uint8)), expected)
    with pytest.raises(
        ValueError, match=r't must have shape \(4,\) to match the batch, got \(3,\)'
    ):
        net(first, t[:3])
    with pytest.raises(ValueError, match=r't must have shape \(4,\).*got \(4, 1\)'):
        net(first, t[:, None])
    with pytest.raises(ValueError, match='t must hold integer class labels, got dtype float32'):
        net(first, t.astype(np.float32))


G, D = ConditionalGenerator, ConditionalDiscriminator
BAD = [
    (G, {'n_classes': 0}, 'n_classes must be a positive integer, got 0'),
    (D, {'n_classes': 2.5}, 'n_classes must be a positive integer, got 2.5'),
    (G, {'n_classes': 2, 'mode': 'projection'}, "mode 'projection'; valid ones are concat, cbn"),
    (D, {'n_classes': 2, 'mode': 'cbn'}, "unknown mode 'cbn'; valid ones are projection, concat"),
    (G, {'n_classes': 2, 'mode': 'cbn', 'n_embed': 5}, "n_embed is for mode 'concat' only"),
    (G, {'n_classes': 2, 'n_embed': 0}, 'n_embed must be a positive integer, got 0'),
    (D, {'n_classes': 2, 'norm': 'layer'}, "unknown norm 'layer'"),
]


@pytest.mark.parametrize('cls, kwargs, match', BAD)
def test_bad_arguments_raise(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(size=8, widths=[4], **kwargs)


# --- config and snapshots -------------------------------------------------

GEN_CASES = [
    {'mode': 'concat'},
    {'mode': 'concat', 'n_embed': 5, 'ksize': 5, 'channels': 3},
    {'mode': 'cbn'},
]
DIS_CASES = [
    {'mode': 'projection'},
    {'mode': 'projection', 'norm': 'none', 'spectral_norm': True, 'ksize': 5},
    {'mode': 'concat', 'channels': 3, 'spectral_norm': True},
    {'mode': 'concat', 'norm': 'none'},
]


def _gen(kwargs, seed=0):
    with global_seed(seed):
        return ConditionalGenerator(n_classes=3, size=8, n_hidden=N_HIDDEN, widths=[4, 8], **kwargs)


def _dis(kwargs, seed=0):
    with global_seed(seed):
        return ConditionalDiscriminator(n_classes=3, size=8, widths=[4, 8], **kwargs)


@pytest.mark.parametrize(
    'make, kwargs', [(_gen, k) for k in GEN_CASES] + [(_dis, k) for k in DIS_CASES]
)
def test_config_round_trip(make, kwargs):
    net = make(kwargs)
    config = net.config()
    assert config.items() >= kwargs.items()
    assert config == json.loads(json.dumps(config))
    assert config['arch'] == 'conditional' and config['n_classes'] == 3
    build = build_generator if isinstance(net, ConditionalGenerator) else build_discriminator
    rebuilt = build(config)
    assert type(rebuilt) is type(net) and rebuilt.config() == config
    assert {k: v.shape for k, v in _state(rebuilt).items()} == {
        k: v.shape for k, v in _state(net).items()
    }
    # The constructor takes everything but the arch key.
    kwargs = {k: v for k, v in config.items() if k != 'arch'}
    assert type(net)(**kwargs).config() == config


def test_config_keys():
    assert _gen({'mode': 'concat'}).config() == {
        'arch': 'conditional',
        'n_classes': 3,
        'size': 8,
        'channels': 1,
        'n_hidden': N_HIDDEN,
        'widths': [4, 8],
        'ksize': 4,
        'mode': 'concat',
        'n_embed': 3,  # defaults to n_classes
    }
    assert _gen({'mode': 'cbn'}).config()['n_embed'] is None
    assert _dis({}).config() == {
        'arch': 'conditional',
        'n_classes': 3,
        'size': 8,
        'channels': 1,
        'widths': [4, 8],
        'ksize': 4,
        'norm': 'batch',
        'spectral_norm': False,
        'mode': 'projection',
    }


@pytest.mark.parametrize('kwargs', GEN_CASES)
def test_generator_snapshot_round_trip(tmp_path, kwargs):
    gen = _gen(kwargs, seed=1)
    _randomize_cbn(gen)
    z, t = _z(4, seed=2), _t(0, 2, 1, 0)
    gen(z, t)  # moves the BN running statistics
    path = str(tmp_path / 'gen.npz')
    chainer.serializers.save_npz(path, gen)
    rebuilt = build_generator(json.loads(json.dumps(gen.config())))
    assert not np.array_equal(_eval(rebuilt, z, t), _eval(gen, z, t))
    chainer.serializers.load_npz(path, rebuilt)
    np.testing.assert_array_equal(_eval(rebuilt, z, t), _eval(gen, z, t))


@pytest.mark.parametrize('kwargs', DIS_CASES)
def test_discriminator_snapshot_round_trip(tmp_path, kwargs):
    dis = _dis(kwargs, seed=1)
    x, t = testing.fake_images(4, channels=dis.channels), _t(0, 2, 1, 0)
    for _ in range(3):  # moves BN statistics and spectral norm's W_u
        dis(x, t)
    path = str(tmp_path / 'dis.npz')
    chainer.serializers.save_npz(path, dis)
    with global_seed(7):
        rebuilt = build_discriminator(json.loads(json.dumps(dis.config())))
    chainer.serializers.load_npz(path, rebuilt)
    saved, loaded = _state(dis), _state(rebuilt)
    assert saved.keys() == loaded.keys()
    if dis.spectral_norm:
        assert {'convs/0/W_u', 'out/W_u'} <= saved.keys()
        assert ('embed/W_u' in saved) == (dis.mode == 'projection')
    for name in saved:
        np.testing.assert_array_equal(loaded[name], saved[name], err_msg=name)
    np.testing.assert_array_equal(_eval(rebuilt, x, t), _eval(dis, x, t))
    np.testing.assert_array_equal(rebuilt(x, t).array, dis(x, t).array)  # train mode too


def test_spectral_norm_covers_the_projection_embedding():
    dis = testing.tiny_conditional_discriminator(spectral_norm=True)
    hooked = [link for link in dis.links(skipself=True) if link.local_link_hooks]
    assert hooked == [
        link
        for link in dis.links(skipself=True)
        if isinstance(link, (L.Convolution2D, L.Linear, L.EmbedID))
    ]
    assert dis.embed in hooked


# --- gradients ------------------------------------------------------------


@pytest.mark.parametrize('g_mode', GENERATOR_MODES)
@pytest.mark.parametrize('d_mode', DISCRIMINATOR_MODES)
def test_backward_reaches_only_the_classes_present(g_mode, d_mode):
    gen = testing.tiny_conditional_generator(mode=g_mode, n_classes=4)
    dis = testing.tiny_conditional_discriminator(mode=d_mode, n_classes=4)
    t = _t(0, 2, 2, 0)  # classes 1 and 3 are absent
    loss = F.sum(F.softplus(-dis(testing.fake_images(4), t))) + F.sum(
        F.softplus(dis(gen(_z(4), t), t))
    )
    gen.cleargrads()
    dis.cleargrads()
    loss.backward()
    for net in (gen, dis):
        for name, param in net.namedparams():
            assert param.grad is not None and np.isfinite(param.grad).all(), name

    def check_rows(grad, axis=0):
        rows = np.abs(np.moveaxis(grad, axis, 0)).reshape(4, -1).sum(axis=1)
        assert (rows[[0, 2]] > 0).all() and (rows[[1, 3]] == 0).all(), rows

    if g_mode == 'concat':
        check_rows(gen.embed.W.grad)
    else:
        for norm in [gen.bn0, *gen.bns]:
            check_rows(norm.gamma.W.grad)
            check_rows(norm.beta.W.grad)
    if d_mode == 'projection':
        check_rows(dis.embed.W.grad)
    else:
        # The label maps are input channels 1..4 of the first conv (after
        # the one image channel); an absent class's map is all zeros.
        check_rows(dis.convs[0].W.grad[:, 1:], axis=1)


# --- gan_trainer.testing --------------------------------------------------

TINY = [testing.tiny_conditional_generator, testing.tiny_conditional_discriminator]


@pytest.mark.parametrize('make', TINY)
def test_tiny_conditional_nets_seeded(make):
    a, b, c = _state(make(seed=1)), _state(make(seed=1)), _state(make(seed=2))
    assert a.keys() == b.keys() == c.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    assert any(not np.array_equal(a[k], c[k]) for k in a if k.endswith('/W'))


@pytest.mark.parametrize('make', TINY)
def test_tiny_conditional_nets_keep_global_rng(make):
    np.random.seed(123)
    expected = np.random.rand(3)
    np.random.seed(123)
    make(seed=5)
    np.testing.assert_array_equal(np.random.rand(3), expected)


def test_tiny_conditional_nets_train_on_fake_dataset():
    data = testing.fake_dataset(8, n_classes=3, channels=3)
    x, t = chainer.dataset.concat_examples(data[:])
    gen = testing.tiny_conditional_generator(n_classes=3, channels=3, mode='cbn')
    dis = testing.tiny_conditional_discriminator(n_classes=3, channels=3, spectral_norm=True)
    assert gen(_z(8), t).shape == x.shape
    assert dis(x, t).shape == (8,)


@pytest.mark.gpu
@pytest.mark.parametrize('g_mode', GENERATOR_MODES)
@pytest.mark.parametrize('d_mode', DISCRIMINATOR_MODES)
def test_cupy_matches_numpy(g_mode, d_mode):
    cupy = pytest.importorskip('cupy')
    gen = testing.tiny_conditional_generator(mode=g_mode, n_classes=3)
    dis = testing.tiny_conditional_discriminator(mode=d_mode, n_classes=3, spectral_norm=True)
    _randomize_cbn(gen)
    z, t = _z(4), _t(2, 0, 1, 2)
    expected = _eval(dis, _eval(gen, z, t), t)
    gen.to_device('@cupy:0')
    dis.to_device('@cupy:0')
    z_gpu, t_gpu = cupy.asarray(z), cupy.asarray(t)
    y = _eval(dis, _eval(gen, z_gpu, t_gpu), chainer.Variable(t_gpu))
    assert isinstance(y, cupy.ndarray)
    np.testing.assert_allclose(cupy.asnumpy(y), expected, rtol=1e-4, atol=1e-5)
