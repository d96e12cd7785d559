#!/usr/bin/env python
"""Train the FID's digit classifier, write its weights, and say how it compares.

    python benchmarks/digits_classifier.py                  # the recipe once, against the shipped file
    python benchmarks/digits_classifier.py --seeds 0,1,2,3,4   # the spread over seeds
    python benchmarks/digits_classifier.py --out gan_trainer/metrics/digits_classifier.npz

The last command is how the shipped weights (``gan_trainer.metrics.classifier.WEIGHTS``)
were made: :func:`~gan_trainer.metrics.classifier.train_digits_classifier`
with its defaults (seed 0), saved with ``chainer.serializers.save_npz``.
Each line gives a trained classifier's held-out accuracy (the 500 digits of
``get_digits('test')``), its training time, and whether its weights equal
the shipped ones bit for bit (they do only on a machine that rounds like
the one that made them). The last lines give the shipped file's size and
accuracy, and, with several seeds, the mean and range of the retrained
accuracies: the spread that a retrained classifier's accuracy is expected
to fall in (``tests/test_metrics.py`` checks a retraining against it).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import chainer
import numpy

from gan_trainer import files
from gan_trainer.datasets import get_digits
from gan_trainer.metrics.classifier import WEIGHTS, load_digits_classifier, train_digits_classifier


def cpu_name() -> str:
    """The CPU model (and whether it has AVX-512) from /proc/cpuinfo, else the platform's."""
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as f:
            info = f.read()
    except OSError:
        return platform.processor() or platform.machine()
    names = [line.split(':', 1)[1].strip() for line in info.splitlines()
             if line.startswith('model name')]
    avx512 = ' avx512f' in info or '\tavx512f' in info
    return f'{names[0] if names else platform.machine()}, AVX-512 {"yes" if avx512 else "no"}'


def same_weights(a: chainer.Link, b: chainer.Link) -> bool:
    pa, pb = dict(a.namedparams()), dict(b.namedparams())
    return pa.keys() == pb.keys() and all(numpy.array_equal(pa[k].array, pb[k].array) for k in pa)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--seeds', default='0', help='comma-separated training seeds (default 0)')
    p.add_argument('--out', help='write the first seed\'s weights to this .npz file')
    args = p.parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(',')]
    except ValueError:
        p.error(f'--seeds must be comma-separated integers, got {args.seeds!r}')
    print(f'# {cpu_name()}, {os.cpu_count()} CPUs, '
          f'Python {platform.python_version()}, NumPy {numpy.__version__}', flush=True)
    shipped = load_digits_classifier() if os.path.isfile(WEIGHTS) else None
    accuracies = []
    for i, seed in enumerate(seeds):
        start = time.perf_counter()
        model = train_digits_classifier(seed=seed)
        seconds = time.perf_counter() - start
        accuracy = float(model.test_accuracy)
        accuracies.append(accuracy)
        equal = 'n/a' if shipped is None else ('yes' if same_weights(model, shipped) else 'no')
        print(f'seed {seed}: held-out accuracy {accuracy:.1%}, trained in {seconds:.1f} s, '
              f'weights equal to the shipped ones: {equal}', flush=True)
        if i == 0 and args.out:
            os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
            files.save_npz(args.out, model)  # atomically
            print(f'wrote {args.out} ({os.path.getsize(args.out) / 1e6:.2f} MB)')
    if shipped is not None:
        test = get_digits('test')
        images, labels = test.images, test.labels
        print(f'shipped {WEIGHTS}: {os.path.getsize(WEIGHTS) / 1e6:.2f} MB, held-out accuracy '
              f'{float(shipped.test_accuracy):.1%} stored, {shipped.accuracy(images, labels):.1%} '
              'measured here')
    if len(accuracies) > 1:
        print(f'retrained over {len(accuracies)} seeds: mean {numpy.mean(accuracies):.1%}, '
              f'range {min(accuracies):.1%} to {max(accuracies):.1%}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
