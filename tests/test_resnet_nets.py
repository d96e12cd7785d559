"""gan_trainer.nets.resnet: SNGAN's ResNet G and D, plain and class-conditional."""

import json

import chainer
import chainer.functions as F
import chainer.links as L
import numpy as np
import pytest
from chainer.link_hooks import SpectralNormalization
from helpers import here

from gan_trainer import GANUpdater
from gan_trainer.files import write_json
from gan_trainer.latent import global_seed
from gan_trainer.nets import NETS, build_discriminator, build_generator
from gan_trainer.nets.resnet import (
    DEFAULTS,
    ResNetDiscriminator,
    ResNetGenerator,
    default_widths,
    downsample,
    upsample,
)
from gan_trainer.penalties import R1
from gan_trainer.testing import fake_dataset, fake_images


def tiny(size=8, channels=1, n_classes=None, seed=0):
    """A tiny pair: G 4x4 -> 8x8 (widths 8, 4), D widths 4, 8 (one downsampling block)."""
    with global_seed(seed):
        gen = ResNetGenerator(size=size, channels=channels, n_hidden=4, widths=[8, 4],
                              n_classes=n_classes)
        dis = ResNetDiscriminator(size=size, channels=channels, widths=[4, 8],
                                  n_classes=n_classes)
    return gen, dis


def z(batch, n_hidden=4, seed=0):
    return np.random.RandomState(seed).randn(batch, n_hidden).astype(np.float32)


def evaluate(net, *args):
    with chainer.using_config('train', False), chainer.no_backprop_mode():
        return net(*args).array


def test_default_widths_are_the_papers():
    assert default_widths(32) == ((256,) * 4, (128,) * 4)  # CIFAR-10, Table 4
    assert default_widths(48) == ((512, 256, 128, 64), (64, 128, 256, 512, 1024))  # STL-10
    assert default_widths(64) == ((1024, 512, 256, 128, 64), (64, 128, 256, 512, 1024))
    assert default_widths(128) == ((1024, 1024, 512, 256, 128, 64),
                                   (64, 128, 256, 512, 1024, 1024))
    assert default_widths(28) == ((256,) * 3, (128,) * 4)
    assert default_widths(32, base_width=16) == ((32,) * 4, (16,) * 4)
    assert default_widths(64, base_width=2) == ((32, 16, 8, 4, 2), (2, 4, 8, 16, 32))
    assert {size: DEFAULTS[size][3] for size in DEFAULTS} == {28: 2, 32: 2, 48: 4, 64: 5, 128: 5}


# size -> (G start side, D's last side)
SIDES = {28: (7, 7), 32: (4, 8), 48: (6, 3), 64: (4, 2), 128: (4, 4)}


@pytest.mark.parametrize('size', sorted(SIDES))
@pytest.mark.parametrize('channels', [1, 3])
def test_output_shapes_for_each_size(size, channels):
    gen = ResNetGenerator(size=size, channels=channels, n_hidden=8, base_width=1)
    dis = ResNetDiscriminator(size=size, channels=channels, base_width=1)
    assert gen.start_side == SIDES[size][0]
    assert len(gen.blocks) == len(default_widths(size)[0]) - 1
    x = gen(z(2, 8))
    assert x.shape == (2, channels, size, size) and x.dtype == np.float32
    assert np.all(np.abs(x.array) <= 1)
    h = x
    for block in dis.blocks:
        h = block(h)
    assert h.shape[2:] == (SIDES[size][1],) * 2
    assert dis(x).shape == (2,)


def test_upsample_and_downsample_by_hand():
    x = np.arange(8, dtype=np.float32).reshape(1, 2, 2, 2)
    up = upsample(x).array
    np.testing.assert_array_equal(up[0, 1], [[4, 4, 5, 5], [4, 4, 5, 5], [6, 6, 7, 7],
                                             [6, 6, 7, 7]])
    np.testing.assert_array_equal(downsample(up).array, x)
    np.testing.assert_array_equal(downsample(x).array, [[[[1.5]], [[5.5]]]])


def test_blocks_are_the_references():
    gen, _ = tiny()
    dis = ResNetDiscriminator(size=8, widths=[4, 8], spectral_norm=False)  # fixed weights
    h = np.random.RandomState(1).randn(3, 8, 4, 4).astype(np.float32)
    block = gen.blocks[0]
    expect = block.c1(upsample(F.relu(block.b1(h))))
    expect = block.c2(F.relu(block.b2(expect))) + block.c_sc(upsample(h))
    np.testing.assert_allclose(block(h).array, expect.array, rtol=1e-5, atol=1e-6)
    # D's first block: no ReLU in front, the shortcut pools first.
    x = fake_images(3)
    first = dis.blocks[0]
    expect = downsample(first.c2(F.relu(first.c1(x)))) + first.c_sc(downsample(x))
    np.testing.assert_allclose(first(x).array, expect.array, rtol=1e-5, atol=1e-6)
    assert first.first and first.downsample
    second = dis.blocks[1]  # 4 -> 8 channels, same side: a 1x1 shortcut, no pooling
    assert second.learnable_sc and not second.downsample


def _sn_hook(link):
    hooks = [h for h in link.local_link_hooks.values() if isinstance(h, SpectralNormalization)]
    return hooks[0] if len(hooks) == 1 else None


def _used_sigma_max(link, hook):
    """Largest singular value of the weight the hook makes ``link`` use."""
    w = hook.reshape_W(link.W.array)
    return np.linalg.svd(w / (link.W_u @ w @ hook.v), compute_uv=False)[0]


def test_discriminator_has_spectral_norm_on_every_weight_and_no_batch_norm():
    _, dis = tiny(n_classes=3)
    weighted = [link for link in dis.links(skipself=True)
                if isinstance(link, (L.Convolution2D, L.Linear, L.EmbedID))]
    assert len(weighted) == 3 + 3 + 2  # c1, c2, c_sc per block; out and the projection
    assert all(_sn_hook(link) is not None for link in weighted)
    assert not any(isinstance(link, L.BatchNormalization) for link in dis.links())
    x, t = fake_images(4), np.array([0, 1, 2, 0], np.int32)
    for _ in range(30):  # one power iteration per train-mode forward pass
        dis(x, t)
    for link in weighted:
        assert _used_sigma_max(link, _sn_hook(link)) == pytest.approx(1, abs=0.02), link.name
    plain = ResNetDiscriminator(size=8, widths=[4, 8], spectral_norm=False)
    assert not any(link.local_link_hooks for link in plain.links(skipself=True))


def test_conditional_generator_label_changes_its_image_only():
    gen, _ = tiny(n_classes=3)
    for block in gen.blocks:  # CBN starts as plain BN: move its per-class scales apart
        for norm in (block.b1, block.b2):
            norm.gamma.W.array[:] = np.random.RandomState(2).uniform(0.5, 1.5, norm.gamma.W.shape)
    codes = z(4)
    a = evaluate(gen, codes, np.array([0, 1, 2, 0], np.int32))
    b = evaluate(gen, codes, np.array([0, 1, 2, 1], np.int32))
    np.testing.assert_array_equal(a[:3], b[:3])
    assert not np.allclose(a[3], b[3])
    with pytest.raises(ValueError, match='call it with labels t'):
        gen(codes)
    with pytest.raises(ValueError, match='unconditional'):
        tiny()[0](codes, np.zeros(4, np.int32))


def test_projection_logit_is_linear_plus_inner_product():
    # Without spectral norm the weights used are the stored ones.
    with global_seed(2):
        dis = ResNetDiscriminator(size=8, widths=[4, 8], n_classes=3, spectral_norm=False)
    x, t = fake_images(4), np.array([0, 1, 2, 1], np.int32)
    h = x
    for block in dis.blocks:
        h = block(h)
    h = F.sum(F.relu(h), axis=(2, 3)).array  # (4, 8)
    expect = h @ dis.out.W.array[0] + dis.out.b.array[0] + np.sum(dis.embed.W.array[t] * h, 1)
    np.testing.assert_allclose(dis(x, t).array, expect, rtol=1e-5, atol=1e-6)
    assert not np.allclose(dis(x, t[::-1].copy()).array, expect)


@pytest.mark.parametrize('n_classes', [None, 3])
def test_snapshot_round_trip_through_config(tmp_path, n_classes):
    gen, dis = tiny(n_classes=n_classes, seed=1)
    t = None if n_classes is None else np.array([0, 2, 1, 0], np.int32)
    args = () if t is None else (t,)
    gen(z(4), *args)  # moves BN statistics
    x = fake_images(4)
    for _ in range(3):  # and spectral norm's vectors
        dis(x, *args)
    for net, build, inputs in ((gen, build_generator, (z(4), *args)),
                               (dis, build_discriminator, (x, *args))):
        path = str(tmp_path / 'net.npz')
        chainer.serializers.save_npz(path, net)
        config = json.loads(json.dumps(net.config()))
        assert config['arch'] == 'resnet' and config['n_classes'] == n_classes
        with global_seed(7):
            rebuilt = build(config)
        assert type(rebuilt) is type(net)
        assert not np.array_equal(evaluate(rebuilt, *inputs), evaluate(net, *inputs))
        chainer.serializers.load_npz(path, rebuilt)
        np.testing.assert_array_equal(evaluate(rebuilt, *inputs), evaluate(net, *inputs))
    assert NETS['resnet'] == (ResNetGenerator, ResNetDiscriminator)


@pytest.mark.parametrize('n_classes', [None, 2])
def test_one_updater_step_with_hinge_loss_and_r1_gives_finite_losses(n_classes):
    gen, dis = tiny(n_classes=n_classes)
    opts = {}
    for name, net in (('gen', gen), ('dis', dis)):
        opts[name] = chainer.optimizers.Adam(2e-4, beta1=0.0, beta2=0.9)
        opts[name].setup(net)
    data = fake_dataset(8) if n_classes else fake_images(8)
    it = chainer.iterators.SerialIterator(data, 4, shuffle=False)
    updater = GANUpdater(it, opts, loss='hinge', penalty=R1(1.0), seed=0,
                         conditional=n_classes is not None, augment='translation')
    before = {name: p.array.copy() for name, p in gen.namedparams()}
    reporter = chainer.Reporter()
    reporter.add_observer('gen', gen)
    reporter.add_observer('dis', dis)
    observation = {}
    with reporter.scope(observation):
        updater.update()
    for key in ('gen/loss', 'dis/loss', 'dis/penalty'):
        assert np.isfinite(float(getattr(observation[key], 'array', observation[key]))), key
    assert any(not np.array_equal(p.array, before[name]) for name, p in gen.namedparams())


def test_bad_arguments_are_one_line_errors():
    cases = [
        (lambda: ResNetGenerator(size=40), 'size 40 has no default ResNet widths'),
        (lambda: ResNetGenerator(size=12, widths=[8, 4, 2, 1]), 'size 12 cannot be built'),
        (lambda: ResNetDiscriminator(size=8, widths=[4, 8], n_down=3), 'n_down must be'),
        (lambda: ResNetDiscriminator(size=12, widths=[4, 4, 4], n_down=3),
         'size 12 cannot be halved 3 times'),
        (lambda: ResNetGenerator(size=32, base_width=0), 'base_width must be'),
        (lambda: ResNetDiscriminator(size=8, widths=[]), 'widths must be'),
        (lambda: ResNetGenerator(size=8, widths=[4, 4], n_classes=0), 'n_classes must be'),
    ]
    for make, message in cases:
        with pytest.raises(ValueError, match=message) as error:
            make()
        assert '\n' not in str(error.value)
    gen, dis = tiny()
    with pytest.raises(ValueError, match=r'x must have shape \(B, 1, 8, 8\)'):
        dis(np.zeros((2, 1, 16, 16), np.float32))
    with pytest.raises(ValueError, match=r'z must have shape \(B, 4\)'):
        gen(np.zeros((2, 5), np.float32))


@pytest.mark.parametrize('n_classes', [None, 2])
def test_onnx_export_round_trip(tmp_path, n_classes):
    pytest.importorskip('onnx')
    onnxruntime = pytest.importorskip('onnxruntime')
    from gan_trainer.export import export_onnx

    gen, _ = tiny(channels=3, n_classes=n_classes)
    codes, t = z(3) * 2, np.array([0, 1, 1], np.int32)
    args = (codes,) if n_classes is None else (codes, t)
    with chainer.no_backprop_mode():
        gen(*args)  # BN running statistics away from 0 and 1
    export_onnx(gen, tmp_path / 'gen.onnx', batchsize=3)
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(tmp_path / 'gen.onnx'), options,
                                           providers=['CPUExecutionProvider'])
    feeds = {'z': codes} if n_classes is None else {'z': codes, 't': t}
    images = session.run(None, feeds)[0]
    np.testing.assert_allclose(images, evaluate(gen, *args), rtol=0, atol=1e-4)


def test_generate_py_draws_from_a_resnet_snapshot(tmp_path):
    gen, dis = tiny(channels=3)
    chainer.serializers.save_npz(str(tmp_path / 'gen_iter_1.npz'), gen)
    write_json(tmp_path / 'config.json', {'gen': gen.config(), 'dis': dis.config(), 'z_dist': 'normal'})
    out = tmp_path / 'grid.png'
    proc = here('generate.py', tmp_path / 'gen_iter_1.npz', '--rows', 2, '--cols', 3,
                '--out', out)
    assert proc.returncode == 0, proc.stderr
    from PIL import Image

    with Image.open(out) as image:
        assert image.mode == 'RGB' and image.size[0] > image.size[1]  # 3 columns, 2 rows
