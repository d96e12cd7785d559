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

from gan_trainer import GANEvaluator, GANUpdater
from gan_trainer.checkpoint import (
    SnapshotError,
    check_fresh_out,
    check_resume_out,
    check_writable,
    find_latest_snapshot,
    load_params,
    save_config,
)
from gan_trainer.datasets import DatasetError, image_shape, load_dataset, num_classes
from gan_trainer.device import DeviceError, get_device
from gan_trainer.ema import GeneratorEMA
from gan_trainer.extensions import DivergenceMonitor, ImageGrid, NaNGuard, TrainingDiverged
from gan_trainer.latent import SAMPLERS, global_seed
from gan_trainer.losses import LOSSES
from gan_trainer.nets import build_discriminator, build_generator
from gan_trainer.penalties import PENALTIES, get_penalty
from gan_trainer.presets import PRESETS, apply_preset

PROG = 'train_dcgan.py'


def build_parser() -> Parser:
    p = Parser(prog=PROG, description='Train a DCGAN with gan_trainer.')
    a = p.add_argument
    a('--gpu', '-g', type=int, default=-1, help='GPU id; -1 (default) runs on the CPU')
    a('--batchsize', '-b', type=positive_int, default=64, help='images per batch')
    a('--iteration', type=positive_int, default=1200, help='G updates to train (default 1200)')
    a('--epoch', '-e', type=positive_int, help='train this many epochs instead of --iteration')
    a('--out', '-o', default='result', help='output folder')
    a('--resume', '-r', help="trainer snapshot to resume from, or 'auto' for the newest in --out")
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
    # Options a preset sets default to None here: a flag given explicitly
    # overrides the preset, one not given takes the preset's value.
    a('--preset', default='dcgan', choices=list(PRESETS),
      help='settings of a paper: loss, penalty, SN, n_dis, Adam (see gan_trainer.presets)')
    a('--loss', choices=sorted(LOSSES), help='GAN loss (preset dcgan: nonsaturating)')
    a('--penalty', choices=['none', *PENALTIES], help='gradient penalty on D')
    a('--penalty_weight', type=float, help='lambda of wgan-gp (10) or gamma of r1 (10)')
    a('--sn', action=argparse.BooleanOptionalAction, help='spectral normalisation in D')
    a('--dis_norm', choices=['batch', 'none'], help='normalisation in D (preset dcgan: batch)')
    a('--n_dis', type=positive_int, help='D steps per G step (preset dcgan: 1)')
    a('--ema', type=float, metavar='DECAY', help='keep an EMA of G with this decay, e.g. 0.999')
    a('--ema_start', type=int, default=0, help='iteration from which the EMA averages')
    a('--conditional', action='store_true', help='class-conditional GAN (labels of the dataset)')
    a('--gen_cond', default='cbn', choices=['concat', 'cbn'],
      help='how G takes the label: embedding concatenated to z, or conditional BatchNorm')
    a('--dis_cond', default='projection', choices=['projection', 'concat'],
      help='how D takes the label: projection (Miyato & Koyama) or one-hot channels')
    a('--order', default='dis_first', choices=['dis_first', 'gen_first'])
    a('--z_dist', default='normal', choices=sorted(SAMPLERS), help='distribution of z')
    a('--concat_batches', action='store_true',
      help='feed real and fake to D in one batch (breaks BatchNorm; for comparison)')
    a('--widths', type=int_list, help='D conv widths, e.g. 64,128,256 (G mirrors them)')
    a('--base_width', type=positive_int, default=32, help='width of the first D layer')
    a('--ksize', type=int, default=4, choices=[4, 5], help='convolution kernel size')
    a('--lr', type=float, help='Adam learning rate (preset dcgan: 2e-4)')
    a('--beta1', type=float, help='Adam beta1 (preset dcgan: 0.5)')
    a('--beta2', type=float, help='Adam beta2 (preset dcgan: 0.999)')
    a('--no_progress', action='store_true', help='no progress bar (for logs and CI)')
    a('--tensorboard', action='store_true',
      help='also write TensorBoard events to OUT/tensorboard (needs tensorboardX)')
    return p


PRESET_KEYS = ('loss', 'penalty', 'penalty_weight', 'sn', 'dis_norm', 'n_dis', 'lr',
               'beta1', 'beta2')


def parse_args(argv=None) -> argparse.Namespace:
    """Parses flags and fills the ones not given from ``--preset``."""
    args = build_parser().parse_args(argv)
    explicit = {k: getattr(args, k) for k in PRESET_KEYS}
    vars(args).update(apply_preset(args.preset, explicit))
    return args


def make_optimizer(link, args):
    optimizer = chainer.optimizers.Adam(alpha=args.lr, beta1=args.beta1, beta2=args.beta2)
    optimizer.setup(link)
    return optimizer


def build_networks(args, train):
    """G and D for the data's shape (and classes, when conditional)."""
    channels, size, _ = image_shape(train)
    shape = {'size': size, 'channels': channels, 'widths': args.widths,
             'base_width': args.base_width, 'ksize': args.ksize}
    gen_config = dict(shape, n_hidden=args.n_hidden)
    dis_config = dict(shape, norm=args.dis_norm, spectral_norm=args.sn)
    if args.conditional:
        n = num_classes(train)
        if n < 2:
            raise DatasetError(
                f"--conditional needs labelled data with at least 2 classes; dataset "
                f"'{args.dataset}' has {n} (use one subfolder per class)")
        gen_config.update(arch='conditional', n_classes=n, mode=args.gen_cond)
        dis_config.update(arch='conditional', n_classes=n, mode=args.dis_cond)
    with global_seed(args.seed):
        return build_generator(gen_config), build_discriminator(dis_config)


def build(args):
    """Builds the trainer from parsed flags; raises the package's errors."""
    device = get_device(args.gpu)
    check_writable(args.out)
    # Before anything is written: a run never overwrites, or lets --keep
    # delete, the snapshots of another run (see checkpoint.check_fresh_out).
    resume = args.resume
    if resume == 'auto':
        resume = find_latest_snapshot(args.out)
        print(f'{PROG}: resuming from {resume}' if resume else
              f"{PROG}: no snapshot to resume in '{args.out}'; starting a new run", flush=True)
    if resume:
        check_resume_out(args.out, resume, advice='pass another --out')
    else:
        check_fresh_out(args.out, advice=(
            'none of them can be resumed; pass another --out' if args.resume else
            'pass --resume auto to continue it, or another --out'))
    train, test = load_dataset(args.dataset, size=args.size, gray=args.gray)
    if args.batchsize > len(train):
        # A small folder should just work: every batch is then the whole
        # (reshuffled) training set, instead of one padded with repeats.
        print(f'{PROG}: warning: --batchsize {args.batchsize} is larger than the '
              f'{len(train)} training images; using {len(train)}', file=sys.stderr)
        args.batchsize = len(train)
    gen, dis = build_networks(args, train)
    gen.to_device(device)
    dis.to_device(device)
    ema = GeneratorEMA(gen, decay=args.ema, start=args.ema_start) if args.ema else None

    train_iter = chainer.iterators.SerialIterator(
        train, args.batchsize,
        order_sampler=chainer.iterators.ShuffleOrderSampler(
            chainer.backend.CpuDevice().xp.random.RandomState(args.seed)))
    test_iter = chainer.iterators.SerialIterator(test, args.batchsize, repeat=False, shuffle=False)
    updater = GANUpdater(
        train_iter, {'gen': make_optimizer(gen, args), 'dis': make_optimizer(dis, args)},
        device=device, loss=args.loss, n_dis=args.n_dis, order=args.order,
        z_dist=args.z_dist, separate_batches=not args.concat_batches, seed=args.seed,
        penalty=get_penalty(args.penalty, args.penalty_weight),
        conditional=args.conditional, ema=ema)

    iterations = args.iteration
    if args.epoch:
        iterations = math.ceil(args.epoch * len(train) / (args.batchsize * args.n_dis))
    trainer = training.Trainer(updater, (iterations, 'iteration'), out=args.out)
    save_config(args.out, {
        'gen': gen.config(), 'dis': dis.config(), 'z_dist': args.z_dist,
        'loss': args.loss, 'preset': args.preset, 'dataset': args.dataset,
        'ema': args.ema, 'conditional': args.conditional})

    def every(interval):
        # Fires every `interval` iterations and at the last one, so a run
        # always ends with a snapshot and a grid of its final state.
        points = [*range(interval, iterations, interval), iterations]
        return training.triggers.ManualScheduleTrigger(points, 'iteration')

    keep = {'n_retains': args.keep}
    nets = [('gen', gen), ('dis', dis)] + ([('gen_ema', ema.target)] if ema else [])
    for name, net in nets:
        trainer.extend(extensions.snapshot_object(
            net, name + '_iter_{.updater.iteration}.npz', **keep),
            trigger=every(args.snapshot_interval))
    # Added after gen/dis (same priority, so it runs after them): the trainer
    # snapshot saves every trigger's state, and a trigger not yet checked at
    # this iteration would fire again right after --resume.
    trainer.extend(extensions.snapshot(filename='snapshot_iter_{.updater.iteration}', **keep),
                   trigger=every(args.snapshot_interval))
    # With an EMA, validation judges the averaged G (the one that is used).
    trainer.extend(GANEvaluator(test_iter, {'gen': ema.target if ema else gen, 'dis': dis},
                                device=device, loss=args.loss, z_dist=args.z_dist,
                                seed=args.seed, conditional=args.conditional),
                   trigger=every(args.eval_interval))
    trainer.extend(ImageGrid(rows=10, cols=10, seed=args.seed), trigger=every(args.preview_interval))
    # The guard runs before every writer, so a NaN stops the run before a
    # snapshot of it exists; the monitor adds warning/divergence to the log.
    trainer.extend(NaNGuard())
    trainer.extend(DivergenceMonitor())
    trainer.extend(extensions.LogReport(trigger=(args.display_interval, 'iteration')))
    penalty = ['dis/penalty'] if updater.penalty is not None else []
    trainer.extend(extensions.PrintReport([
        'epoch', 'iteration', 'gen/loss', 'dis/loss', *penalty, 'dis/acc_real', 'dis/acc_fake',
        'validation/gen/loss', 'validation/dis/loss', 'validation/dis/accuracy',
        'elapsed_time']))
    if extensions.PlotReport.available():
        trainer.extend(extensions.PlotReport(
            ['gen/loss', 'dis/loss', 'validation/gen/loss', 'validation/dis/loss'],
            'iteration', trigger=(args.display_interval, 'iteration'), file_name='loss.png'))
    if args.tensorboard:
        from gan_trainer.extensions import TensorBoardReport

        try:
            trainer.extend(TensorBoardReport())
        except ImportError as e:  # tensorboardX missing: one line and exit 2, before training
            raise ValueError(str(e)) from None
    if not args.no_progress:
        trainer.extend(extensions.ProgressBar(update_interval=10))

    if resume:
        load_params(resume, trainer)
    return trainer


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        trainer = build(args)
    except (DatasetError, DeviceError, SnapshotError, ValueError) as e:
        return fail(PROG, e)
    try:
        # No loop-exception banner: the errors below are one line each, and
        # any other exception still ends in its traceback.
        trainer.run(show_loop_exception_msg=False)
    except TrainingDiverged as e:  # exit status 3: the run, not the input, went wrong
        kept = find_latest_snapshot(args.out)
        kept = f'newest snapshot kept: {kept}' if kept else 'no snapshot was taken before it'
        print(f'{PROG}: error: {e} ({kept})', file=sys.stderr)
        return 3
    except DatasetError as e:  # an image changed or vanished during training
        return fail(PROG, e)
    return 0


if __name__ == '__main__':
    sys.exit(main())
