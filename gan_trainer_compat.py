"""Make Chainer 7.8.1 (2020) import and run on today's Python and NumPy.

Chainer's last release predates NumPy 2, Python 3.12 and setuptools without
``pkg_resources``. This module is the project's single compatibility step. It
fixes exactly five measured failures, silences one misleading warning, and
nothing else:

1. NumPy >= 2 removed ``numpy.sctypes``; ``chainer.functions.array.as_strided``
   reads it at import time. We restore the dict NumPy 1.26 had.
2. Python >= 3.12 has no ``numpy.distutils``; ``chainer._environment_check``
   imports ``numpy.distutils.system_info`` (only to detect macOS Accelerate).
   For the duration of Chainer's import we register a stub whose
   ``get_info`` returns ``{}`` ("no BLAS info", which skips that macOS-only
   warning) and remove it afterwards, so NumPy is left untouched and the slow,
   deprecated real module is never imported.
3. ``pkg_resources`` is gone from setuptools >= 81 and from Python 3.12's
   default venvs; Chainer imports it to look for optional CuPy/iDeep installs.
   When it is missing we register a small stand-in backed by
   :mod:`importlib.metadata` that answers "installed or not". It never reports
   a version conflict, so CuPy 13/14 (which Chainer 7 did not know) work
   without a misleading warning.
4. ``F.resize_images`` uses ``numpy.float``, removed in NumPy 1.24, in one
   helper, ``compute_indices_and_weights``. Rather than putting the alias back
   into NumPy for everyone, we rebind that one function to globals in which
   ``numpy.float`` is the builtin ``float`` (what the alias always meant).
5. onnx >= 1.19 removed ``onnx.mapping``; ``onnx_chainer`` (shipped inside
   the chainer package, used by ``gan_trainer.export``) imports two of its
   tables, ``NP_TYPE_TO_TENSOR_TYPE`` and ``STORAGE_TENSOR_TYPE_TO_FIELD``,
   and without them reports "ONNX is not installed". Just before
   ``onnx_chainer`` is imported, and only when onnx is installed without
   ``onnx.mapping``, we register a stand-in holding those two tables (built
   with ``onnx.helper``, as onnx 1.14 defined them). It stays registered,
   because ``onnx_chainer`` reads it while exporting.
6. CuPy >= 14 has no cuDNN at all. On a machine with such a CuPy and a GPU,
   ``import chainer`` then warns "cuDNN is not enabled. Please reinstall
   CuPy after you install cudnn" (seen on an H100 with CuPy 14.2.0), advice
   that cannot work. When the installed CuPy distribution is 14 or newer
   (read from package metadata, without importing CuPy), a warnings filter
   ignores exactly that message from ``chainer.backends.cuda``;
   :func:`gan_trainer.device.get_device` says instead, once, what happens
   when a GPU is used. Older CuPy keeps Chainer's warning.
7. CuPy 13 (``cupy-cuda12x==13.6.*``, the last CuPy with cuDNN) is built for
   cuDNN 8 and links ``libcudnn.so.8``, ``libcublas.so.12`` and the other
   CUDA 12 libraries by name, without a search path into the
   ``nvidia-*-cu12`` wheels that ``pip install 'gan_trainer[gpu]'`` brings;
   it looks for cuDNN only in ``~/.cupy/cuda_lib`` and the system's loader
   path. So on a machine without a CUDA toolkit ``import cupy`` fails, and
   with one but without a system cuDNN Chainer runs without cuDNN. Just
   before CuPy (or Chainer, which imports it) is imported, and only when
   the installed CuPy distribution is ``cupy-cuda12x`` 13.x, each of those libraries that an
   installed wheel holds (found through :func:`importlib.metadata.files`;
   CuPy itself is not imported) is loaded with
   ``ctypes.CDLL(path, RTLD_GLOBAL)``; the dynamic loader then finds it by
   its soname when CuPy's modules ask for it. cuDNN's own sub-libraries and
   cuBLAS's ``libcublasLt`` are found by the wheels' ``$ORIGIN`` run paths.
   What happened is kept in :data:`CUDNN_STATUS` (one line, never an
   exception: no wheel, a cuDNN other than 8, another CuPy, a library that
   fails to load), which :func:`gan_trainer.device.get_device` prints when
   a GPU is used. Fix 6's filter applies from CuPy 13 on as well, since
   that line replaces Chainer's advice.

How it is applied: ``install()`` puts a tiny finder on :data:`sys.meta_path`
that waits for the first ``import chainer``, applies fixes 1-3, 6 and 7 just
before Chainer's own code runs, and fix 4 right after (fix 7 also before a
first ``import cupy``). ``gan_trainer_compat.pth``
(installed into site-packages next to this module) calls ``install()`` at
interpreter start-up, so it works whether a program imports ``chainer`` or
``gan_trainer`` first; ``gan_trainer`` also calls it, which covers running from
a source checkout. Start-up cost is one small import; NumPy is only touched
when Chainer is imported. If Chainer is already imported, ``install()`` applies
fix 4 at once. The same finder applies fix 5 when ``onnx_chainer`` is first
imported.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.metadata
import importlib.util
import sys
import types

_RESIZE_MODULE = 'chainer.functions.array.resize_images'


def _restore_sctypes() -> None:
    import numpy

    if 'sctypes' in vars(numpy):
        return
    numpy.sctypes = {
        'int': [numpy.int8, numpy.int16, numpy.int32, numpy.int64],
        'uint': [numpy.uint8, numpy.uint16, numpy.uint32, numpy.uint64],
        'float': [numpy.float16, numpy.float32, numpy.float64],
        'complex': [numpy.complex64, numpy.complex128],
        'others': [bool, object, bytes, str, numpy.void],
    }


def _stub_numpy_distutils() -> list[str]:
    """Registers a stub ``numpy.distutils`` for the duration of Chainer's import.

    Returns the names it registered, for :func:`_unstub_numpy_distutils`.
    The real module is never imported: it is slow, deprecated, noisy and,
    on Python 3.12+, absent; Chainer only calls it on macOS.
    """
    import numpy

    if 'numpy.distutils' in sys.modules:
        return []
    distutils = types.ModuleType('numpy.distutils')
    system_info = types.ModuleType('numpy.distutils.system_info')
    system_info.get_info = lambda name, notfound_action=0: {}
    distutils.system_info = system_info
    sys.modules['numpy.distutils'] = distutils
    sys.modules['numpy.distutils.system_info'] = system_info
    # ``numpy.distutils.system_info.get_info`` is looked up as attributes.
    numpy.distutils = distutils
    return ['numpy.distutils', 'numpy.distutils.system_info']


def _unstub_numpy_distutils(names: list[str]) -> None:
    """Removes the stubs again, so NumPy itself is left as it was."""
    import numpy

    for name in names:
        sys.modules.pop(name, None)
    if names:
        vars(numpy).pop('distutils', None)


class _ResolutionError(Exception):
    pass


class _DistributionNotFound(_ResolutionError):
    pass


class _VersionConflict(_ResolutionError):
    pass


def _project_name(requirement: str) -> str:
    for i, ch in enumerate(requirement):
        if not (ch.isalnum() or ch in '-_.'):
            return requirement[:i]
    return requirement


def _require(requirement: str) -> list:
    name = _project_name(requirement.strip())
    try:
        return [_get_distribution(name)]
    except importlib.metadata.PackageNotFoundError:
        raise _DistributionNotFound(requirement) from None


def _get_distribution(name: str) -> types.SimpleNamespace:
    version = importlib.metadata.version(_project_name(name))
    return types.SimpleNamespace(project_name=name, version=version)


def _stub_pkg_resources(*, force: bool = False) -> None:
    """Registers the stand-in unless a real ``pkg_resources`` can be imported.

    ``force=True`` registers it regardless (the tests use this to run Chainer
    against the stand-in on machines that still have setuptools).
    """
    if 'pkg_resources' in sys.modules:
        return
    if not force and importlib.machinery.PathFinder.find_spec('pkg_resources') is not None:
        return
    mod = types.ModuleType('pkg_resources')
    mod.__doc__ = 'Minimal stand-in installed by gan_trainer_compat.'
    mod.ResolutionError = _ResolutionError
    mod.DistributionNotFound = _DistributionNotFound
    mod.VersionConflict = _VersionConflict
    mod.require = _require
    mod.get_distribution = _get_distribution
    mod.WorkingSet = lambda *args: types.SimpleNamespace(require=_require)
    sys.modules['pkg_resources'] = mod


class _NumpyWithFloat(types.ModuleType):
    """NumPy as seen by one Chainer function: ``numpy.float`` is ``float``."""

    float = float

    def __init__(self, numpy_module: types.ModuleType) -> None:
        super().__init__(numpy_module.__name__)
        self._numpy = numpy_module

    def __getattr__(self, name: str):
        return getattr(self._numpy, name)


def _patch_resize_images() -> None:
    module = sys.modules.get(_RESIZE_MODULE)
    if module is None:
        return
    func = module.compute_indices_and_weights
    if isinstance(func.__globals__.get('numpy'), _NumpyWithFloat):
        return
    # The module itself keeps the real NumPy: its ``xp is numpy`` tests
    # choose between the CPU and GPU kernels.
    scope = dict(vars(module), numpy=_NumpyWithFloat(module.numpy))
    patched = types.FunctionType(
        func.__code__, scope, func.__name__, func.__defaults__, func.__closure__)
    patched.__doc__ = func.__doc__
    module.compute_indices_and_weights = patched


# onnx 1.14's NP_TYPE_TO_TENSOR_TYPE keys (bfloat16 and the float8 types have
# no NumPy dtype) and STORAGE_TENSOR_TYPE_TO_FIELD, the field a tensor of that
# storage type keeps its values in when not in ``raw_data``.
_ONNX_NUMPY_TYPES = ('bool', 'int8', 'int16', 'int32', 'int64', 'uint8', 'uint16', 'uint32',
                     'uint64', 'float16', 'float32', 'float64', 'complex64', 'complex128',
                     'object')
_ONNX_STORAGE_FIELDS = {
    'FLOAT': 'float_data', 'INT32': 'int32_data', 'INT64': 'int64_data',
    'UINT16': 'int32_data', 'DOUBLE': 'double_data', 'COMPLEX64': 'float_data',
    'COMPLEX128': 'double_data', 'UINT32': 'uint64_data', 'UINT64': 'uint64_data',
    'STRING': 'string_data', 'BOOL': 'int32_data',
}


def _stub_onnx_mapping() -> None:
    """Registers ``onnx.mapping`` with the tables ``onnx_chainer`` imports.

    Nothing happens when onnx is missing (``onnx_chainer`` then says so
    itself) or still has its own ``onnx.mapping`` (onnx < 1.19).
    """
    if 'onnx.mapping' in sys.modules:
        return
    try:
        import onnx
        from onnx import TensorProto, helper
    except ImportError:
        return
    if importlib.util.find_spec('onnx.mapping') is not None:
        return
    import numpy

    mapping = types.ModuleType('onnx.mapping')
    mapping.__doc__ = 'Stand-in for the onnx.mapping of onnx < 1.19, from gan_trainer_compat.'
    mapping.NP_TYPE_TO_TENSOR_TYPE = {
        numpy.dtype(name): helper.np_dtype_to_tensor_dtype(numpy.dtype(name))
        for name in _ONNX_NUMPY_TYPES}
    mapping.STORAGE_TENSOR_TYPE_TO_FIELD = {
        int(getattr(TensorProto, name)): field for name, field in _ONNX_STORAGE_FIELDS.items()}
    sys.modules['onnx.mapping'] = mapping
    onnx.mapping = mapping


# The names CuPy's wheels and its source distribution are installed under.
_CUPY_DISTRIBUTIONS = ('cupy-cuda13x', 'cupy-cuda12x', 'cupy-cuda11x', 'cupy')
NO_CUDNN_WARNING = r'cuDNN is not enabled'


def installed_cupy() -> tuple[str, str, int] | None:
    """(distribution, version, major) of the CuPy that ``import cupy`` would find.

    Read from package metadata, CuPy is not imported. Of several CuPy
    distributions (say CuPy 13 in a ``PYTHONPATH`` folder over the system's
    CuPy 14), the one in the earliest ``sys.path`` folder, as for the import.
    """
    found = []
    for name in _CUPY_DISTRIBUTIONS:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        head = dist.version.split('.')[0]
        if head.isdigit():
            found.append((_path_rank(dist), name, dist.version, int(head)))
    return min(found)[1:] if found else None


def _path_rank(dist) -> int:
    import os

    folder = os.path.realpath(str(dist.locate_file('')))
    for i, entry in enumerate(sys.path):
        if os.path.realpath(entry or '.') == folder:
            return i
    return len(sys.path)


def installed_cupy_major() -> int | None:
    """Major version of the installed CuPy distribution, or None (not imported)."""
    found = installed_cupy()
    return None if found is None else found[2]


def _ignore_cudnn_advice() -> None:
    """With CuPy >= 13, ignore Chainer's "reinstall CuPy after you install cudnn".

    CuPy 14 has no cuDNN; for CuPy 13 the cure is a wheel, not a reinstall
    (fix 7), and :func:`gan_trainer.device.get_device` says which.
    """
    major = installed_cupy_major()
    if major is not None and major >= 13:
        import warnings

        warnings.filterwarnings('ignore', message=NO_CUDNN_WARNING, category=UserWarning,
                                module=r'chainer\.backends\.cuda')


# Fix 7: what CuPy 13 links by name, in load order, as (distribution, file
# name); cuDNN last, since its sub-libraries need cuBLAS and NVRTC.
CUDA12_WHEEL_LIBRARIES = (
    ('nvidia-cuda-nvrtc-cu12', 'libnvrtc.so.12'),
    ('nvidia-cublas-cu12', 'libcublasLt.so.12'),
    ('nvidia-cublas-cu12', 'libcublas.so.12'),
    ('nvidia-curand-cu12', 'libcurand.so.10'),
    ('nvidia-nvjitlink-cu12', 'libnvJitLink.so.12'),
    ('nvidia-cusparse-cu12', 'libcusparse.so.12'),
    ('nvidia-cusolver-cu12', 'libcusolver.so.11'),
    ('nvidia-cufft-cu12', 'libcufft.so.11'),
)
CUDNN_WHEEL = 'nvidia-cudnn-cu12'
CUDNN_LIBRARY = 'libcudnn.so.8'
CUDNN_PIN = 'nvidia-cudnn-cu12==8.9.7.29'
#: One line saying what fix 7 did about cuDNN; None until it has run (or
#: when no CuPy is installed).
CUDNN_STATUS: str | None = None
#: file name -> path of every library fix 7 loaded (the handles stay alive).
PRELOADED: dict[str, str] = {}
_HANDLES: list = []


def _wheel_file(distribution: str, filename: str) -> tuple[str | None, str | None]:
    """(absolute path of ``filename`` in the installed ``distribution``, its version).

    ``(None, None)`` when the distribution is not installed, ``(None,
    version)`` when it does not hold that file.
    """
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None, None
    for path in dist.files or ():
        if path.name == filename:
            return str(dist.locate_file(path)), dist.version
    return None, dist.version


def _load(path: str) -> str | None:
    """Loads ``path`` for the whole process; the error's first line, or None."""
    import ctypes

    try:
        _HANDLES.append(ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL))
    except OSError as e:
        return (str(e).splitlines() or [type(e).__name__])[0]
    PRELOADED[path.rsplit('/', 1)[-1]] = path
    return None


def preload_cuda_wheels() -> str | None:
    """Fix 7: loads the CUDA 12 and cuDNN 8 wheels' libraries for CuPy 13.

    Idempotent. Returns (and keeps in :data:`CUDNN_STATUS`) one line about
    cuDNN; None when no CuPy is installed.
    """
    global CUDNN_STATUS
    if CUDNN_STATUS is not None:
        return CUDNN_STATUS
    found = installed_cupy()
    if found is None:
        return None
    distribution, version, major = found
    if major >= 14:
        CUDNN_STATUS = f'CuPy {major} has no cuDNN (CuPy 14 removed it)'
        return CUDNN_STATUS
    if major != 13 or distribution != 'cupy-cuda12x':
        CUDNN_STATUS = (f'{distribution} {version}: no cuDNN wheel is loaded for it (only '
                        'for cupy-cuda12x 13, built for cuDNN 8); cuDNN only if CuPy finds '
                        'one itself')
        return CUDNN_STATUS
    for distribution, filename in CUDA12_WHEEL_LIBRARIES:
        path, _ = _wheel_file(distribution, filename)
        if path is not None and filename not in PRELOADED:
            _load(path)  # a failure shows when CuPy imports, with CuPy's message
    path, version = _wheel_file(CUDNN_WHEEL, CUDNN_LIBRARY)
    if version is None:
        CUDNN_STATUS = (f'{CUDNN_WHEEL} is not installed: no cuDNN unless the system has '
                        f"cuDNN 8 (pip install '{CUDNN_PIN}', or 'gan_trainer[gpu]')")
    elif not version.startswith('8.'):
        CUDNN_STATUS = (f'{CUDNN_WHEEL} {version} is installed, but CuPy 13 needs cuDNN 8: '
                        f"no cuDNN (pip install '{CUDNN_PIN}')")
    elif path is None:
        CUDNN_STATUS = f'{CUDNN_WHEEL} {version} holds no {CUDNN_LIBRARY}: no cuDNN'
    else:
        error = _load(path)
        CUDNN_STATUS = (f'cuDNN from {CUDNN_WHEEL} {version}' if error is None else
                        f'could not load {path}: {error}: no cuDNN')
    return CUDNN_STATUS


def before_chainer() -> list[str]:
    """Apply the fixes that must be in place before Chainer's import runs.

    Returns the temporary module stubs to remove after the import.
    """
    _restore_sctypes()
    _stub_pkg_resources()
    _ignore_cudnn_advice()
    preload_cuda_wheels()
    return _stub_numpy_distutils()


def after_chainer() -> None:
    """Apply the fixes to Chainer modules that are already imported."""
    _patch_resize_images()


class _ChainerLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        stubs = before_chainer()
        try:
            self._loader.exec_module(module)
        finally:
            _unstub_numpy_distutils(stubs)
        after_chainer()


class _OnnxChainerLoader(_ChainerLoader):
    def exec_module(self, module) -> None:
        _stub_onnx_mapping()
        self._loader.exec_module(module)


class _CupyLoader(_ChainerLoader):
    def exec_module(self, module) -> None:
        preload_cuda_wheels()
        self._loader.exec_module(module)


_LOADERS = {'chainer': _ChainerLoader, 'onnx_chainer': _OnnxChainerLoader, 'cupy': _CupyLoader}


class _ChainerFinder(importlib.abc.MetaPathFinder):
    """Wraps the loaders of the top-level ``chainer``, ``onnx_chainer`` and ``cupy`` packages."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in _LOADERS:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _LOADERS[fullname](spec.loader)
        return spec


_FINDER = _ChainerFinder()


def install() -> None:
    """Make the next ``import chainer`` (and ``onnx_chainer``) work; idempotent and cheap."""
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
    if 'chainer' in sys.modules:
        after_chainer()
