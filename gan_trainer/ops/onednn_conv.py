"""Convolution and transposed convolution on oneDNN, with a fused activation.

The nodes here run oneDNN's direct-convolution kernels (:mod:`.dnnl`) on
the NumPy buffers of Chainer's arrays, float32 only (oneDNN has no float64
convolution on the CPU). Each call is at most one oneDNN primitive per pass
(forward, backward-data, backward-weights with the bias gradient) plus the
reorders between the arrays' layouts and the layouts the primitive asked
for:

* **Layouts.** The feature maps stay channel-last (``nhwc``), as the
  arrays are stored, so no map is reordered between layers; the weights
  are created with the ``any`` format, so oneDNN picks the blocked layout
  its kernels want, and are reordered from Chainer's ``oihw`` (or
  ``iohw``) on each call (a few hundred kilobytes). Per layer, channel-last
  maps run about as fast as oneDNN's own pick (blocked ``nChw16c``,
  reordered in and out of every layer) and well ahead of the NumPy
  functions (``benchmarks/onednn_layers.py``, forward + backward summed over
  the layers; the figures, with the CPU, are in ``benchmarks/RESULTS.md``).
  In a whole step, where each layer's reorders come on top and every small
  primitive call costs a thread wake-up, ``throughput.py --onednn_layout``
  compares the two (see docs/performance.md). Plain ``oihw`` weights with ``nhwc`` maps would
  send oneDNN to its reference kernel, which is far slower. A layer that writes at most :data:`IMAGE_CHANNELS`
  channels runs on ``nchw`` maps instead (see :class:`_Problem`).
* **Fused activation.** ReLU, LeakyReLU and tanh after the bias run as a
  oneDNN post-op inside the forward kernel (or, on the ``nchw`` GEMM
  kernels, by NumPy inside the same node): no extra pass over the output
  and no extra Chainer node. The backward pass needs only the output: the
  derivative is ``y > 0`` (ReLU), ``1`` or ``slope`` by the sign of ``y``
  (LeakyReLU, ``0 < slope <= 1``) or ``1 - y**2`` (tanh).
* **Cache.** Primitives are built once per shape, layout and option
  (:func:`.dnnl.cached`); a training step re-creates none.

* **Inputs checked.** oneDNN reads an array through the strides it is
  described with and checks nothing else, so a wrong length or layout
  would be read past its end or as garbage. The public functions in
  :mod:`.conv` send anything of the wrong rank, channel count, bias length
  or dtype to Chainer's function (which raises its own error); here every
  array a primitive reads (``x``, ``W``, ``b``, and the output gradient in
  the backward pass) goes through :func:`readable`, which passes it
  through when its strides can be read as they are and copies it
  (C-contiguous) when they cannot: a broadcast (zero strides), a flipped
  (negative strides), overlapping or misaligned view, and a bias that is
  not contiguous (its descriptor is a plain vector).

Double backprop (gradient penalties) differentiates Chainer's own
functions at the retained inputs, as the NumPy nodes do. The public
functions in :mod:`.conv` choose these nodes when :func:`available`; see
there for the fallbacks. Several threads may call them at once
(:mod:`.dnnl`).
"""

from __future__ import annotations

import functools
import time

import chainer
import chainer.functions as F
import numpy
from chainer.utils import conv as conv_utils

from gan_trainer.ops import dnnl, onednn_matmul, onednn_norm
from gan_trainer.ops._common import (
    FastNode,
    onednn_enabled,
    reference_backward,
    same_bits,
    variables,
)
from gan_trainer.ops.activation import activate, activate_in_place, activation_grad


def available(*arrays) -> bool:
    """Whether the oneDNN nodes can take these arrays: all NumPy float32, oneDNN
    switched on and loaded (the caller has checked that they are NumPy arrays)."""
    if not onednn_enabled():
        return False
    for a in arrays:
        if a is None:
            continue
        a = a.array if isinstance(a, chainer.Variable) else a
        if a.dtype != numpy.float32:
            return False
    return dnnl.library() is not None


_READABLE: dict = {}  # (shape, strides, itemsize) -> bool; bounded below


def _strides_readable(shape, strides, itemsize) -> bool:
    """Positive whole-element strides, and no two elements at one address: the
    axes, from the smallest stride, each step over the whole of the ones inside."""
    extent = itemsize
    for stride, size in sorted(zip(strides, shape)):
        if stride <= 0 or stride % itemsize:
            return False
        if size > 1:
            if stride < extent:
                return False
            extent = stride * size
    return True


def readable(a: numpy.ndarray, *, contiguous: bool = False) -> numpy.ndarray:
    """``a`` if oneDNN can read it through its strides, else a C-contiguous copy.

    Copied: an array with a zero (broadcast), negative (flipped) or
    fractional stride, with elements that overlap, or with a misaligned
    start; with ``contiguous``, anything not C-contiguous (the bias, whose
    descriptor is a plain vector). Channel-last maps and other
    permutations or strided slices of a buffer are read in place.
    """
    if a.flags.c_contiguous and a.flags.aligned:
        return a
    if contiguous or not a.flags.aligned:
        return numpy.ascontiguousarray(a)
    key = (a.shape, a.strides, a.itemsize)
    ok = _READABLE.get(key)
    if ok is None:
        if len(_READABLE) > 4096:
            _READABLE.clear()
        ok = _READABLE[key] = _strides_readable(a.shape, a.strides, a.itemsize)
    return a if ok else numpy.ascontiguousarray(a)


def _eltwise(activation, slope):
    if activation is None:
        return None
    if activation == 'leaky_relu':
        return ('relu', float(slope))
    return (activation, 0.0)


#: A layer with at most this many channels on one side (an image layer) runs
#: on ``nchw`` maps, where oneDNN takes its GEMM kernels: see :class:`_Problem`.
IMAGE_CHANNELS = 4
NCHW = 5  # dnnl_nchw
#: The maps' layout of the other primitives: ``'nhwc'`` (channel-last, as the
#: arrays are stored: no reorder of the maps) or ``'any'`` (oneDNN's pick,
#: blocked on AVX-512, with reorders in and out). ``benchmarks/onednn_layers.py``
#: times both; see the module docstring.
LAYOUT = 'nhwc'
MAPS = {'nhwc': 22, 'any': dnnl.FORMAT_ANY}


def _nhwc_empty(shape) -> numpy.ndarray:
    """An uninitialised float32 ``(N, C, H, W)`` array stored channel-last."""
    n, c, h, w = shape
    return numpy.empty((n, h, w, c), numpy.float32).transpose(0, 3, 1, 2)


def _layout_key(a: numpy.ndarray) -> tuple:
    return a.strides


class _Operand:
    """One argument of a primitive: the array's own layout and a reorder
    into (or out of) the primitive's, when the two differ."""

    def __init__(self, prim: dnnl.Primitive, arg: str, array_md, into: bool):
        lib = dnnl.library()
        self.md = prim.arg_desc(arg)
        self.size = prim.arg_size(arg) // 4
        self.reorder = None
        if not lib.memory_desc_equal(self.md, array_md):
            src, dst = (array_md, self.md) if into else (self.md, array_md)
            pd = dnnl.create_pd('reorder', src, lib.engine, dst, lib.engine, None)
            self.reorder = dnnl.Primitive(pd, ['src', 'dst'])

    def into(self, a: numpy.ndarray) -> numpy.ndarray:
        """``a`` in the primitive's layout (``a`` itself when it already is)."""
        if self.reorder is None:
            return a
        buf = numpy.empty(self.size, numpy.float32)
        self.reorder.run(a, buf)
        return buf

    def out_buffer(self, a: numpy.ndarray) -> numpy.ndarray:
        """Where the primitive writes an output that ends up in ``a``."""
        return a if self.reorder is None else numpy.empty(self.size, numpy.float32)

    def out(self, buf: numpy.ndarray, a: numpy.ndarray) -> None:
        """Moves the primitive's output ``buf`` into ``a`` (nothing if it is ``a``)."""
        if self.reorder is not None:
            self.reorder.run(buf, a)


def _weights_md(W: numpy.ndarray, transposed: bool):
    """Chainer's weights as oneDNN's ``(out, in, kh, kw)``: a deconvolution's
    ``(in, out, kh, kw)`` array is the same memory with dims swapped (``iohw``)."""
    if not transposed:
        return dnnl.array_desc(W)
    st = [s // 4 for s in W.strides]
    return dnnl.memory_desc((W.shape[1], W.shape[0], *W.shape[2:]), [st[1], st[0], *st[2:]])


class _Problem:
    """The three primitives of one convolution shape (forward built at once,
    the backward ones on first use) and their operands.

    A primitive that writes a feature map of at most :data:`IMAGE_CHANNELS`
    channels (an image layer's forward pass, the input gradient of D's
    first layer) runs on ``nchw`` maps, where oneDNN takes its GEMM-based
    kernels, and its output is stored ``nchw`` (for 1 channel the same
    memory as channel-last). On the layouts oneDNN picks, those primitives
    took its strided brgemm kernels, several times slower than the GEMM
    ones for 1 output channel (checked with a one-off script while
    choosing; ``benchmarks/onednn_layers.py`` prints the resulting layer
    times). Those GEMM kernels run a fused activation slowly (tanh most),
    so there the node applies it with NumPy instead.
    """

    def __init__(self, transposed, x, W, has_bias, s, p, out_shape, eltwise):
        lib = dnnl.library()
        co = W.shape[1] if transposed else W.shape[0]
        ci = W.shape[0] if transposed else W.shape[1]
        self.plain_fwd = co <= IMAGE_CHANNELS
        self.plain_bwd_data = ci <= IMAGE_CHANNELS
        self.fused = eltwise is not None and not self.plain_fwd
        self.x_shape, self.out_shape = x.shape, out_shape
        w_dims = (co, ci, *W.shape[2:])
        self.w_any = dnnl.memory_desc(w_dims, tag=dnnl.FORMAT_ANY)
        self.b_md = dnnl.memory_desc((co,), [1]) if has_bias else None
        self.geometry = (dnnl.dims(s), dnnl.dims((0, 0)), dnnl.dims(p), dnnl.dims(p))
        self.kind = 'deconvolution' if transposed else 'convolution'
        self.alg = dnnl.DECONVOLUTION_DIRECT if transposed else dnnl.CONVOLUTION_DIRECT
        x_md, y_md = self.maps(self.plain_fwd)
        attr = dnnl.post_ops_attr(eltwise) if self.fused else None
        self.fwd_pd = dnnl.create_pd(
            self.kind + '_forward', lib.engine, dnnl.FORWARD_TRAINING, self.alg,
            x_md, self.w_any, self.b_md, y_md, *self.geometry, attr)
        args = ['src', 'weights', 'bias', 'dst'] if has_bias else ['src', 'weights', 'dst']
        self.fwd = dnnl.Primitive(self.fwd_pd, args)
        self.w_chainer_md = _weights_md(W, transposed)
        # The weight gradient goes into a new C-contiguous array, whatever the
        # strides of W (a transposed or computed weight is a view).
        self.gw_chainer_md = _weights_md(numpy.empty(W.shape, numpy.float32), transposed)
        self.fwd_x = _Operand(self.fwd, 'src', dnnl.array_desc(x), True)
        self.fwd_w = _Operand(self.fwd, 'weights', self.w_chainer_md, True)
        self.fwd_y = _Operand(self.fwd, 'dst', dnnl.array_desc(self.new_output()), False)
        self.x_md = dnnl.array_desc(x)
        self.has_bias = has_bias
        # Backward primitives by the layout (strides) of the output gradient
        # they get, built on first use.
        self.bwd_data, self.bwd_weights = {}, {}

    def maps(self, plain):
        """Descriptors of the input and output maps: ``nchw``, or the primitive's choice."""
        tag = NCHW if plain else MAPS[LAYOUT]
        return (dnnl.memory_desc(self.x_shape, tag=tag), dnnl.memory_desc(self.out_shape, tag=tag))

    def new_output(self) -> numpy.ndarray:
        """The forward pass's output array: ``nchw`` where the primitive writes that."""
        if self.plain_fwd:
            return numpy.empty(self.out_shape, numpy.float32)
        return _nhwc_empty(self.out_shape)

    def new_input_grad(self) -> numpy.ndarray:
        """The input gradient's array, by the same rule."""
        if self.plain_bwd_data:
            return numpy.empty(self.x_shape, numpy.float32)
        return _nhwc_empty(self.x_shape)

    def backward_data(self, gy, gx):
        """The backward-data primitive for ``gy``'s layout and its operands."""
        key = gy.strides
        if key not in self.bwd_data:
            lib = dnnl.library()
            x_md, y_md = self.maps(self.plain_bwd_data)
            pd = dnnl.create_pd(self.kind + '_backward_data', lib.engine, self.alg,
                                x_md, self.w_any, y_md, *self.geometry, self.fwd_pd, None)
            prim = dnnl.Primitive(pd, ['diff_dst', 'weights', 'diff_src'])
            self.bwd_data[key] = (prim, _Operand(prim, 'diff_dst', dnnl.array_desc(gy), True),
                                  _Operand(prim, 'weights', self.w_chainer_md, True),
                                  _Operand(prim, 'diff_src', dnnl.array_desc(gx), False))
        return self.bwd_data[key]

    def backward_weights(self, gy):
        """The backward-weights primitive for ``gy``'s layout and its operands."""
        key = gy.strides
        if key not in self.bwd_weights:
            lib = dnnl.library()
            x_md, y_md = self.maps(False)
            pd = dnnl.create_pd(self.kind + '_backward_weights', lib.engine, self.alg,
                                x_md, self.w_any, self.b_md, y_md, *self.geometry,
                                self.fwd_pd, None)
            args = ['src', 'diff_dst', 'diff_weights'] + (['diff_bias'] if self.has_bias else [])
            prim = dnnl.Primitive(pd, args)
            op_x = _Operand(prim, 'src', self.x_md, True)
            # The forward pass's reordered x serves when both want one layout.
            same_x = bool(lib.memory_desc_equal(op_x.md, self.fwd_x.md))
            self.bwd_weights[key] = (prim, op_x, same_x,
                                     _Operand(prim, 'diff_dst', dnnl.array_desc(gy), True),
                                     _Operand(prim, 'diff_weights', self.gw_chainer_md, False))
        return self.bwd_weights[key]


def _out_hw(transposed, x_hw, k, s, p, outsize):
    if not transposed:
        return tuple(conv_utils.get_conv_outsize(size, kk, st, pp)
                     for size, kk, st, pp in zip(x_hw, k, s, p))
    return tuple(outsize)


def problem(transposed, x, W, has_bias, s, p, outsize, activation, slope):
    """The cached primitives for this call, or None where oneDNN cannot build them
    (the caller then takes the NumPy node)."""
    out_hw = _out_hw(transposed, x.shape[2:], W.shape[2:], s, p, outsize)
    co = W.shape[1] if transposed else W.shape[0]
    out_shape = (x.shape[0], co, *out_hw)
    key = ('conv', LAYOUT, transposed, x.shape, _layout_key(x), W.shape, W.strides, has_bias,
           s, p, out_hw, activation, slope)
    return dnnl.cached(key, lambda: _Problem(transposed, x, W, has_bias, s, p, out_shape,
                                             _eltwise(activation, slope)))


class ConvolutionDNNL(FastNode):
    """``activation(conv(x, W) + b)`` on oneDNN, output channel-last.

    Args:
        stride, pad: Pairs, as Chainer's.
        transposed: A transposed convolution (Chainer's ``deconvolution_2d``,
            ``W`` ``(C_in, C_out, kh, kw)``); its ``outsize`` must be given.
        outsize: The transposed convolution's output size (checked by the caller).
        activation: None, ``'relu'``, ``'leaky_relu'`` or ``'tanh'``.
        slope: LeakyReLU's slope, ``0 < slope <= 1``.
    """

    def __init__(self, stride, pad, *, transposed=False, outsize=None, activation=None,
                 slope=0.2, problem=None):
        self.s, self.p = tuple(stride), tuple(pad)
        self.transposed = transposed
        self.outsize = outsize
        self.activation = activation
        self.slope = slope
        self._problem = problem

    def forward(self, inputs):
        self.retain_inputs(tuple(range(len(inputs))))
        y = self.compute(*inputs)
        if self.activation is not None:
            self.retain_outputs((0,))
        return y,

    def compute(self, x, W, b=None) -> numpy.ndarray:
        """The forward pass on arrays, no graph: ``activation(conv(x, W) + b)``.

        Also the first part of a fused block (:mod:`.blocks`), which then
        calls :meth:`gradients` itself.
        """
        x, W = readable(x), readable(W)
        b = None if b is None else readable(b, contiguous=True)
        prob = self._problem or problem(self.transposed, x, W, b is not None, self.s, self.p,
                                        self.outsize, self.activation, self.slope)
        y = prob.new_output()
        xb = prob.fwd_x.into(x)
        self._x_blocked = xb if prob.fwd_x.reorder is not None else None
        yb = prob.fwd_y.out_buffer(y)
        args = (xb, prob.fwd_w.into(W), b, yb) if b is not None else (xb, prob.fwd_w.into(W), yb)
        prob.fwd.run(*args)
        prob.fwd_y.out(yb, y)
        if self.activation is not None and not prob.fused:
            activate_in_place(y, self.activation, self.slope)
        self._problem = prob
        return y

    def backward(self, indexes, grad_outputs):
        if chainer.config.enable_backprop:
            return reference_backward(self, indexes, grad_outputs, self.reference)
        inputs = self.get_retained_inputs()
        gy = grad_outputs[0].array
        if self.activation is not None:
            y = self.get_retained_outputs()[0].array
            gy = activation_grad(y, gy, self.activation, self.slope)
        try:
            grads = self.gradients(indexes, inputs[0].array, inputs[1].array, len(inputs) == 3,
                                   gy)
        except dnnl.DNNLError:  # a backward primitive oneDNN cannot build: Chainer's way
            with chainer.using_config('enable_backprop', True):
                grads = reference_backward(self, indexes, grad_outputs, self.reference)
            return variables(*(None if g is None else g.array for g in grads))
        return variables(*(grads[i] for i in indexes))

    def gradients(self, indexes, x, W, has_bias: bool, gy) -> tuple:
        """``(gx, gW, gb)`` on arrays from the gradient ``gy`` of the convolution's
        output *before* the activation; an entry not in ``indexes`` is None.

        Raises:
            DNNLError: When oneDNN cannot build a backward primitive.
        """
        x, W = readable(x), readable(W)
        gy = readable(gy.astype(numpy.float32, copy=False))
        prob = self._problem
        gx = gW = gb = None
        if 0 in indexes:
            gx = prob.new_input_grad()
            prim, op_gy, op_w, op_gx = prob.backward_data(gy, gx)
            buf = op_gx.out_buffer(gx)
            prim.run(op_gy.into(gy), op_w.into(W), buf)
            op_gx.out(buf, gx)
        if 1 in indexes or 2 in indexes:
            prim, op_x, same_x, op_gy, op_gw = prob.backward_weights(gy)
            gW = numpy.empty(W.shape, numpy.float32)
            buf = op_gw.out_buffer(gW)
            xb = self._x_blocked if same_x and self._x_blocked is not None else op_x.into(x)
            args = [xb, op_gy.into(gy), buf]
            if has_bias:
                gb = numpy.empty(W.shape[1] if self.transposed else W.shape[0], numpy.float32)
                args.append(gb)
            prim.run(*args)
            op_gw.out(buf, gW)
        self._x_blocked = None
        return gx, gW, gb

    def reference(self, x, W, b=None):
        if self.transposed:
            y = F.deconvolution_2d(x, W, b, self.s, self.p, outsize=self.outsize)
        else:
            y = F.convolution_2d(x, W, b, self.s, self.p)
        return activate(y, self.activation, self.slope)


def _like(shape, strides, rng) -> numpy.ndarray:
    """A float32 array of random values with exactly these strides (bytes)."""
    extent = sum((d - 1) * st for d, st in zip(shape, strides)) // 4 + 1
    base = rng.standard_normal(extent).astype(numpy.float32)
    return numpy.lib.stride_tricks.as_strided(base, shape, strides)


def _team_runs(teams, set_team) -> list[dict | None]:
    """For each cached convolution, ``{team: run}``: ``run()`` computes its forward,
    backward-data and backward-weights passes on the same random inputs (in
    the layouts of the call) with the primitives built for that team (None
    where oneDNN cannot build one)."""
    problems = {key[:-1]: prob for key, prob in list(dnnl._CACHE.items())
                if key[0] == 'conv' and prob is not None}  # the team dropped from the key
    rng = numpy.random.default_rng(0)
    cases = []
    for key, prob in problems.items():
        _, _, transposed, x_shape, x_strides, w_shape, w_strides, has_bias, s, p, out_hw, \
            act, slope = key
        x = _like(x_shape, x_strides, rng)
        W = _like(w_shape, w_strides, rng)
        b = rng.standard_normal(prob.out_shape[1]).astype(numpy.float32) if has_bias else None
        gy = rng.standard_normal(prob.out_shape).astype(numpy.float32)
        outsize = out_hw if transposed else None
        runs = {}
        for n in teams:
            set_team(n)  # each team's own primitives (dnnl.cached keeps them per team)
            built = problem(transposed, x, W, has_bias, s, p, outsize, act, slope)
            if built is None:
                runs = None
                break
            node = ConvolutionDNNL(s, p, transposed=transposed, outsize=outsize,
                                   activation=act, slope=slope, problem=built)
            runs[n] = functools.partial(_forward_backward, set_team, n, node, x, W, b,
                                        has_bias, gy)
        cases.append(runs)
    return cases


def _forward_backward(set_team, n, node, x, W, b, has_bias, gy) -> list:
    # The team first: a backward primitive (and a reorder) is built at its first
    # use, with the team set then.
    set_team(n)
    y = node.compute(x, W, b)
    grads = node.gradients((0, 1, 2), x, W, has_bias, gy)
    return [y, *(g for g in grads if g is not None)]


def team_independent(teams, set_team) -> bool:
    """Whether every cached convolution gives the same bits with each team size.

    oneDNN's kernels split their work among the OpenMP threads; whether a
    gradient's sums are added in the same order whatever the number of
    threads depends on the kernel (and so on the CPU and the shapes). This
    builds each cached convolution's primitives for each team size
    (``set_team(n)``, then the cache: a primitive keeps the team it was built
    for), runs their forward, backward-data and backward-weights passes on
    the same random inputs in the layouts of the call, and compares the
    results bit for bit; the
    cached batch normalizations too (:func:`.onednn_norm.team_independent`).
    False when no convolution is cached (nothing to go by yet).
    :class:`gan_trainer.extensions.TeamTuner` changes the team during a run
    only when this holds, so that its choice never changes a number.
    """
    cases = _team_runs(teams, set_team)
    if not cases or None in cases:
        return False
    for runs in cases:
        try:
            if not same_bits([runs[n]() for n in teams]):
                return False
        except dnnl.DNNLError:
            return False
    return (onednn_norm.team_independent(teams, set_team)
            and onednn_matmul.team_independent(teams, set_team))


def team_times(teams, set_team, reps: int = 3) -> dict[int, float]:
    """Milliseconds of the cached convolutions' forward and backward passes with
    each team size (each case's median of ``reps`` runs, summed; its own
    primitives per team): how fast each team runs this process's layers on
    the machine as loaded now. Empty when nothing is cached or a team's
    primitive cannot be built."""
    cases = _team_runs(teams, set_team)
    if not cases or None in cases:
        return {}
    ms = dict.fromkeys(teams, 0.0)
    for runs in cases:
        for n in teams:
            times = []
            for _ in range(reps):
                start = time.perf_counter()
                try:
                    runs[n]()
                except dnnl.DNNLError:  # a backward primitive oneDNN cannot build
                    return {}
                times.append(time.perf_counter() - start)
            ms[n] += 1e3 * sorted(times)[len(times) // 2]
    return ms
