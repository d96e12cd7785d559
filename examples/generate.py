#!/usr/bin/env python
"""Write a grid of images from a trained generator snapshot.

    python examples/generate.py result/gen_iter_1200.npz --rows 8 --cols 8 --out grid.png
    python examples/generate.py result/gen_iter_1200.npz --nice --out nice.png

The network is rebuilt from ``config.json`` in the snapshot's folder (or
``--config``). ``--nice`` draws 20 times as many images as the grid holds
and keeps the 5% that the discriminator scores as most real; it reads the
matching ``dis_iter_N.npz`` (or ``--dis``).
"""

from __future__ import annotations

import argparse
import os
import sys

from _cli import Parser, fail, positive_int

import gan_trainer  # noqa: F401  (first: makes Chainer work on today's NumPy)
from gan_trainer.checkpoint import SnapshotError, load_discriminator, load_generator
from gan_trainer.device import DeviceError, get_device
from gan_trainer.image import save_grid
from gan_trainer.sampling import draw_hidden, generate, nice_samples

PROG = 'generate.py'
NICE_FACTOR = 20  # keep the top 1/20 = 5%


def parse_args(argv=None) -> argparse.Namespace:
    p = Parser(prog=PROG, description='Generate images from a gan_trainer snapshot.')
    a = p.add_argument
    a('gen', metavar='GEN_SNAPSHOT', help='generator snapshot, e.g. result/gen_iter_1200.npz')
    a('--rows', type=positive_int, default=10)
    a('--cols', type=positive_int, default=10)
    a('--out', '-o', default='generated.png', help='PNG file to write')
    a('--seed', type=int, default=0, help='seed of z')
    a('--gpu', '-g', type=int, default=-1, help='GPU id; -1 (default) is the CPU')
    a('--config', help='config.json of the run (default: beside the snapshot)')
    a('--nice', action='store_true',
      help=f'draw {NICE_FACTOR}x as many and keep the 5%% that D scores highest')
    a('--dis', help="discriminator snapshot for --nice (default: the gen's 'dis_' twin)")
    return p.parse_args(argv)


def dis_twin(gen_path: str) -> str:
    folder, name = os.path.split(gen_path)
    return os.path.join(folder, name.replace('gen', 'dis', 1))


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        device = get_device(args.gpu)
        gen, config = load_generator(args.gen, args.config)
        gen.to_device(device)
        n = args.rows * args.cols
        z_dist = config.get('z_dist', 'normal')
        if args.nice:
            dis_path = args.dis or dis_twin(args.gen)
            if not os.path.isfile(dis_path):
                raise SnapshotError(
                    f"--nice needs the discriminator snapshot, and '{dis_path}' does not "
                    'exist: pass it with --dis')
            dis = load_discriminator(dis_path, args.config)
            dis.to_device(device)
            z = draw_hidden(n * NICE_FACTOR, gen.n_hidden, z_dist=z_dist, seed=args.seed)
            images = nice_samples(gen, dis, z, n)
        else:
            images = generate(gen, draw_hidden(n, gen.n_hidden, z_dist=z_dist, seed=args.seed))
        path = save_grid(images, args.out, args.rows, args.cols)
    except (SnapshotError, DeviceError, OSError) as e:
        return fail(PROG, e)
    print(f'wrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
