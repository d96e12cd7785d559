#!/usr/bin/env python
"""Train a DCGAN on the built-in digits or a folder of your images.

    python examples/train_dcgan.py                       # digits, CPU
    python examples/train_dcgan.py --gpu 0               # digits, first GPU
    python examples/train_dcgan.py --dataset ~/faces --size 64 --iteration 20000
    python examples/train_dcgan.py --resume result/snapshot_iter_1000
    mpiexec -n 2 python examples/train_dcgan.py --communicator naive   # 2 processes

Writes into ``--out`` (``result``): ``log`` (JSON), ``loss.png``,
``preview/image_*.png`` and ``preview/latest.png`` (G(z) for a fixed z),
``snapshot_iter_N`` (whole trainer, for ``--resume``), ``gen_iter_N.npz`` /
``dis_iter_N.npz`` (for ``generate.py``) and ``config.json``. The flags that
Chainer's own DCGAN example has keep their names there. Under ``mpiexec``
with ``--communicator`` the processes train one model data-parallel (see
``gan_trainer.distributed``): rank 0 writes the files, and every process its
own trainer snapshot ``snapshot_iter_N.rank{r}``. A folder's images are
decoded by ``--loaderjob`` worker processes (2 by default), the next batch
while the current one trains; the batches, and so the run, are the same with
any number of them.

This script only turns flags into objects; everything it uses is in the
``gan_trainer`` package.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import chainer
from _cli import Parser, fail, int_list, nonnegative_int, positive_int
from chainer import training
from chainer.training import extensions

from gan_trainer import GANEvaluator, GANUpdater
from gan_trainer.checkpoint import (
    RANK_SUFFIX,
    SnapshotError,
    check_fresh_out,
    check_resume_out,
    check_snapshot_ranks,
    check_writable,
    find_latest_snapshot,
    latest_common_snapshot,
    load_params,
    rank_suffix,
    save_config,
)
from gan_trainer.datasets import DatasetError, decodes_files, image_shape, load_dataset, num_classes
from gan_trainer.device import DeviceError, get_device
from gan_trainer.distributed import (
    average_persistents,
    collectively,
    create_communicator,
    create_multi_node_evaluator,
    rank_seed,
    scatter_dataset,
    setup_distributed,
    use_multi_node_batch_norm,
    world_rank,
)
from gan_trainer.ema import GeneratorEMA
from gan_trainer.extensions import (
    DivergenceMonitor,
    ImageGrid,
    MeanOverRanks,
    NaNGuard,
    QualityReport,
    TrainingDiverged,
)
from gan_trainer.iterators import train_iterator
from gan_trainer.latent import SAMPLERS, global_seed
from gan_trainer.losses import LOSSES
from gan_trainer.metrics import FeatureNetError, inception_features, load_digits_classifier
from gan_trainer.metrics.onnx_features import WHERE_TO_GET_WEIGHTS
from gan_trainer.metrics.quality import real_images
from gan_trainer.nets import build_discriminator, build_generator
from gan_trainer.penalties import PENALTIES, get_penalty
from gan_trainer.presets import PRESETS, apply_preset

PROG = 'train_dcgan.py'


def build_parser() -> Parser:
    p = Parser(prog=PROG, description='Train a DCGAN with gan_trainer.')
    a = p.add_argument
    a('--gpu', '-g', type=int, default=-1, help='GPU id; -1 (default) runs on the CPU')
    a('--batchsize', '-b', type=positive_int, default=64, help='images per batch')
    a('--iteration', type=positive_int, default=2500, help='G updates to train (default 2500)')
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
    a('--fid_interval', type=int, default=0,
      help='iterations between FID/KID/precision/recall measurements; 0 (default) is off')
    a('--fid_samples', type=positive_int, default=1000, help='generated images per measurement')
    a('--fid_weights', metavar='ONNX',
      help='Inception-v3 as an ONNX file (see docs/metrics.md); needed unless the data are digits')
    a('--dataset', default='digits', help="'digits' (built in), 'mnist', 'cifar10' or a folder")
    a('--size', type=positive_int, help='image side (digits: 28, folders: 64)')
    a('--gray', action='store_true', help='convert folder images to grayscale')
    a('--loaderjob', '-j', type=nonnegative_int, metavar='N',
      help='processes that decode folder images ahead of training (default: 2, at most the '
           'CPU count); 0 decodes them in the training process')
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
    a('--reuse_fakes', action='store_true',
      help="train G on the last D step's fakes (PyTorch's DCGAN loop: one G forward per "
           'iteration instead of two); needs --order dis_first')
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
    a('--communicator', metavar='NAME',
      help="data-parallel training under mpiexec: 'naive' (CPU) or 'pure_nccl' (GPUs); "
           '--batchsize is per process')
    a('--mnbn', action='store_true',
      help='with --communicator: BatchNorm statistics over all processes (ChainerMN MNBN)')
    return p


PRESET_KEYS = ('loss', 'penalty', 'penalty_weight', 'sn', 'dis_norm', 'n_dis', 'lr',
               'beta1', 'beta2')


def parse_args(argv=None) -> argparse.Namespace:
    """Parses flags and fills the ones not given from ``--preset``."""
    args = build_parser().parse_args(argv)
    explicit = {k: getattr(args, k) for k in PRESET_KEYS}
    vars(args).update(apply_preset(args.preset, explicit))
    return args


def feature_net(args):
    """The network FID is measured with: Inception-v3 from --fid_weights, else,
    for digits, the package's digit classifier (trained once and cached)."""
    if args.fid_interval < 0:
        raise ValueError(f'--fid_interval must be 0 (off) or positive, got {args.fid_interval}')
    if args.fid_weights is None:
        if args.dataset in ('digits', 'mnist'):
            return load_digits_classifier().embed
        raise ValueError(f"--fid_interval on dataset '{args.dataset}' needs Inception-v3 "
                         f'weights (--fid_weights): {WHERE_TO_GET_WEIGHTS}')
    try:
        return inception_features(args.fid_weights)
    except FeatureNetError as e:
        raise ValueError(f'--fid_weights: {e}') from None


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


def loader_processes(args, train, comm, lead) -> int:
    """Worker processes for the training iterator: ``--loaderjob`` or its default.

    Only a folder's images are worth decoding in workers; the in-memory
    datasets (digits, mnist, cifar10) are read in the training process.
    """
    if comm is not None:
        # Forking a process that has initialised MPI is unsafe (MPI
        # implementations do not support fork() after MPI_Init), so a
        # data-parallel run reads in each training process.
        if args.loaderjob and lead:
            print(f'{PROG}: warning: --loaderjob {args.loaderjob} is ignored with '
                  '--communicator; each process decodes its own images', file=sys.stderr)
        return 0
    if not decodes_files(train):
        return 0
    if args.loaderjob is None:
        return min(2, os.cpu_count() or 1)
    return args.loaderjob


def each(comm, function, *args, **kwargs):
    """``function(...)``; in a data-parallel run, if it fails on one process all fail."""
    if comm is None:
        return function(*args, **kwargs)
    return collectively(comm, function, *args, **kwargs)


def check_out(args, resume, rank):
    # Before anything is written: a run never overwrites, or lets --keep
    # delete, the snapshots of another run (see checkpoint.check_fresh_out).
    if resume and rank is None and RANK_SUFFIX.search(resume):
        raise SnapshotError(
            f"'{resume}' is one process's snapshot of a data-parallel run: resume it with "
            'mpiexec, --communicator and as many processes as wrote it')
    if resume:
        check_resume_out(args.out, resume, advice='pass another --out', rank=rank)
    else:
        check_fresh_out(args.out, advice=(
            'none of them can be resumed; pass another --out' if args.resume else
            'pass --resume auto to continue it, or another --out'))


def build(args, comm=None):
    """Builds the trainer from parsed flags; raises the package's errors.

    With ``comm`` (``--communicator``) this process builds its part of a
    data-parallel run, and an error found by any process stops them all.
    """
    if args.reuse_fakes and args.order != 'dis_first':
        raise ValueError('--reuse_fakes needs --order dis_first: the G step reuses '
                         'the fakes of the D step before it')
    rank = None if comm is None else comm.rank
    lead = rank in (None, 0)  # prints, and writes every file but its own snapshot
    # Data-parallel on GPUs: each process uses the GPU of its rank on its node.
    device = each(comm, get_device, args.gpu if comm is None or args.gpu < 0 else comm.intra_rank)
    each(comm, check_writable, args.out, rank=rank)
    resume = args.resume
    if resume == 'auto':
        resume = (find_latest_snapshot(args.out) if comm is None else
                  latest_common_snapshot(comm, args.out))
        if lead:
            print(f'{PROG}: resuming from {resume}' if resume else
                  f"{PROG}: no snapshot to resume in '{args.out}'; starting a new run", flush=True)
    elif resume and comm is not None:
        resume = each(comm, check_snapshot_ranks, comm, resume)
    each(comm, check_out, args, resume, rank)
    # Rank 0 reads the data and sends each process its share.
    train, test = each(comm, lambda: load_dataset(args.dataset, size=args.size, gray=args.gray)
                       if lead else (None, None))
    # FID compares with the whole training set, taken before it is scattered;
    # rank 0 alone measures (its first use trains the digit classifier).
    embed, reference = each(comm, lambda: (feature_net(args), real_images(train))
                            if args.fid_interval and lead else (None, None))
    if comm is not None:
        train = scatter_dataset(comm, train, seed=args.seed)
        test = scatter_dataset(comm, test, seed=args.seed)
    if args.batchsize > len(train):
        # A small folder should just work: every batch is then the whole
        # (reshuffled) training set, instead of one padded with repeats.
        if lead:
            print(f'{PROG}: warning: --batchsize {args.batchsize} is larger than the '
                  f'{len(train)} training images; using {len(train)}', file=sys.stderr)
        args.batchsize = len(train)
    gen, dis = each(comm, build_networks, args, train)
    if args.mnbn:
        use_multi_node_batch_norm(gen, comm)
        use_multi_node_batch_norm(dis, comm)
    gen.to_device(device)
    dis.to_device(device)
    # (Every process builds the same nets from --seed, so the EMA's copy of G
    # is the same everywhere too.)
    ema = GeneratorEMA(gen, decay=args.ema, start=args.ema_start) if args.ema else None
    optimizers = {'gen': make_optimizer(gen, args), 'dis': make_optimizer(dis, args)}
    if comm is not None:  # gradients averaged over the processes; rank 0's weights
        optimizers = setup_distributed(comm, optimizers)

    # Each process draws its own z and data order (see distributed.rank_seed).
    seed = args.seed if comm is None else rank_seed(args.seed, rank)
    train_iter = train_iterator(train, args.batchsize, seed=seed,
                                n_processes=loader_processes(args, train, comm, lead))
    test_iter = chainer.iterators.SerialIterator(test, args.batchsize, repeat=False, shuffle=False)
    updater = GANUpdater(
        train_iter, optimizers,
        device=device, loss=args.loss, n_dis=args.n_dis, order=args.order,
        z_dist=args.z_dist, separate_batches=not args.concat_batches, seed=seed,
        penalty=get_penalty(args.penalty, args.penalty_weight),
        conditional=args.conditional, ema=ema, reuse_fakes=args.reuse_fakes)

    iterations = args.iteration
    if args.epoch:
        iterations = math.ceil(args.epoch * len(train) / (args.batchsize * args.n_dis))
    trainer = training.Trainer(updater, (iterations, 'iteration'), out=args.out)
    if lead:
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
    # The files every process would write alike come from rank 0 alone.
    shared = trainer.extend if lead else (lambda *args, **kwargs: None)
    nets = [('gen', gen), ('dis', dis)] + ([('gen_ema', ema.target)] if ema else [])
    if comm is not None:
        # On every process: the reported values averaged over the processes
        # before anything reads them, and the BN statistics before they are
        # evaluated, drawn or saved.
        trainer.extend(MeanOverRanks(comm))
        moments = sorted({point for interval in (
            args.snapshot_interval, args.eval_interval, args.preview_interval)
            for point in every(interval).points})
        trainer.extend(average_persistents(comm, [net for _, net in nets]),
                       trigger=training.triggers.ManualScheduleTrigger(moments, 'iteration'))
    for name, net in nets:
        shared(extensions.snapshot_object(
            net, name + '_iter_{.updater.iteration}.npz', **keep),
            trigger=every(args.snapshot_interval))
    # Added after gen/dis (same priority, so it runs after them): the trainer
    # snapshot saves every trigger's state, and a trigger not yet checked at
    # this iteration would fire again right after --resume.
    # Every process saves its own (its iterator and random states differ).
    trainer.extend(extensions.snapshot(
        filename='snapshot_iter_{.updater.iteration}' + rank_suffix(rank), **keep),
        trigger=every(args.snapshot_interval))
    # With an EMA, validation judges the averaged G (the one that is used).
    evaluator = GANEvaluator(test_iter, {'gen': ema.target if ema else gen, 'dis': dis},
                             device=device, loss=args.loss, z_dist=args.z_dist,
                             seed=seed, conditional=args.conditional)
    if comm is not None:
        evaluator = create_multi_node_evaluator(evaluator, comm)
    trainer.extend(evaluator, trigger=every(args.eval_interval))
    if reference is not None:
        # Rank 0 alone: a measurement costs about 2 s per 1,000 digits on a CPU.
        trainer.extend(QualityReport(reference, embed=embed, seed=args.seed,
                                     n_samples=args.fid_samples),
                       trigger=every(args.fid_interval))
    shared(ImageGrid(rows=10, cols=10, seed=args.seed), trigger=every(args.preview_interval))
    # The guard runs before every writer, so a NaN stops the run before a
    # snapshot of it exists; the monitor adds warning/divergence to the log.
    trainer.extend(NaNGuard())
    shared(DivergenceMonitor())
    shared(extensions.LogReport(trigger=(args.display_interval, 'iteration')))
    penalty = ['dis/penalty'] if updater.penalty is not None else []
    shared(extensions.PrintReport([
        'epoch', 'iteration', 'gen/loss', 'dis/loss', *penalty, 'dis/acc_real', 'dis/acc_fake',
        'validation/gen/loss', 'validation/dis/loss', 'validation/dis/accuracy',
        *(['validation/fid'] if reference is not None else []), 'elapsed_time']))
    if extensions.PlotReport.available():
        shared(extensions.PlotReport(
            ['gen/loss', 'dis/loss', 'validation/gen/loss', 'validation/dis/loss'],
            'iteration', trigger=(args.display_interval, 'iteration'), file_name='loss.png'))
    if args.tensorboard:
        from gan_trainer.extensions import TensorBoardReport

        try:
            shared(TensorBoardReport())
        except ImportError as e:  # tensorboardX missing: one line and exit 2, before training
            raise ValueError(str(e)) from None
    if not args.no_progress:
        shared(extensions.ProgressBar(update_interval=10))

    if resume:
        each(comm, load_params, resume, trainer)
    return trainer


def start_distributed(args):
    """The communicator of ``--communicator``, or None for a one-process run."""
    if args.communicator is None:
        if args.mnbn:
            raise ValueError('--mnbn needs --communicator (a data-parallel run under mpiexec)')
        return None
    comm = create_communicator(args.communicator, gpu=args.gpu >= 0)
    # An uncaught exception on one process aborts them all (MPI_Abort)
    # instead of leaving the others waiting in the next allreduce.
    import chainermn.global_except_hook

    chainermn.global_except_hook.add_hook()
    return comm


def main(argv=None) -> int:
    args = parse_args(argv)
    # In a data-parallel run every process finds the same bad input; rank 0 says it.
    lead = args.communicator is None or world_rank() == 0
    comm = None
    try:
        comm = start_distributed(args)
        trainer = build(args, comm)
    except (DatasetError, DeviceError, SnapshotError, ValueError) as e:
        return fail(PROG, e) if lead else 2
    try:
        # No loop-exception banner: the errors below are one line each, and
        # any other exception still ends in its traceback.
        trainer.run(show_loop_exception_msg=False)
    except TrainingDiverged as e:  # exit status 3: the run, not the input, went wrong
        # Every process stops at the same iteration (they see the same means).
        kept = find_latest_snapshot(args.out, rank=None if comm is None else comm.rank)
        kept = f'newest snapshot kept: {kept}' if kept else 'no snapshot was taken before it'
        if lead:
            print(f'{PROG}: error: {e} ({kept})', file=sys.stderr)
        return 3
    except DatasetError as e:  # an image changed or vanished during training
        status = fail(PROG, e)
        if comm is not None:  # on this process only: the others must not wait for it
            comm.mpi_comm.Abort(status)
        return status
    return 0


if __name__ == '__main__':
    sys.exit(main())
