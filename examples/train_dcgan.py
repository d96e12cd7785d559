#!/usr/bin/env python
"""Train a DCGAN on the built-in digits or a folder of your images.

    python examples/train_dcgan.py                       # digits, CPU
    python examples/train_dcgan.py --gpu 0               # digits, first GPU
    python examples/train_dcgan.py --dataset ~/faces --size 64 --iteration 20000
    python examples/train_dcgan.py --resume result/snapshot_iter_1000

Writes into ``--out`` (``result``): ``log`` (JSON), ``loss.png``,
``preview/image_*.png`` and ``preview/latest.png`` (G(z) for a fixed z),
``snapshot_iter_N`` (whole trainer, for ``--resume``), ``gen_iter_N.npz`` /
``dis_iter_N.npz`` (for ``generate.py``) and ``config.json``. The flags that
Chainer's own DCGAN example has keep their names there.

This script only turns flags into objects; everything it uses is in the
``gan_trainer`` package.
"""

from __future__ import annotations

import argparse
import math
import sys

import chainer
from _cli import Parser, fail, int_list, positive_int
from chainer import training
from chainer.training import extensions

import gan_trainer  # noqa: F401  (first: makes Chainer work on today's NumPy)
from gan_trainer import GANEvaluator, GANUpdater
from gan_trainer.checkpoint import SnapshotError, check_writable, load_params, save_config
from gan_trainer.datasets import DatasetError, image_shape, load_dataset
from gan_trainer.device import DeviceError, get_device
from gan_trainer.extensions import ImageGrid
from gan_trainer.latent import SAMPLERS, global_seed
from gan_trainer.losses import LOSSES
from gan_trainer.nets import Discriminator, Generator

PROG = 'train_dcgan.py'


def build_parser() -> Parser:
    p = Parser(prog=PROG, description='Train a DCGAN with gan_trainer.')
    a = p.add_argument
    a('--gpu', '-g', type=int, default=-1, help='GPU id; -1 (default) runs on the CPU')
    a('--batchsize', '-b', type=positive_int, default=64, help='images per batch')
    a('--iteration', type=positive_int, default=1200, help='G updates to train (default 1200)')
    a('--epoch', '-e', type=positive_int, help='train this many epochs instead of --iteration')
    a('--out', '-o', default='result', help='output folder')
    a('--resume', '-r', help='trainer snapshot to resume from')
    a('--seed', type=int, default=0, help='seed for weights, z and data order')
    a('--n_hidden', '-n', type=positive_int, default=100, help='dimension of z')
    a('--snapshot_interval', type=positive_int, default=500, help='iterations between snapshots')
    a('--display_interval', type=positive_int, default=50, help='iterations between log lines')
    a('--preview_interval', type=positive_int, default=100, help='iterations between grids')
    a('--eval_interval', type=positive_int, default=500, help='iterations between validations')
    a('--keep', type=positive_int, default=3, help='snapshots of each kind to keep')
    a('--dataset', default='digits', help="'digits' (built in), 'mnist', 'cifar10' or a folder")
    a('--size', type=positive_int, help='image side (digits: 28, folders: 64)')
    a('--gray', action='store_true', help='convert folder images to grayscale')
    a('--loss', default='nonsaturating', choices=sorted(LOSSES), help='GAN loss')
    a('--n_dis', type=positive_int, default=1, help='D steps per G step')
    a('--order', default='dis_first', choices=['dis_first', 'gen_first'])
    a('--z_dist', default='normal', choices=sorted(SAMPLERS), help='distribution of z')
    a('--concat_batches', action='store_true',
      help='feed real and fake to D in one batch (breaks BatchNorm; for comparison)')
    a('--widths', type=int_list, help='D conv widths, e.g. 64,128,256 (G mirrors them)')
    a('--base_width', type=positive_int, default=32, help='width of the first D layer')
    a('--ksize', type=int, default=4, choices=[4, 5], help='convolution kernel size')
    a('--lr', type=float, default=2e-4, help='Adam learning rate (DCGAN: 2e-4)')
    a('--beta1', type=float, default=0.5, help='Adam beta1 (DCGAN: 0.5)')
    a('--no_progress', action='store_true', help='no progress bar (for logs and CI)')
    return p


def parse_args(argv=None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def make_optimizer(link, args):
    optimizer = chainer.optimizers.Adam(alpha=args.lr, beta1=args.beta1)
    optimizer.setup(link)
    return optimizer


def build(args):
    """Builds the trainer from parsed flags; raises the package's errors."""
    device = get_device(args.gpu)
    check_writable(args.out)
    train, test = load_dataset(args.dataset, size=args.size, gray=args.gray)
    channels, size, _ = image_shape(train)
    gen_config = {'size': size, 'channels': channels, 'n_hidden': args.n_hidden,
                      'widths': args.widths, 'base_width': args.base_width, 'ksize': args.ksize}
    with global_seed(args.seed):
        gen = Generator(**gen_config)
        dis = Discriminator(**{k: v for k, v in gen_config.items() if k != 'n_hidden'})
    gen.to_device(device)
    dis.to_device(device)

    train_iter = chainer.iterators.SerialIterator(
        train, args.batchsize,
        order_sampler=chainer.iterators.ShuffleOrderSampler(
            chainer.backend.CpuDevice().xp.random.RandomState(args.seed)))
    test_iter = chainer.iterators.SerialIterator(test, args.batchsize, repeat=False, shuffle=False)
    updater = GANUpdater(
        train_iter, {'gen': make_optimizer(gen, args), 'dis': make_optimizer(dis, args)},
        device=device, loss=args.loss, n_dis=args.n_dis, order=args.order,
        z_dist=args.z_dist, separate_batches=not args.concat_batches, seed=args.seed)

    iterations = args.iteration
    if args.epoch:
        iterations = math.ceil(args.epoch * len(train) / (args.batchsize * args.n_dis))
    trainer = training.Trainer(updater, (iterations, 'iteration'), out=args.out)
    save_config(args.out, {
        'gen': gen.config(), 'dis': dis.config(), 'z_dist': args.z_dist,
        'loss': args.loss, 'dataset': args.dataset})

    def every(interval):
        # Fires every `interval` iterations and at the last one, so a run
        # always ends with a snapshot and a grid of its final state.
        points = [*range(interval, iterations, interval), iterations]
        return training.triggers.ManualScheduleTrigger(points, 'iteration')

    keep = {'n_retains': args.keep}
    for name, net in (('gen', gen), ('dis', dis)):
        trainer.extend(extensions.snapshot_object(
            net, name + '_iter_{.updater.iteration}.npz', **keep),
            trigger=every(args.snapshot_interval))
    # Added after gen/dis (same priority, so it runs after them): the trainer
    # snapshot saves every trigger's state, and a trigger not yet checked at
    # this iteration would fire again right after --resume.
    trainer.extend(extensions.snapshot(filename='snapshot_iter_{.updater.iteration}', **keep),
                   trigger=every(args.snapshot_interval))
    trainer.extend(GANEvaluator(test_iter, {'gen': gen, 'dis': dis}, device=device,
                                loss=args.loss, z_dist=args.z_dist, seed=args.seed),
                   trigger=every(args.eval_interval))
    trainer.extend(ImageGrid(rows=10, cols=10, seed=args.seed), trigger=every(args.preview_interval))
    trainer.extend(extensions.LogReport(trigger=(args.display_interval, 'iteration')))
    trainer.extend(extensions.PrintReport([
        'epoch', 'iteration', 'gen/loss', 'dis/loss', 'dis/acc_real', 'dis/acc_fake',
        'validation/gen/loss', 'validation/dis/loss', 'validation/dis/accuracy',
        'elapsed_time']))
    if extensions.PlotReport.available():
        trainer.extend(extensions.PlotReport(
            ['gen/loss', 'dis/loss', 'validation/gen/loss', 'validation/dis/loss'],
            'iteration', trigger=(args.display_interval, 'iteration'), file_name='loss.png'))
    if not args.no_progress:
        trainer.extend(extensions.ProgressBar(update_interval=10))

    if args.resume:
        load_params(args.resume, trainer)
    return trainer


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        trainer = build(args)
    except (DatasetError, DeviceError, SnapshotError, ValueError) as e:
        return fail(PROG, e)
    trainer.run()
    return 0


if __name__ == '__main__':
    sys.exit(main())
