"""Turning a ``--gpu`` number into a Chainer device, with a clear error and one line.

``-1`` (or any negative number) is the CPU with NumPy; ``N >= 0`` is GPU
``N`` with CuPy (``pip install 'gan_trainer[gpu]'``). Checking up front turns
"CuPy is missing" or "there is no GPU 1" into one line instead of a
traceback deep inside Chainer. When a GPU is chosen, one line says which
path training takes (:func:`describe`)::

    --gpu 0: NVIDIA H200 (compute capability 9.0), CuPy 13.6.0, cuDNN 8.9.7
    (nvidia-cudnn-cu12 8.9.7.29), TF32 on, dtype float32

**cuDNN.** CuPy 13 has Chainer's cuDNN bindings; ``gan_trainer_compat``
(fix 7) loads cuDNN 8 from the ``nvidia-cudnn-cu12`` wheel for it. CuPy 14
removed cuDNN: Chainer then runs its own GPU convolutions (im2col, a cuBLAS
product, col2im), which are slower, and the line says so and why.

**TF32** (compute capability 8.0 and later: Ampere, Hopper, ...). TF32
multiplies float32 numbers rounded to a 10-bit mantissa (relative error
up to 2**-11, about 5e-4, per factor) and adds in float32, on tensor
cores: several times the float32 rate. PyTorch uses it for cuDNN
convolutions by default; so does this package, for CuPy's float32 matrix
products (``CUPY_TF32=1``, set before CuPy's first product unless you set
``CUPY_TF32`` yourself; it covers Chainer's own convolutions, which are
products) and for cuDNN 8, whose default math mode (the one Chainer's
``use_cudnn_tensor_core='auto'`` picks for float32) allows TF32. The
effect on the numbers: a layer's output differs from float32 by about
1e-3 relative; training curves and FID do not move beyond run-to-run noise
in PyTorch's experience, but results are not bit-comparable with the CPU.
``tf32=False`` or ``GAN_TRAINER_TF32=0`` turns it off: ``CUPY_TF32=0`` and
``NVIDIA_TF32_OVERRIDE=0`` (NVIDIA's switch for cuBLAS and cuDNN, read when
they initialise, which is why :func:`get_device` sets it before any GPU work).
float16 (``dtype='mixed16'``) uses tensor cores either way.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import chainer
import numpy

import gan_trainer_compat

TF32_ENV = 'GAN_TRAINER_TF32'
# Whether NVIDIA_TF32_OVERRIDE=0 was set by configure_tf32 (and not by you).
_SET_OVERRIDE = False


class DeviceError(ValueError):
    """The requested device cannot be used on this machine."""


def tf32_wanted(tf32: bool | None = None) -> bool:
    """``tf32`` if given, else ``GAN_TRAINER_TF32`` (``1``, the default, or ``0``).

    Raises:
        DeviceError: when the variable holds anything else.
    """
    if tf32 is not None:
        return bool(tf32)
    value = os.environ.get(TF32_ENV, '1').strip()
    if value not in ('0', '1'):
        raise DeviceError(f'{TF32_ENV} must be 0 or 1, got {value!r}')
    return value == '1'


def configure_tf32(tf32: bool | None = None) -> bool:
    """Sets TF32 for the GPU libraries before their first use; returns whether it is on.

    Without an explicit choice (``tf32`` None and ``GAN_TRAINER_TF32`` unset)
    a ``CUPY_TF32`` you set is kept; otherwise ``CUPY_TF32`` and, to turn it
    off, ``NVIDIA_TF32_OVERRIDE=0`` are set.
    """
    explicit = tf32 is not None or TF32_ENV in os.environ
    on = tf32_wanted(tf32)
    if explicit or 'CUPY_TF32' not in os.environ:
        os.environ['CUPY_TF32'] = '1' if on else '0'
    on = os.environ['CUPY_TF32'].strip() not in ('', '0')
    global _SET_OVERRIDE
    if not on and 'NVIDIA_TF32_OVERRIDE' not in os.environ:
        os.environ['NVIDIA_TF32_OVERRIDE'] = '0'
        _SET_OVERRIDE = True
    elif on and _SET_OVERRIDE:  # ours, from an earlier call: take it back
        os.environ.pop('NVIDIA_TF32_OVERRIDE', None)
        _SET_OVERRIDE = False
    _set_cupy_compute_type(on)
    return on


def _set_cupy_compute_type(on: bool) -> None:
    """Also tells CuPy directly, in case a float32 product already read ``CUPY_TF32``."""
    try:
        from cupy._core import _routines_linalg as linalg
    except ImportError:
        return
    kind = linalg.COMPUTE_TYPE_TF32 if on else linalg.COMPUTE_TYPE_DEFAULT
    linalg.set_compute_type(numpy.float32, kind)


def describe(gpu: int, *, name: str, capability: str, cupy_version: str,
             cudnn_version: int | None, cudnn_status: str | None, tf32: bool,
             dtype) -> str:
    """The one line :func:`get_device` prints (all facts passed in, so tests need no GPU).

    Args:
        capability: CuPy's compute capability string, ``'90'`` for 9.0.
        cudnn_version: cuDNN's version number (``8907``) when Chainer uses
            cuDNN, else None.
        cudnn_status: ``gan_trainer_compat.CUDNN_STATUS`` (why, or from where).
    """
    major, minor = int(capability[:-1]), int(capability[-1])
    parts = [f'--gpu {gpu}: {name} (compute capability {major}.{minor})', f'CuPy {cupy_version}']
    if cudnn_version is not None:
        v = f'{cudnn_version // 1000}.{cudnn_version % 1000 // 100}.{cudnn_version % 100}'
        source = ''
        if cudnn_status and cudnn_status.startswith('cuDNN from '):
            source = f' ({cudnn_status[len("cuDNN from "):]})'
        parts.append(f'cuDNN {v}{source}')
    else:
        reason = cudnn_status or 'CuPy found no cuDNN'
        parts.append(f'no cuDNN: {reason}; Chainer runs its own, slower convolutions')
    if major < 8:
        parts.append('TF32 not available')
    else:
        parts.append(f'TF32 {"on" if tf32 else "off"}')
    parts.append(f'dtype {"mixed16" if dtype is chainer.mixed16 else numpy.dtype(dtype).name}')
    return ', '.join(parts)


def get_device(gpu: int, *, tf32: bool | None = None,
               announce: Callable[[str], None] | None = print) -> chainer.backend.Device:
    """Returns the Chainer device for a ``--gpu`` value and makes it current.

    For a GPU it first sets TF32 (:func:`configure_tf32`) and then passes
    :func:`describe`'s line to ``announce`` (``print`` by default; None
    is silent). The line names ``chainer.config.dtype``: call
    :func:`gan_trainer.precision.use_dtype` before this function.

    Raises:
        DeviceError: when CuPy is not installed, no GPU is visible, there is
            no GPU with that number, or ``GAN_TRAINER_TF32`` is not 0 or 1.
    """
    if gpu < 0:
        return chainer.get_device('@numpy')
    tf32_on = configure_tf32(tf32)
    from chainer.backends import cuda

    if not cuda.available:
        raise DeviceError(
            f'--gpu {gpu}: CuPy is not installed or cannot use a GPU here; '
            "install 'gan_trainer[gpu]' on a CUDA machine, or use --gpu -1 for the CPU")
    cupy = cuda.cupy
    count = cupy.cuda.runtime.getDeviceCount()
    if gpu >= count:
        raise DeviceError(f'--gpu {gpu}: this machine has {count} GPU(s) (0..{count - 1})')
    device = chainer.get_device(f'@cupy:{gpu}')
    device.use()
    if announce is not None:
        name = cupy.cuda.runtime.getDeviceProperties(gpu)['name']
        status = gan_trainer_compat.CUDNN_STATUS
        if getattr(cuda, '_cudnn_disabled_by_user', False):
            status = 'turned off by CHAINER_CUDNN=0'
        announce(describe(
            gpu, name=name.decode() if isinstance(name, bytes) else str(name),
            capability=cupy.cuda.Device(gpu).compute_capability,
            cupy_version=cupy.__version__,
            cudnn_version=cuda.libcudnn.getVersion() if cuda.cudnn_enabled else None,
            cudnn_status=status, tf32=tf32_on, dtype=chainer.config.dtype))
    return device
