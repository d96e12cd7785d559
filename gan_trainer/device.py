"""Turning a ``--gpu`` number into a Chainer device, with a clear error.

``-1`` (or any negative number) is the CPU with NumPy; ``N >= 0`` is GPU
``N`` with CuPy (``pip install gan_trainer[gpu]``), which uses cuDNN when
CuPy finds it. Checking up front turns "CuPy is missing" or "there is no
GPU 1" into one line instead of a traceback deep inside Chainer.

CuPy 14 removed cuDNN altogether. Chainer 7 then warns "cuDNN is not
enabled. Please reinstall CuPy after you install cudnn" as it is imported,
advice that cannot help with CuPy 14. ``gan_trainer_compat`` silences that
one warning for CuPy >= 14, and :func:`get_device` says instead, when a GPU
is asked for, what actually happens (:data:`NO_CUDNN_NOTE`).
"""

from __future__ import annotations

import warnings

import chainer

NO_CUDNN_NOTE = ('CuPy {version} has no cuDNN (CuPy 14 removed it): Chainer runs its own '
                 'GPU convolutions, which are slower; see docs/performance.md, "GPU"')


class DeviceError(ValueError):
    """The requested device cannot be used on this machine."""


def get_device(gpu: int) -> chainer.backend.Device:
    """Returns the Chainer device for a ``--gpu`` value and makes it current.

    Raises:
        DeviceError: when CuPy is not installed, no GPU is visible, or there
            is no GPU with that number.
    """
    if gpu < 0:
        return chainer.get_device('@numpy')
    from chainer.backends import cuda

    if not cuda.available:
        raise DeviceError(
            f'--gpu {gpu}: CuPy is not installed or cannot use a GPU here; '
            "install 'gan_trainer[gpu]' on a CUDA machine, or use --gpu -1 for the CPU")
    count = cuda.cupy.cuda.runtime.getDeviceCount()
    if gpu >= count:
        raise DeviceError(f'--gpu {gpu}: this machine has {count} GPU(s) (0..{count - 1})')
    if not cuda.cudnn_enabled and cuda._cupy_major >= 14:
        warnings.warn(NO_CUDNN_NOTE.format(version=cuda.cupy.__version__), stacklevel=2)
    device = chainer.get_device(f'@cupy:{gpu}')
    device.use()
    return device
