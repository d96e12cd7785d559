#!/usr/bin/env python
"""Write a grid of images, or single image files, from a trained generator snapshot.

    python examples/generate.py result/gen_iter_2500.npz --rows 8 --cols 8 --out grid.png
    python examples/generate.py result/gen_iter_2500.npz --nice --out nice.png
    python examples/generate.py result/gen_iter_2500.npz --n 500 --out_dir samples

The network is rebuilt from ``config.json`` in the snapshot's folder (or
``--config``). ``--nice`` draws 20 times as many images as it keeps and
keeps the 5% that the discriminator scores as most real; it reads the
matching ``dis_iter_N.npz`` (or ``--dis``). ``--out_dir`` writes one PNG per
image, ``DIR/000000.png`` ... (``--n`` of them, default rows x cols), instead
of the grid: the same z and the same pixels as a grid of that many images.
"""

from __future__ import annotations

import argparse
import os
import sys

from _cli import (
    Parser,
    add_generator_args,
    fail,
    labels_for,
    load_cli_generator,
    positive_int,
    twin,
)

from gan_trainer.checkpoint import SnapshotError, load_discriminator
from gan_trainer.device import DeviceError, get_device
from gan_trainer.image import save_grid, save_images
from gan_trainer.sampling import draw_hidden, generate, nice_samples

PROG = 'generate.py'
NICE_FACTOR = 20  # keep the top 1/20 = 5%


def parse_args(argv=None) -> argparse.Namespace:
    p = Parser(prog=PROG, description='Generate images from a gan_trainer snapshot.')
    add_generator_args(p)
    a = p.add_argument
    a('--rows', type=positive_int, default=10)
    a('--cols', type=positive_int, default=10)
    a('--out', '-o', default='generated.png', help='PNG file to write')
    a('--n', type=positive_int, help='with --out_dir: number of images (default rows x cols)')
    a('--out_dir', help='write one PNG per image into this folder (000000.png, ...) instead')
    a('--seed', type=int, default=0, help='seed of z')
    a('--gpu', '-g', type=int, default=-1, help='GPU id; -1 (default) is the CPU')
    a('--nice', action='store_true',
      help=f'draw {NICE_FACTOR}x as many and keep the 5%% that D scores highest')
    a('--dis', help="discriminator snapshot for --nice (default: the gen's 'dis_' twin)")
    a('--label', type=int, help='class to generate (conditional snapshots only)')
    args = p.parse_args(argv)
    if args.n is not None and args.out_dir is None:
        p.error('--n needs --out_dir (the grid size is --rows x --cols)')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        device = get_device(args.gpu)
        gen, config = load_cli_generator(args, PROG)
        gen.to_device(device)
        n = args.n or args.rows * args.cols
        z_dist = config.get('z_dist', 'normal')
        if args.nice:
            dis_path = args.dis or twin(args.gen, 'dis_')
            if not os.path.isfile(dis_path):
                raise SnapshotError(
                    f"--nice needs the discriminator snapshot, and '{dis_path}' does not "
                    'exist: pass it with --dis')
            dis = load_discriminator(dis_path, args.config)
            dis.to_device(device)
            z = draw_hidden(n * NICE_FACTOR, gen.n_hidden, z_dist=z_dist, seed=args.seed)
            images = nice_samples(gen, dis, z, n, labels_for(args, config, n * NICE_FACTOR))
        else:
            z = draw_hidden(n, gen.n_hidden, z_dist=z_dist, seed=args.seed)
            images = generate(gen, z, labels_for(args, config, n))
        if args.out_dir is not None:
            paths = save_images(images, args.out_dir)
            print(f'wrote {len(paths)} images to {args.out_dir} '
                  f'({paths[0].name} to {paths[-1].name})')
            return 0
        path = save_grid(images, args.out, args.rows, args.cols)
    except (SnapshotError, DeviceError, OSError) as e:
        return fail(PROG, e)
    print(f'wrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
