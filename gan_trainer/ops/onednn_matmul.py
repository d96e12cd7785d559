"""The linear layers' matrix products on oneDNN, on the convolutions' threads.

:class:`~.linear.LinearNumPy` (and the linear half of a fused block) hands
its float32 products here when oneDNN is loaded and switched on: the
forward ``x @ W.T + b``, and backward ``gy @ W`` and ``gy.T @ x``. Before
this module they went to NumPy's ``dot``, i.e. OpenBLAS, which the thread
policy (:mod:`.threads`) limits to one thread, so that its threads do not
spin against oneDNN's OpenMP team on the same cores. That was right for
the DCGAN's small read-out and projection, and wrong for the write-up nets
of :mod:`gan_trainer.run.presets` whose linear layers hold most of the
arithmetic (the Keras DCGAN notes' D has a Dense 6,272 -> 2,048 that runs
three times per iteration at batch 200): oneDNN's ``matmul`` (a JIT
``brgemm`` kernel for the CPU's vector unit) runs on the OpenMP team that
the convolutions already use, with no hand-over between thread pools.
``benchmarks/profile_run.py --ab linear -- --preset NAME`` times both in
one run, window by window (figures in benchmarks/RESULTS.md).

* **Layouts.** Each operand is described with its own strides, so the
  transposes ``W.T`` and ``gy.T`` are read in place, with no copy; an
  operand whose strides oneDNN's plain formats cannot express (no unit
  stride, a negative one) is copied first.
* **Bias.** Added by the primitive (a ``(1, N)`` bias), not by a second pass.
* **Threads.** A primitive is built per OpenMP team size (:func:`.dnnl.cached`);
  :func:`team_independent` checks that the cached products give the same
  bits with each size, for :class:`gan_trainer.extensions.TeamTuner`.

The results equal NumPy's products within float32 rounding (a kernel adds
its products in another order; ``tests/test_onednn_matmul.py``). Float64
(oneDNN has no float64 matmul on the CPU), CuPy, and the switches off keep
NumPy's ``dot``; so does a product oneDNN refuses to build.
"""

from __future__ import annotations

import numpy

from gan_trainer.ops import dnnl
from gan_trainer.ops._common import onednn_enabled, same_bits

#: False sends every linear layer back to NumPy's ``dot`` while the
#: convolutions stay on oneDNN (``benchmarks/profile_run.py --ab linear``
#: compares the two in one process); the users' switches are the package's.
ENABLED = True


def available(*arrays) -> bool:
    """Whether these NumPy arrays (or Variables' arrays) can go to oneDNN: all
    float32, oneDNN switched on and loaded."""
    if not (ENABLED and onednn_enabled()):
        return False
    for a in arrays:
        if a is not None and getattr(a, 'array', a).dtype != numpy.float32:
            return False
    return dnnl.library() is not None


def _plain(a: numpy.ndarray) -> numpy.ndarray:
    """``a`` itself if oneDNN can read it in place (positive strides, one of them
    a unit stride, aligned), else a C-contiguous copy."""
    s = a.strides
    if a.flags.aligned and min(s) > 0 and a.itemsize in s:
        return a
    return numpy.ascontiguousarray(a)


def _strides(a: numpy.ndarray) -> tuple[int, ...]:
    return tuple(s // a.itemsize for s in a.strides)


class Product:
    """The primitive for ``a @ b (+ bias)`` with operands of ``a``'s and ``b``'s
    shapes and strides (the arrays are only described, not kept).

    Args:
        a, b: Float32 matrices ``(M, K)`` and ``(K, N)`` in the layouts of the calls.
        bias: Whether a ``(N,)`` bias is added.
    """

    def __init__(self, a: numpy.ndarray, b: numpy.ndarray, bias: bool):
        lib = dnnl.library()
        (m, k), (k2, n) = a.shape, b.shape
        assert k == k2
        self.shape = (m, n)
        descs = [dnnl.array_desc(a), dnnl.array_desc(b),
                 dnnl.memory_desc((1, n), (n, 1)) if bias else None,
                 dnnl.memory_desc((m, n), (n, 1))]
        try:
            pd = dnnl.create_pd('matmul', lib.engine, *descs, None)
        finally:
            for md in descs:
                if md is not None:
                    lib.memory_desc_destroy(md)
        self.bias = bias
        self.prim = dnnl.Primitive(pd, ['src', 'weights'] + (['bias'] if bias else []) + ['dst'])

    def __call__(self, a, b, bias=None) -> numpy.ndarray:
        y = numpy.empty(self.shape, numpy.float32)
        self.prim.run(a, b, *((bias,) if self.bias else ()), y)
        return y


def product(a: numpy.ndarray, b: numpy.ndarray, bias: numpy.ndarray | None = None):
    """``a @ b (+ bias)`` of float32 matrices on oneDNN, a new C-contiguous array;
    None where oneDNN cannot build the product (the caller uses NumPy).

    An outer product (``a`` of one column, no bias: the input gradient of
    D's read-out to one logit) has no sums, so NumPy's broadcast multiply
    gives every bit a matmul would, without waking the team (0.12 ms a call
    on oneDNN for ``(64, 1) @ (1, 3136)`` on the CPU of benchmarks/RESULTS.md).
    """
    if a.shape[1] == 1 and bias is None:
        return numpy.multiply(a, b)
    a, b = _plain(a), _plain(b)
    if bias is not None:
        bias = numpy.ascontiguousarray(bias)
    key = ('matmul', a.shape, _strides(a), b.shape, _strides(b), bias is not None)
    prod = dnnl.cached(key, lambda: Product(a, b, bias is not None))
    return None if prod is None else prod(a, b, bias)


def team_independent(teams, set_team) -> bool:
    """Whether every cached product gives the same bits with each team size.

    Builds each cached product for each team size (``set_team(n)``), runs it
    on the same random operands in the layouts of the call, and compares
    the results bit for bit (see :func:`gan_trainer.ops.onednn_conv.team_independent`,
    which calls this). True when nothing is cached.
    """
    rng = numpy.random.default_rng(0)
    keys = {key[:-1] for key, prod in list(dnnl._CACHE.items())
            if key[0] == 'matmul' and prod is not None}  # the team dropped from the key
    for _, a_shape, a_strides, b_shape, b_strides, bias in sorted(keys):
        operands = [_with_layout(rng, a_shape, a_strides), _with_layout(rng, b_shape, b_strides)]
        if bias:
            operands.append(rng.standard_normal(b_shape[1]).astype(numpy.float32))
        results = []
        for n in teams:
            set_team(n)  # each team's own primitive (dnnl.cached keeps them per team)
            y = product(*operands)
            if y is None:
                return False
            results.append((y,))
        if not same_bits(results):
            return False
    return True


def _with_layout(rng, shape, strides) -> numpy.ndarray:
    """Random float32 values of ``shape`` laid out with ``strides`` (in elements)."""
    span = 1 + sum((d - 1) * s for d, s in zip(shape, strides))
    base = rng.standard_normal(span).astype(numpy.float32)
    return numpy.lib.stride_tricks.as_strided(base, shape, [4 * s for s in strides])
