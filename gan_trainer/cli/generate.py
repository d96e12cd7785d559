"""``gan-trainer generate``: a grid, or single image files, from a generator snapshot.

    gan-trainer generate result/gen_iter_2500.npz --rows 8 --cols 8 --out grid.png
    gan-trainer generate result/gen_iter_2500.npz --nice --out nice.png
    gan-trainer generate result/gen_iter_2500.npz --n 500 --out_dir samples

The network is rebuilt from ``config.json`` in the snapshot's folder (or
``--config``). ``--nice`` draws 20 times as many images as it keeps and
keeps the 5% that the discriminator scores as most real; it reads the
matching ``dis_iter_N.npz`` (or ``--dis``). ``--out_dir`` writes one PNG per
image, ``DIR/000000.png`` ... (``--n`` of them, default rows x cols),
generated and written a thousand at a time, so any number fits in memory.
"""

from __future__ import annotations

import argparse
import os

import numpy

from gan_trainer import files
from gan_trainer.checkpoint import SnapshotError
from gan_trainer.cli._args import fail, integer, positive_int, run_command
from gan_trainer.cli._snapshot import (
    add_generator_args,
    label_listing,
    labels_for,
    load_cli_generator,
)
from gan_trainer.device import DeviceError, get_device
from gan_trainer.image import save_grid, save_images
from gan_trainer.run import memory
from gan_trainer.run.loading import load_discriminator
from gan_trainer.sampling import draw_hidden, generate, nice_samples

NICE_FACTOR = 20  # keep the top 1/20 = 5%
CHUNK = 1000  # images generated and written at a time with --out_dir


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_generator_args(p)
    a = p.add_argument
    a('--rows', type=positive_int, default=10)
    a('--cols', type=positive_int, default=10)
    a('--out', '-o', default='generated.png', help='PNG file to write')
    a('--n', type=positive_int, help='with --out_dir: number of images (default rows x cols)')
    a('--out_dir', help='write one PNG per image into this folder (000000.png, ...) instead')
    a('--seed', type=integer, default=0, help='seed of z')
    a('--gpu', '-g', type=integer, default=-1, help='GPU id; -1 (default) is the CPU')
    a('--nice', action='store_true',
      help=f'draw {NICE_FACTOR}x as many and keep the 5%% that D scores highest')
    a('--dis', help="discriminator snapshot for --nice (default: the gen's 'dis_' twin)")


def run(args: argparse.Namespace, prog: str) -> int:
    if args.n is not None and args.out_dir is None:
        return fail(prog, ValueError('--n needs --out_dir (the grid size is --rows x --cols)'))
    try:
        gen, record = load_cli_generator(args, lambda line: print(f'{prog}: {line}'))
        if args.list_labels:
            print('\n'.join(label_listing(record)))
            return 0
        device = get_device(args.gpu)
        gen.to_device(device)
        n = args.n or args.rows * args.cols
        shape = (gen.channels, gen.size, gen.size) if hasattr(gen, 'size') else (3, 64, 64)
        if args.out_dir is None or args.nice:
            factor = NICE_FACTOR if args.nice else 1
            memory.require(2 * memory.sampling_bytes(n * factor, shape),
                           f'{n * factor:,} images of {shape[1]}x{shape[2]}',
                           'ask for fewer (--rows/--cols/--n)')
        if args.nice:
            images = _nice(args, gen, record, n, device)
        elif args.out_dir is not None:
            return _write_files(args, gen, record, n, prog)
        else:
            z = draw_hidden(n, gen.n_hidden, z_dist=record.sampler, seed=args.seed)
            images = generate(gen, z, labels_for(args, record, n))
        if args.out_dir is not None:
            paths = save_images(images, args.out_dir)
            print(f'wrote {len(paths)} images to {args.out_dir} '
                  f'({paths[0].name} to {paths[-1].name})')
            return 0
        path = save_grid(images, args.out, args.rows, args.cols)
    except (SnapshotError, DeviceError, OSError) as e:
        return fail(prog, e)
    print(f'wrote {path}')
    return 0


def _nice(args, gen, record, n, device):
    dis_path = args.dis or files.twin(args.gen, 'dis')
    if not os.path.isfile(dis_path):
        raise SnapshotError(f"--nice needs the discriminator snapshot, and '{dis_path}' does "
                            'not exist: pass it with --dis')
    dis = load_discriminator(dis_path, args.config)
    dis.to_device(device)
    z = draw_hidden(n * NICE_FACTOR, gen.n_hidden, z_dist=record.sampler, seed=args.seed)
    return nice_samples(gen, dis, z, n, labels_for(args, record, n * NICE_FACTOR))


def _write_files(args, gen, record, n, prog) -> int:
    # One RandomState drawn from chunk after chunk gives the same z as one
    # draw of all n (its normal and uniform streams are sequential), so the
    # files are those of a single batch, at a chunk's memory.
    sampler, rng = record.sampler, numpy.random.RandomState(args.seed)
    labels = labels_for(args, record, n)
    first = last = None
    for start in range(0, n, CHUNK):
        stop = min(start + CHUNK, n)
        z = sampler(rng, stop - start, gen.n_hidden)
        images = generate(gen, z, None if labels is None else labels[start:stop])
        paths = save_images(images, args.out_dir, start=start)
        first = first or paths[0]
        last = paths[-1]
    print(f'wrote {n} images to {args.out_dir} ({first.name} to {last.name})')
    return 0


def main(argv=None, *, prog: str = 'gan-trainer generate') -> int:
    return run_command(argv, prog=prog, description='Generate images from a gan_trainer snapshot.',
                       add_arguments=add_arguments, run=run)
