"""What the fast CPU functions share: when to use them, and double backprop.

The fast functions of :mod:`gan_trainer.ops` run on NumPy arrays of float32
or float64 when ``chainer.config.gan_trainer_fast`` is true (the default;
the environment variable ``GAN_TRAINER_FAST=0`` turns it off for a whole
process). Anything else (CuPy, ChainerX, float16, the switch off) goes to
Chainer's own function, so callers never need to check.

Their backward passes are written for the common case, first-order
gradients, with NumPy. When Chainer asks for a differentiable backward pass
(``enable_double_backprop=True``, e.g. a WGAN-GP or R1 gradient penalty),
:func:`reference_backward` re-runs Chainer's reference function on the
retained inputs and differentiates that instead: slower, but exactly
Chainer's graph, so double backprop is as correct as Chainer's.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Sequence

import chainer
import numpy
from chainer.backends import cuda

#: Name of the Chainer config switch (``chainer.config.gan_trainer_fast``).
CONFIG_KEY = 'gan_trainer_fast'
FAST_DTYPES = (numpy.float32, numpy.float64)

#: Name of the Chainer config switch for the oneDNN kernels alone
#: (``chainer.config.gan_trainer_onednn``; off: the NumPy functions run).
ONEDNN_KEY = 'gan_trainer_onednn'
#: Name of the Chainer config switch for the fused layer blocks alone
#: (``chainer.config.gan_trainer_blocks``; off: each layer is a node of its own).
BLOCKS_KEY = 'gan_trainer_blocks'
_OFF = ('0', 'false', 'no', 'off')

for _key, _env in ((CONFIG_KEY, 'GAN_TRAINER_FAST'), (ONEDNN_KEY, 'GAN_TRAINER_ONEDNN'),
                   (BLOCKS_KEY, 'GAN_TRAINER_BLOCKS')):
    if not hasattr(chainer.global_config, _key):
        setattr(chainer.global_config, _key, os.environ.get(_env, '1').strip().lower() not in _OFF)


_MALLOC_TUNED = False
# Set once the settings have been tried, whatever came of it, so that the
# fast functions' hot path does not retry (and reload libc) on every call.
_MALLOC_TRIED = False


def keep_freed_memory() -> bool:
    """Lets glibc's malloc keep freed blocks for reuse (once per process).

    A training step allocates and frees the same multi-megabyte arrays
    (im2col columns, activations, gradients) every iteration. By default
    glibc serves such blocks with ``mmap`` and returns them to the system on
    ``free``, so every step page-faults all of that memory in again, which
    costs over 10% of a CPU step here (see docs/performance.md). Raising
    the mmap threshold (to its 32 MiB maximum) and the trim threshold keeps
    the memory in the heap: the process stays at its peak footprint
    instead. Called by the first fast function that runs and tried only
    once; does nothing off glibc, or when the environment variable
    ``GAN_TRAINER_MALLOPT`` is ``0``.

    Returns:
        True if the settings were applied (now or earlier).
    """
    global _MALLOC_TUNED, _MALLOC_TRIED
    if _MALLOC_TRIED:
        return _MALLOC_TUNED
    _MALLOC_TRIED = True
    if os.environ.get('GAN_TRAINER_MALLOPT', '1').strip() == '0':
        return False
    try:
        mallopt = ctypes.CDLL('libc.so.6').mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl)
        return False
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    _MALLOC_TUNED = bool(mallopt(m_mmap_threshold, 32 << 20)
                         and mallopt(m_trim_threshold, 1 << 30)
                         and mallopt(m_top_pad, 64 << 20))
    return _MALLOC_TUNED


def fast_enabled() -> bool:
    """Whether the fast CPU functions are switched on (see module docstring)."""
    return bool(getattr(chainer.config, CONFIG_KEY, True))


def blocks_enabled() -> bool:
    """Whether layers may run as fused blocks (``gan_trainer_blocks``, ``GAN_TRAINER_BLOCKS``)."""
    return bool(getattr(chainer.config, BLOCKS_KEY, True))


def onednn_enabled() -> bool:
    """Whether the oneDNN kernels may be used (``gan_trainer_onednn``, ``GAN_TRAINER_ONEDNN``)."""
    return bool(getattr(chainer.config, ONEDNN_KEY, True))


def _of_one_fast_dtype(arrays, is_array: Callable) -> bool:
    """Whether every array (or Variable) but ``None`` passes ``is_array``, and all
    share one dtype of :data:`FAST_DTYPES`."""
    dtype = None
    for a in arrays:
        if a is None:
            continue
        a = a.array if isinstance(a, chainer.Variable) else a
        if not is_array(a) or a.dtype.type not in FAST_DTYPES:
            return False
        if dtype is not None and a.dtype != dtype:
            return False
        dtype = a.dtype
    return True


def _is_numpy(a) -> bool:
    return type(a) is numpy.ndarray


def _is_cupy(a) -> bool:
    return isinstance(a, cuda.ndarray)


def use_fast(*arrays) -> bool:
    """True when the fast path applies to all given arrays (or Variables).

    ``None`` entries (an absent bias) are skipped.
    """
    if not fast_enabled() or not _of_one_fast_dtype(arrays, _is_numpy):
        return False
    if not _MALLOC_TRIED:
        keep_freed_memory()
    return True


def use_fast_cupy(*arrays) -> bool:
    """True for CuPy float32/float64 arrays (or Variables) of one dtype, fast path on."""
    return fast_enabled() and cuda.available and _of_one_fast_dtype(arrays, _is_cupy)


def as_rows(x: numpy.ndarray) -> numpy.ndarray:
    """Views ``(N, C, H, W)`` (or ``(N, C)``) as channel-last rows ``(N*H*W, C)``.

    The view is free when ``x`` is stored channel-last (the layout the fast
    convolutions produce); otherwise this copies once into that layout.
    """
    if x.ndim == 2:
        return numpy.ascontiguousarray(x)
    c = x.shape[1]
    # transpose, not moveaxis: the same view without moveaxis' argument checks,
    # which cost more than the view itself on every call of every node.
    return numpy.ascontiguousarray(x.transpose(0, *range(2, x.ndim), 1)).reshape(-1, c)


def from_rows(rows: numpy.ndarray, shape: Sequence[int]) -> numpy.ndarray:
    """Inverse of :func:`as_rows`: ``(N*H*W, C)`` -> ``(N, C, H, W)`` view."""
    if len(shape) == 2:
        return rows.reshape(shape)
    n, c = shape[:2]
    k = len(shape)
    return rows.reshape((n, *shape[2:], c)).transpose(0, k - 1, *range(1, k - 1))


class FastNode(chainer.FunctionNode):
    """A node whose public function has checked its inputs before applying it.

    The drop-ins of this package send an input of the wrong rank, shape or
    dtype to Chainer's own function (and its error) before they build a
    node, so Chainer's per-call type check, which describes every input for
    a ``check_type_forward`` these nodes do not define, is skipped.
    """

    def _check_data_type_forward(self, in_data):
        pass


def reference_backward(node: chainer.FunctionNode, indexes, grad_outputs,
                       reference: Callable) -> tuple:
    """Differentiable gradients of ``reference`` at ``node``'s retained inputs.

    Used by the fast nodes when Chainer runs their backward pass with
    ``enable_backprop`` on (double backprop): ``reference(*inputs)`` is
    Chainer's own function of the same inputs, and its gradients with
    respect to the inputs listed in ``indexes`` come back as Variables that
    are themselves differentiable.
    """
    inputs = node.get_retained_inputs()
    outputs = reference(*inputs)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    wanted = [inputs[i] for i in indexes]
    grads = chainer.grad(list(outputs), wanted, list(grad_outputs),
                         enable_double_backprop=True)
    return tuple(grads)


def variables(*arrays) -> tuple:
    """Wraps backward results as Variables (``None`` stays ``None``)."""
    return tuple(None if a is None else chainer.Variable(a, requires_grad=False)
                 for a in arrays)


def same_bits(results: Sequence[Sequence[numpy.ndarray]]) -> bool:
    """Whether every run's outputs equal the first run's, bit for bit (the team
    checks of :mod:`.onednn_conv` and :mod:`.onednn_norm`: one run per team size)."""
    first, *others = results
    return all(numpy.array_equal(a, b) for other in others for a, b in zip(first, other))
