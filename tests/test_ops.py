"""gan_trainer.ops: the fast NumPy conv, deconv, BN and LeakyReLU against Chainer.

The fast functions promise Chainer's values from a different algorithm (one
im2col and one matrix product per convolution, transposed convolutions by
output phase or by scatter-add, batch normalization over channel-last rows)
and hand-written backward passes, so every test compares them with a
reference they do not share code with: Chainer's own functions and links
(what the fast path replaces), NumPy formulas, small hand-computed examples,
and ``chainer.gradient_check`` for the gradients. The shapes are picked to
hit the index arithmetic's edge cases: odd and non-square maps, strides 1-3,
paddings 0-2, kernels 1-5 (also smaller than the stride), an explicit
deconvolution ``outsize`` (DCGAN's k5 s2 p2), and the three transposed-
convolution routines (few output channels -> scatter-add, a DCGAN hidden
layer -> one product and a gather, otherwise phases; the gather is also
forced on every shape), plus a few seeded random shapes. Further tests check that the fast path is really
taken (the output's creator node) and everything else falls back to
Chainer, that the inputs' memory layout does not matter, the links,
:func:`~gan_trainer.ops.frozen`, one whole GAN update against Chainer's
functions, and the malloc tuning.
"""

import os
import platform
import subprocess
import sys
from collections import Counter
from pathlib import Path

import chainer
import chainer.functions as F
import chainer.links as L
import numpy
import pytest
from chainer import gradient_check

from gan_trainer import GANUpdater, ops
from gan_trainer.latent import global_seed
from gan_trainer.nets import Discriminator, Generator
from gan_trainer.ops import _common, activation, blocks, conv, normalization, pooling
from gan_trainer.ops.linear import LinearNumPy
from gan_trainer.testing import fake_images

REPO = Path(__file__).resolve().parents[1]
DTYPES = [numpy.float32, numpy.float64]
# float64 differs from Chainer only by summation order; float32 by rounding
# in sums of up to a few hundred products. The absolute part is relative to
# the largest value compared: a sum's rounding error scales with its terms,
# so an output near 0 may carry the error of its neighbours' magnitude.
TOL = {numpy.float32: {'rtol': 1e-4, 'atol': 1e-6}, numpy.float64: {'rtol': 1e-10, 'atol': 1e-12}}
FAST_NODES = (
    conv.Convolution2DNumPy,
    conv.Deconvolution2DNumPy,
    normalization.BatchNormalizationNumPy,
    activation.LeakyReLU,
    activation.ELU,
    pooling.MaxPooling2x2,
    pooling.AveragePooling2x2,
    blocks.Block,
    LinearNumPy,
)


@pytest.fixture(autouse=True)
def numpy_nodes():
    """These tests are of the NumPy nodes: oneDNN (float32, where it loads) is
    switched off here and tested in tests/test_onednn.py."""
    with chainer.using_config(_common.ONEDNN_KEY, False):
        yield


def assert_close(actual, expected, dtype):
    actual = getattr(actual, 'array', actual)
    expected = getattr(expected, 'array', expected)
    assert actual.shape == expected.shape
    assert actual.dtype == expected.dtype
    tol = TOL[numpy.dtype(dtype).type]
    scale = max(1.0, float(numpy.abs(expected).max(initial=0)))
    numpy.testing.assert_allclose(actual, expected, rtol=tol['rtol'], atol=tol['atol'] * scale)


def randn(rng, shape, dtype=numpy.float64):
    return rng.standard_normal(shape).astype(dtype)


def fast(fn, node_class):
    """``fn``, asserting that the output of every graph it builds comes from ``node_class``.

    Under ``no_backprop_mode`` (gradient_check's numerical derivatives)
    there is no creator to look at.
    """

    def wrapped(*args):
        y = fn(*args)
        if chainer.config.enable_backprop:
            assert isinstance(y.creator, node_class), type(y.creator)
        return y

    return wrapped


def grads(fn, arrays, gy):
    """Output and input gradients of ``fn`` at ``arrays`` for output gradient ``gy``."""
    xs = [chainer.Variable(a) for a in arrays]
    y = fn(*xs)
    y.grad = gy
    y.backward()
    return y, [x.grad for x in xs]


def deconv_outsize(size, k, s, p):
    return s * (size - 1) + k - 2 * p


# --- Case tables ---------------------------------------------------------------


def random_conv_cases(count, seed):
    """Seeded random ``(n, c_in, c_out, h, w, k, s, p)`` with a non-empty output."""
    rng = numpy.random.RandomState(seed)
    cases = []
    while len(cases) < count:
        k, s, p = rng.randint(1, 6), rng.randint(1, 4), rng.randint(0, 3)
        h, w = rng.randint(max(1, k - 2 * p), k + 6, size=2)
        cases.append(
            (rng.randint(1, 3), rng.randint(1, 5), rng.randint(1, 5), int(h), int(w), k, s, p)
        )
    return cases


def random_deconv_cases(count, seed):
    """Seeded random ``(n, c_in, c_out, h, w, k, s, p, outsize)``, valid for Chainer.

    Alternately for the phases and the scatter routine. ``outsize`` is the
    default (given as ``None`` or explicitly) or up to ``s - 1`` larger:
    every size that a stride-``s`` convolution maps back to ``(h, w)``.
    """
    rng = numpy.random.RandomState(seed)
    cases = []
    while len(cases) < count:
        k, s, p = rng.randint(1, 6), rng.randint(1, 4), rng.randint(0, 3)
        h, w = (int(v) for v in rng.randint(1, 5, size=2))
        out = (deconv_outsize(h, k, s, p), deconv_outsize(w, k, s, p))
        if min(out) < 1:
            continue
        c_out = rng.randint(1, 4)
        scatter = len(cases) % 2 == 1
        c_in = 4 * c_out + rng.randint(1, 4) if scatter else rng.randint(1, 4 * c_out + 1)
        extra = rng.randint(0, s, size=2)
        outsize = (out[0] + int(extra[0]), out[1] + int(extra[1]))
        if not extra.any() and rng.randint(2):
            outsize = None
        cases.append((rng.randint(1, 3), c_in, c_out, h, w, k, s, p, outsize))
    return cases


CONV_CASES = [
    # (n, c_in, c_out, h, w, k, s, p)
    (2, 3, 4, 8, 8, 4, 2, 1),  # DCGAN D layer: halves the side
    (1, 2, 3, 7, 5, 3, 1, 1),  # 'same' convolution of an odd, non-square map
    (2, 3, 2, 6, 7, 1, 2, 0),  # kernel smaller than the stride
    (1, 4, 3, 9, 6, 5, 2, 2),  # the DCGAN paper's k5 p2
    (2, 2, 5, 7, 8, 3, 3, 0),  # stride 3: the last row and column are never read
    (1, 3, 2, 5, 6, 2, 3, 2),  # k2 < s3 with pad 2: the first window is all padding
    (2, 1, 3, 6, 5, 5, 1, 0),  # k5 without padding
    (1, 2, 2, 4, 9, 3, 2, 2),  # pad 2 on a 4-row map
    *random_conv_cases(4, seed=0),
]

DECONV_CASES = [
    # (n, c_in, c_out, h, w, k, s, p, outsize); c_in > 4 * c_out takes the scatter path
    (2, 4, 3, 3, 4, 4, 2, 1, None),  # DCGAN G hidden layer: doubles the side
    (2, 9, 2, 3, 4, 4, 2, 1, None),  # DCGAN G output layer (few channels)
    (1, 3, 4, 4, 3, 5, 2, 2, (8, 6)),  # k5 s2 p2 needs outsize to double the side
    (1, 10, 1, 4, 3, 5, 2, 2, (8, 6)),
    (2, 3, 3, 3, 2, 1, 2, 0, None),  # k1 < s2: every other output row/column is 0
    (1, 9, 2, 3, 2, 1, 2, 0, (6, 4)),  # ... and an extra all-zero last row/column
    (1, 2, 3, 4, 5, 3, 1, 1, None),  # stride 1: a single phase
    (2, 5, 1, 3, 3, 3, 3, 0, None),  # stride 3
    (1, 2, 2, 2, 3, 2, 3, 1, (5, 7)),  # k2 < s3 with padding and a larger outsize
    (1, 3, 2, 3, 4, 5, 1, 2, None),
    (1, 4, 4, 2, 3, 4, 3, 2, None),
    (1, 128, 64, 3, 2, 4, 2, 1, None),  # a DCGAN G hidden layer at full width: gather
    *random_deconv_cases(6, seed=1),
]


def conv_id(case):
    n, ci, co, h, w, k, s, p = case
    return f'n{n}c{ci}o{co}_{h}x{w}_k{k}s{s}p{p}'


def deconv_id(case):
    *head, outsize = case
    out = '' if outsize is None else '_out{}x{}'.format(*outsize)
    return f'{conv_id(head)}{out}_{strategy(case)}'


def strategy(case):
    """Which transposed-convolution routine the case should take (see conv.deconv_routine)."""
    c_in, c_out = case[1:3]
    if c_in > 4 * c_out:
        return 'scatter'
    return 'gather' if c_in >= 2 * c_out and c_out >= 64 else 'phases'


@pytest.fixture(params=['auto', 'gather'])
def deconv_choice(request, monkeypatch):
    """``'auto'``: the routine conv.deconv_routine picks for the shape;
    ``'gather'``: every transposed convolution (also a convolution's input
    gradient) through ``_deconv_gather``, which the table's small channel
    counts would otherwise reach only once.

    Used by the comparisons with Chainer, where a transposed convolution
    runs (a deconvolution's forward, a convolution's input gradient): they
    check each routine's values and gradients on every shape of the tables.
    The finite-difference checks run the routine each shape picks: a
    gradient equal to Chainer's in both routines needs no second proof that
    it is the derivative."""
    if request.param == 'gather':
        monkeypatch.setattr(conv, 'deconv_routine', lambda c_in, c_out: conv._deconv_gather)
    return request.param


def conv_inputs(case, dtype, rng):
    n, ci, co, h, w, k = case[:6]
    return (
        randn(rng, (n, ci, h, w), dtype),
        randn(rng, (co, ci, k, k), dtype),
        randn(rng, (co,), dtype),
    )


def deconv_inputs(case, dtype, rng):
    n, ci, co, h, w, k = case[:6]
    return (
        randn(rng, (n, ci, h, w), dtype),
        randn(rng, (ci, co, k, k), dtype),
        randn(rng, (co,), dtype),
    )


def with_bias(arrays, bias):
    return arrays if bias else arrays[:2]


# --- Hand-computed examples -----------------------------------------------------


def test_convolution_hand_computed():
    x = numpy.arange(9, dtype=numpy.float32).reshape(1, 1, 3, 3)
    W = numpy.ones((1, 1, 2, 2), numpy.float32)
    # Each output is the sum of a 2x2 window of [[0,1,2],[3,4,5],[6,7,8]], plus 1.
    sums = [
        [0 + 1 + 3 + 4, 1 + 2 + 4 + 5],
        [3 + 4 + 6 + 7, 4 + 5 + 7 + 8],
    ]
    y = ops.convolution_2d(x, W, numpy.ones(1, numpy.float32))
    numpy.testing.assert_array_equal(y.array[0, 0], numpy.array(sums) + 1)
    # Stride 2, pad 1: windows start at rows and columns -1 and 1, so the
    # first row and column of windows see padding and one row or column of x.
    y = ops.convolution_2d(x, W, stride=2, pad=1)
    numpy.testing.assert_array_equal(y.array[0, 0], [[0, 1 + 2], [3 + 6, 4 + 5 + 7 + 8]])


@pytest.mark.parametrize('c_in', [1, 5], ids=['phases', 'scatter'])
def test_deconvolution_hand_computed(c_in):
    # Every input channel holds [[1, 2]], every weight is 1: each input pixel
    # paints a 2x2 block (stride 2, no overlap) with c_in times its value.
    x = numpy.tile(numpy.array([[1, 2]], numpy.float32), (1, c_in, 1, 1))
    y = ops.deconvolution_2d(x, numpy.ones((c_in, 1, 2, 2), numpy.float32), stride=2)
    blocks = [
        [1, 1, 2, 2],
        [1, 1, 2, 2],
    ]
    numpy.testing.assert_array_equal(y.array[0, 0], c_in * numpy.array(blocks))
    # A 1x1 kernel with stride 2 and outsize 4x4 writes only every other
    # pixel; the rest, including the last row and column, are 0.
    x = numpy.tile(numpy.array([[1, 2], [3, 4]], numpy.float32), (1, c_in, 1, 1))
    y = ops.deconvolution_2d(
        x, numpy.full((c_in, 1, 1, 1), 3, numpy.float32), stride=2, outsize=(4, 4)
    )
    every_other = [
        [1, 0, 2, 0],
        [0, 0, 0, 0],
        [3, 0, 4, 0],
        [0, 0, 0, 0],
    ]
    numpy.testing.assert_array_equal(y.array[0, 0], 3 * c_in * numpy.array(every_other))


# --- Forward and first-order backward against Chainer ---------------------------


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('bias', [True, False], ids=['bias', 'nobias'])
@pytest.mark.parametrize('case', CONV_CASES, ids=conv_id)
def test_convolution_matches_chainer(case, bias, dtype, deconv_choice):
    s, p = case[6:]
    rng = numpy.random.default_rng(0)
    arrays = with_bias(conv_inputs(case, dtype, rng), bias)
    gy = randn(rng, ops.convolution_2d(*arrays, stride=s, pad=p).shape, dtype)
    y, g = grads(lambda *a: ops.convolution_2d(*a, stride=s, pad=p), arrays, gy)
    y_ref, g_ref = grads(lambda *a: F.convolution_2d(*a, stride=s, pad=p), arrays, gy)
    assert isinstance(y.creator, conv.Convolution2DNumPy)
    assert_close(y, y_ref, dtype)
    for a, b in zip(g, g_ref):
        assert_close(a, b, dtype)


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('bias', [True, False], ids=['bias', 'nobias'])
@pytest.mark.parametrize('case', DECONV_CASES, ids=deconv_id)
def test_deconvolution_matches_chainer(case, bias, dtype, monkeypatch, deconv_choice):
    s, p, outsize = case[6:]
    used = []

    def spy(name):
        routine = getattr(conv, name)

        def recording(*args):
            used.append(name)
            return routine(*args)

        return recording

    for name in ('_deconv_scatter', '_deconv_gather', '_deconv_phases'):
        monkeypatch.setattr(conv, name, spy(name))
    rng = numpy.random.default_rng(0)
    arrays = with_bias(deconv_inputs(case, dtype, rng), bias)

    def ours(*a):
        return ops.deconvolution_2d(*a, stride=s, pad=p, outsize=outsize)

    y = ours(*arrays)
    expected = strategy(case) if deconv_choice == 'auto' else 'gather'
    assert used == ['_deconv_' + expected]  # the table covers all three routines
    gy = randn(rng, y.shape, dtype)
    y, g = grads(ours, arrays, gy)
    y_ref, g_ref = grads(
        lambda *a: F.deconvolution_2d(*a, stride=s, pad=p, outsize=outsize), arrays, gy
    )
    assert isinstance(y.creator, conv.Deconvolution2DNumPy)
    assert_close(y, y_ref, dtype)
    for a, b in zip(g, g_ref):
        assert_close(a, b, dtype)


BN_CASES = [
    # (shape, eps, decay)
    ((4, 3, 5, 2), 2e-5, 0.9),  # (N, C, H, W), non-square
    ((2, 5, 3, 3), 1e-3, 0.5),
    ((8, 4), 2e-5, 0.9),  # after a linear layer: (N, C)
    ((3, 2, 7), 1e-5, 0.99),  # (N, C, L)
    ((2, 3, 1, 1), 2e-5, 0.0),  # two values per channel; decay 0 keeps only the batch
]


def bn_inputs(shape, dtype, rng):
    c = shape[1]
    x = (randn(rng, shape) * 3 + 1).astype(dtype)  # far from normalized already
    return x, rng.uniform(0.5, 1.5, c).astype(dtype), randn(rng, (c,), dtype)


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('shape, eps, decay', BN_CASES, ids=[str(c[0]) for c in BN_CASES])
def test_batch_normalization_matches_chainer_and_numpy(shape, eps, decay, dtype):
    rng = numpy.random.default_rng(0)
    x, gamma, beta = bn_inputs(shape, dtype, rng)
    c = shape[1]
    mean0, var0 = randn(rng, (c,), dtype), rng.uniform(0.5, 2, c).astype(dtype)
    ours_stats, ref_stats = (mean0.copy(), var0.copy()), (mean0.copy(), var0.copy())

    def ours(*a):
        return ops.batch_normalization(
            *a, eps=eps, running_mean=ours_stats[0], running_var=ours_stats[1], decay=decay
        )

    def ref(*a):
        return F.batch_normalization(
            *a, eps=eps, running_mean=ref_stats[0], running_var=ref_stats[1], decay=decay
        )

    gy = randn(rng, shape, dtype)
    y, g = grads(ours, (x, gamma, beta), gy)
    y_ref, g_ref = grads(ref, (x, gamma, beta), gy)
    assert isinstance(y.creator, normalization.BatchNormalizationNumPy)
    assert_close(y, y_ref, dtype)
    for a, b in zip(g, g_ref):
        assert_close(a, b, dtype)
    for a, b in zip(ours_stats, ref_stats):  # updated in place, like Chainer's
        assert_close(a, b, dtype)

    # The same from the definition, in float64.
    axes = (0, *range(2, len(shape)))  # all but the channel axis
    x64 = x.astype(numpy.float64)
    mean, var = x64.mean(axis=axes), x64.var(axis=axes)

    def per_channel(v):  # (C,) -> broadcastable against x
        return v.reshape((1, c) + (1,) * (len(shape) - 2))

    x_hat = (x64 - per_channel(mean)) / numpy.sqrt(per_channel(var) + eps)
    expected = x_hat * per_channel(gamma) + per_channel(beta)
    m = x.size // c
    tol = TOL[numpy.float32]  # the float64 reference against either dtype
    numpy.testing.assert_allclose(y.array, expected, **tol)
    numpy.testing.assert_allclose(ours_stats[0], decay * mean0 + (1 - decay) * mean, **tol)
    # Chainer's running variance is the unbiased one.
    numpy.testing.assert_allclose(
        ours_stats[1], decay * var0 + (1 - decay) * var * m / (m - 1), **tol
    )


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('slope', [0.2, 0.01, 0.5, 1.0])
@pytest.mark.parametrize('shape', [(2, 3, 4, 5), (6, 7)], ids=str)
def test_leaky_relu_matches_chainer_and_numpy(shape, slope, dtype):
    rng = numpy.random.default_rng(0)
    x = randn(rng, shape, dtype)
    # The kink: Chainer 7.8.1's gradient at x == 0 is the slope (its mask is
    # x <= 0); the fast backward used 1 there until this test caught it.
    x.flat[::5] = 0
    gy = randn(rng, shape, dtype)
    y, (gx,) = grads(lambda v: ops.leaky_relu(v, slope), (x,), gy)
    y_ref, (gx_ref,) = grads(lambda v: F.leaky_relu(v, slope), (x,), gy)
    assert isinstance(y.creator, activation.LeakyReLU)
    assert_close(y, y_ref, dtype)
    assert_close(gx, gx_ref, dtype)
    assert_close(y, numpy.where(x >= 0, x, x * dtype(slope)), dtype)
    assert_close(gx, numpy.where(x > 0, gy, gy * dtype(slope)), dtype)


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('alpha', [1.0, 0.3, 2.5])
@pytest.mark.parametrize('where', ['nchw', 'channel_last'])
def test_elu_matches_chainer_and_the_definition(where, alpha, dtype):
    rng = numpy.random.default_rng(0)
    x = layout(randn(rng, (3, 4, 5, 6), dtype) * 3, where)
    x.flat[::7] = 0  # the kink: Chainer's derivative there is alpha (its mask is y > 0)
    gy = randn(rng, x.shape, dtype)
    y, (gx,) = grads(lambda v: ops.elu(v, alpha), (x,), gy)
    y_ref, (gx_ref,) = grads(lambda v: F.elu(v, alpha), (x,), gy)
    assert isinstance(y.creator, activation.ELU)
    assert_close(y, y_ref, dtype)
    assert_close(gx, gx_ref, dtype)
    assert_close(y, numpy.where(x > 0, x, alpha * numpy.expm1(x)), dtype)
    assert_close(gx, numpy.where(x > 0, gy, gy * alpha * numpy.exp(x)), dtype)
    assert y.array.strides == x.strides  # a channel-last map stays channel-last


@pytest.mark.parametrize('alpha', [1.0, 0.4, 2.0])
def test_elu_check_backward_and_double_backward(alpha):
    rng = numpy.random.default_rng(1)
    x = away_from_zero(rng, (2, 3, 4, 5))
    fn = fast(lambda v: ops.elu(v, alpha), activation.ELU)
    gradient_check.check_backward(fn, (x,), randn(rng, x.shape))
    gradient_check.check_double_backward(
        lambda v: fn(v) ** 2, (x,), randn(rng, x.shape), (randn(rng, x.shape),))


@pytest.mark.parametrize('alpha', [0.0, -0.5])
def test_elu_without_a_positive_alpha_falls_back_to_chainer(alpha):
    x = randn(numpy.random.default_rng(4), (3, 4, 5))
    y = ops.elu(x, alpha)
    assert is_chainer_node(y)
    assert_close(y, numpy.where(x > 0, x, alpha * numpy.expm1(x)), numpy.float64)


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('act', ['relu', 'leaky_relu', 'tanh'])
def test_shifted_activation_matches_chainer_and_numpy(act, dtype):
    rng = numpy.random.default_rng(4)
    x, shift, gy = (randn(rng, (3, 4, 5, 2), dtype) for _ in range(3))
    x.flat[::7] = -shift.flat[::7]  # the kink at x + shift == 0, Chainer's convention
    ref = {'relu': F.relu, 'leaky_relu': lambda v: F.leaky_relu(v, 0.2), 'tanh': F.tanh}[act]
    y, (gx,) = grads(lambda v: ops.activation.shifted_activation(v, shift, act), (x,), gy)
    y_ref, (gx_ref,) = grads(lambda v: ref(v + shift), (x,), gy)
    assert isinstance(y.creator, activation.ShiftedActivation)
    assert_close(y, y_ref, dtype)
    assert_close(gx, gx_ref, dtype)
    s = x + shift
    by_hand = {'relu': (numpy.maximum(s, 0), numpy.where(s > 0, gy, 0)),
               'leaky_relu': (numpy.where(s > 0, s, 0.2 * s), numpy.where(s > 0, gy, 0.2 * gy)),
               'tanh': (numpy.tanh(s), gy * (1 - numpy.tanh(s) ** 2))}[act]
    assert_close(y, by_hand[0].astype(dtype), dtype)
    assert_close(gx, by_hand[1].astype(dtype), dtype)


def test_shifted_activation_keeps_the_layout_and_falls_back():
    x = numpy.zeros((2, 3, 4, 4), numpy.float32).transpose(0, 2, 3, 1).copy().transpose(0, 3, 1, 2)
    shift = numpy.empty_like(x)
    shift[...] = 1
    y = ops.activation.shifted_activation(x, shift, 'relu')
    assert y.array.strides == x.strides and (y.array == 1).all()
    half = ops.activation.shifted_activation(x.astype(numpy.float16), shift.astype(numpy.float16),
                                             'relu')
    assert not isinstance(half.creator, activation.ShiftedActivation)
    numpy.testing.assert_array_equal(half.array, 1)


# --- Gradients by finite differences (float64) ----------------------------------


@pytest.mark.parametrize('bias', [True, False], ids=['bias', 'nobias'])
@pytest.mark.parametrize('case', CONV_CASES, ids=conv_id)
def test_convolution_check_backward(case, bias):
    s, p = case[6:]
    rng = numpy.random.default_rng(1)
    arrays = with_bias(conv_inputs(case, numpy.float64, rng), bias)
    fn = fast(lambda *a: ops.convolution_2d(*a, stride=s, pad=p), conv.Convolution2DNumPy)
    gy = randn(rng, fn(*arrays).shape)
    gradient_check.check_backward(fn, arrays, gy)


@pytest.mark.parametrize('bias', [True, False], ids=['bias', 'nobias'])
@pytest.mark.parametrize('case', DECONV_CASES, ids=deconv_id)
def test_deconvolution_check_backward(case, bias):
    s, p, outsize = case[6:]
    rng = numpy.random.default_rng(1)
    arrays = with_bias(deconv_inputs(case, numpy.float64, rng), bias)
    fn = fast(
        lambda *a: ops.deconvolution_2d(*a, stride=s, pad=p, outsize=outsize), conv.Deconvolution2DNumPy
    )
    gy = randn(rng, fn(*arrays).shape)
    gradient_check.check_backward(fn, arrays, gy)


@pytest.mark.parametrize('shape, eps, decay', BN_CASES, ids=[str(c[0]) for c in BN_CASES])
def test_batch_normalization_check_backward(shape, eps, decay):
    rng = numpy.random.default_rng(1)
    arrays = bn_inputs(shape, numpy.float64, rng)
    fn = fast(
        lambda *a: ops.batch_normalization(*a, eps=eps, decay=decay),
        normalization.BatchNormalizationNumPy,
    )
    gradient_check.check_backward(fn, arrays, randn(rng, shape))


def away_from_zero(rng, shape):
    """Values at least 0.1 from the kink, where finite differences are exact."""
    return rng.uniform(0.1, 1, shape) * rng.choice([-1, 1], shape)


@pytest.mark.parametrize('slope', [0.2, 0.7, 1.0])
def test_leaky_relu_check_backward(slope):
    rng = numpy.random.default_rng(1)
    x = away_from_zero(rng, (2, 3, 4, 5))
    fn = fast(lambda v: ops.leaky_relu(v, slope), activation.LeakyReLU)
    gradient_check.check_backward(fn, (x,), randn(rng, x.shape))


# Double backprop (gradient penalties) runs Chainer's reference function
# inside the fast nodes' backward: the DCGAN layer and one odd case each.
@pytest.mark.parametrize('case', [CONV_CASES[0], (1, 2, 3, 5, 4, 3, 3, 2)], ids=conv_id)
def test_convolution_check_double_backward(case):
    s, p = case[6:]
    rng = numpy.random.default_rng(2)
    arrays = conv_inputs(case, numpy.float64, rng)
    fn = fast(lambda *a: ops.convolution_2d(*a, stride=s, pad=p), conv.Convolution2DNumPy)
    gy = randn(rng, fn(*arrays).shape)
    gradient_check.check_double_backward(fn, arrays, gy, [randn(rng, a.shape) for a in arrays])


@pytest.mark.parametrize('case', [DECONV_CASES[0], DECONV_CASES[3], DECONV_CASES[8]], ids=deconv_id)
def test_deconvolution_check_double_backward(case):
    s, p, outsize = case[6:]
    rng = numpy.random.default_rng(2)
    arrays = deconv_inputs(case, numpy.float64, rng)
    fn = fast(
        lambda *a: ops.deconvolution_2d(*a, stride=s, pad=p, outsize=outsize), conv.Deconvolution2DNumPy
    )
    gy = randn(rng, fn(*arrays).shape)
    gradient_check.check_double_backward(fn, arrays, gy, [randn(rng, a.shape) for a in arrays])


@pytest.mark.parametrize('shape', [(4, 3, 2, 3), (6, 2)], ids=str)
def test_batch_normalization_check_double_backward(shape):
    rng = numpy.random.default_rng(2)
    arrays = bn_inputs(shape, numpy.float64, rng)
    fn = fast(lambda *a: ops.batch_normalization(*a), normalization.BatchNormalizationNumPy)
    gradient_check.check_double_backward(
        fn, arrays, randn(rng, shape), [randn(rng, a.shape) for a in arrays]
    )


def test_leaky_relu_check_double_backward():
    rng = numpy.random.default_rng(2)
    x = away_from_zero(rng, (2, 3, 4))
    # Squared, so that the second derivative is not identically 0.
    fn = fast(lambda v: ops.leaky_relu(v, 0.2), activation.LeakyReLU)
    gradient_check.check_double_backward(
        lambda v: fn(v) ** 2, (x,), randn(rng, x.shape), (randn(rng, x.shape),)
    )


@pytest.mark.parametrize('act', ['leaky_relu', 'tanh'])
def test_shifted_activation_check_backward_and_double_backward(act):
    rng = numpy.random.default_rng(5)
    x = away_from_zero(rng, (2, 3, 4))
    shift = numpy.zeros_like(x)
    shift[0] = 0.05  # keeps x + shift 0.05 away from the kink
    fn = fast(lambda v: ops.activation.shifted_activation(v, shift, act),
              activation.ShiftedActivation)
    gradient_check.check_backward(fn, (x,), randn(rng, x.shape))
    gradient_check.check_double_backward(
        lambda v: fn(v) ** 2, (x,), randn(rng, x.shape), (randn(rng, x.shape),))


def distinct(rng, shape):
    """Values 0.1 apart in random order: no ties, and no maximum within a finite
    difference's step of another."""
    return rng.permutation(numpy.arange(numpy.prod(shape)) * 0.1 - 3).reshape(shape)


@pytest.mark.parametrize('shape', [(2, 3, 4, 6), (1, 2, 5, 3)], ids=str)
@pytest.mark.parametrize('fn, node', [(ops.max_pooling_2x2, pooling.MaxPooling2x2),
                                      (ops.average_pooling_2x2, pooling.AveragePooling2x2)],
                         ids=['max', 'average'])
def test_pooling_check_backward_and_double_backward(fn, node, shape):
    rng = numpy.random.default_rng(1)
    x = distinct(rng, shape)
    gy = randn(rng, fn(x).shape)
    gradient_check.check_backward(fast(fn, node), (x,), gy)
    # Squared, so that the second derivative is not identically 0.
    gradient_check.check_double_backward(lambda v: fast(fn, node)(v) ** 2, (x,), gy,
                                         (randn(rng, shape),))


def test_max_pooling_by_hand_sends_ties_to_chainers_corner():
    x = numpy.array([[[[1., 5., 2., 2.],
                       [5., 0., 2., 2.],
                       [0., 0., 9., 3.]]]], numpy.float32)
    y, (gx,) = grads(ops.max_pooling_2x2, (x,), numpy.array([[[[10., 20.]]]], numpy.float32))
    assert y.array.tolist() == [[[[5., 2.]]]]  # the third row is dropped
    # The first maximum of each window, row by row: (0, 1) and (0, 0).
    assert gx.tolist() == [[[[0., 10., 20., 0.], [0., 0., 0., 0.], [0., 0., 0., 0.]]]]
    _, (gx_ref,) = grads(lambda v: F.max_pooling_2d(v, 2, stride=2, cover_all=False), (x,),
                         numpy.array([[[[10., 20.]]]], numpy.float32))
    assert (gx == gx_ref).all()


@pytest.mark.parametrize('fn, ref', [
    (ops.max_pooling_2x2, lambda x: F.max_pooling_2d(x, 2, stride=2, cover_all=False)),
    (ops.average_pooling_2x2, lambda x: F.average_pooling_2d(x, 2, stride=2))],
    ids=['max', 'average'])
def test_pooling_of_saturated_maps_matches_chainer_and_keeps_the_layout(fn, ref):
    # A tanh saturated to exactly 1.0 in many places: ties everywhere.
    rng = numpy.random.default_rng(6)
    x = layout(numpy.tanh(rng.standard_normal((3, 4, 8, 6)) * 20).astype(numpy.float32),
               'channel_last')
    assert (x == 1).mean() > 0.3
    gy = randn(rng, (3, 4, 4, 3), numpy.float32)
    y, (gx,) = grads(fn, (x,), gy)
    y_ref, (gx_ref,) = grads(ref, (x,), gy)
    assert (y.array == y_ref.array).all() and (gx == gx_ref).all()
    assert y.array.transpose(0, 2, 3, 1).flags.c_contiguous


# --- Which path runs ----------------------------------------------------------------
# Each op: inputs (shapes), the fast function, Chainer's function, the fast node.
OPS = {
    'conv': (
        [(2, 3, 5, 6), (4, 3, 3, 3), (4,)],
        lambda x, W, b: ops.convolution_2d(x, W, b, 2, 1),
        lambda x, W, b: F.convolution_2d(x, W, b, 2, 1),
        conv.Convolution2DNumPy,
    ),
    'deconv_phases': (
        [(2, 4, 3, 5), (4, 3, 4, 4), (3,)],
        lambda x, W, b: ops.deconvolution_2d(x, W, b, 2, 1),
        lambda x, W, b: F.deconvolution_2d(x, W, b, 2, 1),
        conv.Deconvolution2DNumPy,
    ),
    'deconv_scatter': (
        [(2, 9, 3, 5), (9, 2, 5, 5), (2,)],
        lambda x, W, b: ops.deconvolution_2d(x, W, b, 2, 2, (6, 10)),
        lambda x, W, b: F.deconvolution_2d(x, W, b, 2, 2, (6, 10)),
        conv.Deconvolution2DNumPy,
    ),
    'batch_normalization': (
        [(3, 4, 3, 5), (4,), (4,)],
        lambda x, g, b: ops.batch_normalization(x, g, b, eps=1e-4),
        lambda x, g, b: F.batch_normalization(x, g, b, eps=1e-4),
        normalization.BatchNormalizationNumPy,
    ),
    'leaky_relu': (
        [(2, 3, 4, 5)],
        lambda x: ops.leaky_relu(x, 0.2),
        lambda x: F.leaky_relu(x, 0.2),
        activation.LeakyReLU,
    ),
    'elu': (
        [(2, 3, 4, 5)],
        ops.elu,
        F.elu,
        activation.ELU,
    ),
    # Odd rows: the last one is dropped (cover_all=False, Keras' 'valid').
    'max_pooling': (
        [(2, 3, 7, 6)],
        ops.max_pooling_2x2,
        lambda x: F.max_pooling_2d(x, 2, stride=2, cover_all=False),
        pooling.MaxPooling2x2,
    ),
    'average_pooling': (
        [(2, 3, 7, 6)],
        ops.average_pooling_2x2,
        lambda x: F.average_pooling_2d(x, 2, stride=2),
        pooling.AveragePooling2x2,
    ),
}


def op_inputs(name, dtype, seed=3):
    rng = numpy.random.default_rng(seed)
    arrays = [randn(rng, shape, dtype) for shape in OPS[name][0]]
    if name == 'batch_normalization':
        arrays[1] = rng.uniform(0.5, 1.5, arrays[1].shape).astype(dtype)
    return arrays


def is_chainer_node(y):
    return not isinstance(y.creator, FAST_NODES) and type(y.creator).__module__.startswith(
        'chainer.functions.'
    )


@pytest.mark.parametrize('name', sorted(OPS))
def test_fast_path_is_taken_for_numpy_float32(name):
    _, ours, ref, node = OPS[name]
    arrays = op_inputs(name, numpy.float32)
    y = ours(*arrays)
    assert isinstance(y.creator, node)
    assert_close(y, ref(*arrays), numpy.float32)


@pytest.mark.parametrize('name', ['conv', 'deconv_phases', 'batch_normalization'])
def test_fast_outputs_are_channel_last(name):
    # The next fast layer then reads them as (N*H*W, C) rows without a copy.
    _, ours, _, _ = OPS[name]
    y = ours(*op_inputs(name, numpy.float32)).array
    assert y.transpose(0, 2, 3, 1).flags.c_contiguous
    assert not y.flags.c_contiguous


@pytest.mark.parametrize('name', sorted(OPS))
def test_config_switch_falls_back_to_chainer(name):
    _, ours, ref, _ = OPS[name]
    arrays = op_inputs(name, numpy.float32)
    assert ops.fast_enabled()
    with chainer.using_config(ops.CONFIG_KEY, False):
        assert not ops.fast_enabled()
        y = ours(*arrays)
    assert ops.fast_enabled()
    assert is_chainer_node(y)
    assert_close(y, ref(*arrays), numpy.float32)


@pytest.mark.parametrize('name', sorted(OPS))
def test_float16_falls_back_to_chainer(name):
    _, ours, ref, _ = OPS[name]
    arrays = op_inputs(name, numpy.float16)
    y = ours(*arrays)
    assert is_chainer_node(y)
    assert y.dtype == numpy.float16
    numpy.testing.assert_allclose(y.array, ref(*arrays).array, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize(
    'kwargs',
    [{'dilate': 2}, {'groups': 2}, {'cover_all': True}],
    ids=['dilate', 'groups', 'cover_all'],
)
def test_convolution_options_fall_back_to_chainer(kwargs):
    rng = numpy.random.default_rng(4)
    groups = kwargs.get('groups', 1)
    x, W, b = randn(rng, (2, 4, 6, 7)), randn(rng, (4, 4 // groups, 3, 3)), randn(rng, (4,))
    y = ops.convolution_2d(x, W, b, 2, 1, **kwargs)
    assert is_chainer_node(y)
    assert_close(y, F.convolution_2d(x, W, b, 2, 1, **kwargs), numpy.float64)


def test_cover_all_is_passed_on():
    # 6 rows, k3 s2 p0: cover_all adds a third output row for the last one.
    x, W = numpy.ones((1, 1, 6, 6)), numpy.ones((1, 1, 3, 3))
    assert ops.convolution_2d(x, W, stride=2).shape == (1, 1, 2, 2)
    assert ops.convolution_2d(x, W, stride=2, cover_all=True).shape == (1, 1, 3, 3)


@pytest.mark.parametrize('kwargs', [{'dilate': 2}, {'groups': 2}], ids=['dilate', 'groups'])
def test_deconvolution_options_fall_back_to_chainer(kwargs):
    rng = numpy.random.default_rng(4)
    groups = kwargs.get('groups', 1)
    x, W, b = randn(rng, (2, 4, 3, 4)), randn(rng, (4, 4 // groups, 3, 3)), randn(rng, (4,))
    y = ops.deconvolution_2d(x, W, b, 2, 1, **kwargs)
    assert is_chainer_node(y)
    assert_close(y, F.deconvolution_2d(x, W, b, 2, 1, **kwargs), numpy.float64)


@pytest.mark.parametrize('slope', [0.0, 1.5, -0.3])
def test_leaky_relu_other_slopes_fall_back_to_chainer(slope):
    rng = numpy.random.default_rng(4)
    x = randn(rng, (3, 4, 5))
    y = ops.leaky_relu(x, slope)
    assert is_chainer_node(y)
    assert_close(y, numpy.where(x > 0, x, slope * x), numpy.float64)


def test_batch_normalization_of_1d_input_falls_back_to_chainer():
    # Chainer rejects it with its own message; the fast path must not swallow it.
    x = numpy.ones(4, numpy.float32)
    with pytest.raises(chainer.utils.type_check.InvalidType):
        ops.batch_normalization(x, numpy.ones(4, numpy.float32), numpy.zeros(4, numpy.float32))


# --- Memory layouts ---------------------------------------------------------------


def layout(a, kind):
    """``a``'s values in another memory layout."""
    if kind == 'nchw':
        return numpy.ascontiguousarray(a)
    if kind == 'channel_last':
        if a.ndim != 4:
            return a
        return numpy.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    if kind == 'fortran':
        return numpy.asfortranarray(a)
    if kind == 'reversed':  # negative strides on every axis
        return numpy.flip(numpy.flip(a).copy())
    if kind == 'sliced':  # every other element of a NaN-filled array: reads past it show
        big = numpy.full([2 * n + 1 for n in a.shape], numpy.nan, a.dtype)
        view = big[tuple(slice(1, None, 2) for _ in a.shape)]
        view[...] = a
        return view
    raise ValueError(kind)


LAYOUTS = ['nchw', 'channel_last', 'fortran', 'reversed', 'sliced']


@pytest.mark.parametrize('kind', LAYOUTS)
@pytest.mark.parametrize('name', sorted(OPS))
def test_any_input_layout_gives_the_same_values(name, kind):
    """Inputs and the output gradient in any layout: same output and gradients."""
    _, ours, ref, node = OPS[name]
    arrays = op_inputs(name, numpy.float64)
    gy = randn(numpy.random.default_rng(5), ref(*arrays).shape)
    y_ref, g_ref = grads(ref, arrays, gy)
    y, g = grads(ours, [layout(a, kind) for a in arrays], layout(gy, kind))
    assert isinstance(y.creator, node)
    assert_close(y, y_ref, numpy.float64)
    for a, b in zip(g, g_ref):
        assert_close(a, b, numpy.float64)


def test_leaky_relu_keeps_the_input_layout():
    x = layout(numpy.random.default_rng(5).standard_normal((2, 3, 4, 5)), 'channel_last')
    assert ops.leaky_relu(x, 0.2).array.transpose(0, 2, 3, 1).flags.c_contiguous


def test_backward_twice_accumulates_like_chainer():
    # The conv node frees its saved im2col columns after the first backward
    # and must rebuild them for the second.
    arrays = op_inputs('conv', numpy.float64)
    _, ours, ref, _ = OPS['conv']
    results = []
    for fn in (ours, ref):
        xs = [chainer.Variable(a) for a in arrays]
        loss = F.sum(fn(*xs) ** 2)
        loss.backward()
        loss.backward()
        results.append([x.grad for x in xs])
    for a, b in zip(*results):
        assert_close(a, b, numpy.float64)


# --- Links --------------------------------------------------------------------------
# (class name, constructor args, kwargs, input shape)
LINKS = [
    ('Convolution2D', (3, 4, 3), {'stride': 2, 'pad': 1}, (2, 3, 7, 6)),
    ('Convolution2D', (3, 4, 4), {'nobias': True}, (2, 3, 5, 8)),
    ('Convolution2D', (4, 4, 3), {'groups': 2}, (2, 4, 5, 5)),
    # Without outsize see test_deconvolution_without_outsize below.
    ('Deconvolution2D', (4, 2, 4), {'stride': 2, 'pad': 1, 'outsize': (6, 10)}, (2, 4, 3, 5)),
    ('Deconvolution2D', (10, 1, 5), {'stride': 2, 'pad': 2, 'outsize': (8, 6)}, (2, 10, 4, 3)),
    ('BatchNormalization', (5,), {}, (4, 5, 3, 2)),
    ('BatchNormalization', (3,), {'decay': 0.5, 'eps': 1e-3}, (6, 3)),
    ('BatchNormalization', (3,), {'use_gamma': False, 'use_beta': False}, (4, 3, 2, 2)),
]


def link_id(case):
    name, args, kwargs, _ = case
    return '-'.join([name, *map(str, args), *(f'{k}={v}' for k, v in kwargs.items())])


def state(link):
    """Every parameter and persistent value of ``link``, by its saved name."""
    serializer = chainer.serializers.DictionarySerializer()
    serializer.save(link)
    return {k: numpy.array(v) for k, v in serializer.target.items()}


def randomize(link, seed):
    """Fills every parameter and float persistent (BN statistics) with fresh values."""
    rng = numpy.random.default_rng(seed)
    for _, p in link.namedparams():
        p.array[...] = rng.uniform(0.5, 1.5, p.shape)
    for name in ('avg_mean', 'avg_var'):
        if getattr(link, name, None) is not None:
            getattr(link, name)[...] = rng.uniform(0.5, 1.5, getattr(link, name).shape)


@pytest.mark.parametrize('case', LINKS, ids=link_id)
def test_link_has_chainers_parameters_and_loads_its_snapshot(case, tmp_path):
    name, args, kwargs, x_shape = case
    ours, theirs = getattr(ops, name)(*args, **kwargs), getattr(L, name)(*args, **kwargs)
    assert isinstance(ours, type(theirs))
    assert {k: v.shape for k, v in state(ours).items()} == {
        k: v.shape for k, v in state(theirs).items()
    }
    randomize(theirs, seed=6)
    chainer.serializers.save_npz(tmp_path / 'theirs.npz', theirs)
    x = randn(numpy.random.default_rng(7), x_shape, numpy.float32)
    with chainer.using_config('train', False):
        expected, before = theirs(x).array, ours(x).array
        assert not numpy.allclose(before, expected)  # so that loading has to do something
        chainer.serializers.load_npz(tmp_path / 'theirs.npz', ours)
        assert_close(ours(x), expected, numpy.float32)
    assert_close(ours(x), theirs(x), numpy.float32)  # training mode


@pytest.mark.parametrize('case', [c for c in LINKS if c[0] != 'BatchNormalization'], ids=link_id)
def test_conv_link_takes_the_fast_path_unless_it_cannot(case):
    name, args, kwargs, x_shape = case
    link = getattr(ops, name)(*args, **kwargs)
    y = link(randn(numpy.random.default_rng(7), x_shape, numpy.float32))
    fast_node = conv.Convolution2DNumPy if name == 'Convolution2D' else conv.Deconvolution2DNumPy
    assert isinstance(y.creator, fast_node) == ('groups' not in kwargs)


@pytest.mark.parametrize(
    'name, args, kwargs, x_shape',
    [
        ('Convolution2D', (None, 4, 3), {'stride': 2}, (2, 3, 5, 6)),
        ('Deconvolution2D', (None, 2, 4), {'stride': 2, 'pad': 1, 'outsize': (6, 8)}, (2, 5, 3, 4)),
    ],
    ids=['Convolution2D', 'Deconvolution2D'],
)
def test_uninitialized_link_initializes_on_first_call(name, args, kwargs, x_shape):
    x = randn(numpy.random.default_rng(8), x_shape, numpy.float32)
    outputs, links = [], []
    for module in (ops, L):  # the same draws from the global RNG for both
        with global_seed(0):
            link = getattr(module, name)(*args, **kwargs)
            outputs.append(link(x))
        links.append(link)
    assert state(links[0]).keys() == state(links[1]).keys()
    for k, v in state(links[1]).items():
        assert_close(state(links[0])[k], v, numpy.float32)
    assert_close(outputs[0], outputs[1], numpy.float32)
    assert links[0].W.shape[:2] in ((args[1], x_shape[1]), (x_shape[1], args[1]))
    # Initialized now: the next call is a fast one.
    assert isinstance(links[0](x).creator, FAST_NODES)


# Chainer's Deconvolution2D link stores a missing outsize as (None, None), and
# F.deconvolution_2d takes None per axis: the fast node must too.
@pytest.mark.parametrize(
    'outsize, via_link',
    [(None, True), ((None, None), False), ((None, 9), False)],
    ids=['link', 'none_none', 'none_9'],
)
def test_deconvolution_without_outsize(outsize, via_link):
    rng = numpy.random.default_rng(13)
    x, W = randn(rng, (2, 4, 3, 4), numpy.float32), randn(rng, (4, 2, 4, 4), numpy.float32)
    if via_link:
        y = ops.Deconvolution2D(4, 2, 4, stride=2, pad=1, initialW=W)(x)
    else:
        y = ops.deconvolution_2d(x, W, stride=2, pad=1, outsize=outsize)
    assert_close(y, F.deconvolution_2d(x, W, stride=2, pad=1, outsize=outsize), numpy.float32)


@pytest.mark.parametrize('outsize', [(9, 5), (30, 30), (2, 2)])
def test_deconvolution_rejects_an_outsize_the_input_cannot_produce(outsize):
    # A 3x2 input, k2 s3 p1 gives 5x5 .. 7x6 outputs (Chainer raises InvalidType).
    x, W = numpy.ones((1, 2, 3, 2), numpy.float32), numpy.ones((2, 3, 2, 2), numpy.float32)
    with pytest.raises(chainer.utils.type_check.InvalidType):
        F.deconvolution_2d(x, W, stride=3, pad=1, outsize=outsize)
    with pytest.raises(ValueError, match='outsize'):
        ops.deconvolution_2d(x, W, stride=3, pad=1, outsize=outsize)


def bn_pair(size=4, **kwargs):
    ours, theirs = ops.BatchNormalization(size, **kwargs), L.BatchNormalization(size, **kwargs)
    randomize(theirs, seed=9)
    for name in ('gamma', 'beta'):
        getattr(ours, name).array[...] = getattr(theirs, name).array
    ours.avg_mean[...], ours.avg_var[...] = theirs.avg_mean, theirs.avg_var
    return ours, theirs


def test_batch_normalization_link_in_eval_mode_is_chainers():
    ours, theirs = bn_pair()
    x = randn(numpy.random.default_rng(10), (3, 4, 2, 3), numpy.float32)
    with chainer.using_config('train', False):
        y = ours(x)
        assert is_chainer_node(y)
        assert_close(y, theirs(x), numpy.float32)
    # Fixed BN uses the running statistics: the batch's own give another output.
    assert not numpy.allclose(y.array, ours(x).array)


@pytest.mark.parametrize('kwargs', [{}, {'decay': 0.7, 'eps': 1e-3}], ids=['default', 'decay'])
def test_batch_normalization_link_in_train_mode_matches_chainer(kwargs):
    ours, theirs = bn_pair(**kwargs)
    rng = numpy.random.default_rng(11)
    for i in range(3):
        x = (randn(rng, (5, 4, 3, 2), numpy.float32) + i) * (i + 1)
        y = ours(x)
        assert isinstance(y.creator, normalization.BatchNormalizationNumPy)
        assert_close(y, theirs(x), numpy.float32)
    for k, v in state(theirs).items():
        assert_close(state(ours)[k], v, numpy.float32)


def test_batch_normalization_link_without_gamma_and_beta_matches_chainer():
    # Conditional batch normalization's inner link: no affine parameters.
    kwargs = {'use_gamma': False, 'use_beta': False}
    ours, theirs = ops.BatchNormalization(4, **kwargs), L.BatchNormalization(4, **kwargs)
    rng = numpy.random.default_rng(13)
    for i in range(2):
        x = (randn(rng, (5, 4, 3, 2), numpy.float32) + i) * (i + 2)
        gy = randn(rng, x.shape, numpy.float32)
        y, (gx,) = grads(ours, (x,), gy)
        y_ref, (gx_ref,) = grads(theirs, (x,), gy)
        assert isinstance(y.creator, normalization.BatchNormalizationNumPy)
        assert_close(y, y_ref, numpy.float32)
        assert_close(gx, gx_ref, numpy.float32)
        # Mean 0 and variance 1 per channel: no scale or shift was applied.
        rows = numpy.moveaxis(y.array, 1, -1).reshape(-1, 4)
        numpy.testing.assert_allclose(rows.mean(axis=0), 0, atol=1e-5)
        numpy.testing.assert_allclose(rows.var(axis=0), 1, atol=1e-3)
    for k, v in state(theirs).items():
        assert_close(state(ours)[k], v, numpy.float32)


def test_batch_normalization_link_finetune_is_chainers():
    ours, theirs = bn_pair()
    rng = numpy.random.default_rng(12)
    for _ in range(2):
        x = randn(rng, (5, 4, 3), numpy.float32)
        y = ours(x, finetune=True)
        assert is_chainer_node(y)
        assert_close(y, theirs(x, finetune=True), numpy.float32)
    for k, v in state(theirs).items():  # including the fine-tuning counter N
        assert_close(state(ours)[k], v, numpy.float32)


# --- frozen -------------------------------------------------------------------------


class SmallNet(chainer.Chain):
    """conv -> BN -> LeakyReLU -> linear: ``(4, 2, 5, 6)`` -> ``(4, 1)``."""

    def __init__(self):
        super().__init__()
        with self.init_scope():
            self.conv = ops.Convolution2D(2, 3, 3, stride=2, pad=1)
            self.bn = ops.BatchNormalization(3)
            self.fc = L.Linear(3 * 3 * 3, 1)

    def forward(self, x):
        return self.fc(ops.leaky_relu(self.bn(self.conv(x)), 0.2))


def small_net():
    with global_seed(0):
        return SmallNet()


def backward(net, x):
    """Input gradient of ``sum(net(x) ** 2)``; parameter gradients are left in ``net``."""
    net.cleargrads()
    x = chainer.Variable(x.copy())
    F.sum(net(x) ** 2).backward()
    return x.grad


def param_grads(net):
    return {name: None if p.grad is None else p.grad.copy() for name, p in net.namedparams()}


X_SMALL = numpy.random.default_rng(14).standard_normal((4, 2, 5, 6)).astype(numpy.float32)


def test_frozen_keeps_input_gradient_and_computes_no_parameter_gradients():
    net = small_net()
    gx_free = backward(net, X_SMALL)
    grads_free = param_grads(net)
    assert all(g is not None for g in grads_free.values())
    with ops.frozen(net) as link:
        assert link is net
        assert not any(p.requires_grad for p in net.params())
        gx_frozen = backward(net, X_SMALL)
        assert all(g is None for g in param_grads(net).values())
    numpy.testing.assert_allclose(gx_frozen, gx_free, rtol=1e-6, atol=1e-7)
    # Unfrozen again: a normal backward fills every gradient as before.
    assert all(p.requires_grad for p in net.params())
    numpy.testing.assert_allclose(backward(net, X_SMALL), gx_free, rtol=1e-6, atol=1e-7)
    for name, g in param_grads(net).items():
        numpy.testing.assert_allclose(g, grads_free[name], rtol=1e-5, atol=1e-6)


def test_frozen_freezes_only_the_given_link():
    net = small_net()
    with ops.frozen(net.conv):
        backward(net, X_SMALL)
    grads_ = param_grads(net)
    assert grads_['/conv/W'] is None and grads_['/conv/b'] is None
    assert all(g is not None for name, g in grads_.items() if not name.startswith('/conv/'))


def test_frozen_restores_after_an_exception():
    net = small_net()
    with pytest.raises(RuntimeError, match='inside'), ops.frozen(net):
        raise RuntimeError('inside the block')
    assert all(p.requires_grad for p in net.params())
    backward(net, X_SMALL)
    assert all(g is not None for g in param_grads(net).values())


def test_nested_frozen_stays_frozen_until_the_outer_block_ends():
    net = small_net()
    with ops.frozen(net):
        with ops.frozen(net.conv):
            pass
        assert not any(p.requires_grad for p in net.params())
    assert all(p.requires_grad for p in net.params())


# --- One GAN update against Chainer's functions ---------------------------------


def one_update(fast_enabled, counts):
    """Parameters and statistics of G and D after one GANUpdater iteration."""
    with global_seed(0):
        gen = Generator(size=16, channels=1, widths=[4, 8])
        dis = Discriminator(size=16, channels=1, widths=[4, 8])
    before = {'gen': state(gen), 'dis': state(dis)}
    optimizers = {}
    for name, net in (('gen', gen), ('dis', dis)):
        # eps: a conv bias followed by BN has a gradient that is 0 in exact
        # arithmetic, and float32 rounding noise (up to ~3e-6 here) in
        # practice. Adam's first step is about alpha * g / (|g| + eps / 0.03),
        # so with the default eps (1e-8) that noise moves such a bias by up
        # to ~alpha, differently in any two implementations. With 1e-4 the
        # noise moves it by < 2e-7, while every real gradient still moves
        # its weight by a sizeable fraction of alpha.
        optimizers[name] = chainer.optimizers.Adam(2e-4, beta1=0.5, eps=1e-4)
        optimizers[name].setup(net)
    iterator = chainer.iterators.SerialIterator(fake_images(8, size=16), 4, shuffle=False)
    updater = GANUpdater(iterator, optimizers, device=-1, seed=0)
    counts.clear()
    with chainer.using_config(ops.CONFIG_KEY, fast_enabled):
        updater.update()
    return before, {'gen': state(gen), 'dis': state(dis)}, dict(counts)


def test_gan_update_with_fast_ops_matches_chainer(monkeypatch):
    counts = Counter()
    for node in FAST_NODES:

        def counting_forward(self, inputs, _forward=node.forward):
            counts[type(self).__name__] += 1
            return _forward(self, inputs)

        monkeypatch.setattr(node, 'forward', counting_forward)

    before, fast_after, fast_counts = one_update(True, counts)
    _, slow_after, slow_counts = one_update(False, counts)
    # The fast run used every fast node but pooling and ELU (the DCGAN nets
    # have none; tests/test_recipe_nets.py runs the write-up nets) and batch
    # normalization on its own (inside blocks here; tests/test_blocks.py), the
    # other none.
    unused = {pooling.MaxPooling2x2, pooling.AveragePooling2x2, activation.ELU,
              normalization.BatchNormalizationNumPy}
    assert set(fast_counts) == {node.__name__ for node in FAST_NODES if node not in unused}
    assert slow_counts == {}
    for net, first_layer in (('gen', 'deconvs/0/W'), ('dis', 'convs/0/W')):
        assert fast_after[net].keys() == slow_after[net].keys()
        for name, value in slow_after[net].items():
            numpy.testing.assert_allclose(
                fast_after[net][name], value, rtol=1e-4, atol=1e-5, err_msg=f'{net}/{name}'
            )
        # The update did move the weights, so the comparison means something.
        assert not numpy.allclose(fast_after[net][first_layer], before[net][first_layer])


# --- malloc tuning ------------------------------------------------------------------


def test_keep_freed_memory_is_a_bool_and_idempotent():
    first = _common.keep_freed_memory()
    assert isinstance(first, bool)
    assert _common.keep_freed_memory() is first


def run_python(code, **env):
    environ = {
        k: v for k, v in os.environ.items() if k not in ('GAN_TRAINER_MALLOPT', 'GAN_TRAINER_FAST')
    }
    result = subprocess.run(
        [sys.executable, '-c', code],
        env={**environ, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,  # the assert below shows stderr
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


@pytest.mark.process
@pytest.mark.parametrize(
    'env, expected',
    [
        ({'GAN_TRAINER_MALLOPT': '0'}, 'False'),
        # glibc accepts the settings; elsewhere there is no mallopt to call.
        ({}, str(platform.libc_ver()[0] == 'glibc')),
    ],
    ids=['disabled', 'default'],
)
def test_keep_freed_memory_in_a_fresh_process(env, expected):
    # A fast function runs first: it calls keep_freed_memory itself, which
    # must not change the answer.
    code = (
        'import numpy; from gan_trainer import ops; from gan_trainer.ops import _common\n'
        'ops.leaky_relu(numpy.ones(3, numpy.float32))\n'
        'print(_common._MALLOC_TUNED, _common.keep_freed_memory(), '
        '_common.keep_freed_memory())'
    )
    assert run_python(code, **env) == [expected] * 3


@pytest.mark.process
def test_environment_switches_the_fast_path_off_for_a_process():
    code = (
        'import numpy; from gan_trainer import ops\n'
        'print(ops.fast_enabled(), type(ops.leaky_relu(numpy.ones(3)).creator).__module__)'
    )
    module = F.leaky_relu.__module__  # chainer.functions.activation.leaky_relu
    assert run_python(code, GAN_TRAINER_FAST='0') == ['False', module]


# --- One-pass Adam ------------------------------------------------------------------


def adam_run(cls, steps, *, net=None, seed=0, **hyper):
    """``net`` (a small G by default) after ``steps`` updates with seeded gradients."""
    if net is None:
        with global_seed(seed):
            net = Generator(size=8, channels=1, widths=[4, 8])
    opt = cls(alpha=2e-3, beta1=0.5, **hyper)
    opt.setup(net)
    return train_on(net, opt, steps, seed)


def train_on(net, opt, steps, seed):
    rng = numpy.random.RandomState(seed)
    for _ in range(steps):
        net.cleargrads()
        for p in net.params():
            p.grad = rng.standard_normal(p.shape).astype(p.dtype)
        opt.update()
    return net, opt


def assert_same_training_state(a, b, exact=True):
    check = numpy.testing.assert_array_equal if exact else numpy.testing.assert_allclose
    for (name, p), (_, q) in zip(a[0].namedparams(), b[0].namedparams()):
        check(p.array, q.array, err_msg=name)
        for key in ('m', 'v'):
            check(p.update_rule.state[key], q.update_rule.state[key], err_msg=f'{name}/{key}')
        assert p.update_rule.t == q.update_rule.t
    assert a[1].t == b[1].t


def test_adam_is_chainers_bit_for_bit_and_takes_the_flat_pass():
    ours = adam_run(ops.Adam, 4)
    assert_same_training_state(ours, adam_run(chainer.optimizers.Adam, 4))
    flat_params = ours[1]._flat[1][0]
    assert all(numpy.shares_memory(p.array, flat_params) for p in ours[0].params())


@pytest.mark.parametrize('onednn', [True, False], ids=['onednn', 'numpy'])
@pytest.mark.parametrize('hyper', [{}, {'eps': 1e-3, 'eta': 0.5, 'beta2': 0.9}], ids=str)
def test_adam_on_onednn_and_on_numpy_is_chainers_bit_for_bit(onednn, hyper, monkeypatch):
    """The default run's G (0.35 million parameters, float32), five steps, with
    some zero gradients: the four oneDNN passes (gan_trainer/ops/onednn_adam.py)
    and the thirteen NumPy ones both give Chainer's parameters and moments."""
    from gan_trainer.ops import dnnl, onednn_adam
    if onednn and dnnl.library() is None:
        pytest.skip('oneDNN does not load here')
    monkeypatch.setattr(onednn_adam, 'ENABLED', onednn)
    calls = []
    run_update = onednn_adam.Update.__call__
    monkeypatch.setattr(onednn_adam.Update, '__call__',
                        lambda self, *a, **k: calls.append(1) or run_update(self, *a, **k))

    def trained(cls):
        with global_seed(1):
            net = Generator(size=28, channels=1, base_width=32)
        opt = cls(alpha=2e-4, beta1=0.5, **hyper)
        opt.setup(net)
        rng = numpy.random.RandomState(3)
        for step in range(5):
            net.cleargrads()
            for p in net.params():
                g = rng.standard_normal(p.shape).astype(p.dtype) * 10.0 ** -step
                g.reshape(-1)[::7] = 0
                p.grad = g
            opt.update()
        return net, opt

    with chainer.using_config(_common.ONEDNN_KEY, True):  # this file's fixture turns it off
        ours = trained(ops.Adam)
    assert len(calls) == (5 if onednn else 0)
    assert_same_training_state(ours, trained(chainer.optimizers.Adam))


@pytest.mark.parametrize(
    'hyper', [{'weight_decay_rate': 1e-2}, {'amsgrad': True}, {'eps': 1e-3, 'eta': 0.5}], ids=str
)
def test_adam_options_match_chainer(hyper):
    # weight decay and amsgrad take Chainer's per-parameter update; eta and
    # eps are in the flat pass.
    ours = adam_run(ops.Adam, 3, **hyper)
    assert_same_training_state(ours, adam_run(chainer.optimizers.Adam, 3, **hyper))
    assert (ours[1]._flat is None) == ('eps' not in hyper)


def test_adam_rule_hook_and_missing_grads_fall_back_or_match():
    def hooked(cls):
        with global_seed(0):
            net = Generator(size=8, channels=1, widths=[4, 8])
        opt = cls(alpha=2e-3)
        opt.setup(net)
        net.project.W.update_rule.add_hook(lambda rule, param: param.grad.__imul__(0.5), 'half')
        for _ in range(2):
            net.cleargrads()
            net.project.W.grad = numpy.ones_like(net.project.W.array)  # the others: None -> zeros
            opt.update()
        return net, opt

    ours, theirs = hooked(ops.Adam), hooked(chainer.optimizers.Adam)
    assert ours[1]._flat is None  # the rule's hook: Chainer's update ran
    assert_same_training_state(ours, theirs)
    ours[0].project.W.update_rule.remove_hook('half')
    adam_step = ours[1].update
    ours[0].cleargrads()
    theirs[0].project.W.update_rule.remove_hook('half')
    theirs[0].cleargrads()
    adam_step()  # every grad None: zeros, as Chainer's reallocate_cleared_grads gives
    theirs[1].update()
    assert ours[1]._flat is not None
    assert_same_training_state(ours, theirs)


@pytest.mark.parametrize('writer, reader', [('chainer', 'ours'), ('ours', 'chainer')])
def test_adam_snapshots_load_both_ways_and_training_continues_alike(tmp_path, writer, reader):
    classes = {'chainer': chainer.optimizers.Adam, 'ours': ops.Adam}
    net, opt = adam_run(classes[writer], 3)
    chainer.serializers.save_npz(tmp_path / 'opt.npz', opt)
    chainer.serializers.save_npz(tmp_path / 'net.npz', net)
    with numpy.load(tmp_path / 'opt.npz') as f:
        names = set(f.files)
    assert {'t', 'epoch', 'project/W/m', 'project/W/v', 'project/W/t'} <= names

    def resumed(cls):
        with global_seed(5):
            fresh = Generator(size=8, channels=1, widths=[4, 8])
        o = cls(alpha=2e-3, beta1=0.5)
        o.setup(fresh)
        chainer.serializers.load_npz(tmp_path / 'net.npz', fresh)
        chainer.serializers.load_npz(tmp_path / 'opt.npz', o)
        assert o.t == 3 and fresh.project.W.update_rule.t == 3
        return train_on(fresh, o, 2, seed=7)

    # Loaded by the other class, training goes on exactly as in the writer's.
    assert_same_training_state(resumed(classes[reader]), resumed(classes[writer]))
    # ... and as without the snapshot: 5 steps in one go, the same gradients.
    uninterrupted = train_on(*adam_run(classes[reader], 3), 2, seed=7)
    assert_same_training_state(resumed(classes[reader]), uninterrupted)
    with numpy.load(tmp_path / 'opt.npz') as f:
        assert int(f['t']) == 3


def test_adam_rebuilds_its_buffers_when_an_array_is_replaced():
    net, opt = adam_run(ops.Adam, 2)
    ref_net, ref_opt = adam_run(chainer.optimizers.Adam, 2)
    for n in (net, ref_net):
        n.project.W.array = n.project.W.array.copy()  # e.g. to_device, a loader
    for n, o in ((net, opt), (ref_net, ref_opt)):
        n.cleargrads()
        for p in n.params():
            p.grad = numpy.full(p.shape, 0.1, p.dtype)
        o.update()
    assert numpy.shares_memory(net.project.W.array, opt._flat[1][0])
    assert_same_training_state((net, opt), (ref_net, ref_opt))


# --- Batch normalization with its activation in the same node ------------------------


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('act, slope', [('relu', 0.2), ('leaky_relu', 0.2), ('leaky_relu', 1.0)])
@pytest.mark.parametrize('shape', [(4, 3, 5, 2), (8, 4)], ids=str)
def test_batch_normalization_with_activation_matches_chainer(shape, act, slope, dtype):
    rng = numpy.random.default_rng(5)
    x, gamma, beta = bn_inputs(shape, dtype, rng)
    c = shape[1]
    stats = {k: (numpy.zeros(c, dtype), numpy.ones(c, dtype)) for k in ('ours', 'ref')}

    def ours(*a):
        m, v = stats['ours']
        return ops.batch_normalization(*a, running_mean=m, running_var=v, activation=act,
                                       slope=slope)

    def ref(*a):
        m, v = stats['ref']
        y = F.batch_normalization(*a, running_mean=m, running_var=v)
        return F.relu(y) if act == 'relu' else F.leaky_relu(y, slope)

    gy = randn(rng, shape, dtype)
    y, g = grads(ours, (x, gamma, beta), gy)
    y_ref, g_ref = grads(ref, (x, gamma, beta), gy)
    assert isinstance(y.creator, normalization.BatchNormalizationNumPy)  # one node for both
    assert_close(y, y_ref, dtype)
    for a, b in zip(g + list(stats['ours']), g_ref + list(stats['ref'])):
        assert_close(a, b, dtype)


@pytest.mark.parametrize('act', ['relu', 'leaky_relu'])
def test_batch_normalization_with_activation_check_backward_and_double(act):
    rng = numpy.random.default_rng(6)
    arrays = bn_inputs((4, 3, 2, 3), numpy.float64, rng)
    fn = fast(lambda *a: ops.batch_normalization(*a, activation=act),
              normalization.BatchNormalizationNumPy)
    gy = randn(rng, (4, 3, 2, 3))
    gradient_check.check_backward(fn, arrays, gy, eps=1e-5)
    gradient_check.check_double_backward(
        fn, arrays, gy, [randn(rng, a.shape) for a in arrays], eps=1e-5)


def test_batch_normalization_link_activation_in_evaluation_mode_and_bad_ones():
    link = ops.BatchNormalization(3)
    x = (numpy.arange(24, dtype=numpy.float32).reshape(2, 3, 2, 2) - 12) / 4
    link(x)  # one training step, so the running statistics are not the initial ones
    with chainer.using_config('train', False):
        y = link(x, activation='leaky_relu', slope=0.1)
        expected = F.leaky_relu(L.BatchNormalization.forward(link, x), 0.1)
    numpy.testing.assert_allclose(y.array, expected.array, rtol=1e-6)
    for bad in ('tanh', 'elu'):
        with pytest.raises(ValueError, match='relu'):
            link(x, activation=bad)


@pytest.mark.parametrize('name', ['max', 'average'])
@pytest.mark.parametrize('shape', [(2, 3, 4), (2, 3, 1, 4)])
def test_pooling_sends_what_it_cannot_pool_to_chainer(name, shape):
    # The fast nodes skip Chainer's type check: their function decides first.
    x = numpy.zeros(shape, numpy.float32)
    ours = ops.max_pooling_2x2 if name == 'max' else ops.average_pooling_2x2
    theirs = pooling.chainer_max_pooling_2x2 if name == 'max' else (
        pooling.chainer_average_pooling_2x2)
    try:
        expected = theirs(x)
    except Exception as e:  # noqa: BLE001 - whatever Chainer raises, ours raises too
        with pytest.raises(type(e)):
            ours(x)
    else:
        y = ours(x)
        assert not isinstance(y.creator, FAST_NODES)
        numpy.testing.assert_array_equal(y.array, expected.array)
