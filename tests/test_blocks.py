"""gan_trainer.ops' fused blocks and linear node: the separate layers' values, bit for bit.

A block (:mod:`gan_trainer.ops.blocks`) runs a convolution, transposed
convolution or linear layer, its batch normalization and its activation as
one node, with the arithmetic of the separate fast nodes in the same order,
so its outputs, gradients and running statistics must equal theirs
exactly, on the oneDNN path (float32, where it loads) and on NumPy
(float32 and float64). Against Chainer's own functions (which compute in
another order) they agree within rounding, checked by ``gradient_check``
in float64 and by a gradient penalty (double backprop). The linear node
(:mod:`gan_trainer.ops.linear`) makes Chainer's own NumPy calls, so it
equals ``F.linear`` bit for bit. The fallbacks (tanh, evaluation mode, a
hooked layer, float16, wrong shapes) run the separate functions or raise
Chainer's error; and a whole GANUpdater iteration of the default networks
gives the same weights with and without blocks.
"""

import functools

import chainer
import chainer.functions as F
import numpy
import pytest
from chainer import gradient_check
from helpers import input_gradient_penalty

from gan_trainer import GANUpdater, ops
from gan_trainer.latent import global_seed
from gan_trainer.nets import Discriminator, Generator
from gan_trainer.ops import activation, blocks, dnnl, onednn_matmul
from gan_trainer.ops.linear import LinearNumPy
from gan_trainer.testing import fake_images

ONEDNN = dnnl.library() is not None
#: (oneDNN on, dtype) of the paths a block covers.
PATHS = [(False, numpy.float32), (False, numpy.float64)] + (
    [(True, numpy.float32)] if ONEDNN else [])
PATH_IDS = [f'{"onednn" if o else "numpy"}-{numpy.dtype(d).name}' for o, d in PATHS]


def channel_last(x):
    return numpy.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def conv_case(kind, dtype, rng):
    """Inputs ``(x, W, b, gamma, beta)`` and the layer's keyword arguments."""
    if kind == 'conv':
        x = channel_last(rng.standard_normal((3, 5, 8, 8)))
        W = rng.standard_normal((6, 5, 4, 4)) * 0.2
        kw = {'stride': 2, 'pad': 1}
        c = 6
    elif kind == 'deconv':
        x = channel_last(rng.standard_normal((3, 6, 4, 4)))
        W = rng.standard_normal((6, 5, 4, 4)) * 0.2
        kw = {'stride': 2, 'pad': 1, 'transposed': True, 'outsize': (8, 8)}
        c = 5
    else:  # linear, viewed as a (4, 3, 3) map
        x = rng.standard_normal((3, 7))
        W = rng.standard_normal((36, 7)) * 0.2
        kw = {'shape': (4, 3, 3)}
        c = 4
    b = rng.standard_normal(W.shape[0] if kind == 'linear' else c) * 0.1
    gamma = 1 + 0.1 * rng.standard_normal(c)
    beta = 0.1 * rng.standard_normal(c)
    return [a.astype(dtype) for a in (x, W, b, gamma, beta)], kw, c


def run_block(kind, arrays, kw, c, act, fused, gy_seed=3):
    """Output, input gradients and running statistics of one block call."""
    variables = [chainer.Variable(a.copy()) for a in arrays]
    mean = numpy.zeros(c, arrays[0].dtype)
    var = numpy.ones(c, arrays[0].dtype)
    stats = {'running_mean': mean, 'running_var': var, 'activation': act, 'slope': 0.2}
    with chainer.using_config(ops.BLOCKS_KEY, fused):
        if kind == 'linear':
            y = ops.linear_bn(*variables, **kw, **stats)
        else:
            y = ops.conv_bn(*variables, **kw, **stats)
    y.grad = numpy.random.default_rng(gy_seed).standard_normal(y.shape).astype(y.dtype)
    y.backward()
    return y, [v.grad for v in variables], (mean, var)


@pytest.mark.parametrize('onednn, dtype', PATHS, ids=PATH_IDS)
@pytest.mark.parametrize('kind', ['conv', 'deconv', 'linear'])
@pytest.mark.parametrize('act', [None, 'relu', 'leaky_relu'])
def test_block_equals_the_separate_layers_bit_for_bit(onednn, dtype, kind, act):
    arrays, kw, c = conv_case(kind, dtype, numpy.random.default_rng(0))
    with chainer.using_config(ops.ONEDNN_KEY, onednn):
        y, grads, stats = run_block(kind, arrays, kw, c, act, fused=True)
        y_sep, grads_sep, stats_sep = run_block(kind, arrays, kw, c, act, fused=False)
    assert isinstance(y.creator, blocks.Block)
    assert not isinstance(y_sep.creator, blocks.Block)
    numpy.testing.assert_array_equal(y.array, y_sep.array)
    assert y.array.strides == y_sep.array.strides  # channel-last, as the BN node writes
    for g, g_sep in zip(grads, grads_sep):
        assert g.dtype == g_sep.dtype
        numpy.testing.assert_array_equal(g, g_sep)
    for s, s_sep in zip(stats, stats_sep):
        numpy.testing.assert_array_equal(s, s_sep)
    # ... and Chainer's own functions agree within rounding.
    ref = reference(kind, arrays, kw, act)
    tol = 1e-4 if dtype == numpy.float32 else 1e-10
    numpy.testing.assert_allclose(y.array, ref.array, rtol=tol, atol=tol)


def reference(kind, arrays, kw, act):
    x, W, b, gamma, beta = arrays
    if kind == 'linear':
        h = F.reshape(F.linear(x, W, b), (len(x), *kw['shape']))
    elif kind == 'deconv':
        h = F.deconvolution_2d(x, W, b, kw['stride'], kw['pad'], outsize=kw['outsize'])
    else:
        h = F.convolution_2d(x, W, b, kw['stride'], kw['pad'])
    return activation.activate(F.batch_normalization(h, gamma, beta), act, 0.2)


@pytest.mark.parametrize('kind', ['conv', 'deconv', 'linear'])
@pytest.mark.parametrize('act', [None, 'leaky_relu'])
def test_block_gradient_check(kind, act):
    # float64 NumPy nodes; a leaky ReLU's kink is avoided by the random draw.
    arrays, kw, _ = conv_case(kind, numpy.float64, numpy.random.default_rng(1))

    def f(*args):
        fn = ops.linear_bn if kind == 'linear' else ops.conv_bn
        y = fn(*args, **kw, activation=act)
        assert isinstance(y.creator, blocks.Block)
        return y

    gy = numpy.random.default_rng(2).standard_normal(f(*arrays).shape)
    with chainer.using_config(ops.ONEDNN_KEY, False):
        gradient_check.check_backward(f, tuple(arrays), gy, eps=1e-6, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('onednn, dtype', PATHS, ids=PATH_IDS)
@pytest.mark.parametrize('kind', ['conv', 'deconv', 'linear'])
def test_block_double_backprop_matches_chainer(onednn, dtype, kind):
    arrays, kw, _ = conv_case(kind, dtype, numpy.random.default_rng(4))
    results = []
    for fused in (True, False):
        xs = [chainer.Variable(a.copy()) for a in arrays]
        with chainer.using_config(ops.ONEDNN_KEY, onednn), chainer.using_config(
                ops.BLOCKS_KEY, fused):
            if fused:
                fn = ops.linear_bn if kind == 'linear' else ops.conv_bn
                y = fn(*xs, **kw, activation='leaky_relu')
                assert isinstance(y.creator, blocks.Block)
            else:
                y = reference(kind, xs, kw, 'leaky_relu')
            penalty = input_gradient_penalty(y, xs[0])
        results.append((penalty, xs[1].grad, xs[3].grad))
    tol = 1e-4 if dtype == numpy.float32 else 1e-9
    for a, b in zip(*results):
        numpy.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(1, numpy.abs(b).max()))


def bn_net(layer, c):
    net = chainer.Chain()
    with net.init_scope():
        net.layer = layer
        net.bn = ops.BatchNormalization(c)
    return net


def test_links_take_the_block_and_fall_back_where_it_does_not_apply():
    rng = numpy.random.default_rng(5)
    x = rng.standard_normal((2, 3, 8, 8)).astype(numpy.float32)
    net = bn_net(ops.Convolution2D(3, 4, 4, stride=2, pad=1), 4)
    assert isinstance(ops.block(net.layer, x, net.bn, activation='relu').creator, blocks.Block)
    # tanh is not fused into batch normalization: separate functions, one error.
    with pytest.raises(ValueError, match='relu'):
        ops.block(net.layer, x, net.bn, activation='tanh')
    # Evaluation mode: Chainer's link with the running statistics.
    with chainer.using_config('train', False):
        y = ops.block(net.layer, x, net.bn, activation='relu')
    assert not isinstance(y.creator, blocks.Block)
    # Chainer's own links: the separate functions.
    plain = bn_net(chainer.links.Convolution2D(3, 4, 4, stride=2, pad=1), 4)
    assert not isinstance(ops.block(plain.layer, x, plain.bn).creator, blocks.Block)
    # With the switch off.
    with chainer.using_config(ops.BLOCKS_KEY, False):
        assert not isinstance(ops.block(net.layer, x, net.bn).creator, blocks.Block)


def test_a_hooked_layer_runs_its_hook():
    # Spectral normalization rewrites W inside layer(x), which a block would bypass.
    rng = numpy.random.default_rng(6)
    x = rng.standard_normal((2, 3, 8, 8)).astype(numpy.float32)
    net = bn_net(ops.Convolution2D(3, 4, 4, stride=2, pad=1), 4)
    net.layer.add_hook(chainer.link_hooks.SpectralNormalization())
    y = ops.block(net.layer, x, net.bn, activation='relu')
    assert not isinstance(y.creator, blocks.Block)
    u = net.layer.W_u.copy()
    ops.block(net.layer, x, net.bn, activation='relu')
    assert not numpy.array_equal(u, net.layer.W_u)  # the power iteration ran


@pytest.mark.parametrize('bad', ['gamma', 'channels'])
def test_wrong_shapes_give_chainers_error(bad):
    rng = numpy.random.default_rng(7)
    (x, W, b, gamma, beta), kw, _ = conv_case('conv', numpy.float32, rng)
    if bad == 'gamma':
        gamma = gamma[:3]
    else:
        x = numpy.concatenate([x, x], axis=1)
    with pytest.raises(chainer.utils.type_check.InvalidType):
        ops.conv_bn(x, W, b, gamma, beta, **kw)


@pytest.mark.parametrize('dtype', [numpy.float32, numpy.float64])
@pytest.mark.parametrize('shape', [(5, 7), (5, 2, 3, 3)])
@pytest.mark.parametrize('layout', ['c', 'channel_last'])
def test_linear_is_chainers_bit_for_bit(dtype, shape, layout):
    rng = numpy.random.default_rng(8)
    x = rng.standard_normal(shape).astype(dtype)
    if layout == 'channel_last' and x.ndim == 4:
        x = channel_last(x)
    n_in = x.size // len(x)
    W = rng.standard_normal((4, n_in)).astype(dtype)
    b = rng.standard_normal(4).astype(dtype)
    gy = rng.standard_normal((len(x), 4)).astype(dtype)
    out = []
    for fn in (ops.linear, F.linear):
        xs = [chainer.Variable(a) for a in (x, W, b)]
        y = fn(*xs)
        y.grad = gy
        y.backward()
        out.append((y, [v.grad for v in xs]))
    (y, g), (y_ref, g_ref) = out
    assert isinstance(y.creator, LinearNumPy)
    # A float32 read-out from a channel-last map on oneDNN reads the map in its
    # own order (gan_trainer/ops/linear.py): the same sums in another order.
    rows = (layout == 'channel_last' and x.ndim == 4 and dtype == numpy.float32
            and onednn_matmul.available(x))
    same = (functools.partial(numpy.testing.assert_allclose, rtol=1e-5, atol=1e-6) if rows
            else numpy.testing.assert_array_equal)
    same(y.array, y_ref.array)
    for a, b_ in zip(g, g_ref):
        assert a.shape == b_.shape and a.dtype == b_.dtype
        same(a, b_)
    if rows:  # and the input gradient comes back in the map's layout
        assert g[0].strides == x.strides
    gradient_check.check_backward(ops.linear, (x.astype(numpy.float64), W.astype(numpy.float64),
                                               b.astype(numpy.float64)), gy.astype(numpy.float64))


def test_linear_falls_back_and_refuses_like_chainer():
    x = numpy.ones((2, 6), numpy.float32)
    W = numpy.ones((3, 6), numpy.float32)
    assert not isinstance(ops.linear(x.astype(numpy.float16), W.astype(numpy.float16)).creator,
                          LinearNumPy)
    assert ops.linear(x.reshape(2, 3, 2), W[:, :2], n_batch_axes=2).shape == (2, 3, 3)
    with pytest.raises(chainer.utils.type_check.InvalidType):
        ops.linear(x, W[:, :5])
    with pytest.raises(chainer.utils.type_check.InvalidType):
        ops.linear(x, W, numpy.ones(2, numpy.float32))


def one_iteration(fused: bool, reuse_fakes: bool):
    with global_seed(0):
        gen = Generator(size=16, channels=1, widths=[4, 8])
        dis = Discriminator(size=16, channels=1, widths=[4, 8])
    optimizers = {}
    for name, net in (('gen', gen), ('dis', dis)):
        optimizers[name] = ops.Adam(2e-4, beta1=0.5)
        optimizers[name].setup(net)
    iterator = chainer.iterators.SerialIterator(fake_images(8, size=16), 4, shuffle=False)
    updater = GANUpdater(iterator, optimizers, device=-1, seed=0, loss='lsgan',
                         reuse_fakes=reuse_fakes)
    labels = []

    class Labels(chainer.FunctionHook):
        def forward_preprocess(self, function, in_data):
            labels.append(function.label)

    with chainer.using_config(ops.BLOCKS_KEY, fused), Labels():
        for _ in range(2):
            updater.update()
    # G's projection and deconvolution, D's second convolution: blocks when fused.
    assert (sum(label.startswith('Block') for label in labels) > 0) == fused
    serializer = chainer.serializers.DictionarySerializer()
    serializer.save(updater)
    return {k: numpy.array(v) for k, v in serializer.target.items()}


@pytest.mark.parametrize('reuse_fakes', [False, True])
def test_a_training_iteration_is_the_same_bit_for_bit_with_blocks(reuse_fakes):
    fused, separate = one_iteration(True, reuse_fakes), one_iteration(False, reuse_fakes)
    assert fused.keys() == separate.keys()
    for key, value in separate.items():
        numpy.testing.assert_array_equal(fused[key], value, err_msg=key)
