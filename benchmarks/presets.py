#!/usr/bin/env python
"""Every preset (and the conditional mode) for N iterations on the digits.

    python benchmarks/presets.py                 # 200 iterations each
    python benchmarks/presets.py --iteration 50 --base_width 8

Runs ``examples/train_dcgan.py`` once per configuration as a real process on
the built-in digits (CPU) and prints, from each run's ``log``, the last
``gen/loss`` and ``dis/loss``, whether any logged value is NaN or infinite,
and the wall time. The last line says whether every run stayed finite.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = {
    'dcgan': ['--preset', 'dcgan'],
    'wgan-gp': ['--preset', 'wgan-gp'],
    'sngan': ['--preset', 'sngan'],
    'lsgan': ['--preset', 'lsgan'],
    'dcgan+conditional': ['--preset', 'dcgan', '--conditional'],
    'sngan+conditional+ema': ['--preset', 'sngan', '--conditional', '--ema', '0.999'],
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--iteration', type=int, default=200)
    p.add_argument('--base_width', type=int, default=32)
    p.add_argument('--only', nargs='*', choices=list(RUNS), help='run only these')
    args = p.parse_args()
    print(f'{"run":24} {"iters":>5} {"gen/loss":>10} {"dis/loss":>10} {"finite":>6} {"time s":>7}')
    all_finite = True
    for name in args.only or RUNS:
        with tempfile.TemporaryDirectory() as out:
            cmd = [sys.executable, os.path.join(ROOT, 'examples', 'train_dcgan.py'),
                   '--iteration', str(args.iteration), '--base_width', str(args.base_width),
                   '--out', out, '--no_progress', '--display_interval', '10',
                   '--snapshot_interval', str(args.iteration), *RUNS[name]]
            start = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            seconds = time.perf_counter() - start
            if proc.returncode != 0:
                print(f'{name:24} failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}')
                all_finite = False
                continue
            with open(os.path.join(out, 'log')) as f:
                log = json.load(f)
        values = [v for entry in log for v in entry.values() if isinstance(v, float)]
        finite = all(math.isfinite(v) for v in values)
        all_finite &= finite
        last = log[-1]
        print(f'{name:24} {last["iteration"]:5d} {last["gen/loss"]:10.4f} '
              f'{last["dis/loss"]:10.4f} {"yes" if finite else "NO":>6} {seconds:7.1f}')
    print('all runs finite' if all_finite else 'SOME RUN FAILED OR WENT NON-FINITE')
    return 0 if all_finite else 1


if __name__ == '__main__':
    sys.exit(main())
