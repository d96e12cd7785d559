#!/usr/bin/env python
"""Reading a folder of images ahead of training: gan_trainer's LoaderPool against Chainer's.

    python benchmarks/loader.py                      # 64x64 from 96x96 PNGs, batch 64
    python benchmarks/loader.py --step_ms 0 --rounds 3

:func:`gan_trainer.iterators.train_iterator` reads a folder's images in
worker processes of its own (:mod:`gan_trainer.loader`) instead of Chainer
7.8.1's ``MultiprocessIterator``, which hung for good when a worker died
(issue 25). This measures whether the replacement reads as fast: the same
folder, the same batches, with ``--workers`` processes each, for

* ``chainer``: ``chainer.iterators.MultiprocessIterator`` (what
  ``train_iterator`` used before), shared memory and a prefetch thread;
* ``pool``: ``train_iterator(..., n_processes=WORKERS)``: one task per
  worker per batch, two batches ahead, examples pickled through pipes;
* ``serial``: ``train_iterator(..., n_processes=0)``: decoding in the
  training process, the floor the others must beat.

After each batch the training process busy-waits ``--step_ms``
milliseconds, a training step's worth of CPU (0: reading alone). Each
round times ``--batches`` batches of each iterator, in turn, after
``--warmup`` untimed ones; rounds alternate the order. Printed: the median
over rounds of milliseconds per batch (and the range), per iterator.
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
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gan_trainer.datasets import ImageFolderDataset
from gan_trainer.iterators import ResumableShuffleOrderSampler, train_iterator


def make_folder(root: str, n: int, side: int) -> str:
    rng = numpy.random.RandomState(0)
    os.makedirs(root, exist_ok=True)
    for i in range(n):
        pixels = rng.randint(0, 256, (side, side, 3)).astype(numpy.uint8)
        Image.fromarray(pixels).save(os.path.join(root, f'{i:05d}.png'))
    return root


def iterators(dataset, batch: int, workers: int):
    def chainer_iterator():
        sampler = ResumableShuffleOrderSampler(numpy.random.RandomState(0))
        return chainer.iterators.MultiprocessIterator(dataset, batch, n_processes=workers,
                                                      order_sampler=sampler)

    return {
        'chainer': chainer_iterator,
        'pool': lambda: train_iterator(dataset, batch, seed=0, n_processes=workers),
        'serial': lambda: train_iterator(dataset, batch, seed=0, n_processes=0),
    }


def busy(ms: float) -> None:
    end = time.perf_counter() + ms / 1000
    while time.perf_counter() < end:
        pass


def timed(make, batches: int, warmup: int, step_ms: float) -> float:
    iterator = make()
    try:
        for _ in range(warmup):
            next(iterator)
        start = time.perf_counter()
        for _ in range(batches):
            next(iterator)
            busy(step_ms)
        return (time.perf_counter() - start) / batches * 1000
    finally:
        iterator.finalize()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--images', type=int, default=512)
    p.add_argument('--side', type=int, default=96, help='side of the PNGs written')
    p.add_argument('--size', type=int, default=64, help='side the images are read at')
    p.add_argument('--batch', type=int, default=64)
    p.add_argument('--workers', type=int, default=2)
    p.add_argument('--batches', type=int, default=20)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--step_ms', type=float, default=30.0)
    p.add_argument('--rounds', type=int, default=5)
    args = p.parse_args(argv)
    cpu = platform.processor() or platform.machine()
    with tempfile.TemporaryDirectory() as tmp:
        dataset = ImageFolderDataset(make_folder(os.path.join(tmp, 'pics'), args.images,
                                                 args.side), size=args.size)
        makers = iterators(dataset, args.batch, args.workers)
        times = {name: [] for name in makers}
        for r in range(args.rounds):
            order = list(makers) if r % 2 == 0 else list(reversed(makers))
            for name in order:
                times[name].append(timed(makers[name], args.batches, args.warmup,
                                         args.step_ms))
    print(f'# {os.cpu_count()} CPUs ({cpu}), {args.images} PNGs of {args.side}px read at '
          f'{args.size}px, batch {args.batch}, {args.workers} workers, step {args.step_ms} ms, '
          f'{args.rounds} rounds of {args.batches} batches')
    for name, values in times.items():
        print(f'{name:8s} {statistics.median(values):7.1f} ms/batch '
              f'({min(values):.1f}..{max(values):.1f})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
