#!/usr/bin/env python
"""Write a grid of latent interpolations from a trained generator snapshot.

    python examples/interpolate.py result/gen_iter_2500.npz --out interpolation.png
    python examples/interpolate.py result/gen_iter_2500.npz --mode both --rows 4 --out both.png

Each row walks from one random z to another in ``--steps`` images; the first
and last columns are G of exactly those two vectors. ``--mode spherical``
(the default) follows the great circle between them (slerp), ``linear`` the
straight line (lerp), whose middle images come from shorter vectors than G
was trained on and are often blurrier; ``both`` writes each pair twice, a
linear row followed by a spherical row, so ``--rows R`` gives 2R rows. The
pairs are drawn with ``--seed`` from the run's z distribution. A conditional
snapshot keeps one class along a row: ``--label K`` for all rows, else row
``r`` is class ``r % n_classes``.
"""

from __future__ import annotations

import argparse
import sys

import numpy
from _cli import Parser, add_generator_args, fail, labels_for, load_cli_generator, positive_int

from gan_trainer.checkpoint import SnapshotError
from gan_trainer.device import DeviceError, get_device
from gan_trainer.image import save_grid
from gan_trainer.sampling import INTERPOLATIONS, draw_hidden, interpolation_grid

PROG = 'interpolate.py'


def steps_arg(text: str) -> int:
    """argparse type: an integer >= 2 (a row holds both endpoints)."""
    value = positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f'must be at least 2 (the two endpoints), got {value}')
    return value


def parse_args(argv=None) -> argparse.Namespace:
    p = Parser(prog=PROG, description='Interpolate between latent vectors of a snapshot.')
    add_generator_args(p)
    a = p.add_argument
    a('--out', '-o', required=True, help='PNG file to write')
    a('--rows', type=positive_int, default=8, help='pairs of z, one row each (default 8)')
    a('--steps', type=steps_arg, default=10, help='images per row, endpoints included')
    a(
        '--mode',
        default='spherical',
        choices=[*INTERPOLATIONS, 'both'],
        help='spherical (slerp, default), linear (lerp), or both: alternating rows',
    )
    a('--seed', type=int, default=0, help='seed of the z pairs')
    a('--label', type=int, help='class of every row (conditional snapshots only)')
    a('--gpu', '-g', type=int, default=-1, help='GPU id; -1 (default) is the CPU')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        device = get_device(args.gpu)
        gen, config = load_cli_generator(args, PROG)
        gen.to_device(device)
        z = draw_hidden(
            2 * args.rows, gen.n_hidden, z_dist=config.get('z_dist', 'normal'), seed=args.seed
        )
        pairs = z.reshape(args.rows, 2, gen.n_hidden)  # (start, end) per row
        labels = labels_for(args, config, args.rows)
        modes = list(INTERPOLATIONS) if args.mode == 'both' else [args.mode]
        blocks = [
            interpolation_grid(gen, pairs, args.steps, mode=mode, labels=labels) for mode in modes
        ]
        # (modes, rows * steps, C, H, W) -> rows of (mode 0, mode 1, ...) per pair
        images = numpy.stack(blocks).reshape(
            len(modes), args.rows, args.steps, *blocks[0].shape[1:]
        )
        images = images.transpose(1, 0, 2, 3, 4, 5).reshape(-1, *blocks[0].shape[1:])
        path = save_grid(images, args.out, args.rows * len(modes), args.steps)
    except (SnapshotError, DeviceError, OSError) as e:
        return fail(PROG, e)
    print(f'wrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
