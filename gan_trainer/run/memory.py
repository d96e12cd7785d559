"""Memory a run would need, estimated before it is spent.

An image side of 100,000 pixels or a million FID samples is accepted by
every type check and then grows until the kernel kills the process. These
estimates come before anything large is allocated, so such a run is
refused in one line (:class:`~gan_trainer.run.errors.ResourceError`)
instead. They are deliberately rough (a factor of two either way): they
only need to tell a run that fits from one that cannot.

* :func:`data_bytes`: the images a dataset keeps in memory (the built-in
  and downloaded sets are resized in memory; a folder decodes a few
  batches at a time, or keeps its uint8 pixels when they fit in 1 GiB and
  a quarter of the free memory, a budget the builder sets).
* :func:`training_bytes`: parameters with their gradients and Adam's two
  moments, plus the activations of one D step and one G step, for the
  DCGAN family's layer plan (:func:`gan_trainer.nets.resolve_widths`);
  other architectures are counted as three times as heavy.
* :func:`sampling_bytes`: what holding ``n`` generated images takes.
"""

from __future__ import annotations

import os

from gan_trainer.nets import resolve_widths
from gan_trainer.run.errors import ResourceError

_FLOAT = 4  # bytes of a float32
_DIGITS = 5000  # images of the built-in set, resized in memory
_DEFAULT_SIDE = {'digits': 28, 'mnist': 28, 'cifar10': 32}
_GB = 1 << 30


def available_bytes() -> int:
    """Memory this process can still get: ``MemAvailable`` (Linux), else the RAM size."""
    try:
        with open('/proc/meminfo', encoding='ascii') as f:
            for line in f:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
    except (OSError, ValueError, AttributeError):
        return 1 << 62  # unknown: refuse nothing


def image_side(config) -> int:
    """The side the run's images will have (``size``, or the dataset's default)."""
    return config.size or _DEFAULT_SIDE.get(config.dataset, 64)


def data_bytes(config) -> int:
    """Bytes of images the dataset of ``config`` holds while training.

    The built-in digits are resized in memory, all 5,000 at once; the
    downloaded sets and folders are converted per example, so only a few
    batches (the one trained on and those decoded ahead) count.
    """
    side = image_side(config)
    if config.dataset == 'digits':
        return _DIGITS * side * side * _FLOAT
    channels = 1 if config.gray or config.dataset == 'mnist' else 3
    return 4 * config.batchsize * channels * side * side * _FLOAT


def training_bytes(config, shape: tuple[int, int, int]) -> int:
    """Bytes of parameters, optimizer state and activations of one training step."""
    channels, side, _ = shape
    try:
        widths = resolve_widths(side, config.widths, base_width=config.base_width)
    except ValueError:
        return 0  # the networks' own check will say why this size cannot be built
    start = side // 2 ** len(widths)
    k2 = (config.ksize or 4) ** 2
    sides = [side // 2 ** (i + 1) for i in range(len(widths))]  # D's map after each conv
    ins = (channels, *widths[:-1])
    conv = sum(k2 * c_in * w for c_in, w in zip(ins, widths))
    params = 2 * conv + 2 * widths[-1] * start * start + config.n_hidden * widths[-1] * start ** 2
    # Per image: every feature map a few times over (output, normalised copy,
    # activation, gradient), the im2col columns of each conv, and the image.
    maps = sum(w * s * s for w, s in zip(widths, sides))
    columns = sum(k2 * c_in * s * s for c_in, s in zip(ins, sides))
    per_image = 2 * (4 * maps + columns) + 4 * channels * side * side
    heavy = 1 if getattr(config, 'arch', 'dcgan') in ('dcgan', 'conditional') else 3
    # Real and fake for D, and a fresh batch for G: about three batches.
    activations = 3 * config.batchsize * per_image * heavy
    copies = 4 + (1 if config.ema else 0)  # weight, gradient, Adam's m and v (+ EMA)
    return _FLOAT * (copies * params * heavy + activations)


def sampling_bytes(n: int, shape: tuple[int, int, int]) -> int:
    """Bytes of ``n`` generated float32 images of ``shape``."""
    channels, height, width = shape
    return n * channels * height * width * _FLOAT


def require(need: int, what: str, advice: str) -> None:
    """Raises :class:`ResourceError` when ``need`` bytes exceed what the machine has.

    Args:
        need: The estimate.
        what: The subject of the message, naming the options responsible
            (``'--size 100000 with --batchsize 64'``).
        advice: What to change.
    """
    have = available_bytes()
    if need > have:
        raise ResourceError(f'{what} would need about {_size(need)} of memory, and this '
                            f'machine has {_size(have)} available: {advice}')


def _size(n: int) -> str:
    if n >= 1000 * _GB:
        return f'{n / (1 << 40):,.0f} TB'
    if n >= _GB:
        return f'{n / _GB:,.1f} GB'
    return f'{n / (1 << 20):,.0f} MB'


