"""Batch normalization on oneDNN (gan_trainer/ops/onednn_norm.py) against Chainer.

The node (:class:`~gan_trainer.ops.normalization.BatchNormalizationNumPy`)
hands float32 maps to oneDNN's kernel, which computes the statistics, the
normalization, ReLU and the gradients its own way, so its outputs,
gradients and running statistics are compared with Chainer's
``F.batch_normalization`` followed by Chainer's activation (a reference
that shares no code with it) and with the definition in float64, within
float32 rounding; with ``gradient_check`` by finite differences; and with
Chainer for double backprop (a gradient penalty). The shapes are the
default network's layers (batch 64, channel-last maps from the
convolutions, G's projection viewed as an ``nchw`` map, a linear layer's
``(N, C)``) and odd ones: 1 and 3 channels, batch 1 and 2, a 3-D input,
strided, flipped and broadcast inputs. Each test checks that the oneDNN
path really ran (the node's saved state). The fallbacks (oneDNN switched
off, float64, a primitive oneDNN cannot build) keep the NumPy arithmetic
with the same values, and the thread-team check catches a kernel whose
bits would change with the team. Skipped where oneDNN does not load.
"""

import chainer
import chainer.functions as F
import numpy
import pytest
from chainer import gradient_check
from helpers import input_gradient_penalty

from gan_trainer import GANUpdater, ops
from gan_trainer.latent import global_seed
from gan_trainer.nets import Discriminator, Generator
from gan_trainer.ops import activation, dnnl, normalization, onednn_conv, onednn_norm
from gan_trainer.testing import fake_images

pytestmark = pytest.mark.skipif(dnnl.library() is None, reason='oneDNN does not load here')
ACTS = [None, 'relu', 'leaky_relu']

#: (shape, layout): the default network's BN layers at batch 64, and odd cases.
CASES = [
    ((64, 64, 7, 7), 'nchw'),    # G's projection, a linear output viewed as a map
    ((64, 32, 14, 14), 'nhwc'),  # G's deconvolution
    ((64, 64, 7, 7), 'nhwc'),    # D's convolution
    ((64, 64), 'nc'),            # after a linear layer
    ((2, 1, 3, 3), 'nhwc'),      # one channel
    ((3, 3, 5, 4), 'nhwc'),      # three channels, non-square
    ((1, 4, 2, 2), 'nchw'),      # batch 1
    ((2, 5), 'nc'),              # two values per channel
    ((2, 3, 7), 'nchw'),         # (N, C, L)
]


def case_id(case):
    shape, layout = case
    return f'{"x".join(map(str, shape))}-{layout}'


def channel_last(x):
    return numpy.moveaxis(numpy.ascontiguousarray(numpy.moveaxis(x, 1, -1)), -1, 1)


def inputs(shape, layout, rng):
    c = shape[1]
    x = (rng.standard_normal(shape) * 3 + 1).astype(numpy.float32)  # not normalized already
    if layout == 'nhwc':
        x = channel_last(x)
    gamma = rng.uniform(0.5, 1.5, c).astype(numpy.float32)
    beta = rng.standard_normal(c).astype(numpy.float32)
    return x, gamma, beta


def run(fn, arrays, gy, c, decay=0.9):
    """Output, input gradients and running statistics of ``fn``."""
    mean = numpy.linspace(-1, 1, c).astype(numpy.float32)
    var = numpy.linspace(0.5, 2, c).astype(numpy.float32)
    xs = [chainer.Variable(a) for a in arrays]
    y = fn(*xs, running_mean=mean, running_var=var, decay=decay)
    y.grad = gy
    y.backward()
    return y, [v.grad for v in xs], (mean, var)


def ours(act, eps=2e-5):
    return lambda *a, **kw: ops.batch_normalization(*a, eps=eps, activation=act, **kw)


def chainers(act, eps=2e-5):
    return lambda *a, **kw: activation.activate(
        F.batch_normalization(*a, eps=eps, **kw), act, 0.2)


def assert_close(a, b):
    """float32 rounding of sums over up to 12,544 values per channel."""
    a, b = getattr(a, 'array', a), getattr(b, 'array', b)
    assert a.shape == b.shape and a.dtype == b.dtype
    scale = max(1.0, float(numpy.abs(b).max(initial=0)))
    numpy.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-6 * scale)


def took_onednn(y) -> bool:
    node = y.creator
    return isinstance(node, normalization.BatchNormalizationNumPy) and node._onednn is not None


@pytest.mark.parametrize('act', ACTS, ids=str)
@pytest.mark.parametrize('case', CASES, ids=case_id)
def test_values_gradients_and_statistics_are_chainers(case, act):
    shape, layout = case
    rng = numpy.random.default_rng(0)
    arrays = inputs(shape, layout, rng)
    gy = rng.standard_normal(shape).astype(numpy.float32)
    y, g, stats = run(ours(act), arrays, gy, shape[1])
    y_ref, g_ref, stats_ref = run(chainers(act), arrays, gy, shape[1])
    assert took_onednn(y)
    assert y.array.strides == channel_last(y.array).strides  # as the NumPy node's
    assert_close(y, y_ref)
    for a, b in zip(g, g_ref):
        assert_close(a, b)
    for a, b in zip(stats, stats_ref):
        assert_close(a, b)


@pytest.mark.parametrize('decay', [0.9, 0.0, 0.99])
@pytest.mark.parametrize('case', [CASES[2], CASES[6]], ids=case_id)
def test_running_statistics_follow_the_definition(case, decay):
    # The batch variance normalizes; the unbiased one (m / (m - 1) times it,
    # m / 1 for one value per channel, as Chainer) goes into the running one.
    shape, layout = case
    rng = numpy.random.default_rng(1)
    x, gamma, beta = inputs(shape, layout, rng)
    c = shape[1]
    y, _, (mean, var) = run(ours(None, eps=1e-3), (x, gamma, beta),
                            numpy.ones(shape, numpy.float32), c, decay)
    assert took_onednn(y)
    axes = (0, *range(2, len(shape)))
    x64 = x.astype(numpy.float64)
    m = x.size // c
    batch_mean, batch_var = x64.mean(axis=axes), x64.var(axis=axes)
    mean0, var0 = numpy.linspace(-1, 1, c), numpy.linspace(0.5, 2, c)
    numpy.testing.assert_allclose(mean, decay * mean0 + (1 - decay) * batch_mean,
                                  rtol=1e-5, atol=1e-6)
    numpy.testing.assert_allclose(
        var, decay * var0 + (1 - decay) * batch_var * m / max(m - 1, 1), rtol=1e-5, atol=1e-6)
    shaped = (1, c) + (1,) * (len(shape) - 2)
    expected = ((x64 - batch_mean.reshape(shaped)) / numpy.sqrt(batch_var.reshape(shaped) + 1e-3)
                * gamma.reshape(shaped) + beta.reshape(shaped))
    numpy.testing.assert_allclose(y.array, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('case', [((3, 4, 3, 2), 'nhwc'), ((5, 3), 'nc'), ((2, 1, 2, 2), 'nchw')],
                         ids=case_id)
def test_gradient_check(case):
    # float32 finite differences (oneDNN has no float64 normalization); the
    # kinks of ReLU and LeakyReLU are left to the comparisons with Chainer.
    shape, layout = case
    rng = numpy.random.default_rng(2)
    arrays = inputs(shape, layout, rng)
    fn = ours(None)
    assert took_onednn(fn(*arrays))
    gradient_check.check_backward(fn, arrays, rng.standard_normal(shape).astype(numpy.float32),
                                  eps=1e-2, atol=1e-2, rtol=1e-2)


def test_double_backprop_matches_chainer():
    """A gradient penalty, ``sum(dL/dx ** 2)``, and its gradient w.r.t. gamma."""
    rng = numpy.random.default_rng(3)
    arrays = inputs((4, 3, 3, 3), 'nhwc', rng)
    results = []
    for fn in (ours('leaky_relu'), chainers('leaky_relu')):
        x, gamma, beta = (chainer.Variable(a) for a in arrays)
        results.append((input_gradient_penalty(fn(x, gamma, beta), x), gamma.grad))
    assert took_onednn(ours(None)(*arrays))
    for a, b in zip(*results):
        numpy.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize('what', ['strided', 'flipped', 'broadcast', 'gamma_view'])
def test_odd_input_layouts_give_chainers_values(what):
    # The node reads rows (a copy where the map is not channel-last or
    # C-contiguous), so no stride reaches oneDNN but a plain one.
    rng = numpy.random.default_rng(4)
    x, gamma, beta = inputs((4, 6, 10, 5), 'nchw', rng)
    if what == 'strided':
        x = x[:, :, ::2]
    elif what == 'flipped':
        x = x[::-1, :, :, ::-1]
    elif what == 'broadcast':
        x = numpy.broadcast_to(x[:1], x.shape)
    else:
        gamma = numpy.repeat(gamma, 2)[::2]
        beta = numpy.repeat(beta, 2)[::2]
    gy = rng.standard_normal(x.shape).astype(numpy.float32)
    y, g, stats = run(ours('relu'), (x, gamma, beta), gy, 6)
    y_ref, g_ref, stats_ref = run(chainers('relu'), (x, gamma, beta), gy, 6)
    assert took_onednn(y)
    for a, b in zip([y, *g, *stats], [y_ref, *g_ref, *stats_ref]):
        assert_close(a, b)


def test_the_fused_block_normalizes_on_onednn():
    rng = numpy.random.default_rng(5)
    x = channel_last(rng.standard_normal((4, 8, 8, 8)).astype(numpy.float32))
    W = (rng.standard_normal((16, 8, 4, 4)) * 0.1).astype(numpy.float32)
    gamma, beta = numpy.ones(16, numpy.float32), numpy.zeros(16, numpy.float32)
    y = ops.conv_bn(x, W, None, gamma, beta, stride=2, pad=1, activation='leaky_relu')
    assert isinstance(y.creator.bn, normalization.BatchNormalizationNumPy)
    assert y.creator.bn._onednn is not None


def test_switched_off_or_float64_keeps_the_numpy_arithmetic():
    rng = numpy.random.default_rng(6)
    arrays = inputs((8, 4, 3, 3), 'nhwc', rng)
    gy = rng.standard_normal((8, 4, 3, 3)).astype(numpy.float32)
    y_on, g_on, stats_on = run(ours('relu'), arrays, gy, 4)
    assert took_onednn(y_on)
    with chainer.using_config(ops.ONEDNN_KEY, False):
        y_off, g_off, stats_off = run(ours('relu'), arrays, gy, 4)
    assert isinstance(y_off.creator, normalization.BatchNormalizationNumPy)
    assert y_off.creator._onednn is None
    for a, b in zip([y_on, *g_on, *stats_on], [y_off, *g_off, *stats_off]):
        assert_close(a, b)
    y64 = ops.batch_normalization(*(a.astype(numpy.float64) for a in arrays))
    assert y64.creator._onednn is None and y64.dtype == numpy.float64


def test_a_primitive_onednn_cannot_build_falls_back(monkeypatch):
    monkeypatch.setattr(dnnl, '_CACHE', {})

    def refuse(*args):
        raise dnnl.DNNLError('oneDNN batch_normalization_forward failed: unimplemented')

    monkeypatch.setattr(onednn_norm.Problem, '__init__', refuse)
    rng = numpy.random.default_rng(7)
    arrays = inputs((4, 5, 3, 3), 'nhwc', rng)
    gy = rng.standard_normal((4, 5, 3, 3)).astype(numpy.float32)
    y, g, _ = run(ours(None), arrays, gy, 5)
    y_ref, g_ref, _ = run(chainers(None), arrays, gy, 5)
    assert y.creator._onednn is None
    for a, b in zip([y, *g], [y_ref, *g_ref]):
        assert_close(a, b)


def test_primitives_are_cached_per_shape_eps_and_relu(monkeypatch):
    monkeypatch.setattr(dnnl, '_CACHE', {})
    first = onednn_norm.problem((12, 4), 2e-5, False)
    assert onednn_norm.problem((12, 4), 2e-5, False) is first
    assert first.fwd.impl()  # a name oneDNN gives, e.g. bnorm_jit:avx2
    others = [onednn_norm.problem(*a) for a in [((12, 4), 2e-5, True), ((12, 4), 1e-3, False),
                                                ((6, 4), 2e-5, False)]]
    assert len({id(p) for p in [first, *others]}) == 4


def test_the_team_check_covers_the_normalizations(monkeypatch):
    monkeypatch.setattr(dnnl, '_CACHE', {})
    rng = numpy.random.default_rng(8)
    x = channel_last(rng.standard_normal((4, 8, 8, 8)).astype(numpy.float32))
    W = rng.standard_normal((16, 8, 4, 4)).astype(numpy.float32)
    ops.conv_bn(x, W, None, numpy.ones(16, numpy.float32), numpy.zeros(16, numpy.float32),
                stride=2, pad=1, activation='relu')
    assert any(key[0] == 'bn' for key in dnnl._CACHE)
    teams = []
    assert onednn_norm.team_independent([2, 1], teams.append) in (True, False)
    assert teams == [2, 1]
    before = onednn_conv.team_independent([2, 1], teams.append)
    # A normalization whose bits depend on the team is caught, also by the
    # convolutions' check, which TeamTuner calls (a test of it where the
    # convolutions themselves passed it before).
    forward = onednn_norm.Problem.forward

    def team_dependent(self, *a):
        y, mean, var, ws = forward(self, *a)
        return y + len(teams), mean, var, ws

    monkeypatch.setattr(onednn_norm.Problem, 'forward', team_dependent)
    assert not onednn_norm.team_independent([2, 1], teams.append)
    assert not onednn_conv.team_independent([2, 1], teams.append)
    if not before:
        pytest.skip('this CPU\'s convolution kernels depend on the team themselves')


def two_iterations(onednn_bn: bool, monkeypatch) -> dict:
    monkeypatch.setattr(onednn_norm, 'ENABLED', onednn_bn)
    calls = []
    forward = onednn_norm.Problem.forward
    monkeypatch.setattr(onednn_norm.Problem, 'forward',
                        lambda self, *a: calls.append(1) or forward(self, *a))
    with global_seed(0):
        gen = Generator(size=16, channels=1, widths=[8, 16])
        dis = Discriminator(size=16, channels=1, widths=[8, 16])
    optimizers = {}
    for name, net in (('gen', gen), ('dis', dis)):
        # Plain SGD: Adam would blow the rounding noise of the biases before a
        # BN (whose true gradient is 0) up to steps of its full rate.
        optimizers[name] = chainer.optimizers.SGD(0.05)
        optimizers[name].setup(net)
    iterator = chainer.iterators.SerialIterator(fake_images(16, size=16), 8, shuffle=False)
    updater = GANUpdater(iterator, optimizers, device=-1, seed=0, loss='lsgan')
    for _ in range(2):
        updater.update()
    # Each iteration: G's two BNs in the D step and in the G step, and D's
    # one on the real, the fake and G's fake.
    assert len(calls) == (14 if onednn_bn else 0)
    serializer = chainer.serializers.DictionarySerializer()
    serializer.save(updater)
    return {k: numpy.array(v) for k, v in serializer.target.items()}


def test_a_training_iteration_keeps_its_values_within_rounding(monkeypatch):
    # Weights and BN running statistics after two GANUpdater iterations of
    # small DCGAN nets: the oneDNN normalizations against the NumPy ones,
    # which the suite compares with Chainer's.
    on, off = two_iterations(True, monkeypatch), two_iterations(False, monkeypatch)
    assert on.keys() == off.keys()
    assert any('avg_var' in key for key in on)
    for key, value in off.items():
        assert_close(on[key], value)
