"""Training-mode batch normalization on oneDNN, with ReLU fused, on channel-last rows.

:class:`~.normalization.BatchNormalizationNumPy` (and with it the second
half of every fused block, :mod:`.blocks`) hands its float32 maps here when
oneDNN is loaded and switched on. The NumPy arithmetic it replaces takes
about eight single-threaded passes over the map (mean, deviations,
variance, scale, shift, activation, and three more backward); oneDNN's JIT
kernel takes two forward (statistics, then normalization with the scale,
shift and ReLU) and two backward, on all of the OpenMP team's threads
(``benchmarks/onednn_layers.py --bn`` times both on the default network's
layers; the figures are in benchmarks/RESULTS.md).

* **Layout.** The node views the map as channel-last rows ``(N*H*W, C)``
  (:func:`~._common.as_rows`: free for the channel-last maps the
  convolutions write, one copy for any other), and the primitive sees
  those rows as a 2-D ``(N, C)`` problem, which is the same normalization.
  So every input, 2-D, 3-D or 4-D, in any layout, reaches one kind of
  primitive, always C-contiguous, which oneDNN runs with its JIT kernel
  (``bnorm_jit``; an ``nchw`` map described as it is would take a generic
  kernel, ``ncsp_bnorm``, several times slower, and the copy into rows costs less).
* **Statistics.** The primitive returns the batch mean and the biased
  variance it normalized with; the node updates the running statistics
  from them exactly as Chainer does (unbiased variance, ``decay``).
* **Activation.** ReLU is oneDNN's ``fuse_norm_relu`` flag: applied in the
  forward kernel, and in the backward one through the workspace (a mask
  of the positive outputs), so ReLU costs no pass. oneDNN fuses nothing
  else into a *training* normalization (an eltwise post-op is refused
  with ``unimplemented``), so LeakyReLU stays one NumPy pass in place on
  the output, and its derivative one pass before the backward kernel.
* **Threads.** A kernel that splits a channel's sums among threads could
  give other bits with another team size; :func:`team_independent`
  checks the cached primitives as the convolutions' check does, for
  :class:`gan_trainer.extensions.TeamTuner`.

Float64 (oneDNN has no float64 normalization on the CPU), CuPy and the
switches off keep the NumPy node's own arithmetic.
"""

from __future__ import annotations

import numpy

from gan_trainer.ops import dnnl
from gan_trainer.ops._common import onednn_enabled, same_bits

#: False sends every normalization to the NumPy arithmetic while the
#: convolutions stay on oneDNN (``benchmarks/profile_run.py --ab bn`` compares
#: the two in one process); the users' switches are the package's (``gan_trainer_onednn``).
ENABLED = True

_FORWARD = ['src', 'scale', 'shift', 'dst', 'mean', 'variance']
_BACKWARD = ['src', 'mean', 'variance', 'diff_dst', 'scale', 'diff_src', 'diff_scale',
             'diff_shift']


def available(*arrays) -> bool:
    """Whether these NumPy arrays (or Variables' arrays) can go to oneDNN: all
    float32, oneDNN switched on and loaded."""
    if not (ENABLED and onednn_enabled()):
        return False
    for a in arrays:
        if getattr(a, 'array', a).dtype != numpy.float32:
            return False
    return dnnl.library() is not None


class Problem:
    """The forward and backward primitives of one ``(M, C)`` shape, ``eps`` and ReLU flag.

    Args:
        shape: The rows' shape ``(M, C)``: ``M`` values per channel.
        eps: Added to the variance (rounded to float32, as NumPy's
            ``var + eps`` on float32 arrays rounds it).
        relu: Whether ReLU is fused (``fuse_norm_relu``).
    """

    def __init__(self, shape, eps: float, relu: bool):
        lib = dnnl.library()
        self.shape, self.eps, self.relu = tuple(shape), eps, relu
        md = dnnl.memory_desc(self.shape, [self.shape[1], 1])
        flags = dnnl.USE_SCALE | dnnl.USE_SHIFT | (dnnl.FUSE_NORM_RELU if relu else 0)
        ws = ['workspace'] if relu else []
        fwd_pd = dnnl.create_pd('batch_normalization_forward', lib.engine,
                                dnnl.FORWARD_TRAINING, md, md, eps, flags, None)
        self.fwd = dnnl.Primitive(fwd_pd, _FORWARD + ws)
        bwd_pd = dnnl.create_pd('batch_normalization_backward', lib.engine, dnnl.BACKWARD,
                                md, md, md, eps, flags, fwd_pd, None)
        self.bwd = dnnl.Primitive(bwd_pd, _BACKWARD + ws)
        self.ws_bytes = self.fwd.arg_size('workspace') if relu else 0

    def forward(self, rows: numpy.ndarray, gamma: numpy.ndarray, beta: numpy.ndarray):
        """``(y, mean, var, workspace)``: the normalized rows (ReLU applied when
        fused), the batch mean and biased variance, and what :meth:`backward`
        needs besides them (None without ReLU)."""
        c = self.shape[1]
        y = numpy.empty(self.shape, numpy.float32)
        mean, var = numpy.empty(c, numpy.float32), numpy.empty(c, numpy.float32)
        ws = numpy.empty(self.ws_bytes, numpy.uint8) if self.relu else None
        args = (rows, gamma, beta, y, mean, var) + ((ws,) if self.relu else ())
        self.fwd.run(*args)
        return y, mean, var, ws

    def backward(self, rows, mean, var, ws, gy_rows, gamma) -> tuple:
        """``(gx, ggamma, gbeta)`` from the rows' output gradient (before
        the ReLU when it is fused: the workspace applies its mask)."""
        c = self.shape[1]
        gx = numpy.empty(self.shape, numpy.float32)
        ggamma, gbeta = numpy.empty(c, numpy.float32), numpy.empty(c, numpy.float32)
        args = (rows, mean, var, gy_rows, gamma, gx, ggamma, gbeta) + (
            (ws,) if self.relu else ())
        self.bwd.run(*args)
        return gx, ggamma, gbeta


def problem(shape, eps: float, relu: bool) -> Problem | None:
    """The cached primitives for rows of ``shape``, or None where oneDNN cannot
    build them (the node then keeps its NumPy arithmetic)."""
    eps = float(numpy.float32(eps))
    return dnnl.cached(('bn', tuple(shape), eps, relu), lambda: Problem(shape, eps, relu))


def rows_for(a: numpy.ndarray) -> numpy.ndarray:
    """``a`` (rows from :func:`~._common.as_rows`) as oneDNN reads them: C-contiguous
    and aligned (a copy only for a misaligned buffer)."""
    return a if a.flags.aligned and a.flags.c_contiguous else numpy.array(a, order='C')


def team_independent(teams, set_team) -> bool:
    """Whether every cached normalization gives the same bits with each team size.

    Builds each cached normalization for each team size (``set_team(n)``),
    runs its forward and backward pass on the same random rows, and compares every output
    bit for bit (see :func:`gan_trainer.ops.onednn_conv.team_independent`,
    which calls this). True when nothing is cached.
    """
    rng = numpy.random.default_rng(0)
    keys = {key[:-1] for key, prob in list(dnnl._CACHE.items())
            if key[0] == 'bn' and prob is not None}  # the team dropped from the key
    for _, shape, eps, relu in sorted(keys):
        c = shape[1]
        x = rng.standard_normal(shape).astype(numpy.float32)
        gy = rng.standard_normal(shape).astype(numpy.float32)
        gamma = rng.uniform(0.5, 1.5, c).astype(numpy.float32)
        beta = rng.standard_normal(c).astype(numpy.float32)
        results = []
        for n in teams:
            set_team(n)  # each team's own primitives (dnnl.cached keeps them per team)
            prob = problem(shape, eps, relu)
            if prob is None:
                return False
            y, mean, var, ws = prob.forward(x, gamma, beta)
            results.append((y, mean, var, *prob.backward(x, mean, var, ws, gy, gamma)))
        if not same_bits(results):
            return False
    return True
