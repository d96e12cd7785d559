#!/usr/bin/env python
"""Sample quality of the default DCGAN and every preset on the digits, for a fixed budget.

    python benchmarks/quality.py                       # 300 iterations each, about 15 min
    python benchmarks/quality.py --iteration 2000      # longer runs
    python benchmarks/quality.py --only dcgan sngan --iteration 50 --base_width 8

Each preset trains as a real ``examples/train_dcgan.py`` process on the
built-in digits (CPU unless ``--gpu``), with ``--fid_interval`` equal to
the budget, so it is measured once, at its end. The table (Markdown) gives
FID, KID, precision, recall, the classes covered, their KL to uniform and
the Inception-Score-like score, against iterations and wall time. The first
row is the floor: the 500 held-out real digits measured the same way, which
is what a perfect generator would score (with 500 rather than
``--samples`` images, so its FID is slightly higher than a perfect
generator's would be at 1,000).

Protocol (see docs/metrics.md): features from the package's digit
classifier (128-d penultimate layer, the weights shipped with the package),
reference statistics of the 4,500 training digits, ``--samples`` generated
images from a fixed z, KID over 10 subsets, precision/recall with k = 3
against as many training digits as samples.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from gan_trainer.datasets import get_digits
from gan_trainer.metrics import RealStatistics, load_digits_classifier

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = {
    'dcgan': ['--preset', 'dcgan'],  # the default settings
    'wgan-gp': ['--preset', 'wgan-gp'],
    'sngan': ['--preset', 'sngan'],
    'lsgan': ['--preset', 'lsgan'],
}
COLUMNS = ('fid', 'kid', 'precision', 'recall', 'classes', 'class_kl', 'is')


def row(name: str, iterations, result: dict, seconds) -> str:
    cells = [name, str(iterations)]
    cells += [f'{result[key]:.0f}' if key == 'classes' else f'{result[key]:.3g}' for key in COLUMNS]
    cells.append(seconds if isinstance(seconds, str) else f'{seconds:.0f}')
    return '| ' + ' | '.join(cells) + ' |'


def train(name: str, args) -> tuple[dict, float, int] | str:
    """Runs one preset; returns (its last measurement, wall seconds, iterations) or an error."""
    with tempfile.TemporaryDirectory() as out:
        every = str(args.iteration)
        cmd = [
            sys.executable,
            os.path.join(ROOT, 'examples', 'train_dcgan.py'),
            '--iteration',
            every,
            '--base_width',
            str(args.base_width),
            '--fid_interval',
            every,
            '--fid_samples',
            str(args.samples),
            '--seed',
            str(args.seed),
            '--gpu',
            str(args.gpu),
            '--out',
            out,
            '--no_progress',
            '--display_interval',
            every,
            '--snapshot_interval',
            every,
            '--eval_interval',
            every,
            '--preview_interval',
            every,
            *RUNS[name],
        ]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            return f'failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}'
        with open(os.path.join(out, 'log')) as f:
            last = json.load(f)[-1]
    result = {key: last[f'validation/{key}'] for key in COLUMNS}
    return result, seconds, last['iteration']


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--iteration', type=int, default=300, help='G updates per run (default 300)')
    p.add_argument('--base_width', type=int, default=32)
    p.add_argument('--samples', type=int, default=1000, help='generated images per measurement')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--gpu', type=int, default=-1)
    p.add_argument('--only', nargs='*', choices=list(RUNS), help='run only these')
    args = p.parse_args()

    classifier = load_digits_classifier()
    print(
        f'feature network: digit classifier, held-out accuracy '
        f'{float(classifier.test_accuracy):.1%}; reference: 4,500 training digits; '
        f'{args.samples} samples per run; base_width {args.base_width}',
        flush=True,
    )
    real = RealStatistics(classifier.embed, get_digits('train').images, seed=args.seed)
    header = [
        'run',
        'iterations',
        'FID',
        'KID',
        'precision',
        'recall',
        'classes',
        'class KL',
        'IS',
        'wall s',
    ]
    print('| ' + ' | '.join(header) + ' |')
    print('|' + '---|' * len(header))
    print(
        row('real digits (500 held out)', '-', real.measure(get_digits('test').images), '-'),
        flush=True,
    )
    ok = True
    for name in args.only or RUNS:
        outcome = train(name, args)
        if isinstance(outcome, str):
            print(f'| {name} | {outcome} |', flush=True)
            ok = False
            continue
        result, seconds, iterations = outcome
        print(row(name, iterations, result, seconds), flush=True)
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
