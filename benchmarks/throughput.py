#!/usr/bin/env python
"""Images per second of one full GANUpdater iteration, with a per-phase split.

    python benchmarks/throughput.py --net digits28 --device cpu
    python benchmarks/throughput.py --net dcgan64 --device cpu
    python benchmarks/throughput.py --net dcgan64 --data folder --loaderjob 2
    python benchmarks/throughput.py --net digits28 --reference   # Chainer's own ops
    python benchmarks/throughput.py --net dcgan64 --device gpu
    python benchmarks/throughput.py --net digits28 --reuse_fakes


One iteration is what ``GANUpdater.update()`` does with the defaults: one D
step on a real batch and a fake batch (forward, backward, Adam) and one G
step (forward through G and D, backward through D into G, Adam), batch 64.
With ``--reuse_fakes`` the G step trains on the D step's fakes (one G
forward per iteration, PyTorch's DCGAN example; ``GANUpdater(reuse_fakes=
True)``).
Images per second = ``batchsize * iterations / seconds``, the real images D
trains on. The two networks are fixed (both from :mod:`gan_trainer.nets`):

* ``digits28``: G: z 100 -> Linear 128*7*7 + BN + ReLU -> Deconv 128->64
  (k4 s2 p1) + BN + ReLU -> Deconv 64->1 -> tanh; D: Conv 1->64 (k4 s2 p1)
  + LeakyReLU(0.2) -> Conv 64->128 + BN + LeakyReLU -> Linear -> 1.
  Data: the built-in digits (or a folder of PNGs, ``--data folder``).
* ``dcgan64``: Radford et al.'s 64x64 RGB DCGAN: G: z 100 -> 4x4x512 ->
  256 -> 128 -> 64 -> 3, D mirrored, k4 s2 p1, BN everywhere but D's input
  layer and G's output. Data: random images (or PNGs, ``--data folder``).

Protocol: ``--warmup`` untimed iterations, then ``--windows`` timed windows
of ``--iters`` iterations each; the figure is the median window, and the
range (slowest..fastest window) is printed beside it. Then one more window
runs with timers around the updater's parts, for the split: data (next
batch + transfer), G forward, D forward, the backward passes of the D step
and of the G step (loss functions included, D frozen during the G step),
and the optimizers; on the CPU also the time spent in the matrix products
of :mod:`gan_trainer.ops`' convolutions, which is the floor that removing
copies can approach. On a GPU every timer synchronizes the device first.

``--data folder`` writes ``--folder_images`` random PNGs of
``--folder_side`` pixels (photos are larger than the net) to a temporary
folder and reads them with :class:`gan_trainer.datasets.ImageFolderDataset`
through :func:`gan_trainer.iterators.train_iterator` with ``--loaderjob``
worker processes (a ``MultiprocessIterator``; 0 = ``SerialIterator``,
decoding in the training process), which is how ``examples/train_dcgan.py``
reads folders: the *data* row shows
whether decoding stalls the step.

The last line is exactly ``throughput NET DEVICE IMAGES_PER_S img/s``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time

import chainer
import numpy

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gan_trainer import GANUpdater, ops
from gan_trainer.datasets import ImageFolderDataset, get_digits
from gan_trainer.iterators import train_iterator
from gan_trainer.nets import Discriminator, Generator
from gan_trainer.ops import conv as ops_conv
from gan_trainer.ops import onednn_conv  # noqa: F401  (ops.onednn_conv.LAYOUT)

NETS = {
    # name: (size, channels, iterations per window, base width)
    'digits28': (28, 1, 10, 64),
    'dcgan64': (64, 3, 2, 64),
    'default': (28, 1, 20, 32),
}
PHASES = ('data', 'G forward', 'D forward', 'D step backward', 'G step backward',
          'optimizers')


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--net', choices=sorted(NETS), default='digits28')
    p.add_argument('--device', choices=('cpu', 'gpu'), default='cpu')
    p.add_argument('--batchsize', type=int, default=64)
    p.add_argument('--warmup', type=int, default=3, help='untimed iterations first')
    p.add_argument('--windows', type=int, default=5, help='timed windows')
    p.add_argument('--iters', type=int, default=None,
                   help='iterations per window (default: 10 digits28, 2 dcgan64 on CPU; '
                        '20 on GPU)')
    p.add_argument('--data', choices=('memory', 'folder'), default='memory')
    p.add_argument('--folder_images', type=int, default=256)
    p.add_argument('--folder_side', type=int, default=256,
                   help='side of the PNGs --data folder writes (resized to the net on reading)')
    p.add_argument('--loaderjob', type=int, default=2,
                   help='MultiprocessIterator workers for --data folder (0: SerialIterator)')
    p.add_argument('--reference', action='store_true',
                   help="Chainer's own functions instead of gan_trainer.ops")
    p.add_argument('--profile', type=int, default=0, metavar='N',
                   help="after the split, one more window under Chainer's TimerHook: "
                        'the N functions that took longest (forward + backward)')
    p.add_argument('--reuse_fakes', action='store_true',
                   help="GANUpdater(reuse_fakes=True): the G step trains on the D step's fakes")
    p.add_argument('--onednn_layout', choices=('nhwc', 'any'), default='nhwc',
                   help="oneDNN's feature-map layout (gan_trainer.ops.onednn_conv.LAYOUT): "
                        "channel-last as stored, or oneDNN's pick with reorders")
    p.add_argument('--seed', type=int, default=0)
    args = p.parse_args(argv)
    for name in ('batchsize', 'windows', 'folder_images', 'folder_side'):
        if getattr(args, name) < 1:
            p.error(f'--{name} must be at least 1')
    if args.iters is None:
        args.iters = 20 if args.device == 'gpu' else NETS[args.net][2]
    return args


def synchronizer(device: chainer.backend.Device):
    """A function that waits for the device's queued work (no-op on the CPU)."""
    if device.xp is numpy:
        return lambda: None
    import cupy
    return cupy.cuda.Device().synchronize


def write_folder(root: str, n: int, size: int, channels: int, seed: int) -> None:
    """Writes ``n`` random PNGs of ``size`` x ``size`` pixels into ``root``."""
    from PIL import Image

    rng = numpy.random.RandomState(seed)
    mode = 'L' if channels == 1 else 'RGB'
    for i in range(n):
        pixels = rng.randint(0, 256, (size, size, channels)).astype(numpy.uint8)
        Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(
            os.path.join(root, f'{i:05d}.png'))


def make_iterator(args, size: int, channels: int, tmp: str):
    """The training iterator for ``--data``."""
    if args.data == 'folder':
        write_folder(tmp, args.folder_images, args.folder_side, channels, args.seed)
        data = ImageFolderDataset(tmp, size=size, gray=channels == 1)
        # The iterator examples/train_dcgan.py uses for a folder.
        return train_iterator(data, args.batchsize, seed=args.seed, n_processes=args.loaderjob)
    if args.net in ('digits28', 'default'):
        data = get_digits('train')
    else:
        rng = numpy.random.RandomState(args.seed)
        data = rng.uniform(-1, 1, (1024, channels, size, size)).astype(numpy.float32)
    return chainer.iterators.SerialIterator(data, args.batchsize)


def make_updater(args, iterator, device) -> GANUpdater:
    size, channels, _, base_width = NETS[args.net]
    numpy.random.seed(args.seed)  # Chainer's initializers draw from it
    gen = Generator(size=size, channels=channels, base_width=base_width)
    dis = Discriminator(size=size, channels=channels, base_width=base_width)
    optimizers = {}
    for name, net in (('gen', gen), ('dis', dis)):
        net.to_device(device)
        # The package's one-pass Adam (Chainer's with --reference).
        adam = chainer.optimizers.Adam if args.reference else ops.Adam
        opt = adam(alpha=2e-4, beta1=0.5)
        opt.setup(net)
        optimizers[name] = opt
    return GANUpdater(iterator, optimizers, device=device, seed=args.seed,
                      reuse_fakes=args.reuse_fakes)


class PhaseTimer:
    """Wraps the updater's parts with timers; backward = step minus its parts."""

    def __init__(self, updater: GANUpdater, sync):
        self.sync = sync
        self.totals = dict.fromkeys(PHASES + ('D step', 'G step'), 0.0)
        self.inner = {'D step': 0.0, 'G step': 0.0}
        self.current = None
        for attr, phase in (('next_real_batch', 'data'), ('generate', 'G forward'),
                            ('discriminate', 'D forward'), ('dis_step', 'D step'),
                            ('gen_step', 'G step')):
            setattr(updater, attr, self.wrap(getattr(updater, attr), phase))
        for opt in updater.get_all_optimizers().values():
            opt.update = self.wrap(opt.update, 'optimizers')
        # The matrix products inside gan_trainer.ops' convolutions, across
        # all phases: how close the step is to what BLAS alone would take.
        self.matmul = 0.0
        self._matmul = ops_conv._matmul

        def timed_matmul(a, b):
            start = time.perf_counter()
            try:
                return self._matmul(a, b)
            finally:
                self.matmul += time.perf_counter() - start
        ops_conv._matmul = timed_matmul

    def restore(self) -> None:
        """Puts back the unwrapped matrix product."""
        ops_conv._matmul = self._matmul

    def wrap(self, fn, phase):
        def timed(*args, **kwargs):
            outer = self.current
            if phase in ('D step', 'G step'):
                self.current = phase
            self.sync()
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.sync()
                dt = time.perf_counter() - start
                self.totals[phase] += dt
                if phase in ('D step', 'G step'):
                    self.current = outer
                elif self.current is not None:
                    self.inner[self.current] += dt
        return timed

    def split(self) -> dict[str, float]:
        t = dict(self.totals)
        t['D step backward'] = t.pop('D step') - self.inner['D step']
        t['G step backward'] = t.pop('G step') - self.inner['G step']
        return t


def function_times(updater: GANUpdater, iters: int) -> dict[str, float]:
    """Seconds per iteration spent in each Chainer function, over ``iters`` iterations."""
    hook = chainer.function_hooks.TimerHook()
    with hook:
        for _ in range(iters):
            updater.update()
    totals: dict[str, float] = {}
    for name, seconds in hook.call_history:
        totals[name] = totals.get(name, 0.0) + seconds / iters
    return totals


def main(argv=None) -> int:
    args = parse_args(argv)
    size, channels, _, _ = NETS[args.net]
    device = chainer.get_device('@cupy:0' if args.device == 'gpu' else '@numpy')
    device.use()
    sync = synchronizer(device)
    setattr(chainer.global_config, ops.CONFIG_KEY, not args.reference)
    ops.onednn_conv.LAYOUT = args.onednn_layout
    print(f'# {args.net} on {args.device}: batch {args.batchsize}, '
          f'{"Chainer reference ops" if args.reference else "gan_trainer.ops"}, '
          f'data {args.data}' + (f' ({args.loaderjob} workers)' if args.data == 'folder' else '')
          + (", G step on the D step's fakes" if args.reuse_fakes else ''))
    print(f'# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, '
          f'Python {platform.python_version()}, NumPy {numpy.__version__}, '
          f'Chainer {chainer.__version__}')
    with tempfile.TemporaryDirectory() as tmp:
        iterator = make_iterator(args, size, channels, tmp)
        try:
            updater = make_updater(args, iterator, device)
            for _ in range(args.warmup):
                updater.update()
            sync()
            rates = []
            for w in range(args.windows):
                start = time.perf_counter()
                for _ in range(args.iters):
                    updater.update()
                sync()
                rates.append(args.batchsize * args.iters / (time.perf_counter() - start))
                print(f'window {w + 1}: {rates[-1]:.1f} img/s')
            timer = PhaseTimer(updater, sync)
            start = time.perf_counter()
            for _ in range(args.iters):
                updater.update()
            total = time.perf_counter() - start
            timer.restore()
            split = timer.split()  # before the profile window, which the timers would see
            profile = function_times(updater, args.iters) if args.profile else None
        finally:
            iterator.finalize()
    median = statistics.median(rates)
    print(f'median {median:.1f} img/s, range {min(rates):.1f} .. {max(rates):.1f} img/s '
          f'over {args.windows} windows of {args.iters} iterations')
    print(f'per-phase split ({args.iters} timed iterations, '
          f'{1e3 * total / args.iters:.1f} ms each):')
    for phase in PHASES:
        ms = 1e3 * split[phase] / args.iters
        print(f'  {phase:18s} {ms:8.2f} ms  {100 * split[phase] / total:5.1f}%')
    rest = total - sum(split[p] for p in PHASES)
    print(f'  {"other":18s} {1e3 * rest / args.iters:8.2f} ms  {100 * rest / total:5.1f}%')
    if not args.reference and args.device == 'cpu':
        print(f'matrix products in conv/deconv (all phases): '
              f'{1e3 * timer.matmul / args.iters:.2f} ms  {100 * timer.matmul / total:.1f}%')
    if profile:
        print(f'slowest functions (TimerHook, forward + backward, ms per iteration; '
              f'each call synchronizes the device): {1e3 * sum(profile.values()):.1f} ms in all')
        for name, seconds in sorted(profile.items(), key=lambda kv: -kv[1])[:args.profile]:
            print(f'  {name:24s} {1e3 * seconds:8.2f} ms')
    print(f'throughput {args.net} {args.device} {median:.1f} img/s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
