#!/usr/bin/env python
"""Whole training processes against PyTorch's DCGAN loop, ms per iteration, alternating.

    TORCH_PYTHON=/path/to/venv-with-torch/bin/python python benchmarks/whole_vs_torch.py
    ... --nets default --rounds 3
    python benchmarks/whole_vs_torch.py --ours dcgan64 --iterations 60   # one side alone

For each round and each network (``--nets``), one process of ours, then
one of PyTorch's (``benchmarks/torch_train.py``), each a fresh interpreter
timed as a whole, so both see the same load:

* **ours**: the run of ``python examples/train_dcgan.py [FLAGS]``, built the
  same way (:func:`~gan_trainer.cli.train.parse_config` ->
  :func:`~gan_trainer.run.build_trainer` -> ``run()``, every extension of
  the run: NaN guard, divergence monitor, log and printed report every 50
  iterations), with ``--no_progress`` and the preview, validation and
  snapshot intervals beyond the measured iterations, as issue 29 measured
  (PyTorch's loop has none of them);
* **PyTorch**: the same network, batch, optimizer and loss in the loop of
  PyTorch's DCGAN example (``torch_train.py``: G runs once per iteration,
  as the default run's reused fakes).

The networks: ``default`` (the default run: digits, base width 32,
least-squares loss, reused fakes), ``digits28`` (the same run at base
width 64) and ``dcgan64`` (64x64 RGB, the paper's widths 64-512, on
random images held in memory on both sides, since neither should decode
files here). The figure is milliseconds per iteration from iteration
``--from_iteration`` on (the first ones build oneDNN's primitives and
warm the caches), from one timestamp per iteration on both sides; the
process's wall time (interpreter start, imports, data, building) is
printed beside it. The last lines are one per network and round:
``whole NET ROUND ours X ms torch Y ms ratio R`` (``R = Y / X``: above 1,
ours is faster).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

#: name: (ours: flags of train_dcgan.py, torch_train.py flags, iterations, window start)
NETS = {
    'default': ([], ['--loss', 'lsgan'], 500, 100),
    'digits28': (['--base_width', '64'], ['--loss', 'lsgan', '--base_width', '64'], 400, 100),
    'dcgan64': (['--size', '64', '--base_width', '64'],
                ['--loss', 'lsgan', '--net', 'dcgan64'], 60, 15),
}


def random_rgb64(n: int = 512):
    """In-memory random 64x64 RGB images in [-1, 1] (dcgan64's data, as on PyTorch's side)."""
    import numpy

    from gan_trainer.datasets import Data
    images = numpy.random.RandomState(0).uniform(-1, 1, (n, 3, 64, 64)).astype(numpy.float32)
    return Data.of(list(images), name='random64')


def run_ours(net: str, iterations: int, first: int) -> int:
    """One of our processes (``--ours NET``): prints ``ours ... ms/iteration``."""
    import chainer

    from gan_trainer.cli.train import parse_config
    from gan_trainer.run import build_trainer

    stamps = []

    @chainer.training.make_extension(trigger=(1, 'iteration'), priority=-10**6)
    def timeline(trainer):
        stamps.append(time.perf_counter())

    flags = NETS[net][0]
    far = str(10 * iterations)
    with tempfile.TemporaryDirectory() as out:
        config = parse_config([*flags, '--iteration', str(iterations), '--no_progress',
                               '--out', out, '--preview_interval', far, '--eval_interval', far,
                               '--snapshot_interval', far], prog='whole_vs_torch.py')
        data = random_rgb64() if net == 'dcgan64' else None
        trainer = build_trainer(config, data=data, log=None)
        trainer.extend(timeline)
        trainer.run()  # its log lines go to stdout, as the command's
    # stamps[i]: the end of iteration i + 1; the last one runs the end-of-run extensions.
    window = stamps[first - 1:-1]
    ms = 1e3 * (window[-1] - window[0]) / (len(window) - 1)
    print(f'ms/iteration {ms:.2f} (iterations {first + 1}-{iterations - 1})')
    return 0


def timed(command: list[str]) -> tuple[float, float, str]:
    """(ms/iteration, process seconds, output) of one process."""
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    m = re.search(r'^ms/iteration ([\d.]+)', result.stdout, re.MULTILINE)
    if result.returncode != 0 or m is None:
        sys.exit(f'whole_vs_torch.py: error: {" ".join(command)} failed:\n'
                 f'{result.stdout[-2000:]}{result.stderr[-2000:]}')
    return float(m.group(1)), seconds, result.stdout


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--nets', default=','.join(NETS))
    p.add_argument('--rounds', type=int, default=2)
    p.add_argument('--iterations', type=int, default=None,
                   help='per process (default: 500, 400, 60 for the three networks)')
    p.add_argument('--ours', choices=sorted(NETS), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.ours:
        _, _, iterations, first = NETS[args.ours]
        iterations = args.iterations or iterations
        return run_ours(args.ours, iterations, min(first, iterations // 4))
    torch_py = os.environ.get('TORCH_PYTHON', sys.executable)
    nets = args.nets.split(',')
    unknown = sorted(set(nets) - set(NETS))
    if unknown:
        p.error(f'unknown networks {unknown}; valid: {", ".join(NETS)}')
    check = subprocess.run([torch_py, '-c', 'import torch'], capture_output=True, check=False)
    if check.returncode != 0:
        p.error(f'{torch_py} cannot import torch (set TORCH_PYTHON)')
    with tempfile.TemporaryDirectory() as tmp:
        digits = os.path.join(tmp, 'digits.npy')
        subprocess.run([sys.executable, os.path.join(HERE, 'fid_of.py'), '--export', digits],
                       check=True, capture_output=True)
        import platform
        print(f'# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; '
              f'ours: {sys.executable}, PyTorch: {torch_py}', flush=True)
        lines = []
        for r in range(1, args.rounds + 1):
            for net in nets:
                _, torch_flags, iterations, first = NETS[net]
                iterations = args.iterations or iterations
                first = min(first, iterations // 4)
                ours, ours_s, _ = timed([sys.executable, __file__, '--ours', net,
                                         '--iterations', str(iterations)])
                theirs, theirs_s, _ = timed(
                    [torch_py, os.path.join(HERE, 'torch_train.py'), '--data', digits,
                     '--samples', os.path.join(tmp, 'samples.npy'), '--n_samples', '16',
                     '--iterations', str(iterations), '--from_iteration', str(first),
                     *torch_flags])
                print(f'round {r} {net}: ours {ours:.2f} ms/iteration ({ours_s:.1f} s process), '
                      f'PyTorch {theirs:.2f} ms/iteration ({theirs_s:.1f} s process)', flush=True)
                lines.append(f'whole {net} {r} ours {ours:.2f} ms torch {theirs:.2f} ms '
                             f'ratio {theirs / ours:.2f}')
    print('\n'.join(lines))
    return 0


if __name__ == '__main__':
    sys.exit(main())
