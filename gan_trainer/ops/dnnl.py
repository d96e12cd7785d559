"""oneDNN (Intel's deep-learning kernels) driven from Python through ``ctypes``.

PyTorch's CPU convolutions are oneDNN's direct-convolution kernels (JIT
code for the CPU's vector unit: AVX2, AVX-512, ...), which an im2col and a
BLAS product in NumPy cannot match on memory traffic. The wheel
``onednn-cpu-gomp`` (oneDNN 3.2, GNU OpenMP runtime, no Python code) ships
``libdnnl.so.3``; this module loads it and wraps the few calls the
package's nodes need, with no compiler at install time:

* :func:`library` loads the library once per process, on x86-64 Linux
  only, and returns ``None`` (after one warning line, where it should have
  worked) when the wheel is missing or does not load;
* :func:`memory_desc` describes a NumPy array (any strides) to oneDNN;
* :class:`Primitive` is a created primitive with one memory object per
  argument, run on NumPy buffers without copies (:meth:`Primitive.run`);
* :func:`cached` keeps primitives per key (the shapes, strides and
  options of a call), so a training step re-creates none of them.

**Threads.** Python threads may call the nodes at the same time (a
data-loading thread, a server answering requests with one generator). A
primitive's memory objects are shared by every call of it, so
:meth:`Primitive.run` sets their data handles and executes under the
primitive's own lock (``ctypes`` releases the GIL during the call, so
without the lock a second thread could swap the buffers of a running
one); every thread executes on a stream of its own (oneDNN does not
promise that one stream may be used by several threads at once); and
loading the library and building a cached primitive happen under a
module lock, once.

Handles are opaque pointers: every function that takes or returns one has
its ``argtypes``/``restype`` set (a pointer truncated to a C ``int``
crashes the process). Only ``dnnl_dims_t`` (``int64_t[12]``) and
``dnnl_exec_arg_t`` are mirrored as structures. The enum values below are
oneDNN 3.2's (``dnnl_types.h``); the tests check a few of them against the
library's own names (``dnnl_fmt_tag2str``).
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import os
import platform
import sys
import threading
import warnings

import numpy

from gan_trainer.ops import threads

# --- Constants of oneDNN 3.2 (dnnl_types.h, dnnl_common_types.h) -----------------
F32 = 3
FORMAT_ANY = 1
FORWARD_TRAINING = 64
BACKWARD_DATA = 160
BACKWARD_WEIGHTS = 192
BACKWARD = 128
CONVOLUTION_DIRECT = 0x1
DECONVOLUTION_DIRECT = 0xa
ELTWISE = {'relu': 0x20, 'tanh': 0x21, 'sqrt': 0x25, 'logistic': 0x29,
           'relu_use_dst_for_bwd': 0x100}
USE_SCALE, USE_SHIFT, FUSE_NORM_RELU = 0x2, 0x4, 0x8
ARG = {
    'src': 1, 'dst': 17, 'weights': 33, 'bias': 41, 'mean': 49, 'variance': 50,
    'scale': 51, 'shift': 52, 'workspace': 64, 'diff_src': 129, 'diff_dst': 145,
    'diff_weights': 161, 'diff_bias': 169, 'diff_scale': 255, 'diff_shift': 256,
    'src1': 2,  # a binary primitive's second operand (its first is 'src')
    # the second operand of post-op i (DNNL_ARG_ATTR_MULTIPLE_POST_OP(i) | DNNL_ARG_SRC_1)
    **{f'post_op_{i}': 32768 * (i + 1) | 2 for i in range(4)},
}
BINARY = {'add': 0x1fff0, 'mul': 0x1fff1, 'div': 0x1fff4, 'sub': 0x1fff5}
QUERY_IMPL_INFO_STR = 8
QUERY_EXEC_ARG_MD = 255
SUCCESS = 0

#: Name of the wheel that ships the library (``setup.py`` depends on it on x86-64 Linux).
WHEEL = 'onednn-cpu-gomp'
#: Environment variable that switches oneDNN off (the NumPy functions run instead).
ENV_SWITCH = 'GAN_TRAINER_ONEDNN'
_OFF = ('0', 'false', 'no', 'off')

_dims_t = ctypes.c_int64 * 12
_p = ctypes.c_void_p
_pp = ctypes.POINTER(ctypes.c_void_p)


class _ExecArg(ctypes.Structure):
    _fields_ = [('arg', ctypes.c_int), ('memory', ctypes.c_void_p)]


# name: (restype, argtypes); status-returning functions have restype c_int.
_SIGNATURES = {
    'dnnl_engine_create': (ctypes.c_int, [_pp, ctypes.c_int, ctypes.c_size_t]),
    'dnnl_stream_create': (ctypes.c_int, [_pp, _p, ctypes.c_uint]),
    'dnnl_stream_wait': (ctypes.c_int, [_p]),
    'dnnl_memory_desc_create_with_strides': (
        ctypes.c_int, [_pp, ctypes.c_int, _dims_t, ctypes.c_int, _dims_t]),
    'dnnl_memory_desc_create_with_tag': (
        ctypes.c_int, [_pp, ctypes.c_int, _dims_t, ctypes.c_int, ctypes.c_int]),
    'dnnl_memory_desc_destroy': (ctypes.c_int, [_p]),
    'dnnl_memory_desc_get_size': (ctypes.c_size_t, [_p]),
    'dnnl_memory_desc_equal': (ctypes.c_int, [_p, _p]),
    'dnnl_memory_create': (ctypes.c_int, [_pp, _p, _p, _p]),
    'dnnl_memory_set_data_handle': (ctypes.c_int, [_p, _p]),
    'dnnl_memory_destroy': (ctypes.c_int, [_p]),
    'dnnl_primitive_attr_create': (ctypes.c_int, [_pp]),
    'dnnl_primitive_attr_destroy': (ctypes.c_int, [_p]),
    'dnnl_primitive_attr_set_post_ops': (ctypes.c_int, [_p, _p]),
    'dnnl_post_ops_create': (ctypes.c_int, [_pp]),
    'dnnl_post_ops_destroy': (ctypes.c_int, [_p]),
    'dnnl_post_ops_append_eltwise': (
        ctypes.c_int, [_p, ctypes.c_int, ctypes.c_float, ctypes.c_float]),
    'dnnl_post_ops_append_binary': (ctypes.c_int, [_p, ctypes.c_int, _p]),
    'dnnl_binary_primitive_desc_create': (ctypes.c_int, [_pp, _p, ctypes.c_int, _p, _p, _p, _p]),
    'dnnl_convolution_forward_primitive_desc_create': (
        ctypes.c_int, [_pp, _p, ctypes.c_int, ctypes.c_int, _p, _p, _p, _p,
                       _dims_t, _dims_t, _dims_t, _dims_t, _p]),
    'dnnl_convolution_backward_data_primitive_desc_create': (
        ctypes.c_int, [_pp, _p, ctypes.c_int, _p, _p, _p,
                       _dims_t, _dims_t, _dims_t, _dims_t, _p, _p]),
    'dnnl_convolution_backward_weights_primitive_desc_create': (
        ctypes.c_int, [_pp, _p, ctypes.c_int, _p, _p, _p, _p,
                       _dims_t, _dims_t, _dims_t, _dims_t, _p, _p]),
    'dnnl_deconvolution_forward_primitive_desc_create': (
        ctypes.c_int, [_pp, _p, ctypes.c_int, ctypes.c_int, _p, _p, _p, _p,
                       _dims_t, _dims_t, _dims_t, _dims_t, _p]),
    'dnnl_deconvolution_backward_data_primitive_desc_create': (
        ctypes.c_int, [_pp, _p, ctypes.c_int, _p, _p, _p,
                       _dims_t, _dims_t, _dims_t, _dims_t, _p, _p]),
    'dnnl_deconvolution_backward_weights_primitive_desc_create': (
        ctypes.c_int, [_pp, _p, ctypes.c_int, _p, _p, _p, _p,
                       _dims_t, _dims_t, _dims_t, _dims_t, _p, _p]),
    'dnnl_batch_normalization_forward_primitive_desc_create': (
        ctypes.c_int, [_pp, _p, ctypes.c_int, _p, _p, ctypes.c_float, ctypes.c_uint, _p]),
    'dnnl_batch_normalization_backward_primitive_desc_create': (
        ctypes.c_int, [_pp, _p, ctypes.c_int, _p, _p, _p, ctypes.c_float, ctypes.c_uint,
                       _p, _p]),
    'dnnl_eltwise_forward_primitive_desc_create': (
        ctypes.c_int, [_pp, _p, ctypes.c_int, ctypes.c_int, _p, _p, ctypes.c_float,
                       ctypes.c_float, _p]),
    'dnnl_eltwise_backward_primitive_desc_create': (
        ctypes.c_int, [_pp, _p, ctypes.c_int, _p, _p, _p, ctypes.c_float, ctypes.c_float,
                       _p, _p]),
    'dnnl_matmul_primitive_desc_create': (ctypes.c_int, [_pp, _p, _p, _p, _p, _p, _p]),
    'dnnl_reorder_primitive_desc_create': (ctypes.c_int, [_pp, _p, _p, _p, _p, _p]),
    'dnnl_primitive_desc_query': (ctypes.c_int, [_p, ctypes.c_int, ctypes.c_int, _p]),
    'dnnl_primitive_desc_query_md': (_p, [_p, ctypes.c_int, ctypes.c_int]),
    'dnnl_primitive_desc_destroy': (ctypes.c_int, [_p]),
    'dnnl_primitive_create': (ctypes.c_int, [_pp, _p]),
    'dnnl_primitive_execute': (ctypes.c_int, [_p, _p, ctypes.c_int, ctypes.POINTER(_ExecArg)]),
    'dnnl_primitive_destroy': (ctypes.c_int, [_p]),
    'dnnl_fmt_tag2str': (ctypes.c_char_p, [ctypes.c_int]),
    'dnnl_alg_kind2str': (ctypes.c_char_p, [ctypes.c_int]),
    'dnnl_prop_kind2str': (ctypes.c_char_p, [ctypes.c_int]),
    'dnnl_status2str': (ctypes.c_char_p, [ctypes.c_int]),
}


class DNNLError(RuntimeError):
    """A oneDNN call returned an error status (e.g. an unsupported shape)."""


class _Library:
    """The loaded ``libdnnl``, with one CPU engine and a stream per thread."""

    def __init__(self, path: str):
        self.path = path
        self.cdll = ctypes.CDLL(path)
        for name, (restype, argtypes) in _SIGNATURES.items():
            fn = getattr(self.cdll, name)
            fn.restype, fn.argtypes = restype, argtypes
            setattr(self, name[len('dnnl_'):], fn)
        self.engine = _p()
        self.check(self.engine_create(ctypes.byref(self.engine), 1, 0), 'engine_create')  # cpu
        self._local = threading.local()
        self._local.stream = self._new_stream()  # a failure shows at load time

    def _new_stream(self):
        stream = _p()
        self.check(self.stream_create(ctypes.byref(stream), self.engine, 1), 'stream_create')
        return stream

    @property
    def stream(self):
        """This thread's stream (created on its first use, kept for the thread's life)."""
        try:
            return self._local.stream
        except AttributeError:
            self._local.stream = stream = self._new_stream()
            return stream

    def check(self, status: int, what: str) -> None:
        if status != SUCCESS:
            raise DNNLError(f'oneDNN {what} failed: {self.status2str(status).decode()}')


_LIB: _Library | None = None
_TRIED = False
# Held while the library loads and while a cached primitive is built.
_LOCK = threading.RLock()


def library_path() -> str | None:
    """Where the wheel installed ``libdnnl.so.3``, or None if it is not installed."""
    try:
        dist = importlib.metadata.distribution(WHEEL)
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in dist.files or ():
        if str(f).endswith('libdnnl.so.3'):
            return str(dist.locate_file(f))
    return None


def supported_platform() -> bool:
    """x86-64 Linux: where the wheel exists (oneDNN itself picks AVX2, AVX-512, ...)."""
    return sys.platform.startswith('linux') and platform.machine().lower() in ('x86_64', 'amd64')


def library() -> _Library | None:
    """The loaded library, loading it on the first call; None where it cannot be used.

    None when the platform is not x86-64 Linux, when ``GAN_TRAINER_ONEDNN=0``,
    or when the wheel is missing or fails to load; in the last two cases
    (on x86-64 Linux, where ``setup.py`` installs the wheel) one warning
    says so, once per process, and the NumPy functions run instead.
    """
    if _TRIED:
        return _LIB
    with _LOCK:
        return _load(stacklevel=3)


def _load(stacklevel: int) -> _Library | None:
    global _LIB, _TRIED
    if _TRIED:  # another thread loaded it while this one waited
        return _LIB
    if not supported_platform() or os.environ.get(ENV_SWITCH, '1').strip().lower() in _OFF:
        _TRIED = True
        return None
    path = library_path()
    try:
        if path is None:
            raise OSError(f'the {WHEEL} wheel is not installed')
        threads.apply_before_load()
        _LIB = _Library(path)
    except (OSError, AttributeError, DNNLError) as e:
        warnings.warn(f'gan_trainer.ops: oneDNN not used ({e}); the NumPy functions run instead',
                      RuntimeWarning, stacklevel=stacklevel)
        _LIB = None
    else:
        threads.apply_after_load()
    _TRIED = True
    return _LIB


def dims(values) -> ctypes.Array:
    out = _dims_t()
    for i, v in enumerate(values):
        out[i] = int(v)
    return out


def memory_desc(shape, strides=None, tag: int | None = None):
    """A float32 memory descriptor: strides in elements, or a format ``tag``
    (``FORMAT_ANY`` lets the primitive choose its layout)."""
    lib = _LIB
    md = _p()
    if tag is not None:
        lib.check(lib.memory_desc_create_with_tag(
            ctypes.byref(md), len(shape), dims(shape), F32, tag), 'memory_desc_create')
    else:
        lib.check(lib.memory_desc_create_with_strides(
            ctypes.byref(md), len(shape), dims(shape), F32, dims(strides)), 'memory_desc_create')
    return md


def array_desc(a: numpy.ndarray):
    """The memory descriptor of a float32 NumPy array as it is laid out."""
    return memory_desc(a.shape, [s // a.itemsize for s in a.strides])


def post_ops_attr(activation):
    """Primitive attributes with an eltwise post-op ``(name, alpha)``, or None for none."""
    if activation is None:
        return None
    name, alpha = activation
    return attr_of([('eltwise', name, alpha)])


def attr_of(post_ops):
    """Primitive attributes with these post-ops, in order: ``('eltwise', name,
    alpha)`` (:data:`ELTWISE`) or ``('binary', name, md)`` (:data:`BINARY`; its
    operand, described by ``md``, is the argument ``post_op_<i>``)."""
    lib = _LIB
    attr, po = _p(), _p()
    lib.check(lib.primitive_attr_create(ctypes.byref(attr)), 'primitive_attr_create')
    lib.check(lib.post_ops_create(ctypes.byref(po)), 'post_ops_create')
    try:
        for kind, name, arg in post_ops:
            if kind == 'eltwise':
                lib.check(lib.post_ops_append_eltwise(po, ELTWISE[name], arg, 0.0),
                          'post_ops_append')
            else:
                lib.check(lib.post_ops_append_binary(po, BINARY[name], arg), 'post_ops_append')
        lib.check(lib.primitive_attr_set_post_ops(attr, po), 'primitive_attr_set_post_ops')
    finally:
        lib.post_ops_destroy(po)
    return attr


class Primitive:
    """A oneDNN primitive with one memory object per argument.

    Args:
        pd: Its primitive descriptor (kept: the memory descriptors it
            chose, e.g. for ``FORMAT_ANY``, are read from it).
        args: Names (keys of :data:`ARG`) of the arguments it is run with,
            in the order :meth:`run` takes their buffers.
    """

    def __init__(self, pd, args):
        lib = _LIB
        self.pd = pd
        self.handle = _p()
        lib.check(lib.primitive_create(ctypes.byref(self.handle), pd), 'primitive_create')
        self.memories = []
        for name in args:
            md = self.arg_desc(name)
            mem = _p()
            lib.check(lib.memory_create(ctypes.byref(mem), md, lib.engine, None), 'memory_create')
            self.memories.append(mem)
        self.exec_args = (_ExecArg * len(args))(
            *(_ExecArg(ARG[n], m.value) for n, m in zip(args, self.memories)))
        self._set = lib.memory_set_data_handle
        self._execute = lib.primitive_execute
        self._lock = threading.Lock()  # the memories are shared: see the module docstring

    def arg_desc(self, name: str):
        """The memory descriptor the primitive expects for argument ``name``."""
        return _LIB.primitive_desc_query_md(self.pd, QUERY_EXEC_ARG_MD, ARG[name])

    def arg_size(self, name: str) -> int:
        """Bytes of argument ``name`` in the primitive's layout."""
        return _LIB.memory_desc_get_size(self.arg_desc(name))

    def impl(self) -> str:
        """oneDNN's name of the implementation it chose (e.g. ``brgconv:avx512_core``)."""
        s = ctypes.c_char_p()
        _LIB.check(_LIB.primitive_desc_query(self.pd, QUERY_IMPL_INFO_STR, 0, ctypes.byref(s)),
                   'primitive_desc_query')
        return s.value.decode()

    def run(self, *buffers) -> None:
        """Executes on ``buffers`` (NumPy arrays in the layouts described, in ``args`` order).

        The caller guarantees the layouts (the nodes build a primitive for
        the strides they are given, and copy what oneDNN cannot read).
        """
        stream = _LIB.stream
        with self._lock:
            for mem, buf in zip(self.memories, buffers):
                self._set(mem, buf.ctypes.data)
            status = self._execute(self.handle, stream, len(self.memories), self.exec_args)
        if status != SUCCESS:
            _LIB.check(status, 'primitive_execute')


def create_pd(fn_name: str, *args):
    """``dnnl_<fn_name>_primitive_desc_create(&pd, *args)`` -> pd; raises DNNLError."""
    lib = _LIB
    pd = _p()
    lib.check(getattr(lib, fn_name + '_primitive_desc_create')(ctypes.byref(pd), *args), fn_name)
    return pd


_CACHE: dict = {}


def cached(key, make):
    """The primitive(s) ``make()`` builds for ``key`` and the current OpenMP team,
    built once per process.

    The team size (:func:`gan_trainer.ops.threads.current_team`) is the last
    element of every stored key: a primitive runs with the team it was built
    for whatever the team is later, so a changed team (``share_cores``, the
    team tuner) must build its own. A failed build (an unsupported case) is
    cached as None, so the caller falls back without retrying on every call.
    """
    key = (*key, threads.current_team())
    try:
        return _CACHE[key]
    except KeyError:
        pass
    with _LOCK:
        if key in _CACHE:  # built by another thread meanwhile
            return _CACHE[key]
        try:
            value = make()
        except DNNLError:
            value = None
        _CACHE[key] = value
    return value
