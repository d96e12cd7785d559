"""ReLU and LeakyReLU of the fast nodes on oneDNN: one pass, on the convolutions' threads.

The fast nodes (convolutions, normalization, the fused blocks) apply their
activation to their output themselves (:func:`.activation.activate_in_place`)
and take its derivative from that output in the backward pass
(:func:`.activation.activation_grad`). In NumPy the derivative of a
(leaky) ReLU is five single-threaded passes over the map (a comparison,
its cast to float, the factor's multiply and add, the product with the
gradient), and in a training step the map is no longer in the cache: on
the default run they were about a tenth of an iteration
(``benchmarks/profile_run.py --ab eltwise`` compares both in one run;
figures in benchmarks/RESULTS.md). oneDNN's eltwise primitive does it in
one pass on the OpenMP team: ``relu_use_dst_for_bwd`` with ``alpha`` the
slope is ``gy`` where the output is positive and ``slope * gy`` elsewhere
(Chainer 7's convention at 0), and the forward ``relu`` with ``alpha``
is ``x`` or ``slope * x``, in place.

* **Values.** The same bits as the NumPy functions: each element is one
  comparison and at most one product either way (``tests/test_onednn_eltwise.py``).
  An element-wise primitive sums nothing, so no team size changes a bit
  and the team tuner's check need not cover it.
* **Layouts.** The maps are read as one flat run of memory, so any dense
  layout (channel-last maps, ``(N, C)`` rows) reaches one kind of
  primitive per size (oneDNN refuses a gradient in another layout than
  the output: such a gradient is copied into the output's layout first).
  Anything else (float64, strided outputs, CuPy, tanh and ELU, maps under
  4,096 values, the switches off) returns None and the NumPy functions run.
"""

from __future__ import annotations

import numpy

from gan_trainer.ops import dnnl
from gan_trainer.ops._common import onednn_enabled

#: False sends the activations back to NumPy while everything else stays on
#: oneDNN (``benchmarks/profile_run.py --ab eltwise``); the users' switches are the package's.
ENABLED = True

_RELU_USE_DST = dnnl.ELTWISE['relu_use_dst_for_bwd']  # forward, it is relu itself
_SMALL = 4096  # below this many elements NumPy's few passes cost less than a call


def flat(a: numpy.ndarray) -> numpy.ndarray | None:
    """A 1-D view of ``a``'s elements in memory order, or None unless ``a`` is a
    dense, aligned float32 NumPy array (any order of its axes in memory)."""
    if type(a) is not numpy.ndarray or a.dtype != numpy.float32 or not a.flags.aligned:
        return None
    if a.flags.c_contiguous:
        return a.reshape(-1)
    order = sorted(range(a.ndim), key=lambda i: -a.strides[i])
    t = a.transpose(order)
    return t.reshape(-1) if t.flags.c_contiguous else None


class Eltwise:
    """The forward and backward (from the output) primitives of a (leaky) ReLU
    over ``n`` contiguous float32 values."""

    def __init__(self, n: int, slope: float):
        lib = dnnl.library()
        md = dnnl.memory_desc((n,), (1,))
        try:
            fwd = dnnl.create_pd('eltwise_forward', lib.engine, dnnl.FORWARD_TRAINING,
                                 _RELU_USE_DST, md, md, slope, 0.0, None)
            self.fwd = dnnl.Primitive(fwd, ['src', 'dst'])
            bwd = dnnl.create_pd('eltwise_backward', lib.engine, _RELU_USE_DST, md, md, md,
                                 slope, 0.0, fwd, None)
            self.bwd = dnnl.Primitive(bwd, ['dst', 'diff_dst', 'diff_src'])
        finally:
            lib.memory_desc_destroy(md)


def _problem(a: numpy.ndarray, activation, slope) -> Eltwise | None:
    if (activation not in ('relu', 'leaky_relu') or a.size < _SMALL
            or not (ENABLED and onednn_enabled()) or dnnl.library() is None):
        return None
    slope = float(numpy.float32(slope)) if activation == 'leaky_relu' else 0.0
    return dnnl.cached(('eltwise', a.size, slope), lambda: Eltwise(a.size, slope))


def activate_in_place(y: numpy.ndarray, activation, slope) -> bool:
    """``activation(y)`` into ``y`` on oneDNN; False (nothing done) where it cannot."""
    prob = _problem(y, activation, slope)
    v = None if prob is None else flat(y)
    if v is None:
        return False
    prob.fwd.run(v, v)
    return True


def activation_grad(y: numpy.ndarray, gy: numpy.ndarray, activation, slope):
    """``gy`` times the activation's derivative at output ``y``, in a new array
    of ``y``'s layout; None where oneDNN cannot (see the module docstring).

    A ``gy`` in another layout than ``y`` (the channel-first gradient a
    linear read-out sends back into a channel-last map) is first copied
    into ``y``'s layout, and the primitive then runs in place on the copy:
    the normalization after it wants that layout anyway.
    """
    prob = _problem(y, activation, slope)
    if prob is None or gy.shape != y.shape or type(gy) is not numpy.ndarray:
        return None
    vy = flat(y)
    if vy is None:
        return None
    g = numpy.empty_like(y)  # y's layout: flat(g) walks it as flat(y) does
    if gy.strides == y.strides and (vgy := flat(gy)) is not None:
        prob.bwd.run(vy, vgy, flat(g))
    else:
        numpy.copyto(g, gy)
        vg = flat(g)
        prob.bwd.run(vy, vg, vg)
    return g
