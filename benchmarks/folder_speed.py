#!/usr/bin/env python
"""Training on a folder of pictures: decoded once and read from memory, or every epoch.

    python benchmarks/folder_speed.py                       # 2,000 small PNGs, --size 64
    python benchmarks/folder_speed.py --kind photo --images 600 --rounds 2

Writes a folder of synthetic pictures into a temporary directory
(``--kind png``: 96x96 PNGs of coloured discs; ``photo``: 640x480 JPEGs
with gradients, noise and discs, as a camera's would be decoded), then
trains ``examples/train_dcgan.py --dataset FOLDER --size SIZE`` in whole
processes, the settings in turn within each round so that all see the
same load:

* ``memory``: the default: the folder's pixels fit in memory, so they are
  decoded once, when the folder is read, and every epoch reads them from
  there (:class:`gan_trainer.datasets.ImageFolderDataset`); no loader
  processes, so oneDNN's team has every core;
* ``epoch``: the default before: ``--loaderjob 2`` (two loader processes
  decode every epoch's images) with oneDNN's team sized for three
  processes, as :func:`gan_trainer.ops.threads.share_cores` was called
  then (``OMP_NUM_THREADS`` = the cores // 3, at least 1);
* ``epoch_team``: ``--loaderjob 2`` as the package runs it now, the team
  sized by the cores (the loaders not counted).

Each line gives the seconds per iteration between ``--from`` and the last
iteration (the log's ``elapsed_time``) and the seconds the process spent
outside training (starting, reading the folder, ending). The last
lines are ``folder SETTING median X s/it``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy
from PIL import Image, ImageDraw

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = ('memory', 'epoch', 'epoch_team')


def write_folder(root: str, n: int, kind: str) -> None:
    rng = numpy.random.default_rng(0)
    w, h = (96, 96) if kind == 'png' else (640, 480)
    yy, xx = numpy.mgrid[0:h, 0:w]
    for i in range(n):
        if kind == 'png':
            img = Image.new('RGB', (w, h), tuple(int(v) for v in rng.integers(0, 256, 3)))
        else:
            a = rng.uniform(0, 1, 5)
            base = numpy.stack([numpy.sin(xx / (40 + 60 * a[0]) + 6 * a[1]) * 80 + 128,
                                numpy.cos(yy / (30 + 50 * a[2]) + 6 * a[3]) * 80 + 128,
                                (xx + yy) / (w + h) * 255 * a[4]], -1)
            base += rng.normal(0, 12, base.shape)
            img = Image.fromarray(numpy.clip(base, 0, 255).astype(numpy.uint8))
        draw = ImageDraw.Draw(img)
        for _ in range(3 if kind == 'png' else 6):
            x, y = (int(v) for v in rng.integers(0, min(w, h) - 10, 2))
            r = int(rng.integers(5, min(w, h) // 3))
            draw.ellipse([x, y, x + r, y + r], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        img.save(os.path.join(root, f'{i:05d}.{"png" if kind == "png" else "jpg"}'),
                 **({} if kind == 'png' else {'quality': 90}))


def run(setting: str, folder: str, out: str, args) -> tuple[float, float]:
    """(s/it from --from to the end, s of the process outside the trainer's elapsed time)."""
    env = dict(os.environ)
    flags = []
    if setting != 'memory':
        flags = ['--loaderjob', '2']
    if setting == 'epoch':
        env['OMP_NUM_THREADS'] = str(max(1, len(os.sched_getaffinity(0)) // 3))
    cmd = [sys.executable, os.path.join(ROOT, 'examples', 'train_dcgan.py'), '--dataset', folder,
           '--size', str(args.size), '--iteration', str(args.iteration), '--display_interval',
           str(args.every), '--eval_interval', '1000000', '--snapshot_interval', '1000000',
           '--preview_interval', '1000000', '--no_progress', '--out', out, *flags]
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    with open(os.path.join(out, 'log')) as f:
        elapsed = {r['iteration']: r['elapsed_time'] for r in json.load(f)}
    last = max(elapsed)
    per_it = (elapsed[last] - elapsed[args.start]) / (last - args.start)
    return per_it, wall - elapsed[last]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--kind', choices=('png', 'photo'), default='png')
    p.add_argument('--images', type=int, default=2000)
    p.add_argument('--size', type=int, default=64)
    p.add_argument('--iteration', type=int, default=60)
    p.add_argument('--from', dest='start', type=int, default=20)
    p.add_argument('--every', type=int, default=10, help='log interval (iterations)')
    p.add_argument('--rounds', type=int, default=2)
    p.add_argument('--settings', default=','.join(SETTINGS))
    args = p.parse_args(argv)
    settings = args.settings.split(',')
    if set(settings) - set(SETTINGS) or args.start % args.every or args.start >= args.iteration:
        p.error(f'--settings from {SETTINGS}; --from a multiple of --every below --iteration')
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, 'pictures')
        os.mkdir(folder)
        write_folder(folder, args.images, args.kind)
        print(f'# {args.images} {args.kind} pictures, --size {args.size}, '
              f'{len(os.sched_getaffinity(0))} cores', flush=True)
        times = {s: [] for s in settings}
        for r in range(1, args.rounds + 1):
            for s in settings:
                per_it, startup = run(s, folder, os.path.join(tmp, f'{s}{r}'), args)
                times[s].append(per_it)
                print(f'round {r} {s:10s} {per_it:.3f} s/it, {startup:.1f} s outside training', flush=True)
    for s in settings:
        print(f'folder {s} median {statistics.median(times[s]):.3f} s/it')
    return 0


if __name__ == '__main__':
    sys.exit(main())
