#!/usr/bin/env python
"""Images per second of one GANUpdater iteration on each GPU path, in one process.

    python benchmarks/gpu_paths.py --net dcgan64 --batches 64,256,512
    python benchmarks/gpu_paths.py --net default --paths tf32,fp32,mixed16,nocudnn
    python benchmarks/gpu_paths.py --device cpu --net default --batches 4 --iters 1  # dry run

The iteration is ``throughput.py``'s (``GANUpdater.update()`` with its
defaults: a D step on a real and a fake batch, a G step on fresh z, Adam
2e-4/0.5; batches come from host memory through the updater's converter, as
in training), on the package's networks:

* ``digits28``: 28x28x1, ``base_width`` 64 (``throughput.py --net digits28``);
* ``dcgan64``: 64x64x3, ``base_width`` 64 (Radford et al.'s DCGAN);
* ``default``: 28x28x1, ``base_width`` 32: the default run of
  ``examples/train_dcgan.py``.

Paths (``--paths``), each built afresh (nets, optimizers, updater) in this
process, all batch sizes of one path after another:

* ``tf32``: float32, TF32 on (the package's default on a GPU);
* ``fp32``: float32, TF32 off (``tf32=False``: CuPy's float32 products in
  full float32; cuDNN's TF32 obeys ``NVIDIA_TF32_OVERRIDE``, read when cuDNN
  initialises, so for a cuDNN run without TF32 start the process with
  ``GAN_TRAINER_TF32=0``);
* ``mixed16``: Chainer's mixed16 with dynamic loss scaling
  (:mod:`gan_trainer.precision`);
* ``nocudnn``: ``tf32`` with ``chainer.config.use_cudnn = 'never'``
  (Chainer's own convolutions even where cuDNN is there).

Protocol as ``throughput.py``: ``--warmup`` untimed iterations, then
``--windows`` windows of ``--iters`` iterations (default: about 1,280 images
per window), the device synchronised before each clock reading; the figure
is the median window. One line per measurement, exactly
``gpu_paths NET BATCH PATH IMAGES_PER_S img/s``, after a first line saying
which GPU path the process took (:func:`gan_trainer.device.describe`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import chainer
import numpy

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gan_trainer import GANUpdater, precision
from gan_trainer.device import configure_tf32, get_device
from gan_trainer.nets import Discriminator, Generator

NETS = {'digits28': (28, 1, 64), 'dcgan64': (64, 3, 64), 'default': (28, 1, 32)}
PATHS = ('tf32', 'fp32', 'mixed16', 'nocudnn')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--net', choices=sorted(NETS), default='default')
    p.add_argument('--device', choices=('gpu', 'cpu'), default='gpu')
    p.add_argument('--batches', default='64,256,512', help='comma-separated batch sizes')
    p.add_argument('--paths', default='tf32,fp32,mixed16', help=f'comma-separated: {PATHS}')
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--windows', type=int, default=3)
    p.add_argument('--iters', type=int, default=None, help='iterations per window')
    args = p.parse_args(argv)
    try:
        args.batches = [int(b) for b in args.batches.split(',')]
    except ValueError:
        p.error(f'--batches must be comma-separated integers, got {args.batches!r}')
    if any(b < 1 for b in args.batches):
        p.error('--batches must all be at least 1')
    args.paths = args.paths.split(',')
    unknown = [name for name in args.paths if name not in PATHS]
    if unknown:
        p.error(f'--paths: unknown {", ".join(unknown)}; valid: {", ".join(PATHS)}')
    if args.windows < 1 or args.warmup < 0 or (args.iters is not None and args.iters < 1):
        p.error('--windows and --iters must be at least 1, --warmup at least 0')
    return args


def make_updater(net: str, batch: int, path: str, device) -> GANUpdater:
    size, channels, base_width = NETS[net]
    dtype = 'mixed16' if path == 'mixed16' else 'float32'
    numpy.random.seed(0)  # Chainer's initializers draw from it
    with chainer.using_config('dtype', precision.resolve_dtype(dtype)):
        gen = Generator(size=size, channels=channels, base_width=base_width)
        dis = Discriminator(size=size, channels=channels, base_width=base_width)
    optimizers = {}
    for name, link in (('gen', gen), ('dis', dis)):
        link.to_device(device)
        optimizers[name] = chainer.optimizers.Adam(alpha=2e-4, beta1=0.5)
        optimizers[name].setup(link)
    precision.configure_optimizers(optimizers, dtype)
    rng = numpy.random.RandomState(0)
    images = rng.uniform(-1, 1, (2 * batch, channels, size, size)).astype(numpy.float32)
    iterator = chainer.iterators.SerialIterator(images, batch, shuffle=False)
    return GANUpdater(iterator, optimizers, device=device, seed=0)


def measure(updater: GANUpdater, batch: int, args, sync) -> float:
    iters = args.iters or max(2, 1280 // batch)
    for _ in range(args.warmup):
        updater.update()
    rates = []
    for _ in range(args.windows):
        sync()
        start = time.perf_counter()
        for _ in range(iters):
            updater.update()
        sync()
        rates.append(batch * iters / (time.perf_counter() - start))
    return statistics.median(rates)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.device == 'gpu':
        device = get_device(0)  # prints the path line
        sync = device.device.synchronize
    else:
        device = chainer.get_device('@numpy')
        print('--device cpu: NumPy (dry run of the GPU paths)')

        def sync():
            return None

    for path in args.paths:
        if device.xp is not numpy:
            configure_tf32(path != 'fp32')
        with chainer.using_config('use_cudnn', 'never' if path == 'nocudnn' else 'auto'):
            for batch in args.batches:
                updater = make_updater(args.net, batch, path, device)
                rate = measure(updater, batch, args, sync)
                print(f'gpu_paths {args.net} {batch} {path} {rate:.1f} img/s', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
