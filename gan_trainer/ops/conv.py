"""Convolution and transposed convolution for NumPy: one matrix product each.

Chainer's CPU convolution spends most of its time outside the matrix
product: im2col with a padding copy, transposes around ``tensordot``, and in
the transposed convolution a col2im of 16 scatter-adds. These nodes keep
feature maps **channel-last in memory** (an ``(N, C, H, W)`` array whose
strides are those of ``(N, H, W, C)``; Chainer and NumPy see the usual
shape) so that:

* a convolution is one strided-view im2col copy, ``(N*Ho*Wo, kh*kw*C)``,
  and one matrix product whose result already *is* the channel-last output
  (no re-layout);
* a transposed convolution is split by output phase: with stride ``s``, the
  outputs whose index is ``r`` modulo ``s`` see only the kernel taps
  ``r, r+s, r+2s, ...``, i.e. an ordinary stride-1 convolution of the input
  with a small sub-kernel. Each of the ``s*s`` phases is an im2col and a
  product written into a strided slice of the output, so no col2im
  (scatter-add) is ever needed;
* a transposed convolution where channels halve and number at least 64
  (a DCGAN generator's hidden layers) is instead one wide product giving
  every input pixel's contribution through every tap, and each output
  phase gathers (adds) its taps' shifted slices of it;
* a transposed convolution to a few channels (an image layer: ``C_in >
  4 * C_out``) is one product and a scatter-add of ``kh*kw`` thin
  slices, laid out channel-first so that each add moves whole image rows;
  its output is the one exception to the channel-last layout;
* the backward passes reuse the same two routines: a convolution's input
  gradient is a transposed convolution of ``gy`` and vice versa, and the
  weight gradients are one product of saved columns and ``gy``.

Only ``dilate=1``, ``groups=1`` convolutions without ``cover_all`` take this
path; :func:`convolution_2d` and :func:`deconvolution_2d` pass anything else
(and CuPy arrays, which get cuDNN) to Chainer's functions. Where oneDNN
loads (x86-64 Linux, :mod:`.dnnl`), float32 calls take its kernels instead
(:mod:`.onednn_conv`), which are faster still; these NumPy nodes then serve
float64 and any machine without it.
"""

from __future__ import annotations

import chainer
import chainer.functions as F
import numpy
from chainer.utils import conv as conv_utils
from numpy.lib.stride_tricks import as_strided

from gan_trainer.ops import onednn_conv
from gan_trainer.ops._common import FastNode, reference_backward, use_fast, variables
from gan_trainer.ops.activation import activated, check_activation

# One name for every matrix product here, so that a profiler (or the
# throughput benchmark) can time them apart from the copies around them.
_matmul = numpy.matmul


def _pair(v) -> tuple[int, int]:
    return (v, v) if numpy.isscalar(v) else tuple(v)


def _nhwc(x: numpy.ndarray) -> numpy.ndarray:
    """``(N, C, H, W)`` -> channel-last view ``(N, H, W, C)`` (never copies)."""
    return x.transpose(0, 2, 3, 1)


def _nchw(x: numpy.ndarray) -> numpy.ndarray:
    """``(N, H, W, C)`` -> ``(N, C, H, W)`` view of the same memory."""
    return x.transpose(0, 3, 1, 2)


def _padded(x, lo: tuple[int, int], hi: tuple[int, int]) -> numpy.ndarray:
    """A contiguous zero-padded copy of ``x`` ``(N, H, W, C)`` (no copy if no pad)."""
    if lo == (0, 0) and hi == (0, 0):
        return numpy.ascontiguousarray(x)
    n, h, w, c = x.shape
    out = numpy.zeros((n, h + lo[0] + hi[0], w + lo[1] + hi[1], c), x.dtype)
    out[:, lo[0]:lo[0] + h, lo[1]:lo[1] + w] = x
    return out


def _windows(xp, out_hw, k, s) -> numpy.ndarray:
    """im2col of a padded ``(N, H, W, C)`` array: ``(N*Ho*Wo, kh*kw*C)``.

    The strided view ``(N, Ho, Wo, kh, kw, C)`` costs nothing; the reshape
    makes the one copy that the matrix product needs.
    """
    n, _, _, c = xp.shape
    sn, sh, sw, sc = xp.strides
    view = as_strided(xp, (n, *out_hw, *k, c), (sn, s[0] * sh, s[1] * sw, sh, sw, sc))
    return view.reshape(n * out_hw[0] * out_hw[1], k[0] * k[1] * c)


def im2col(x, k, s, p, out_hw) -> numpy.ndarray:
    """Columns of a convolution of channel-last ``x`` ``(N, H, W, C)``.

    Returns ``(N*Ho*Wo, kh*kw*C)``, columns ordered ``(ky, kx, c)``.
    """
    _, h, w, _ = x.shape
    hi = tuple(max(0, (o - 1) * st + kk - size - pp)
               for o, st, kk, size, pp in zip(out_hw, s, k, (h, w), p))
    return _windows(_padded(x, p, hi), out_hw, k, s)


def conv_nhwc(x, W, k, s, p, out_hw) -> tuple[numpy.ndarray, numpy.ndarray]:
    """Convolution of channel-last ``x`` with Chainer weights ``W`` ``(Co, C, kh, kw)``.

    Returns the output ``(N, Ho, Wo, Co)`` (contiguous) and the columns.
    """
    cols = im2col(x, k, s, p, out_hw)
    w_mat = W.transpose(2, 3, 1, 0).reshape(-1, W.shape[0])  # (kh*kw*C, Co)
    y = _matmul(cols, w_mat)
    return y.reshape(x.shape[0], *out_hw, W.shape[0]), cols


def _phases(k: int, s: int, p: int, size_out: int):
    """Per output phase ``r`` of a transposed conv along one axis.

    Output ``o`` with ``(o + p) % s == r`` is ``sum_t x[q - t] * W[r + s*t]``
    where ``q = (o + p) // s``. Yields ``(first_o, count, first_q, taps)``
    with ``taps`` the kernel indices, last tap first (so that they line up
    with increasing input index in a stride-1 window).
    """
    for r in range(s):
        o0 = (r - p) % s
        count = len(range(o0, size_out, s))
        taps = list(range(r, k, s))[::-1]
        yield o0, count, (o0 + p - r) // s, taps


def _taps(taps: list[int]) -> slice:
    """The kernel indices ``taps`` (descending by the stride) as a slice."""
    step = taps[1] - taps[0] if len(taps) > 1 else -1
    return slice(taps[0], taps[-1] - 1 if taps[-1] else None, step)


#: A transposed convolution with at least this many output channels, and at
#: least twice as many input channels, takes :func:`_deconv_gather`.
GATHER_MIN_CHANNELS = 64


def deconv_routine(ci: int, co: int):
    """The routine :func:`deconv_nhwc` uses for ``ci`` -> ``co`` channels.

    All three compute the same thing; which is fastest depends on the
    shape (``benchmarks/deconv_routines.py`` times the three on DCGAN
    layers, k4 s2 p1; its figures are in ``benchmarks/RESULTS.md``):

    * ``_deconv_scatter`` when the output has far fewer channels than the
      input (an RGB or grey image layer): the phases' im2col would copy
      ``Ci``-wide windows to produce a few channels.
    * ``_deconv_gather`` for a DCGAN generator's hidden layers (and the
      input gradient of a DCGAN discriminator's), where channels halve and
      there are at least 64 of them: its one wide product beats the
      phases' narrow ones (``Co`` columns each).
    * ``_deconv_phases`` otherwise: with few channels, or as many output
      channels as input ones, the gather's strided adds of ``Co``-wide rows
      cost more than the phases' im2col copies.
    """
    if ci > 4 * co:
        return _deconv_scatter
    if ci >= 2 * co and co >= GATHER_MIN_CHANNELS:
        return _deconv_gather
    return _deconv_phases


def deconv_nhwc(x, W, s, p, out_hw) -> numpy.ndarray:
    """Transposed convolution of channel-last ``x`` ``(N, H, W, Ci)``.

    ``W`` has Chainer's deconvolution layout ``(Ci, Co, kh, kw)``. Returns
    ``(N, Ho, Wo, Co)``, computed by the routine :func:`deconv_routine`
    picks for the shape.
    """
    return deconv_routine(x.shape[3], W.shape[1])(x, W, s, p, out_hw)


def _tap_operands(x, W) -> tuple[numpy.ndarray, numpy.ndarray]:
    """The factors of every input pixel's contribution through every tap.

    Channel-last ``x`` as rows ``(N*H*W, Ci)`` and ``W`` ``(Ci, Co, kh,
    kw)`` as ``(Ci, kh*kw*Co)``; the scatter and gather routines multiply
    them in the orientation each needs.
    """
    return (numpy.ascontiguousarray(x).reshape(-1, x.shape[3]),
            W.transpose(0, 2, 3, 1).reshape(W.shape[0], -1))


def _deconv_scatter(x, W, s, p, out_hw) -> numpy.ndarray:
    """Transposed convolution as one product and a col2im (few output channels).

    The product is laid out channel-first, ``(kh*kw*Co, N*H*W)``, so that
    each of the ``kh*kw`` scatter-adds moves whole image rows of one
    channel rather than 1- or 3-float pixels; the result is returned as a
    channel-last *view* of that channel-first array.
    """
    n, h, w = x.shape[:3]
    co, kh, kw = W.shape[1:]
    rows, w_mat = _tap_operands(x, W)
    cols = _matmul(w_mat.T, rows.T).reshape(kh, kw, co, n, h, w)
    full = (max((h - 1) * s[0] + kh, p[0] + out_hw[0]), max((w - 1) * s[1] + kw, p[1] + out_hw[1]))
    y = numpy.zeros((co, n, *full), x.dtype)
    for i in range(kh):
        for j in range(kw):
            y[:, :, i:i + s[0] * h:s[0], j:j + s[1] * w:s[1]] += cols[i, j]
    return y[:, :, p[0]:p[0] + out_hw[0], p[1]:p[1] + out_hw[1]].transpose(1, 2, 3, 0)


def _deconv_gather(x, W, s, p, out_hw) -> numpy.ndarray:
    """Transposed convolution as one product, then a gather per output phase.

    The product ``(N*H*W, Ci) x (Ci, kh*kw*Co)`` gives every input pixel's
    contribution through every tap, channel-last. Output phase ``(ry,
    rx)`` (see :func:`_phases`) is the sum of its taps' contributions, each
    a shifted slice of that product, written into a strided slice of the
    output: the first slice that covers the phase is copied, the others
    (one row or column short at a border) are added.
    """
    n, h, w = x.shape[:3]
    co, kh, kw = W.shape[1:]
    rows, w_mat = _tap_operands(x, W)
    contrib = _matmul(rows, w_mat).reshape(n, h, w, kh, kw, co)
    y = numpy.empty((n, *out_hw, co), x.dtype)
    for oy, cy, qy, ty in _phases(kh, s[0], p[0], out_hw[0]):
        for ox, cx, qx, tx in _phases(kw, s[1], p[1], out_hw[1]):
            dst = y[:, oy::s[0], ox::s[1]]
            # Output j of the phase reads input j + d through the tap at
            # position i of the window, d = q0 - (T - 1) + i.
            parts = []  # ((y0, y1, x0, x1) of dst, the contributions there)
            for dy, ky in zip(range(qy - len(ty) + 1, qy + 1), ty):
                for dx, kx in zip(range(qx - len(tx) + 1, qx + 1), tx):
                    y0, y1 = max(0, -dy), min(cy, h - dy)
                    x0, x1 = max(0, -dx), min(cx, w - dx)
                    if y0 < y1 and x0 < x1:
                        src = contrib[:, y0 + dy:y1 + dy, x0 + dx:x1 + dx, ky, kx]
                        parts.append(((y0, y1, x0, x1), src))
            whole = next((i for i, (region, _) in enumerate(parts) if region == (0, cy, 0, cx)),
                         None)
            if whole is None:
                dst[...] = 0
            else:  # one that covers the phase initialises it: no zeros pass
                dst[...] = parts.pop(whole)[1]
            for (y0, y1, x0, x1), src in parts:
                dst[:, y0:y1, x0:x1] += src
    return y


def _deconv_phases(x, W, s, p, out_hw) -> numpy.ndarray:
    """Transposed convolution phase by phase: ``s*s`` im2cols and products."""
    n, h, w = x.shape[:3]
    co, kh, kw = W.shape[1:]
    y = numpy.empty((n, *out_hw, co), x.dtype)
    ph = list(_phases(kh, s[0], p[0], out_hw[0]))
    pw = list(_phases(kw, s[1], p[1], out_hw[1]))
    # Enough zeros around x for every phase's window: the first window
    # starts at q0 - (T - 1), the last ends at q0 + count - 1.
    lo = tuple(max([0] + [len(t) - 1 - q0 for _, c, q0, t in ax if c])
               for ax in (ph, pw))
    hi = tuple(max([0] + [q0 + c - 1 - (size - 1) for _, c, q0, t in ax if c])
               for ax, size in ((ph, h), (pw, w)))
    xp = _padded(x, lo, hi)
    for oy, cy, qy, ty in ph:
        for ox, cx, qx, tx in pw:
            if not (cy and cx):
                continue
            dst = y[:, oy::s[0], ox::s[1]]
            if not (ty and tx):  # kernel smaller than the stride: no tap
                dst[...] = 0
                continue
            sub = xp[:, qy - len(ty) + 1 + lo[0]:, qx - len(tx) + 1 + lo[1]:]
            cols = _windows(sub, (cy, cx), (len(ty), len(tx)), (1, 1))
            # Basic slices (views): the reshape is the one copy of this
            # phase's taps, a 1/(s*s) share of W.
            w_sub = W[:, :, _taps(ty), _taps(tx)].transpose(2, 3, 0, 1).reshape(-1, co)
            dst[...] = _matmul(cols, w_sub).reshape(n, cy, cx, co)
    return y


class _ChannelLastNode(FastNode):
    """What the two nodes share: inputs ``(x, W[, b])``, all retained for the
    backward pass, and an output stored channel-last.

    Subclasses compute ``_forward_nhwc(x, W) -> (N, Ho, Wo, Co)`` and
    ``_backward_nhwc(indexes, x, W, gy) -> (gx, gW, gb)`` (``gy`` a
    channel-last view; entries not in ``indexes`` may be None). Under
    double backprop the gradients come from Chainer's function instead
    (``reference``).
    """

    def __init__(self, stride, pad):
        self.s = _pair(stride)
        self.p = _pair(pad)

    def forward(self, inputs):
        self.retain_inputs(tuple(range(len(inputs))))
        return self.compute(*inputs),

    def compute(self, x, W, b=None) -> numpy.ndarray:
        """The forward pass on arrays, no graph (also the first part of a fused block)."""
        y = self._forward_nhwc(x, W)
        if b is not None:
            y += b
        return _nchw(y)

    def backward(self, indexes, grad_outputs):
        if chainer.config.enable_backprop:
            return reference_backward(self, indexes, grad_outputs, self.reference)
        x, W = (v.array for v in self.get_retained_inputs()[:2])
        grads = self.gradients(indexes, x, W, True, grad_outputs[0].array)
        return variables(*(grads[i] for i in indexes))

    def gradients(self, indexes, x, W, has_bias: bool, gy) -> tuple:
        """``(gx, gW, gb)`` on arrays; entries not in ``indexes`` may be None."""
        return self._backward_nhwc(indexes, x, W, _nhwc(gy))


class Convolution2DNumPy(_ChannelLastNode):
    """2-D convolution ``(N, C, H, W) -> (N, Co, Ho, Wo)``, output channel-last."""

    def __init__(self, stride, pad, *, keep_cols=True):
        super().__init__(stride, pad)
        # The columns are the weight gradient's other factor: keep them only
        # when a weight gradient can be asked for.
        self.keep_cols = keep_cols

    def _forward_nhwc(self, x, W):
        k = W.shape[2:]
        self.out_hw = tuple(conv_utils.get_conv_outsize(size, kk, st, pp)
                            for size, kk, st, pp in zip(x.shape[2:], k, self.s, self.p))
        y, cols = conv_nhwc(_nhwc(x), W, k, self.s, self.p, self.out_hw)
        self.cols = cols if self.keep_cols else None
        return y

    def _backward_nhwc(self, indexes, x, W, gy):
        gx = gW = gb = None
        if 0 in indexes:
            gx = _nchw(deconv_nhwc(gy, W, self.s, self.p, x.shape[2:]))
        gy_rows = None
        if 1 in indexes or 2 in indexes:
            gy_rows = numpy.ascontiguousarray(gy).reshape(-1, W.shape[0])
        if 1 in indexes:
            cols = self.cols
            if cols is None:
                cols = im2col(_nhwc(x), W.shape[2:], self.s, self.p, self.out_hw)
            gW = _matmul(cols.T, gy_rows).reshape(*W.shape[2:], W.shape[1], W.shape[0])
            gW = numpy.ascontiguousarray(gW.transpose(3, 2, 0, 1))
        if 2 in indexes:
            gb = gy_rows.sum(axis=0)
        self.cols = None
        return gx, gW, gb

    def reference(self, x, W, b=None):
        return F.convolution_2d(x, W, b, self.s, self.p)


class Deconvolution2DNumPy(_ChannelLastNode):
    """2-D transposed convolution, output channel-last, computed by phases."""

    def __init__(self, stride, pad, outsize):
        super().__init__(stride, pad)
        self.outsize = outsize

    def _forward_nhwc(self, x, W):
        self.outsize = deconv_outsize(x.shape[2:], W.shape[2:], self.s, self.p, self.outsize)
        return deconv_nhwc(_nhwc(x), W, self.s, self.p, self.outsize)

    def _backward_nhwc(self, indexes, x, W, gy):
        k = W.shape[2:]
        gx = gW = gb = None
        # gx is the matching convolution of gy with the same W (read as
        # (Co, Ci, kh, kw) -> Ci outputs); its columns of gy, (N*H*W,
        # kh*kw*Co), are also gW's other factor.
        cols = None
        if 0 in indexes:
            gx, cols = conv_nhwc(gy, W, k, self.s, self.p, x.shape[2:])
            gx = _nchw(gx)
        if 1 in indexes:
            if cols is None:
                cols = im2col(gy, k, self.s, self.p, x.shape[2:])
            x_rows = numpy.ascontiguousarray(_nhwc(x)).reshape(-1, W.shape[0])
            gW = _matmul(x_rows.T, cols).reshape(W.shape[0], *k, W.shape[1])
            gW = numpy.ascontiguousarray(gW.transpose(0, 3, 1, 2))
        if 2 in indexes:
            gb = gy.sum(axis=(0, 1, 2))
        return gx, gW, gb

    def reference(self, x, W, b=None):
        return F.deconvolution_2d(x, W, b, self.s, self.p, outsize=self.outsize)


def deconv_outsize(x_hw, k, s, p, outsize) -> tuple[int, int]:
    """A transposed convolution's output size, checked as Chainer checks it.

    Like Chainer: ``outsize`` None (or None on one axis) is the smallest
    output; a given one must be a size that this input can produce.

    Raises:
        ValueError: If ``outsize`` cannot come from an input of ``x_hw``.
    """
    wanted = (None, None) if outsize is None else _pair(outsize)
    sizes = []
    for o, size, kk, st, pp in zip(wanted, x_hw, k, s, p):
        if o is None:
            o = conv_utils.get_deconv_outsize(size, kk, st, pp)
        elif not (conv_utils.get_conv_outsize(o, kk, st, pp) <= size
                  <= conv_utils.get_conv_outsize(o, kk, st, pp, cover_all=True)):
            raise ValueError(
                f'outsize {outsize} cannot come from input size {tuple(x_hw)} '
                f'with ksize {tuple(k)}, stride {s} and pad {p}')
        sizes.append(int(o))
    return tuple(sizes)


def _array(a):
    return a.array if isinstance(a, chainer.Variable) else a


def _readable(x, W) -> tuple:
    """``x`` and ``W`` as the oneDNN node will read them (the key of its primitives)."""
    return onednn_conv.readable(_array(x)), onednn_conv.readable(_array(W))


def _has_output(x, W, stride, pad) -> bool:
    """Whether the convolution's output has at least one pixel (else Chainer's error)."""
    return all(conv_utils.get_conv_outsize(size, k, s, p) >= 1 for size, k, s, p in zip(
        x.shape[2:], W.shape[2:], _pair(stride), _pair(pad)))


def _simple(dilate, groups) -> bool:
    return _pair(dilate) == (1, 1) and groups == 1


def _fits(x, W, b, transposed: bool) -> bool:
    """Whether the shapes are a convolution the fast nodes compute: 4-d ``x`` and
    ``W`` with matching input channels, a bias of one value per output channel,
    nothing empty. Anything else goes to Chainer's function, which raises its
    own error where the call is wrong."""
    if x.ndim != 4 or W.ndim != 4 or x.size == 0 or W.size == 0:
        return False
    ci, co = (W.shape[0], W.shape[1]) if transposed else (W.shape[1], W.shape[0])
    return x.shape[1] == ci and (b is None or b.shape == (co,))


def fast_node(transposed: bool, x, W, b, stride, pad, outsize=None, *, activation=None,
              slope=0.2) -> chainer.FunctionNode | None:
    """The fast node for this convolution (not yet applied), or None for Chainer's function.

    A :class:`~.onednn_conv.ConvolutionDNNL` where oneDNN takes the call
    (it applies ``activation`` itself); else the NumPy node, which leaves
    the activation to the caller. The caller has checked ``dilate``,
    ``groups`` and ``cover_all``.
    """
    if (not use_fast(x, W, b) or not _fits(x, W, b, transposed)
            or not (transposed or _has_output(x, W, stride, pad))):
        return None
    if onednn_conv.available(x, W, b):
        s, p = _pair(stride), _pair(pad)
        size = deconv_outsize(x.shape[2:], W.shape[2:], s, p, outsize) if transposed else None
        prob = onednn_conv.problem(transposed, *_readable(x, W), b is not None, s, p, size,
                                   activation, slope)
        if prob is not None:
            return onednn_conv.ConvolutionDNNL(s, p, transposed=transposed, outsize=size,
                                               activation=activation, slope=slope, problem=prob)
    if transposed:
        return Deconvolution2DNumPy(stride, pad, outsize)
    keep = chainer.config.enable_backprop and getattr(W, 'requires_grad', False)
    return Convolution2DNumPy(stride, pad, keep_cols=keep)


def _apply(node, x, W, b, activation, slope):
    y, = node.apply((x, W) if b is None else (x, W, b))
    if isinstance(node, onednn_conv.ConvolutionDNNL):
        return y
    return activated(y, activation, slope)


def convolution_2d(x, W, b=None, stride=1, pad=0, *, cover_all=False, dilate=1, groups=1,
                   activation=None, slope=0.2):
    """Drop-in for :func:`chainer.functions.convolution_2d`, fast on NumPy.

    Takes the fast path for NumPy float32/float64 inputs with ``dilate=1``,
    ``groups=1`` and ``cover_all=False``: oneDNN for float32 where it loads
    (:mod:`.onednn_conv`), else this module's NumPy node; otherwise calls
    Chainer's function (so CuPy inputs get cuDNN, and a wrong shape gets
    Chainer's error). The output is stored channel-last, which the
    package's other fast functions read without copying.

    Args:
        activation: None, or ``'relu'``, ``'leaky_relu'`` or ``'tanh'``
            applied to the output (after the bias): inside the oneDNN kernel
            when it runs, else as a separate function; the values are the same.
        slope: LeakyReLU's slope, ``0 < slope <= 1``.
    """
    check_activation(activation, slope)
    node = None
    if not cover_all and _simple(dilate, groups):
        node = fast_node(False, x, W, b, stride, pad, activation=activation, slope=slope)
    if node is None:
        y = F.convolution_2d(x, W, b, stride, pad, cover_all=cover_all,
                             dilate=dilate, groups=groups)
        return activated(y, activation, slope)
    return _apply(node, x, W, b, activation, slope)


def deconvolution_2d(x, W, b=None, stride=1, pad=0, outsize=None, *, dilate=1, groups=1,
                     activation=None, slope=0.2):
    """Drop-in for :func:`chainer.functions.deconvolution_2d`, fast on NumPy.

    Same rules and ``activation`` as :func:`convolution_2d`; ``W`` is
    ``(C_in, C_out, kh, kw)``.
    """
    check_activation(activation, slope)
    node = None
    if _simple(dilate, groups):
        node = fast_node(True, x, W, b, stride, pad, outsize, activation=activation, slope=slope)
    if node is None:
        y = F.deconvolution_2d(x, W, b, stride, pad, outsize, dilate=dilate, groups=groups)
        return activated(y, activation, slope)
    return _apply(node, x, W, b, activation, slope)
