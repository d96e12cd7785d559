"""The fast nodes' (leaky) ReLU on oneDNN (gan_trainer/ops/onednn_eltwise.py).

The forward pass (in place) and the derivative from the output must give
the NumPy functions' bits: each element is one comparison and at most one
product either way. The reference here is written out with ``numpy.where``
(code the module does not share), and the NumPy path of
:mod:`gan_trainer.ops.activation` (``ENABLED = False``) is compared too.
Layouts: C-contiguous maps, channel-last maps, rows, and a gradient in
another layout than the output (the channel-first gradient a linear
read-out sends into D's channel-last block). Each test checks that oneDNN
really ran (a primitive in the cache, or None from the module where it
must fall back). Skipped where oneDNN does not load.
"""

import chainer
import chainer.functions as F
import numpy
import pytest

from gan_trainer import ops
from gan_trainer.ops import activation, dnnl, onednn_eltwise

pytestmark = pytest.mark.skipif(dnnl.library() is None, reason='oneDNN does not load here')


def channel_last(x):
    return numpy.moveaxis(numpy.ascontiguousarray(numpy.moveaxis(x, 1, -1)), -1, 1)


def layout(x, name):
    return channel_last(x) if name == 'nhwc' else numpy.ascontiguousarray(x)


def maps(shape, seed=0):
    """Random float32 values with some exact zeros (the convention at 0 matters)."""
    x = numpy.random.default_rng(seed).standard_normal(shape).astype(numpy.float32)
    x.reshape(-1)[::97] = 0
    return x


def expected_forward(x, act, slope):
    return numpy.where(x > 0, x, x * x.dtype.type(slope if act == 'leaky_relu' else 0))


def expected_grad(y, gy, act, slope):
    s = y.dtype.type(slope if act == 'leaky_relu' else 0)
    return numpy.where(y > 0, gy, gy * s)


def eltwise_cached(size):
    return any(k[0] == 'eltwise' and k[1] == size and v is not None
               for k, v in dnnl._CACHE.items())


@pytest.fixture
def numpy_only(monkeypatch):
    def switch():
        monkeypatch.setattr(onednn_eltwise, 'ENABLED', False)
    return switch


@pytest.mark.parametrize('act,slope', [('relu', 0.0), ('leaky_relu', 0.2), ('leaky_relu', 1.0)])
@pytest.mark.parametrize('lay', ['c', 'nhwc'])
@pytest.mark.parametrize('shape', [(64, 32, 14, 14), (64, 64, 7, 7), (50, 300)])
def test_forward_in_place_and_gradient_give_numpys_bits(shape, lay, act, slope, numpy_only):
    if len(shape) == 2 and lay == 'nhwc':
        pytest.skip('rows have one layout')
    x = layout(maps(shape), lay)
    y = x.copy(order='K')
    assert onednn_eltwise.activate_in_place(y, act, slope)
    assert y.strides == x.strides  # in place: the layout kept
    numpy.testing.assert_array_equal(y, expected_forward(x, act, slope))
    gy = layout(maps(shape, seed=1), lay)
    g = onednn_eltwise.activation_grad(y, gy, act, slope)
    assert g is not None and g.strides == y.strides
    assert eltwise_cached(x.size)
    numpy.testing.assert_array_equal(g, expected_grad(y, gy, act, slope))
    numpy_only()
    y_np = x.copy(order='K')
    activation.activate_in_place(y_np, act, slope)
    numpy.testing.assert_array_equal(y_np, y)
    numpy.testing.assert_array_equal(activation.activation_grad(y, gy, act, slope), g)


def test_a_gradient_in_another_layout_is_copied_into_the_outputs_and_not_written():
    y = channel_last(maps((64, 64, 7, 7)))
    onednn_eltwise.activate_in_place(y, 'leaky_relu', 0.2)
    gy = maps((64, 64, 7, 7), seed=2)  # channel-first, as from a linear read-out
    before = gy.copy()
    g = onednn_eltwise.activation_grad(y, gy, 'leaky_relu', 0.2)
    assert g is not None and g.strides == y.strides
    numpy.testing.assert_array_equal(g, expected_grad(y, gy, 'leaky_relu', 0.2))
    numpy.testing.assert_array_equal(gy, before)


def test_same_layout_gradient_is_not_written():
    y = maps((64, 32, 14, 14))
    gy = maps((64, 32, 14, 14), seed=3)
    before = gy.copy()
    onednn_eltwise.activation_grad(y, gy, 'relu', 0.0)
    numpy.testing.assert_array_equal(gy, before)


@pytest.mark.parametrize('case', ['float64', 'tanh', 'elu', 'small', 'strided', 'off'])
def test_falls_back_to_numpy(case, numpy_only):
    x = maps((64, 32, 14, 14))
    act, slope = 'leaky_relu', 0.2
    if case == 'float64':
        x = x.astype(numpy.float64)
    elif case in ('tanh', 'elu'):
        act = case
    elif case == 'small':
        x = maps((4, 8, 7, 7))  # 1,568 values: NumPy's passes cost less than a call
    elif case == 'strided':
        x = x[:, ::2]
    else:
        numpy_only()
    before = x.copy()
    assert onednn_eltwise.activate_in_place(x, act, slope) is False
    numpy.testing.assert_array_equal(x, before)  # nothing written
    assert onednn_eltwise.activation_grad(x, x, act, slope) is None
    # ...and the NumPy functions still give the expected values
    if act == 'leaky_relu':
        y = x.copy()
        activation.activate_in_place(y, act, slope)
        numpy.testing.assert_array_equal(y, expected_forward(x, act, slope))
        numpy.testing.assert_array_equal(activation.activation_grad(y, x, act, slope),
                                         expected_grad(y, x, act, slope))


def test_flat_is_a_view_in_memory_order():
    x = channel_last(maps((2, 3, 4, 5)))
    v = onednn_eltwise.flat(x)
    assert v.base is not None and numpy.shares_memory(v, x)
    numpy.testing.assert_array_equal(v, numpy.moveaxis(x, 1, -1).reshape(-1))
    assert onednn_eltwise.flat(x[:, :2]) is None
    assert onednn_eltwise.flat(x.astype(numpy.float64)) is None


@pytest.mark.parametrize('act', ['relu', 'leaky_relu'])
def test_a_fused_block_trains_with_the_same_bits_either_way(act, monkeypatch):
    """A conv + BN + activation block's output and every gradient, oneDNN's
    activation against the NumPy one, with a channel-first output gradient
    (as D's read-out sends it)."""
    rng = numpy.random.default_rng(4)
    x = channel_last(rng.standard_normal((16, 8, 14, 14)).astype(numpy.float32))
    W = (0.1 * rng.standard_normal((16, 8, 4, 4))).astype(numpy.float32)
    gamma = (1 + 0.1 * rng.standard_normal(16)).astype(numpy.float32)
    beta = (0.1 * rng.standard_normal(16)).astype(numpy.float32)
    gy = rng.standard_normal((16, 16, 7, 7)).astype(numpy.float32)

    def run():
        xs = [chainer.Variable(a.copy(order='K')) for a in (x, W, gamma, beta)]
        h = ops.convolution_2d(xs[0], xs[1], None, 2, 1)
        h = ops.batch_normalization(h, xs[2], xs[3], activation=act, slope=0.2)
        h.grad = gy
        h.backward()
        return [h.array] + [v.grad for v in xs]

    fast = run()
    if act == 'leaky_relu':  # ReLU is the normalization's own fused flag
        assert eltwise_cached(16 * 16 * 7 * 7)
    monkeypatch.setattr(onednn_eltwise, 'ENABLED', False)
    slow = run()
    for a, b in zip(fast, slow):
        numpy.testing.assert_array_equal(a, b)
    # and both are Chainer's functions' values within rounding
    ref = F.leaky_relu(F.batch_normalization(F.convolution_2d(x, W, None, 2, 1), gamma, beta),
                       0.2) if act == 'leaky_relu' else F.relu(F.batch_normalization(
                           F.convolution_2d(x, W, None, 2, 1), gamma, beta))
    numpy.testing.assert_allclose(fast[0], ref.array, rtol=1e-4, atol=1e-4)
