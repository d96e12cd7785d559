"""``gan-trainer interpolate``: a grid of latent interpolations from a generator snapshot.

    gan-trainer interpolate result/gen_iter_2500.npz --out interpolation.png
    gan-trainer interpolate result/gen_iter_2500.npz --mode both --rows 4 --out both.png

Each row walks from one random z to another in ``--steps`` images; the first
and last columns are G of exactly those two vectors. ``--mode spherical``
(the default) follows the great circle between them (slerp), ``linear`` the
straight line (lerp), whose middle images come from shorter vectors than G
was trained on and are often blurrier; ``both`` writes each pair twice, a
linear row followed by a spherical row, so ``--rows R`` gives 2R rows. The
pairs are drawn with ``--seed`` from the run's z distribution. A conditional
snapshot keeps one class along a row: ``--label K`` for all rows, else row
``r`` is class ``r % n_classes``. A grid larger than the machine's memory is
refused before anything is generated.
"""

from __future__ import annotations

import argparse

import numpy

from gan_trainer.checkpoint import SnapshotError
from gan_trainer.cli._args import fail, integer, positive_int, run_command
from gan_trainer.cli._snapshot import (
    add_generator_args,
    label_listing,
    labels_for,
    load_cli_generator,
)
from gan_trainer.device import DeviceError, get_device
from gan_trainer.image import save_grid
from gan_trainer.run import memory
from gan_trainer.sampling import INTERPOLATIONS, draw_hidden, interpolation_grid

PADDING = 2  # pixels around and between grid cells (gan_trainer.image.tile_images)


def steps_arg(text: str) -> int:
    """argparse type: an integer >= 2 (a row holds both endpoints)."""
    value = positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f'must be at least 2 (the two endpoints), got {value}')
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_generator_args(p)
    a = p.add_argument
    a('--out', '-o', help='PNG file to write')
    a('--rows', type=positive_int, default=8, help='pairs of z, one row each (default 8)')
    a('--steps', type=steps_arg, default=10, help='images per row, endpoints included')
    a('--mode', default='spherical', choices=[*INTERPOLATIONS, 'both'],
      help='spherical (slerp, default), linear (lerp), or both: alternating rows')
    a('--seed', type=integer, default=0, help='seed of the z pairs')
    a('--gpu', '-g', type=integer, default=-1, help='GPU id; -1 (default) is the CPU')


def grid_bytes(rows: int, cols: int, shape) -> int:
    """Bytes of a grid image and of the float images in it."""
    channels, height, width = shape
    pixels = (rows * (height + PADDING) + PADDING) * (cols * (width + PADDING) + PADDING)
    return pixels * channels + memory.sampling_bytes(rows * cols, shape)


def run(args: argparse.Namespace, prog: str) -> int:
    try:
        gen, record = load_cli_generator(args, lambda line: print(f'{prog}: {line}'))
        if args.list_labels:
            print('\n'.join(label_listing(record)))
            return 0
        if args.out is None:
            return fail(prog, ValueError('--out is required (the PNG file to write)'))
        modes = list(INTERPOLATIONS) if args.mode == 'both' else [args.mode]
        shape = (gen.channels, gen.size, gen.size) if hasattr(gen, 'size') else (3, 64, 64)
        memory.require(2 * grid_bytes(args.rows * len(modes), args.steps, shape),
                       f'a grid of {args.rows * len(modes):,} x {args.steps:,} images',
                       'use fewer --rows or --steps')
        device = get_device(args.gpu)
        gen.to_device(device)
        z = draw_hidden(2 * args.rows, gen.n_hidden, z_dist=record.sampler, seed=args.seed)
        pairs = z.reshape(args.rows, 2, gen.n_hidden)  # (start, end) per row
        labels = labels_for(args, record, args.rows)
        blocks = [interpolation_grid(gen, pairs, args.steps, mode=mode, labels=labels)
                  for mode in modes]
        # (modes, rows * steps, C, H, W) -> rows of (mode 0, mode 1, ...) per pair
        images = numpy.stack(blocks).reshape(len(modes), args.rows, args.steps,
                                             *blocks[0].shape[1:])
        images = images.transpose(1, 0, 2, 3, 4, 5).reshape(-1, *blocks[0].shape[1:])
        path = save_grid(images, args.out, args.rows * len(modes), args.steps)
    except (SnapshotError, DeviceError, OSError) as e:
        return fail(prog, e)
    print(f'wrote {path}')
    return 0


def main(argv=None, *, prog: str = 'gan-trainer interpolate') -> int:
    return run_command(argv, prog=prog, description='Interpolate between latent vectors of a snapshot.',
                       add_arguments=add_arguments, run=run)
