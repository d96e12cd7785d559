"""Tests for gan_trainer.nets (DCGAN) and the gan_trainer.testing helpers.

The class-conditional nets have their own tests/test_conditional_nets.py.
"""

import json

import chainer
import chainer.functions as F
import chainer.links as L
import numpy as np
import pytest
from chainer.link_hooks import SpectralNormalization

from gan_trainer import testing
from gan_trainer.latent import global_seed
from gan_trainer.nets import (
    NETS,
    Discriminator,
    Generator,
    build_discriminator,
    build_generator,
)
from gan_trainer.nets.dcgan import NORMS, default_n_stages, resolve_widths

# size -> stride-2 stages of the default widths (the documented rule).
STAGES = {28: 2, 32: 3, 64: 4, 128: 5}


def _z(batch, n_hidden=100, seed=0):
    return np.random.RandomState(seed).randn(batch, n_hidden).astype(np.float32)


def _params(link):
    return {name: p.array for name, p in sorted(link.namedparams())}


def _state(link):
    # What save_npz writes: parameters plus persistent values (running BN
    # statistics, spectral normalization's W_u vectors).
    serializer = chainer.serializers.DictionarySerializer()
    serializer.save(link)
    return serializer.target


@pytest.mark.parametrize('size', sorted(STAGES))
@pytest.mark.parametrize('channels', [1, 3])
@pytest.mark.parametrize('ksize', [4, 5])
def test_output_shapes_and_range(size, channels, ksize):
    gen = Generator(size=size, channels=channels, base_width=4, ksize=ksize)
    dis = Discriminator(size=size, channels=channels, base_width=4, ksize=ksize)
    x = gen(_z(3))
    assert x.shape == (3, channels, size, size)
    assert x.dtype == np.float32
    assert np.all(np.abs(x.array) <= 1)
    y = dis(x)
    assert y.shape == (3,)


@pytest.mark.parametrize('size', sorted(STAGES))
def test_default_stage_count(size):
    n = STAGES[size]
    assert default_n_stages(size) == n
    gen = Generator(size=size, base_width=2)
    dis = Discriminator(size=size, base_width=2)
    assert gen.widths == dis.widths == tuple(2 * 2**i for i in range(n))
    assert len(gen.deconvs) == len(dis.convs) == n
    assert gen.start_side == dis.start_side == size // 2**n


def test_default_widths_at_64():
    # base_width 64 is the PyTorch/Chainer DCGAN examples' ndf = 64; 128
    # gives the paper's 64x64 G, 4x4x1024 -> 8x8x512 -> 16x16x256 -> 32x32x128.
    assert resolve_widths(64) == (64, 128, 256, 512)
    assert resolve_widths(64, base_width=128) == (128, 256, 512, 1024)


@pytest.mark.parametrize('channels', [1, 3])
def test_explicit_widths_honoured(channels):
    widths = [4, 8, 16]
    gen = Generator(size=32, channels=channels, widths=widths, n_hidden=5)
    dis = Discriminator(size=32, channels=channels, widths=widths)
    assert [c.W.shape[0] for c in dis.convs] == widths
    assert dis.convs[0].W.shape[1] == channels
    # Deconvolution2D.W is (in, out, kh, kw): G walks the widths backwards.
    assert [d.W.shape[1] for d in gen.deconvs] == [8, 4, channels]
    assert gen.deconvs[0].W.shape[0] == 16
    assert gen.project.W.shape == (16 * 4 * 4, 5)
    assert dis.out.W.shape == (1, 16 * 4 * 4)


@pytest.mark.parametrize(
    'size, widths, match',
    [
        (30, [4, 8], 'size 30 cannot be built with 2 stride-2 stages.*multiple of 4'),
        (28, [4, 8, 16], 'size 28 cannot be built with 3 stride-2 stages'),
        (4, [4, 8], 'size 4 cannot be built with 2 stride-2 stages'),
        (7, None, 'size 7 cannot be built with the default widths'),
        (28, [], 'widths must be a non-empty list'),
        (28, [4, 0], 'widths must be a non-empty list of positive integers'),
    ],
)
@pytest.mark.parametrize('cls', [Generator, Discriminator])
def test_bad_size_raises(cls, size, widths, match):
    with pytest.raises(ValueError, match=match):
        cls(size=size, widths=widths)


@pytest.mark.parametrize('ksize', [2, 6, True])
@pytest.mark.parametrize('cls', [Generator, Discriminator])
def test_bad_ksize_raises(cls, ksize):
    with pytest.raises(ValueError, match=f'ksize {ksize!r} does not fit .*valid ones are 3, 4, 5'):
        cls(size=8, widths=[4], ksize=ksize)


def test_init_statistics():
    # 64 x 128 x 4 x 4 = 131072 draws: the sample std is within ~0.4% of
    # the true one, so 5% tolerance never flakes yet catches a wrong init.
    # Seeded (via the testing helpers) so the check is deterministic.
    gen = testing.tiny_generator(size=28, n_hidden=100, widths=[64, 128])
    dis = testing.tiny_discriminator(size=28, widths=[64, 128])
    for w in (
        dis.convs[1].W.array,
        gen.deconvs[0].W.array,
        gen.project.W.array,
        dis.out.W.array,
    ):
        assert w.std() == pytest.approx(0.02, rel=0.05)
        assert abs(w.mean()) < 1e-3
    assert not gen.project.b.array.any()  # biases start at zero
    assert not dis.convs[0].b.array.any()
    gammas = np.concatenate([bn.gamma.array for bn in dis.bns] + [gen.bn0.gamma.array])
    assert gammas.mean() == pytest.approx(1, abs=0.01)
    assert 0.01 < gammas.std() < 0.03


def test_discriminator_has_no_bn_on_first_layer():
    dis = Discriminator(size=32, widths=[4, 8, 16])
    bns = list(dis.bns)
    assert len(bns) == len(dis.convs) - 1
    # bns[i] normalizes convs[i + 1]'s output, so conv 0 goes straight to
    # the LeakyReLU.
    assert [bn.gamma.shape[0] for bn in bns] == [8, 16]
    assert all(isinstance(bn, L.BatchNormalization) for bn in bns)
    names = {name for name, _ in dis.namedlinks(skipself=True)}
    assert names == {
        '/convs',
        '/convs/0',
        '/convs/1',
        '/convs/2',
        '/bns',
        '/bns/0',
        '/bns/1',
        '/out',
    }


def test_generator_ends_with_tanh():
    gen = Generator(size=8, widths=[4, 8], n_hidden=4)
    # Huge output weights would push a linear output far beyond 1.
    gen.deconvs[-1].W.array[...] *= 1e4
    x = gen(_z(4, n_hidden=4)).array
    assert np.all(np.abs(x) <= 1)
    assert np.abs(x).max() > 0.99
    assert len(gen.bns) == len(gen.deconvs) - 1  # no BN on the output


def test_generator_accepts_4d_z():
    gen = testing.tiny_generator()
    z = _z(2, n_hidden=4)
    with chainer.using_config('train', False):
        np.testing.assert_array_equal(gen(z).array, gen(z.reshape(2, 4, 1, 1)).array)
    with pytest.raises(ValueError, match=r'z must have shape \(B, 4\)'):
        gen(_z(2, n_hidden=5))


def test_discriminator_rejects_wrong_image_shape():
    dis = testing.tiny_discriminator()
    with pytest.raises(ValueError, match=r'x must have shape \(B, 1, 8, 8\)'):
        dis(testing.fake_images(2, size=16))


def test_no_make_hidden():
    # The updater draws z itself; make_hidden would override it by contract.
    assert not hasattr(Generator, 'make_hidden')


@pytest.mark.parametrize(
    'cls, kwargs',
    [
        (
            Generator,
            {'size': 32, 'channels': 3, 'n_hidden': 7, 'widths': [4, 8], 'ksize': 5},
        ),
        (Generator, {'size': 28, 'base_width': 4}),
        (Discriminator, {'size': 32, 'channels': 3, 'widths': [4, 8], 'ksize': 5}),
        (Discriminator, {'size': 28, 'base_width': 4}),
        (Discriminator, {'size': 16, 'widths': [4, 8], 'norm': 'none'}),
        (
            Discriminator,
            {'size': 16, 'widths': [4, 8], 'norm': 'none', 'spectral_norm': True},
        ),
        (Discriminator, {'size': 16, 'widths': [4, 8], 'spectral_norm': True}),
    ],
)
def test_config_round_trip(cls, kwargs):
    net = cls(**kwargs)
    config = net.config()
    assert config == json.loads(json.dumps(config))
    assert config.items() >= {k: v for k, v in kwargs.items() if k != 'base_width'}.items()
    rebuilt = cls(**config)
    assert {k: v.shape for k, v in _params(rebuilt).items()} == {
        k: v.shape for k, v in _params(net).items()
    }
    assert _state(rebuilt).keys() == _state(net).keys()
    build = build_generator if cls is Generator else build_discriminator
    assert type(build(dict(config, arch='dcgan'))) is cls
    assert type(build(config)) is cls


@pytest.mark.parametrize('build', [build_generator, build_discriminator])
def test_build_unknown_arch(build):
    config = {'arch': 'nope', 'size': 8}
    with pytest.raises(ValueError, match=r"unknown arch 'nope'.*dcgan"):
        build(config)
    assert config == {'arch': 'nope', 'size': 8}  # not mutated
    assert set(NETS) == {'dcgan', 'conditional', 'resnet', 'autoencoder', 'began'}


@pytest.mark.parametrize('ksize', [4, 5])
def test_backward_reaches_every_parameter(ksize):
    gen = Generator(size=8, channels=3, n_hidden=4, widths=[4, 8], ksize=ksize)
    dis = Discriminator(size=8, channels=3, widths=[4, 8], ksize=ksize)
    real = testing.fake_images(4, channels=3)
    loss = F.sum(F.softplus(-dis(real))) + F.sum(F.softplus(dis(gen(_z(4, n_hidden=4)))))
    gen.cleargrads()
    dis.cleargrads()
    loss.backward()
    for net in (gen, dis):
        for name, param in net.namedparams():
            assert param.grad is not None, name
            assert np.isfinite(param.grad).all(), name


# --- gan_trainer.testing -------------------------------------------------


@pytest.mark.parametrize('make', [testing.tiny_generator, testing.tiny_discriminator])
def test_tiny_nets_seeded(make):
    a, b, c = make(seed=1), make(seed=1), make(seed=2)
    pa, pb, pc = _params(a), _params(b), _params(c)
    assert pa.keys() == pb.keys() == pc.keys()
    for name in pa:
        np.testing.assert_array_equal(pa[name], pb[name])
    assert any(not np.array_equal(pa[k], pc[k]) for k in pa if k.endswith('/W'))


@pytest.mark.parametrize('make', [testing.tiny_generator, testing.tiny_discriminator])
def test_tiny_nets_keep_global_rng(make):
    np.random.seed(123)
    expected = np.random.rand(3)
    np.random.seed(123)
    make(seed=5)
    np.testing.assert_array_equal(np.random.rand(3), expected)


def test_tiny_nets_work_together():
    gen, dis = (
        testing.tiny_generator(channels=3),
        testing.tiny_discriminator(channels=3),
    )
    assert isinstance(gen, Generator) and isinstance(dis, Discriminator)
    x = gen(_z(4, n_hidden=4))
    assert x.shape == (4, 3, 8, 8)
    assert dis(x).shape == (4,)


@pytest.mark.parametrize('size, channels', [(8, 1), (16, 3), (5, 2)])
def test_fake_images(size, channels):
    state = np.random.get_state()
    x = testing.fake_images(6, size=size, channels=channels, seed=3)
    assert np.array_equal(np.random.get_state()[1], state[1])
    assert x.shape == (6, channels, size, size) and x.dtype == np.float32
    assert x.min() == -1 and 0.5 <= x.max() <= 1
    assert (x > 0).any(axis=(1, 2, 3)).all()  # every image has a square
    np.testing.assert_array_equal(x, testing.fake_images(6, size=size, channels=channels, seed=3))
    assert not np.array_equal(x, testing.fake_images(6, size=size, channels=channels, seed=4))


@pytest.mark.parametrize('n_classes', [1, 2, 5])
def test_fake_dataset(n_classes):
    ds = testing.fake_dataset(20, size=8, channels=3, n_classes=n_classes)
    assert len(ds) == 20
    images, labels = chainer.dataset.concat_examples(ds[:])
    assert images.shape == (20, 3, 8, 8) and images.dtype == np.float32
    assert labels.dtype == np.int32
    assert set(labels) <= set(range(n_classes))
    assert images.min() >= -1 and images.max() <= 1
    # The label sets the square's brightness.
    expected = -1 + 2 * (labels + 1) / n_classes
    np.testing.assert_allclose(images.max(axis=(1, 2, 3)), expected, atol=1e-6)


@pytest.mark.parametrize('kwargs', [{'n': -1}, {'n': 2, 'size': 0}, {'n': 2, 'channels': 0}])
def test_fake_images_bad_args(kwargs):
    with pytest.raises(ValueError, match='need n >= 0'):
        testing.fake_images(**kwargs)


# --- Discriminator options: norm and spectral_norm ------------------------


def _sn_links(dis):
    """Yields ``(link, hook)`` for each spectrally normalized link of ``dis``."""
    for link in dis.links(skipself=True):
        for hook in link.local_link_hooks.values():
            if isinstance(hook, SpectralNormalization):
                yield link, hook


def _used_sigma_max(link, hook):
    # The last forward pass used W / (u^T W v) with the u it stored in W_u
    # and the v it kept on the hook: the largest singular value of that.
    w = hook.reshape_W(link.W.array)
    used = w / (link.W_u @ w @ hook.v)
    return np.linalg.svd(used, compute_uv=False)[0]


@pytest.mark.parametrize('norm', NORMS)
def test_spectral_norm_hooks_every_conv_and_linear(norm):
    dis = testing.tiny_discriminator(size=16, norm=norm, spectral_norm=True)
    hooked = [link for link, _ in _sn_links(dis)]
    weighted = [
        link for link in dis.links(skipself=True) if isinstance(link, (L.Convolution2D, L.Linear))
    ]
    assert hooked == weighted and len(hooked) == len(dis.convs) + 1
    assert all(len(link.local_link_hooks) == 1 for link in hooked)
    assert not list(_sn_links(testing.tiny_discriminator(size=16, norm=norm)))


@pytest.mark.parametrize('norm', NORMS)
def test_spectral_norm_bounds_largest_singular_value(norm):
    dis = testing.tiny_discriminator(size=16, norm=norm, spectral_norm=True)
    x = testing.fake_images(4, size=16)
    # N(0, 0.02) weights are far from unit norm, so the check means something.
    raw = [
        np.linalg.svd(h.reshape_W(link.W.array), compute_uv=False)[0] for link, h in _sn_links(dis)
    ]
    assert max(raw) < 0.5
    with chainer.using_config('train', True):
        dis(x)
        # One power iteration underestimates sigma, so W / sigma is too big.
        first = [_used_sigma_max(link, h) for link, h in _sn_links(dis)]
        for _ in range(20):  # each train-mode pass is one more iteration
            dis(x)
    assert max(first) > 1.05
    for link, hook in _sn_links(dis):
        assert _used_sigma_max(link, hook) == pytest.approx(1, abs=0.01), link.name


def test_spectral_norm_vector_is_updated_in_train_mode_only():
    dis = testing.tiny_discriminator(norm='none', spectral_norm=True)
    x = testing.fake_images(4)
    u0 = dis.convs[0].W_u.copy()
    with chainer.using_config('train', False):
        dis(x)
    np.testing.assert_array_equal(dis.convs[0].W_u, u0)
    dis(x)
    assert not np.array_equal(dis.convs[0].W_u, u0)


@pytest.mark.parametrize('norm', NORMS)
def test_spectral_norm_snapshot_round_trip(tmp_path, norm):
    dis = testing.tiny_discriminator(norm=norm, spectral_norm=True, seed=1)
    x = testing.fake_images(4)
    for _ in range(3):  # move W_u (and BN statistics) away from their start
        dis(x)
    path = str(tmp_path / 'dis.npz')
    chainer.serializers.save_npz(path, dis)
    with np.load(path) as saved:
        assert {'convs/0/W_u', 'convs/1/W_u', 'out/W_u'} <= set(saved.files)
        np.testing.assert_array_equal(saved['out/W_u'], dis.out.W_u)

    # A fresh net from the config, with other weights and start vectors.
    with chainer.using_config('train', False):
        before = dis(x).array
    with global_seed(2):
        rebuilt = build_discriminator(json.loads(json.dumps(dis.config())))
    assert rebuilt.spectral_norm and rebuilt.norm == norm
    assert not np.array_equal(rebuilt.convs[0].W_u, dis.convs[0].W_u)
    chainer.serializers.load_npz(path, rebuilt)
    saved, loaded = _state(dis), _state(rebuilt)
    assert saved.keys() == loaded.keys()
    for name in saved:
        np.testing.assert_array_equal(loaded[name], saved[name], err_msg=name)
    with chainer.using_config('train', False):
        np.testing.assert_array_equal(rebuilt(x).array, before)
    # Train mode updates W_u (and uses batch statistics) identically.
    np.testing.assert_array_equal(rebuilt(x).array, dis(x).array)
    np.testing.assert_array_equal(rebuilt.out.W_u, dis.out.W_u)


def test_norm_none_has_no_batch_norm():
    dis = Discriminator(size=16, widths=[4, 8], norm='none')
    assert not [link for link in dis.links() if isinstance(link, L.BatchNormalization)]
    assert len(dis.bns) == 0
    assert set(_params(dis)) == {
        '/convs/0/W',
        '/convs/0/b',
        '/convs/1/W',
        '/convs/1/b',
        '/out/W',
        '/out/b',
    }
    # Without batch statistics each example's score is its own, which the
    # per-example WGAN-GP gradient penalty relies on.
    x = testing.fake_images(4, size=16)
    with chainer.using_config('train', True):
        np.testing.assert_allclose(dis(x).array[:1], dis(x[:1]).array, rtol=1e-6)


def test_old_configs_build_the_old_architecture():
    # A config.json written before norm and spectral_norm existed.
    old = {'size': 8, 'channels': 1, 'widths': [4, 8], 'ksize': 4}
    dis = build_discriminator(old)
    assert dis.norm == 'batch' and dis.spectral_norm is False
    assert dis.config() == dict(old, norm='batch', spectral_norm=False)
    assert len(dis.bns) == 1 and not list(_sn_links(dis))
    # Exactly what snapshots of that time hold, so they load strictly.
    bn = [f'bns/0/{k}' for k in ('gamma', 'beta', 'avg_mean', 'avg_var', 'N')]
    assert set(_state(dis)) == {
        'convs/0/W',
        'convs/0/b',
        'convs/1/W',
        'convs/1/b',
        'out/W',
        'out/b',
        *bn,
    }


@pytest.mark.parametrize('norm', ['layer', 'Batch', None])
def test_bad_norm_raises(norm):
    with pytest.raises(ValueError, match=f'unknown norm {norm!r}; valid ones are batch, none'):
        Discriminator(size=8, widths=[4], norm=norm)
