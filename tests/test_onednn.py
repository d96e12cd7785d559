"""gan_trainer.ops on oneDNN: the ctypes binding, the conv nodes against Chainer, the fallbacks.

The oneDNN nodes (:mod:`gan_trainer.ops.onednn_conv`) promise Chainer's
values from another library's kernels, with an activation fused into the
forward pass and hand-written backward passes, so they are compared with
Chainer's own functions (forward values and gradients), with
``chainer.gradient_check`` (float32: oneDNN has no float64 convolution),
and, for double backprop, with a gradient penalty computed through
Chainer's functions. The cases cover strides 1-3, paddings 0-2, kernels
1-5, batch sizes 1-3, both input layouts, the image-layer rule (<= 4
channels on the written side) and every fused activation. The fallbacks
(wheel missing, library that fails to load, another OS, the switches) run
with the library state reset, and one in a fresh process. The tests of the
library itself are skipped where it does not load; the fallback tests run
everywhere. None depends on the CPU's instruction set.
"""

import os
import subprocess
import sys
import warnings

import chainer
import chainer.functions as F
import numpy
import pytest
from chainer import gradient_check
from helpers import input_gradient_penalty

from gan_trainer import ops
from gan_trainer.ops import activation, conv, dnnl, onednn_conv, threads

LOADED = dnnl.library() is not None
needs_onednn = pytest.mark.skipif(not LOADED, reason='oneDNN does not load here')
ACTS = [None, 'relu', 'leaky_relu', 'tanh']


def random_cases(count, seed, transposed):
    """Seeded ``(n, c_in, c_out, h, w, k, s, p)``, valid for Chainer, channels 1-7
    (so both sides of the image-layer rule, <= 4 channels, occur)."""
    rng = numpy.random.RandomState(seed)
    cases = []
    while len(cases) < count:
        k, s, p = int(rng.randint(1, 6)), int(rng.randint(1, 4)), int(rng.randint(0, 3))
        h, w = (int(v) for v in rng.randint(max(1, k - 2 * p), k + 5, size=2))
        if transposed and min(s * (h - 1) + k - 2 * p, s * (w - 1) + k - 2 * p) < 1:
            continue
        n, ci, co = (int(v) for v in (rng.randint(1, 4), rng.randint(1, 8), rng.randint(1, 8)))
        cases.append((n, ci, co, h, w, k, s, p))
    return cases


DCGAN = [(2, 1, 32, 8, 8, 4, 2, 1), (2, 16, 32, 6, 6, 4, 2, 1), (2, 3, 8, 9, 7, 5, 2, 2)]
CONV_CASES = DCGAN + random_cases(6, seed=0, transposed=False)
DECONV_CASES = [(2, 32, 16, 3, 3, 4, 2, 1), (2, 16, 1, 4, 4, 4, 2, 1)] + random_cases(
    6, seed=1, transposed=True)


def case_id(case):
    n, ci, co, h, w, k, s, p = case
    return f'n{n}c{ci}o{co}_{h}x{w}_k{k}s{s}p{p}'


def channel_last(a):
    return numpy.ascontiguousarray(numpy.moveaxis(a, 1, -1)).transpose(0, 3, 1, 2)


def inputs(case, transposed, layout, rng):
    n, ci, co, h, w, k = case[:6]
    x = rng.standard_normal((n, ci, h, w)).astype(numpy.float32)
    W = (rng.standard_normal((ci, co, k, k) if transposed else (co, ci, k, k)) * 0.5)
    return (channel_last(x) if layout == 'nhwc' else x, W.astype(numpy.float32),
            rng.standard_normal(co).astype(numpy.float32))


def functions(transposed, s, p, act):
    if transposed:
        return (lambda *a: ops.deconvolution_2d(*a, stride=s, pad=p, activation=act),
                lambda *a: activation.activate(F.deconvolution_2d(*a, stride=s, pad=p), act, 0.2))
    return (lambda *a: ops.convolution_2d(*a, stride=s, pad=p, activation=act),
            lambda *a: activation.activate(F.convolution_2d(*a, stride=s, pad=p), act, 0.2))


def grads(fn, arrays, gy):
    xs = [chainer.Variable(a) for a in arrays]
    y = fn(*xs)
    y.grad = gy
    y.backward()
    return y, [x.grad for x in xs]


def assert_close(a, b, scale=None, rtol=1e-4):
    """Equal up to float32 rounding of sums whose terms reach ``scale`` (default: ``b``'s size).

    A saturating activation hides the size of the sums it is applied to
    (tanh of a pre-activation of 30 is 1), while the rounding of a sum of
    hundreds of float32 products is relative to those sums: the tolerance
    then takes the pre-activation's magnitude as ``scale``.
    """
    a, b = getattr(a, 'array', a), getattr(b, 'array', b)
    assert a.shape == b.shape and a.dtype == b.dtype
    if scale is None:
        scale = float(numpy.abs(b).max(initial=0))
    numpy.testing.assert_allclose(a, b, rtol=rtol, atol=2e-6 * max(1.0, scale))


# --- The binding --------------------------------------------------------------------


@needs_onednn
def test_enum_values_are_the_librarys():
    lib = dnnl.library()
    assert lib.fmt_tag2str(dnnl.FORMAT_ANY) == b'any'
    assert lib.fmt_tag2str(onednn_conv.NCHW) == b'abcd'
    assert lib.fmt_tag2str(onednn_conv.MAPS['nhwc']) == b'acdb'
    assert lib.alg_kind2str(dnnl.CONVOLUTION_DIRECT) == b'convolution_direct'
    assert lib.alg_kind2str(dnnl.DECONVOLUTION_DIRECT) == b'deconvolution_direct'
    assert {a: lib.alg_kind2str(v) for a, v in dnnl.ELTWISE.items()} == {
        a: b'eltwise_' + a.encode() for a in dnnl.ELTWISE}
    assert {a: lib.alg_kind2str(v) for a, v in dnnl.BINARY.items()} == {
        a: b'binary_' + a.encode() for a in dnnl.BINARY}
    assert [lib.prop_kind2str(v) for v in (dnnl.FORWARD_TRAINING, dnnl.BACKWARD_DATA,
                                           dnnl.BACKWARD_WEIGHTS, dnnl.BACKWARD)] == [
        b'forward_training', b'backward_data', b'backward_weights', b'backward']


@needs_onednn
def test_a_failed_primitive_raises_a_named_error():
    lib = dnnl.library()
    md = dnnl.memory_desc((2, 3, 4, 4), tag=onednn_conv.NCHW)
    bad = dnnl.memory_desc((2, 5, 4, 4), tag=onednn_conv.NCHW)  # 3 -> 5 channels
    with pytest.raises(dnnl.DNNLError, match='reorder'):
        dnnl.create_pd('reorder', md, lib.engine, bad, lib.engine, None)


@needs_onednn
def test_primitives_are_cached_per_shape_and_layout():
    rng = numpy.random.default_rng(0)
    x, W, b = inputs((2, 3, 4, 6, 6, 3, 1, 1), False, 'nchw', rng)
    first = ops.convolution_2d(x, W, b, pad=1).creator._problem
    assert ops.convolution_2d(x + 1, W, b, pad=1).creator._problem is first
    assert ops.convolution_2d(channel_last(x), W, b, pad=1).creator._problem is not first
    assert ops.convolution_2d(x[:1], W, b, pad=1).creator._problem is not first


# --- The nodes against Chainer --------------------------------------------------------


@needs_onednn
@pytest.mark.parametrize('layout', ['nchw', 'nhwc'])
@pytest.mark.parametrize('act', ACTS, ids=str)
@pytest.mark.parametrize('transposed, case', [(False, c) for c in CONV_CASES]
                         + [(True, c) for c in DECONV_CASES],
                         ids=[f'conv_{case_id(c)}' for c in CONV_CASES]
                         + [f'deconv_{case_id(c)}' for c in DECONV_CASES])
def test_node_matches_chainer(transposed, case, act, layout):
    s, p = case[6:]
    rng = numpy.random.default_rng(0)
    arrays = inputs(case, transposed, layout, rng)
    ours, ref = functions(transposed, s, p, act)
    gy = rng.standard_normal(ref(*arrays).shape).astype(numpy.float32)
    y, g = grads(ours, arrays, gy)
    y_ref, g_ref = grads(ref, arrays, gy)
    assert isinstance(y.creator, onednn_conv.ConvolutionDNNL)
    linear = functions(transposed, s, p, None)[1]
    assert_close(y, y_ref, scale=float(numpy.abs(linear(*arrays).array).max()))
    for a, b in zip(g, g_ref):
        assert_close(a, b)


@needs_onednn
@pytest.mark.parametrize('act', [None, 'tanh'], ids=str)
@pytest.mark.parametrize('transposed, case', [(False, CONV_CASES[1]), (False, CONV_CASES[5]),
                                              (True, DECONV_CASES[1]), (True, DECONV_CASES[4])],
                         ids=['conv_a', 'conv_b', 'deconv_a', 'deconv_b'])
def test_node_check_backward(transposed, case, act):
    # float32 finite differences: tanh is smooth, and without an activation
    # the node is linear in each input, so the differences are exact but
    # for rounding. (ReLU and LeakyReLU are checked against Chainer above.)
    s, p = case[6:]
    rng = numpy.random.default_rng(1)
    arrays = inputs(case, transposed, 'nchw', rng)
    ours, _ = functions(transposed, s, p, act)
    gy = rng.standard_normal(ours(*arrays).shape).astype(numpy.float32)
    gradient_check.check_backward(ours, arrays, gy, eps=1e-2, atol=1e-2, rtol=1e-2)


@needs_onednn
@pytest.mark.parametrize('transposed', [False, True], ids=['conv', 'deconv'])
def test_a_weight_that_is_a_view_gets_its_gradient_in_order(transposed):
    # A computed weight (the folded kernel of a nearest-upsampling stage, a
    # transposed array) is a strided view; its gradient is a new array, which
    # must be written in its own (C) order, not in the view's strides.
    rng = numpy.random.RandomState(0)
    x = rng.standard_normal((2, 3, 4, 4)).astype(numpy.float32)
    shape = (3, 5, 4, 4) if transposed else (5, 3, 3, 3)
    base = rng.standard_normal((shape[1], shape[0], *shape[2:])).astype(numpy.float32)
    function = ops.deconvolution_2d if transposed else ops.convolution_2d
    grads = []
    for fast in (True, False):
        stored = chainer.Variable(base.copy())
        w = F.transpose(stored, (1, 0, 2, 3))  # (shape), not C-contiguous
        assert not w.array.flags['C_CONTIGUOUS']
        with chainer.using_config(ops.CONFIG_KEY, fast):
            y = function(chainer.Variable(x), w, None, stride=2 if transposed else 1, pad=1)
            F.sum(y * y).backward()
        grads.append(stored.grad)
    numpy.testing.assert_allclose(grads[0], grads[1], rtol=1e-4, atol=1e-4)


@needs_onednn
@pytest.mark.parametrize('transposed', [False, True], ids=['conv', 'deconv'])
def test_double_backprop_matches_chainer(transposed):
    """A WGAN-GP-like penalty, ``sum(dL/dx ** 2)``, and its gradient w.r.t. W."""
    case = DECONV_CASES[0] if transposed else CONV_CASES[1]
    s, p = case[6:]
    rng = numpy.random.default_rng(2)
    arrays = inputs(case, transposed, 'nchw', rng)
    results = []
    for fn in functions(transposed, s, p, 'leaky_relu'):
        x, W, b = (chainer.Variable(a) for a in arrays)
        results.append((input_gradient_penalty(fn(x, W, b), x), W.grad))
    # Second derivatives through tanh: each value sums products of float32
    # first derivatives, so its rounding is relative to the largest of them
    # (seen: 6e-4 relative in 1 of 8,192 weights on an AVX2 machine).
    assert_close(results[0][0], results[1][0], rtol=1e-3)
    assert_close(results[0][1], results[1][1], rtol=1e-3)


# --- Which path runs ------------------------------------------------------------------


@needs_onednn
def test_float64_and_switches_take_the_other_paths():
    rng = numpy.random.default_rng(3)
    x, W, b = inputs(CONV_CASES[0], False, 'nchw', rng)
    assert isinstance(ops.convolution_2d(x, W, b).creator, onednn_conv.ConvolutionDNNL)
    y64 = ops.convolution_2d(x.astype(numpy.float64), W.astype(numpy.float64))
    assert isinstance(y64.creator, conv.Convolution2DNumPy)
    with chainer.using_config(ops.ONEDNN_KEY, False):
        assert isinstance(ops.convolution_2d(x, W, b).creator, conv.Convolution2DNumPy)
        # The activation then runs as its own function, with the same values.
        y = ops.convolution_2d(x, W, b, activation='tanh')
        assert y.creator.label == 'Tanh'
    with chainer.using_config(ops.CONFIG_KEY, False):
        assert type(ops.convolution_2d(x, W, b).creator).__module__.startswith('chainer.')


@pytest.mark.parametrize('bad', [{'activation': 'elu'}, {'activation': 'leaky_relu', 'slope': 2}])
def test_bad_activation_is_one_clear_error(bad):
    x = numpy.zeros((1, 1, 4, 4), numpy.float32)
    with pytest.raises(ValueError, match='activation|slope'):
        ops.convolution_2d(x, numpy.zeros((1, 1, 3, 3), numpy.float32), **bad)


@pytest.fixture
def fresh_library(monkeypatch):
    """dnnl.library() as if never called in this process (restored afterwards)."""
    monkeypatch.setattr(dnnl, '_LIB', None)
    monkeypatch.setattr(dnnl, '_TRIED', False)
    monkeypatch.setattr(threads, 'apply_after_load', lambda *a: None)
    return monkeypatch


def conv_falls_back_to_numpy():
    x = numpy.random.default_rng(4).standard_normal((2, 2, 5, 5)).astype(numpy.float32)
    W = numpy.ones((3, 2, 3, 3), numpy.float32)
    y = ops.convolution_2d(x, W, activation='relu')
    ref = F.relu(F.convolution_2d(x, W))
    numpy.testing.assert_allclose(y.array, ref.array, rtol=1e-5, atol=1e-5)
    return y


@pytest.mark.parametrize('why', ['missing', 'broken'])
def test_missing_or_broken_library_warns_once_and_numpy_runs(fresh_library, tmp_path, why):
    broken = tmp_path / 'libdnnl.so.3'
    broken.write_bytes(b'not a shared library')
    fresh_library.setattr(dnnl, 'library_path', lambda: None if why == 'missing' else str(broken))
    fresh_library.setattr(dnnl, 'supported_platform', lambda: True)
    fresh_library.delenv(dnnl.ENV_SWITCH, raising=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        y = conv_falls_back_to_numpy()
        conv_falls_back_to_numpy()
    assert [str(w.message) for w in caught] == [caught[0].message.args[0]]  # one warning
    assert 'oneDNN not used' in str(caught[0].message)
    assert ('not installed' if why == 'missing' else 'libdnnl') in str(caught[0].message)
    # The NumPy node runs its own activation after it.
    assert y.creator.label == 'ReLU' and isinstance(y.creator.inputs[0].creator,
                                                    conv.Convolution2DNumPy)


@pytest.mark.parametrize('why', ['platform', 'switch'])
def test_other_platforms_and_the_switch_are_silent(fresh_library, why):
    if why == 'platform':
        fresh_library.setattr(dnnl.sys, 'platform', 'darwin')
    else:
        fresh_library.setenv(dnnl.ENV_SWITCH, '0')
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert dnnl.library() is None
        conv_falls_back_to_numpy()


def run_python(code, **env):
    environ = {k: v for k, v in os.environ.items()
               if k not in ('GAN_TRAINER_ONEDNN', 'GAN_TRAINER_THREADS', 'OMP_WAIT_POLICY',
                            'GOMP_SPINCOUNT', 'OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS',
                            'MKL_NUM_THREADS')}
    return subprocess.run([sys.executable, '-c', code], env={**environ, **env},
                          capture_output=True, text=True, timeout=120, check=False)


TRAIN_ONE_STEP = """
import chainer, numpy
from gan_trainer import GANUpdater, ops
from gan_trainer.nets import Discriminator, Generator
from gan_trainer.ops import dnnl, threads
from gan_trainer.testing import fake_images
gen, dis = Generator(size=8, widths=[4]), Discriminator(size=8, widths=[4])
opts = {}
for name, net in (('gen', gen), ('dis', dis)):
    opts[name] = ops.Adam(2e-4, beta1=0.5)
    opts[name].setup(net)
it = chainer.iterators.SerialIterator(fake_images(8, size=8), 4)
GANUpdater(it, opts, device=-1, seed=0).update()
GANUpdater(it, opts, device=-1, seed=0).update()
import os
from threadpoolctl import threadpool_info
blas = [i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas']
print('loaded', dnnl.library() is not None, 'spin', os.environ.get('GOMP_SPINCOUNT'),
      'blas', sorted(set(blas)), 'limited', threads.blas_limited_to)
"""


@needs_onednn
@pytest.mark.process
def test_a_fresh_process_with_a_broken_library_trains_and_says_so_once(tmp_path):
    # A wheel that is there but does not load: a library file that is not one.
    code = (f"from gan_trainer.ops import dnnl\n"
            f"dnnl.library_path = lambda: {str(tmp_path / 'libdnnl.so.3')!r}\n"
            + TRAIN_ONE_STEP)
    (tmp_path / 'libdnnl.so.3').write_bytes(b'\0' * 64)
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert 'loaded False' in result.stdout
    lines = [line for line in result.stderr.splitlines() if 'oneDNN not used' in line]
    assert len(lines) == 1, result.stderr


@needs_onednn
@pytest.mark.process
def test_thread_policy_in_a_fresh_process():
    result = run_python(TRAIN_ONE_STEP)
    assert result.returncode == 0, result.stderr
    assert f"loaded True spin {threads.SPINCOUNT} blas [1] limited 1" in result.stdout
    assert 'oneDNN' not in result.stderr
    # The user's settings win; GAN_TRAINER_THREADS=0 leaves everything alone.
    user = run_python(TRAIN_ONE_STEP, OMP_WAIT_POLICY='PASSIVE', OPENBLAS_NUM_THREADS='2')
    assert 'spin None blas [2] limited None' in user.stdout, user.stderr
    off = run_python(TRAIN_ONE_STEP, GAN_TRAINER_THREADS='0')
    assert 'spin None' in off.stdout and 'limited None' in off.stdout, off.stderr


@needs_onednn
def test_a_primitive_onednn_cannot_build_falls_back(monkeypatch):
    def refuse(*args):
        raise dnnl.DNNLError('oneDNN convolution_forward failed: unimplemented')

    rng = numpy.random.default_rng(7)
    x, W, b = inputs((1, 2, 3, 5, 5, 3, 2, 0), False, 'nchw', rng)
    monkeypatch.setattr(dnnl, 'create_pd', refuse)
    monkeypatch.setattr(dnnl, '_CACHE', {})
    y = ops.convolution_2d(x, W, b, stride=2, activation='leaky_relu')
    assert isinstance(y.creator.inputs[0].creator, conv.Convolution2DNumPy)
    assert_close(y, F.leaky_relu(F.convolution_2d(x, W, b, stride=2), 0.2))


@needs_onednn
def test_a_backward_primitive_onednn_cannot_build_takes_chainers_gradients(monkeypatch):
    rng = numpy.random.default_rng(8)
    case = (2, 3, 4, 6, 6, 4, 2, 1)
    arrays = inputs(case, False, 'nhwc', rng)
    ours, ref = functions(False, 2, 1, 'tanh')
    monkeypatch.setattr(dnnl, '_CACHE', {})
    y = ours(*arrays)  # the forward primitive is built, the backward ones are not yet
    real_create = dnnl.create_pd
    monkeypatch.setattr(dnnl, 'create_pd', lambda name, *a: (_ for _ in ()).throw(
        dnnl.DNNLError(name)) if 'backward' in name else real_create(name, *a))
    gy = rng.standard_normal(y.shape).astype(numpy.float32)
    _, g = grads(ours, arrays, gy)
    _, g_ref = grads(ref, arrays, gy)
    for a, b in zip(g, g_ref):
        assert_close(a, b)


# --- Inputs oneDNN cannot read as they are, and threads ------------------------------


@needs_onednn
@pytest.mark.parametrize('transposed', [False, True])
@pytest.mark.parametrize('bias', ['strided', 'broadcast', 'flipped'])
def test_a_bias_view_gives_chainers_values(transposed, bias):
    # Found by the fault-injection pass: a strided view gave wrong outputs,
    # a broadcast (0-stride) bias NaN.
    rng = numpy.random.default_rng(11)
    case = (2, 8, 16, 6, 6, 4, 2, 1)
    x, W, b = inputs(case, transposed, 'nhwc', rng)
    view = {'strided': numpy.repeat(b, 2)[::2],
            'broadcast': numpy.broadcast_to(b[:1], b.shape),
            'flipped': numpy.ascontiguousarray(b[::-1])[::-1]}[bias]
    ours, ref = functions(transposed, 2, 1, 'relu')
    y = ours(x, W, view)
    assert isinstance(y.creator, onednn_conv.ConvolutionDNNL)
    assert_close(y, ref(x, W, numpy.array(view)))
    gy = rng.standard_normal(y.shape).astype(numpy.float32)
    _, g = grads(ours, (x, W, view), gy)
    _, g_ref = grads(ref, (x, W, numpy.array(view)), gy)
    for a, b_ in zip(g, g_ref):
        assert_close(a, b_)


@pytest.mark.parametrize('transposed', [False, True])
@pytest.mark.parametrize('onednn', [True, False])
@pytest.mark.parametrize('bad', ['short bias', 'long bias', '2-d bias', 'channels', '3-d x'])
def test_wrong_shapes_raise_chainers_error(transposed, onednn, bad):
    # 5 floats for 16 channels were read past the buffer without an error.
    rng = numpy.random.default_rng(12)
    x, W, b = inputs((2, 8, 16, 6, 6, 4, 2, 1), transposed, 'nhwc', rng)
    if bad == 'short bias':
        b = b[:5].copy()
    elif bad == 'long bias':
        b = numpy.concatenate([b, b])
    elif bad == '2-d bias':
        b = b[None]
    elif bad == 'channels':
        x = numpy.concatenate([x, x], axis=1)
    else:
        x = x[0]
    f = ops.deconvolution_2d if transposed else ops.convolution_2d
    # Chainer's deconvolution checks the bias's length only when it adds it.
    with chainer.using_config(ops.ONEDNN_KEY, onednn), pytest.raises(
            (chainer.utils.type_check.InvalidType, ValueError)) as raised:
        f(x, W, b, stride=2, pad=1)
    with pytest.raises(raised.type):  # the same error as Chainer's own function
        (F.deconvolution_2d if transposed else F.convolution_2d)(x, W, b, stride=2, pad=1)


@needs_onednn
@pytest.mark.parametrize('transposed', [False, True])
@pytest.mark.parametrize('what', ['x flipped', 'x broadcast', 'W flipped', 'W strided',
                                  'gy broadcast', 'gy flipped'])
def test_odd_input_layouts_give_chainers_values(transposed, what):
    rng = numpy.random.default_rng(13)
    case = (2, 6, 8, 5, 5, 3, 1, 1)
    x, W, b = inputs(case, transposed, 'nchw', rng)
    if what == 'x flipped':
        x = numpy.ascontiguousarray(x[:, :, ::-1])[:, :, ::-1]
    elif what == 'x broadcast':
        x = numpy.broadcast_to(x[:1], x.shape)
    elif what == 'W flipped':
        W = numpy.ascontiguousarray(W[..., ::-1])[..., ::-1]
    elif what == 'W strided':
        W = numpy.repeat(W, 2, axis=-1)[..., ::2]
    ours, ref = functions(transposed, 1, 1, 'tanh')
    y = ours(x, W, b)
    assert isinstance(y.creator, onednn_conv.ConvolutionDNNL)
    assert_close(y, ref(numpy.array(x), numpy.array(W), b))
    gy = rng.standard_normal(y.shape[1:]).astype(numpy.float32)
    if what == 'gy broadcast':  # as F.sum's gradient arrives
        gy = numpy.broadcast_to(gy, y.shape)
    else:
        gy = numpy.broadcast_to(gy, y.shape).copy()
        if what == 'gy flipped':
            gy = numpy.ascontiguousarray(gy[..., ::-1])[..., ::-1]
    _, g = grads(ours, (x, W, b), gy)
    _, g_ref = grads(ref, (numpy.array(x), numpy.array(W), b), numpy.array(gy))
    for a, b_ in zip(g, g_ref):
        assert_close(a, b_)


def test_readable_passes_layouts_it_can_read_and_copies_the_others():
    a = numpy.arange(2 * 3 * 4 * 5, dtype=numpy.float32).reshape(2, 3, 4, 5)
    for view in (a, a.transpose(0, 2, 3, 1).copy().transpose(0, 3, 1, 2), a[:, :, ::2], a[:1]):
        assert onednn_conv.readable(view) is view
    for view in (a[:, :, ::-1], numpy.broadcast_to(a[:1], a.shape),
                 numpy.lib.stride_tricks.as_strided(a, (2, 3, 4, 5), (4, 4, 4, 4))):
        copy = onednn_conv.readable(view)
        assert copy is not view and copy.flags.c_contiguous
        numpy.testing.assert_array_equal(copy, view)
    assert onednn_conv.readable(a[0, 0, 0, ::2], contiguous=True).flags.c_contiguous


@needs_onednn
@pytest.mark.parametrize('transposed', [False, True])
def test_threads_calling_one_convolution_get_their_own_results(transposed):
    # Two threads calling the same convolution got 16 and 18 wrong outputs of
    # 300 each: the primitive's memory objects were shared without a lock.
    import threading
    rng = numpy.random.default_rng(14)
    x, W, b = inputs((4, 16, 16, 8, 8, 4, 2, 1), transposed, 'nhwc', rng)
    ours, _ = functions(transposed, 2, 1, 'leaky_relu')
    xs = [x * (i + 1) for i in range(4)]

    def step(i):
        xv = chainer.Variable(xs[i])
        y = ours(xv, W, b)
        y.grad = numpy.ones_like(y.array)
        y.backward()
        return y.array, xv.grad

    expected = [step(i) for i in range(4)]
    wrong = []

    def work(i):
        for _ in range(60):
            y, gx = step(i)
            if not (numpy.array_equal(y, expected[i][0]) and numpy.array_equal(gx, expected[i][1])):
                wrong.append(i)

    threads_ = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads_:
        t.start()
    for t in threads_:
        t.join()
    assert wrong == []


def test_team_size_divides_the_cores_among_the_processes():
    assert threads.team_size(1, cores=2) == 2
    assert threads.team_size(2, cores=2) == 1   # two ranks on two cores
    assert threads.team_size(3, cores=2) == 1   # one rank and two loader workers
    assert threads.team_size(3, cores=16) == 5
    assert threads.team_size(0, cores=4) == 4
    assert 1 <= threads.team_size() == threads.available_cores()


SHARE_CORES = """
import ctypes
from gan_trainer.ops import dnnl, threads
{before}
dnnl.library()
{after}
print('team', threads.team, ctypes.CDLL('libgomp.so.1').omp_get_max_threads())
"""


@needs_onednn
@pytest.mark.process
@pytest.mark.parametrize('when', ['before', 'after'])
def test_share_cores_sizes_the_openmp_team_in_a_fresh_process(when):
    call = 'threads.share_cores(ranks=2, loaders=1)'  # 6 processes' share: one thread
    code = SHARE_CORES.format(before=call if when == 'before' else '',
                              after=call if when == 'after' else '')
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ['team', '1', '1']
    # The user's OMP_NUM_THREADS decides.
    user = run_python(code, OMP_NUM_THREADS='3')
    assert user.stdout.split() == ['team', 'None', '3'], user.stderr
