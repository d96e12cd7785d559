#!/usr/bin/env python
"""Milliseconds per iteration of each write-up's preset on the CPU, and of the same nets in PyTorch.

    python benchmarks/recipe_steps.py                   # the presets' own batches
    python benchmarks/recipe_steps.py --repeats 3 --iters 2 --only dcgan keras-dcgan
    TORCH_PYTHON=/work/venv-torch/bin/python python benchmarks/recipe_steps.py --torch
    python benchmarks/recipe_steps.py --stages          # G's upsampling stages alone

Each recipe is a preset (:mod:`gan_trainer.run.presets`: ``dcgan`` and the
write-ups' ``keras-dcgan``, ``keras-dcgan-notes``, ``chainer-example`` and
``tf-gan``) built as a run builds it (:func:`gan_trainer.run.build_trainer`
into a temporary folder: its nets, optimizers and updater, on the built-in
digits, at the preset's batch size unless ``--batchsize`` is given); only
``updater.update()`` is timed, so no extension runs.

Protocol: one untimed warm-up iteration per recipe, then ``--repeats``
rounds in which every recipe runs ``--iters`` iterations in turn
(round-robin, so a change in the machine's load reaches every recipe
alike); the figure is the median round's milliseconds per iteration, with
the fastest and slowest round beside it. With ``--torch`` every round also
runs ``benchmarks/peers/torch_presets.py`` (by ``$TORCH_PYTHON``) right
after each recipe: the same networks, batch and loop in PyTorch, one
warm-up and ``--iters`` timed iterations per round, and the table gains
PyTorch's median and ours over it. Run it under the machine's CPU lock;
the first line names the CPU.

``--stages`` times instead the generator's upsampling stages of these
recipes (nearest-neighbour upsampling and a stride-1 convolution, forward
and backward, batch ``--batchsize``) both ways: as written (upsample, then
:class:`gan_trainer.ops.Convolution2D`) and fused into one transposed
convolution (:func:`gan_trainer.nets._layers.upsample_conv`, what the nets
run on the CPU), alternating in each round; it prints the median
milliseconds of each and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import chainer
import numpy

from gan_trainer import ops
from gan_trainer.nets._layers import upsample, upsample_conv
from gan_trainer.run import build_trainer, get_preset

#: The recipes timed: the DCGAN paper's preset and the write-ups'.
RECIPES = ('dcgan', 'keras-dcgan', 'keras-dcgan-notes', 'chainer-example', 'tf-gan')
TORCH_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'peers',
                            'torch_presets.py')


def cpu_name() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            lines = f.read().splitlines()
    except OSError:
        return platform.processor() or 'unknown CPU'
    name = next((ln.split(':', 1)[1].strip() for ln in lines if ln.startswith('model name')),
                'unknown CPU')
    flags = next((ln for ln in lines if ln.startswith('flags')), '')
    return f'{name}, {os.cpu_count()} cores, AVX-512 {"yes" if "avx512f" in flags else "no"}'


def make_updater(name: str, batchsize: int | None, out: str):
    """The preset's updater, as a run builds it; and what PyTorch needs to build the same."""
    config = get_preset(name).replace(batchsize=batchsize, out=out, progress=False,
                                      iteration=10**6)
    updater = build_trainer(config, log=None).updater
    torch_run = {'gen': updater.gen.config(), 'dis': updater.dis.config(),
                 'batchsize': config.batchsize, 'z_dist': config.z_dist,
                 'loss': config.loss, 'n_dis': config.n_dis, 'order': config.order,
                 'separate_batches': config.separate_batches,
                 'reuse_fakes': config.reuse_fakes,
                 'opt_gen': config.optimizer_spec('gen').settings(),
                 'opt_dis': config.optimizer_spec('dis').settings()}
    return updater, torch_run


def n_params(link: chainer.Link) -> int:
    return sum(p.size for p in link.params())


def torch_ms(python: str, run: dict, iters: int, updater) -> float:
    """PyTorch's milliseconds per iteration of ``run`` (one process, one warm-up).

    Fails unless PyTorch's G and D have as many parameters as the package's.
    """
    proc = subprocess.run([python, TORCH_SCRIPT, '--config', json.dumps(run),
                           '--iters', str(iters)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or ['(no output)']
        raise SystemExit(f'recipe_steps.py: error: torch_presets.py: {lines[-1]}')
    lines = proc.stdout.strip().splitlines()
    theirs = next(ln for ln in lines if ln.startswith('# parameters')).split()[3::2]
    ours = [n_params(updater.gen), n_params(updater.dis)]
    if [int(n) for n in theirs] != ours:
        raise SystemExit(f'recipe_steps.py: error: PyTorch built other nets: parameters of G '
                         f'and D {theirs}, ours {ours}')
    return float(lines[-1].split()[1])


#: G's upsampling stages at 28x28: (name, in channels, out channels, input side, ksize).
STAGES = [
    ('keras-dcgan stage 0', 128, 64, 7, 5),
    ('keras-dcgan stage 1', 64, 1, 14, 5),
    ('keras-dcgan-notes stage 0', 128, 64, 7, 3),
]


def time_stages(batchsize: int, repeats: int, iters: int) -> None:
    """Prints the median ms of each stage, unfused and fused (alternating)."""
    rng = numpy.random.RandomState(0)
    print(f'{"stage":28} {"as written":>10} {"fused":>8} {"ratio":>6}')
    for name, c_in, c_out, side, k in STAGES:
        conv = ops.Convolution2D(c_in, c_out, k, pad=k // 2)
        # Channel-last, as the fast layers before a stage leave their maps.
        x = rng.randn(batchsize, side, side, c_in).astype(numpy.float32).transpose(0, 3, 1, 2)
        ways = {'as written': lambda v, conv=conv: conv(upsample(v, 'nearest')),
                'fused': lambda v, conv=conv: upsample_conv(conv, v, 'nearest')}
        times = {way: [] for way in ways}
        for _ in range(repeats + 1):  # the first round warms up
            for way, stage in ways.items():
                start = time.perf_counter()
                for _ in range(iters):
                    v = chainer.Variable(x)
                    y = stage(v)
                    y.grad = numpy.ones_like(y.array)
                    conv.cleargrads()
                    y.backward()
                times[way].append(1e3 * (time.perf_counter() - start) / iters)
        plain, fused = (statistics.median(times[w][1:]) for w in ways)
        print(f'{name:28} {plain:10.1f} {fused:8.1f} {plain / fused:6.2f}')


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--batchsize', type=int, help="images per batch (default: each preset's)")
    p.add_argument('--iters', type=int, default=3, help='iterations per recipe per round')
    p.add_argument('--repeats', type=int, default=5, help='rounds')
    p.add_argument('--only', nargs='*', choices=RECIPES, help='time only these')
    p.add_argument('--torch', action='store_true',
                   help='also time the same nets in PyTorch ($TORCH_PYTHON)')
    p.add_argument('--stages', action='store_true',
                   help="time G's upsampling stages as written and fused instead")
    args = p.parse_args()
    if (args.batchsize is not None and args.batchsize < 1) or args.iters < 1 or args.repeats < 1:
        p.error('--batchsize, --iters and --repeats must be at least 1')
    torch_python = os.environ.get('TORCH_PYTHON', sys.executable)
    if args.torch and subprocess.run([torch_python, '-c', 'import torch'],
                                     capture_output=True, check=False).returncode:
        p.error(f'--torch: {torch_python} cannot import torch (set TORCH_PYTHON)')
    names = args.only or list(RECIPES)
    print(f'cpu: {cpu_name()}')
    if args.stages:
        batch = args.batchsize or 64
        print(f'batch {batch}, {args.repeats} rounds of {args.iters} forward+backward')
        time_stages(batch, args.repeats, args.iters)
        return 0
    batch = args.batchsize or "each preset's"
    print(f'batch {batch}, 1x28x28, {args.repeats} rounds of {args.iters} iterations')
    with tempfile.TemporaryDirectory() as tmp:
        built = {name: make_updater(name, args.batchsize, os.path.join(tmp, name))
                 for name in names}
        for updater, _ in built.values():
            updater.update()  # warm-up: allocations, the fast path's first calls
        rounds = {name: [] for name in names}
        torch_rounds = {name: [] for name in names}
        for _ in range(args.repeats):
            for name, (updater, run) in built.items():
                start = time.perf_counter()
                for _ in range(args.iters):
                    updater.update()
                rounds[name].append(1e3 * (time.perf_counter() - start) / args.iters)
                if args.torch:
                    torch_rounds[name].append(torch_ms(torch_python, run, args.iters, updater))
    header = f'{"recipe":20} {"ms/iter":>8} {"fastest":>8} {"slowest":>8}'
    print(header + (f' {"torch":>8} {"ours/torch":>10}' if args.torch else ''))
    for name, times in rounds.items():
        line = (f'{name:20} {statistics.median(times):8.1f} {min(times):8.1f} '
                f'{max(times):8.1f}')
        if args.torch:
            theirs = statistics.median(torch_rounds[name])
            line += f' {theirs:8.1f} {statistics.median(times) / theirs:10.2f}'
        print(line)
    return 0


if __name__ == '__main__':
    sys.exit(main())
