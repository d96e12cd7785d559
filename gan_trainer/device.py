"""Turning a ``--gpu`` number into a Chainer device, with a clear error.

``-1`` (or any negative number) is the CPU with NumPy; ``N >= 0`` is GPU
``N`` with CuPy (``pip install gan_trainer[gpu]``), which uses cuDNN when
CuPy finds it. Checking up front turns "CuPy is missing" or "there is no
GPU 1" into one line instead of a traceback deep inside Chainer.
"""

from __future__ import annotations

import chainer


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
    device = chainer.get_device(f'@cupy:{gpu}')
    device.use()
    return device
