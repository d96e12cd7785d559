"""The linear layers' products on oneDNN (gan_trainer/ops/onednn_matmul.py) against Chainer.

:class:`~gan_trainer.ops.linear.LinearNumPy` hands its float32 products
(``x @ W.T + b`` forward, ``gy @ W`` and ``gy.T @ x`` backward) to oneDNN's
matmul, which adds its products in its own order, so its outputs and
gradients are compared with Chainer's ``F.linear`` (a reference that shares
no code with it) within float32 rounding, and with ``gradient_check``. The
shapes are the presets' linear layers (the default G's projection, the
Keras DCGAN notes' Dense 6,272 -> 2,048 at batch 200, a D read-out from a
channel-last map) and odd ones: batch 1, one output, no bias, a 3-D input,
strided, flipped and Fortran-ordered inputs, a transposed weight view. Each
test checks that oneDNN really ran (the primitive's calls). The fallbacks
(switched off, float64, a product oneDNN cannot build) keep NumPy's
``dot``, and the thread-team check catches a product whose bits would
change with the team. Skipped where oneDNN does not load.
"""

import chainer
import chainer.functions as F
import numpy
import pytest
from chainer import gradient_check
from helpers import input_gradient_penalty

from gan_trainer import ops
from gan_trainer.ops import dnnl, onednn_conv, onednn_matmul
from gan_trainer.ops.linear import LinearNumPy

pytestmark = pytest.mark.skipif(dnnl.library() is None, reason='oneDNN does not load here')


def channel_last(x):
    return numpy.moveaxis(numpy.ascontiguousarray(numpy.moveaxis(x, 1, -1)), -1, 1)


#: (x's shape, layout, W's (out, in), bias)
CASES = [
    ((64, 100), 'c', (8192, 100), True),            # the default G's projection of z
    ((8, 512, 4, 4), 'nhwc', (1, 8192), True),       # a D read-out from a channel-last map
    ((200, 6272), 'c', (2048, 6272), True),          # the Keras DCGAN notes' D Dense
    ((1, 7), 'c', (5, 7), True),                     # batch 1
    ((6, 3, 5), 'c', (4, 15), False),                # 3-D input, no bias
    ((5, 9), 'strided', (3, 9), True),               # every other row of a bigger array
    ((4, 2, 3, 3), 'flipped', (6, 18), True),        # negative strides
    ((7, 11), 'fortran', (2, 11), True),
    ((5, 6), 'c', (4, 6), 'W_view'),                 # W a transposed view
]


def case_id(case):
    shape, layout, w, bias = case
    return f'{"x".join(map(str, shape))}-{layout}-{w[0]}' + ('' if bias else '-nobias')


def inputs(case, rng):
    shape, layout, (n_out, n_in), bias = case
    x = rng.standard_normal(shape).astype(numpy.float32)
    if layout == 'nhwc':
        x = channel_last(x)
    elif layout == 'strided':
        x = numpy.repeat(x, 2, axis=0)[::2]
    elif layout == 'flipped':
        x = x[::-1, :, ::-1]
    elif layout == 'fortran':
        x = numpy.asfortranarray(x)
    W = (rng.standard_normal((n_out, n_in)) / numpy.sqrt(n_in)).astype(numpy.float32)
    if bias == 'W_view':
        W = numpy.ascontiguousarray(W.T).T
    b = rng.standard_normal(n_out).astype(numpy.float32) if bias else None
    return x, W, b


def run(fn, x, W, b, gy):
    vs = [chainer.Variable(a) for a in (x, W, b) if a is not None]
    y = fn(*vs)
    y.grad = gy
    y.backward()
    return [y.array] + [v.grad for v in vs]


def assert_close(a, b):
    """float32 rounding of sums of up to 6,272 products, relative to the largest value."""
    assert a.shape == b.shape and a.dtype == b.dtype
    scale = max(1.0, float(numpy.abs(b).max(initial=0)))
    numpy.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-6 * scale)


@pytest.fixture
def calls(monkeypatch):
    """The oneDNN products that ran, as ``(m, n)`` shapes."""
    seen = []
    call = onednn_matmul.Product.__call__

    def counted(self, *a):
        seen.append(self.shape)
        return call(self, *a)

    monkeypatch.setattr(onednn_matmul.Product, '__call__', counted)
    return seen


@pytest.mark.parametrize('case', CASES, ids=case_id)
def test_values_and_gradients_are_chainers(case, calls):
    rng = numpy.random.default_rng(0)
    x, W, b = inputs(case, rng)
    n, m = len(x), W.shape[0]
    gy = rng.standard_normal((n, m)).astype(numpy.float32)
    ours = run(ops.linear, x, W, b, gy)
    ref = run(F.linear, x, W, b, gy)
    # The forward product, then gx and gW: three products on oneDNN, but for
    # an outer product (an inner dimension of 1: one output, or batch 1).
    assert calls == [(n, m)] + [(n, W.shape[1])] * (m > 1) + [(m, W.shape[1])] * (n > 1)
    for a, r in zip(ours, ref):
        assert_close(a, r)
    y64 = x.reshape(n, -1).astype(numpy.float64) @ W.T.astype(numpy.float64)
    assert_close(ours[0], (y64 + (0 if b is None else b)).astype(numpy.float32))


@pytest.mark.parametrize('n_out,batch', [(1, 64), (8, 8), (9, 8)])
def test_a_read_out_from_a_channel_last_map_reads_it_in_place(n_out, batch, calls):
    """D's read-out (a map stored channel-last, no more outputs than images) runs
    on the map's own memory and sends the input gradient back channel-last;
    with more outputs than images the map is flattened in Chainer's order."""
    rng = numpy.random.default_rng(5)
    x = channel_last(rng.standard_normal((batch, 16, 7, 7)).astype(numpy.float32))
    W = (rng.standard_normal((n_out, 16 * 49)) / 28).astype(numpy.float32)
    b = rng.standard_normal(n_out).astype(numpy.float32)
    gy = rng.standard_normal((batch, n_out)).astype(numpy.float32)
    xv = chainer.Variable(x)
    vs = [xv, chainer.Variable(W), chainer.Variable(b)]
    y = ops.linear(*vs)
    in_place = n_out <= batch
    rows = y.creator._rows
    assert (rows is not None and numpy.shares_memory(rows, x)) == in_place
    y.grad = gy
    y.backward()
    ref = run(F.linear, x, W, b, gy)
    for a, r in zip([y.array] + [v.grad for v in vs], ref):
        assert_close(a, r)
    assert (xv.grad.strides == x.strides) == in_place  # channel-last back
    assert vs[1].grad.flags.c_contiguous  # W's gradient in Chainer's column order
    assert calls == [(batch, n_out)] + [(batch, 16 * 49)] * (n_out > 1) + [(n_out, 16 * 49)]


def test_an_outer_product_is_numpys_multiply_with_onednns_bits(calls):
    """No sums in ``(M, 1) @ (1, N)``: NumPy's broadcast multiply, and the same
    bits as oneDNN's matmul of the same operands (built directly)."""
    rng = numpy.random.default_rng(7)
    a = rng.standard_normal((64, 1)).astype(numpy.float32)
    b = rng.standard_normal((3136, 1)).astype(numpy.float32).T  # a transposed view
    got = onednn_matmul.product(a, b)
    assert calls == [] and got.flags.c_contiguous and got.shape == (64, 3136)
    numpy.testing.assert_array_equal(got, onednn_matmul.Product(a, b, False)(a, b))
    with_bias = onednn_matmul.product(a, b, numpy.ones(3136, numpy.float32))
    assert calls == [(64, 3136)] * 2  # the reference, then with a bias: oneDNN's product
    numpy.testing.assert_allclose(with_bias, got + 1, rtol=1e-6)


def test_a_read_out_in_place_gives_what_the_flattened_one_gives_within_rounding():
    """The same D twice, its read-out's map in place and flattened (the copy in
    Chainer's order): outputs and every gradient within float32 rounding."""
    rng = numpy.random.default_rng(6)
    x = channel_last(rng.standard_normal((64, 64, 7, 7)).astype(numpy.float32))
    W = (rng.standard_normal((1, 64 * 49)) / 56).astype(numpy.float32)
    gy = rng.standard_normal((64, 1)).astype(numpy.float32)
    got = run(ops.linear, x, W, None, gy)
    want = run(ops.linear, numpy.ascontiguousarray(x), W, None, gy)  # C order: flattened
    for a, r in zip(got, want):
        assert_close(a, r)


def test_the_link_and_a_fused_block_use_onednn(calls):
    rng = numpy.random.default_rng(1)
    link = ops.Linear(12, 6)
    link(rng.standard_normal((3, 12)).astype(numpy.float32))
    assert calls == [(3, 6)]
    gamma, beta = numpy.ones(4, numpy.float32), numpy.zeros(4, numpy.float32)
    W = rng.standard_normal((4 * 2 * 2, 5)).astype(numpy.float32)
    ops.linear_bn(rng.standard_normal((3, 5)).astype(numpy.float32), W, None, gamma, beta,
                  shape=(4, 2, 2), activation='relu')
    assert calls[1:] == [(3, 16)]


def test_gradient_check(calls):
    # float32 finite differences (oneDNN has no float64 matmul).
    rng = numpy.random.default_rng(2)
    x, W, b = inputs(((4, 2, 3), 'c', (5, 6), True), rng)
    gradient_check.check_backward(ops.linear, (x, W, b),
                                  rng.standard_normal((4, 5)).astype(numpy.float32),
                                  eps=1e-2, atol=1e-2, rtol=1e-2)
    assert calls


def test_double_backprop_matches_chainer(calls):
    """A gradient penalty through the layer: Chainer's graph differentiates it."""
    rng = numpy.random.default_rng(3)
    arrays = inputs(((4, 6), 'c', (3, 6), True), rng)
    results = []
    for fn in (ops.linear, F.linear):
        x, W, b = (chainer.Variable(a) for a in arrays)
        results.append((input_gradient_penalty(fn(x, W, b), x), W.grad, b.grad))
    assert calls  # the forward product of ours
    for a, r in zip(*results):
        numpy.testing.assert_allclose(a, r, rtol=1e-4, atol=1e-6)


def test_switched_off_or_float64_keeps_numpy(calls, monkeypatch):
    rng = numpy.random.default_rng(4)
    x, W, b = inputs(((8, 10), 'c', (3, 10), True), rng)
    gy = rng.standard_normal((8, 3)).astype(numpy.float32)
    on = run(ops.linear, x, W, b, gy)
    assert len(calls) == 3
    with chainer.using_config(ops.ONEDNN_KEY, False):
        off = run(ops.linear, x, W, b, gy)
    monkeypatch.setattr(onednn_matmul, 'ENABLED', False)
    off_alone = run(ops.linear, x, W, b, gy)
    assert len(calls) == 3
    for a, o, o2 in zip(on, off, off_alone):
        assert_close(a, o)
        numpy.testing.assert_array_equal(o, o2)
    y64 = ops.linear(*(a.astype(numpy.float64) for a in (x, W, b)))
    assert isinstance(y64.creator, LinearNumPy) and y64.dtype == numpy.float64
    assert len(calls) == 3


def test_a_product_onednn_cannot_build_falls_back(monkeypatch, calls):
    monkeypatch.setattr(dnnl, '_CACHE', {})

    def refuse(*args):
        raise dnnl.DNNLError('oneDNN matmul failed: unimplemented')

    monkeypatch.setattr(onednn_matmul.Product, '__init__', refuse)
    rng = numpy.random.default_rng(5)
    x, W, b = inputs(((4, 5), 'c', (3, 5), True), rng)
    gy = rng.standard_normal((4, 3)).astype(numpy.float32)
    ours, ref = run(ops.linear, x, W, b, gy), run(F.linear, x, W, b, gy)
    assert not calls
    for a, r in zip(ours, ref):
        assert_close(a, r)


def test_products_are_cached_per_layout(monkeypatch):
    monkeypatch.setattr(dnnl, '_CACHE', {})
    rng = numpy.random.default_rng(6)
    a = rng.standard_normal((4, 6)).astype(numpy.float32)
    b = rng.standard_normal((6, 3)).astype(numpy.float32)
    first = onednn_matmul.product(a, b)
    assert len(dnnl._CACHE) == 1
    onednn_matmul.product(a + 1, b)
    assert len(dnnl._CACHE) == 1  # same shapes and strides: the same primitive
    onednn_matmul.product(numpy.asfortranarray(a), b)
    onednn_matmul.product(a, b, numpy.ones(3, numpy.float32))
    assert len(dnnl._CACHE) == 3
    numpy.testing.assert_allclose(first, a @ b, rtol=1e-5, atol=1e-5)
    prod = next(iter(dnnl._CACHE.values()))
    assert prod.prim.impl()  # a name oneDNN gives, e.g. brg:avx512_core


def test_the_team_check_covers_the_products(monkeypatch):
    monkeypatch.setattr(dnnl, '_CACHE', {})
    rng = numpy.random.default_rng(7)
    x = channel_last(rng.standard_normal((4, 8, 8, 8)).astype(numpy.float32))
    W = rng.standard_normal((16, 8, 4, 4)).astype(numpy.float32)
    h = ops.convolution_2d(x, W, None, stride=2, pad=1)
    ops.linear(h, rng.standard_normal((3, 16 * 4 * 4)).astype(numpy.float32))
    assert any(key[0] == 'matmul' for key in dnnl._CACHE)
    teams = []
    assert onednn_matmul.team_independent([2, 1], teams.append) in (True, False)
    assert teams == [2, 1]
    before = onednn_conv.team_independent([2, 1], teams.append)
    call = onednn_matmul.Product.__call__

    def team_dependent(self, *a):
        return call(self, *a) + len(teams)

    monkeypatch.setattr(onednn_matmul.Product, '__call__', team_dependent)
    assert not onednn_matmul.team_independent([2, 1], teams.append)
    assert not onednn_conv.team_independent([2, 1], teams.append)
    if not before:
        pytest.skip("this CPU's convolution kernels depend on the team themselves")
