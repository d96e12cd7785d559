#!/usr/bin/env python
"""Thread policies for oneDNN (OpenMP) and NumPy (OpenBLAS), alternating.

    python benchmarks/threads.py                  # default network, 2 rounds
    python benchmarks/threads.py --net digits28 --rounds 3
    python benchmarks/threads.py --busy --policies package,one_thread,numpy

Runs ``benchmarks/throughput.py --reuse_fakes`` once per policy and round,
in a fresh process each (the policies are environment variables, read when
the libraries start), the policies in turn within each round so that all
see the same load. Per policy it prints the median and the fastest window
of each round. The policies:

* ``package``: what :mod:`gan_trainer.ops.threads` sets (OpenMP threads
  spin ``GOMP_SPINCOUNT`` times before they sleep, OpenBLAS 1 thread);
* ``passive``: OpenMP threads sleep at once (``OMP_WAIT_POLICY=PASSIVE``),
  OpenBLAS 1 thread;
* ``active``: OpenMP threads spin (``OMP_WAIT_POLICY=ACTIVE``), OpenBLAS 1 thread;
* ``blas2``: the package's OpenMP setting, OpenBLAS 2 threads;
* ``one_thread``: one thread for each (``OMP_NUM_THREADS=1``);
* ``untouched``: neither set (``GAN_TRAINER_THREADS=0``): libgomp's and
  OpenBLAS's own defaults;
* ``numpy``: no oneDNN (``GAN_TRAINER_ONEDNN=0``): the NumPy functions.

``--busy`` starts a second process that keeps one core busy (a Python
loop, as another user's job would) before each run and stops it after:
the question of issue 25 (is oneDNN, with the team the package or the
user chose, ever slower than NumPy on shared cores?).

The last line is ``threads best POLICY``: the policy with the highest
median over all rounds.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
POLICIES = {
    'package': {},
    'passive': {'OMP_WAIT_POLICY': 'PASSIVE'},
    'active': {'OMP_WAIT_POLICY': 'ACTIVE'},
    'blas2': {'OPENBLAS_NUM_THREADS': '2'},
    'one_thread': {'OMP_NUM_THREADS': '1'},
    'untouched': {'GAN_TRAINER_THREADS': '0'},
    'numpy': {'GAN_TRAINER_ONEDNN': '0'},
}
_CLEARED = ('OMP_WAIT_POLICY', 'GOMP_SPINCOUNT', 'OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS',
            'MKL_NUM_THREADS', 'GAN_TRAINER_THREADS', 'GAN_TRAINER_ONEDNN')


def run(policy: str, net: str, windows: int, busy: bool = False) -> tuple[float, float]:
    """(median, fastest window) in img/s of one throughput.py run under ``policy``
    (beside a busy process with ``busy``)."""
    env = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    env.update(POLICIES[policy])
    neighbour = subprocess.Popen([sys.executable, '-c', 'while True: pass']) if busy else None
    try:
        out = subprocess.run(
            [sys.executable, os.path.join(HERE, 'throughput.py'), '--net', net, '--reuse_fakes',
             '--windows', str(windows)],
            env=env, capture_output=True, text=True, check=True).stdout
    finally:
        if neighbour is not None:
            neighbour.kill()
            neighbour.wait()
    m = re.search(r'^median ([\d.]+) img/s, range ([\d.]+) \.\. ([\d.]+)', out, re.MULTILINE)
    return float(m.group(1)), float(m.group(3))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--net', default='default', choices=('default', 'digits28', 'dcgan64'))
    p.add_argument('--rounds', type=int, default=2)
    p.add_argument('--windows', type=int, default=5)
    p.add_argument('--busy', action='store_true', help='beside a busy process (see above)')
    p.add_argument('--policies', default=','.join(POLICIES),
                   help='comma-separated subset of: ' + ', '.join(POLICIES))
    args = p.parse_args(argv)
    policies = args.policies.split(',')
    unknown = sorted(set(policies) - set(POLICIES))
    if unknown or args.rounds < 1 or args.windows < 1:
        p.error(f'unknown policies {unknown}' if unknown else '--rounds and --windows must be >= 1')
    medians = {name: [] for name in policies}
    for r in range(args.rounds):
        for name in policies:
            median, fastest = run(name, args.net, args.windows, args.busy)
            medians[name].append(median)
            print(f'round {r + 1} {name:10s} median {median:8.1f} img/s  fastest window '
                  f'{fastest:8.1f} img/s', flush=True)
    for name in policies:
        print(f'{name:10s} medians {", ".join(f"{v:.1f}" for v in medians[name])} img/s')
    best = max(policies, key=lambda n: statistics.median(medians[n]))
    print(f'threads best {best}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
