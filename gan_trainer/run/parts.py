"""The parts of a run that a RunConfig makes: networks, optimizers, z, augmentation.

Each function turns the options of a :class:`~gan_trainer.run.RunConfig`
into the object the :class:`~gan_trainer.GANUpdater` or the trainer takes,
so that :func:`~gan_trainer.run.build_trainer` reads as the order of the
steps, and code of your own can make the same parts::

    gen, dis = build_networks(config, (1, 28, 28), n_classes=10)
    optimizers = make_optimizers(gen, dis, config)
"""

from __future__ import annotations

import os
import warnings

import chainer

from gan_trainer import streams
from gan_trainer.latent import get_sampler, global_seed
from gan_trainer.nets import (
    DiscriminatorOptions,
    GeneratorOptions,
    build_discriminator,
    build_generator,
)
from gan_trainer.nets.options import run_options
from gan_trainer.optimizers import make_optimizer
from gan_trainer.run.config import RunConfig
from gan_trainer.run.errors import RunWarning
from gan_trainer.run.group import Group


def build_networks(config: RunConfig, shape, n_classes: int = 1):
    """G and D of ``config`` for images of ``shape`` ``(C, H, W)``, seeded with ``config.seed``."""
    channels, size, _ = shape
    if config.arch == 'began':
        # BEGAN's own nets (nets.began): base_width is the paper's n.
        common = {'arch': 'began', 'size': size, 'channels': channels,
                  'width': config.base_width, 'init': config.init}
        gen_config = dict(common, n_hidden=config.n_hidden)
        dis_config = dict(common)
    elif config.arch == 'resnet':
        # The ResNet nets take no kernel size or normalisation option; their
        # widths follow base_width unless D's are given.
        gen_config = {'arch': 'resnet', 'size': size, 'channels': channels,
                      'n_hidden': config.n_hidden, 'base_width': config.base_width}
        dis_config = {'arch': 'resnet', 'size': size, 'channels': channels,
                      'widths': config.widths, 'base_width': config.base_width,
                      'spectral_norm': config.spectral_norm}
        if config.conditional:
            gen_config['n_classes'] = dis_config['n_classes'] = n_classes
    else:
        # The shape every architecture takes, then each net's own options,
        # which the run declares by their names in nets.options.
        common = {'size': size, 'channels': channels, 'widths': config.widths,
                  'base_width': config.base_width, 'ksize': config.ksize}
        gen_config = dict(common, n_hidden=config.n_hidden,
                          **run_options(GeneratorOptions, config))
        dis_config = dict(common, **run_options(DiscriminatorOptions, config))
        # What a run sets from options of its own.
        if dis_outputs(config) != 1:
            dis_config['out_dim'] = dis_outputs(config)
        if config.minibatch_discrimination:
            dis_config.update(minibatch_kernels=MINIBATCH_KERNELS, minibatch_dim=MINIBATCH_DIM)
        if config.loss == 'began':  # BEGAN's D is an autoencoder (nets.autoencoder)
            dis_config = {'arch': 'autoencoder', 'size': size, 'channels': channels,
                          'widths': config.widths, 'base_width': config.base_width,
                          'init': config.init}
        if config.conditional:
            gen_config.update(arch='conditional', n_classes=n_classes, mode=config.gen_cond)
            dis_config.update(arch='conditional', n_classes=n_classes, mode=config.dis_cond)
    with global_seed(config.seed):
        return build_generator(gen_config), build_discriminator(dis_config)


#: ``--minibatch_discrimination``'s kernels and their dimension: chainer-gan-lib's
#: ``minibatch_discrimination/net.py`` (B=100, C=5).
MINIBATCH_KERNELS, MINIBATCH_DIM = 100, 5

#: D's outputs per image for ``--loss cramer`` without ``--dis_out_dim``:
#: chainer-gan-lib's ``--output_dim`` default.
CRAMER_OUTPUTS = 256

#: The hidden width of DFM's denoiser without ``--dfm_width``. chainer-gan-lib makes
#: it as wide as its D's features; on the digits' D (3,136 features) that would be
#: ten layers of 3,136 x 3,136, about 100 million weights, far more than G and D.
DFM_WIDTH = 512


def dis_outputs(config: RunConfig) -> int:
    """D's outputs per image: ``dis_out_dim``, else 256 for the Cramér loss, else 1."""
    if config.dis_out_dim is not None:
        return config.dis_out_dim
    return CRAMER_OUTPUTS if config.loss == 'cramer' else 1


def make_denoiser(config: RunConfig, dis: chainer.Link):
    """DFM's denoiser of D's features (:class:`gan_trainer.dfm.Denoiser`), or None."""
    if not config.dfm:
        return None
    from gan_trainer.dfm import Denoiser

    # A seed of its own: under config.seed its weights would repeat G's first ones.
    with global_seed(streams.seed_for(config.seed, 'denoiser')):
        return Denoiser(dis.n_features, width=config.dfm_width or DFM_WIDTH)


def make_dfm(config: RunConfig):
    """DFM's losses (:class:`gan_trainer.dfm.DenoisingFeatureMatching`), or None."""
    if not config.dfm:
        return None
    from gan_trainer.dfm import DenoisingFeatureMatching

    if config.dfm_weight is None:
        return DenoisingFeatureMatching()
    return DenoisingFeatureMatching(config.dfm_weight)


def make_loss(config: RunConfig):
    """The run's :class:`~gan_trainer.losses.GANLoss` (BEGAN's with its gamma and own ``k_t``,
    the Cramér GAN's with its penalty's critic)."""
    from gan_trainer.losses import get_loss

    if config.loss == 'began':
        given = {'gamma': config.began_gamma, 'lambda_k': config.began_lambda_k,
                 'k0': config.began_k0}
        options = {name: value for name, value in given.items() if value is not None}
        return get_loss('began', **options) if options else get_loss('began')
    if config.loss == 'cramer' and config.cramer_penalty is not None:
        return get_loss('cramer', penalty=config.cramer_penalty)
    return get_loss(config.loss)


def make_augment(config: RunConfig):
    """The run's augmentation (a :class:`~gan_trainer.augment.DiffAugment`), or None."""
    if config.augment == 'none':
        return None
    from gan_trainer.augment import ADA_TARGET, DEFAULT_POLICY, DiffAugment

    policy = DEFAULT_POLICY if config.augment == 'ada' else config.augment
    target = config.ada_target
    if target is None and config.augment == 'ada':
        target = ADA_TARGET
    return DiffAugment(policy, target=target, speed=config.ada_speed)


def make_regularizers(config: RunConfig) -> list:
    """The run's regularizers of D's outputs (:mod:`gan_trainer.regularizers`)."""
    from gan_trainer.regularizers import ConsistencyRegularization, LeCam

    made = []
    if config.lecam:
        made.append(LeCam(config.lecam))
    if config.bcr:
        made.append(ConsistencyRegularization(config.bcr))
    return made


def make_schedule(config: RunConfig, updater, iterations: int):
    """The run's :class:`~gan_trainer.schedules.Schedule`, or None when nothing is scheduled.

    Learning rates (``lr_schedule``, ``lr_warmup``) of both networks, Adam's
    beta2 (``beta2_start``) and the penalty weight (``penalty_weight_end``);
    each reported under ``lr/gen``, ``beta2/dis``, ``penalty_weight``.
    """
    from gan_trainer.penalties import penalty_weight, set_penalty_weight
    from gan_trainer.schedules import Schedule, lr_factor, optimizer_lr_setter, ramp

    entries = {}
    for name in ('gen', 'dis'):
        optimizer = updater.get_optimizer(name)
        if config.lr_schedule != 'none' or config.lr_warmup:
            base, setter = optimizer_lr_setter(optimizer)

            def lr_at(t, base=base):
                return base * lr_factor(t, iterations, shape=config.lr_schedule,
                                        floor=config.lr_floor, warmup=config.lr_warmup,
                                        decay_start=config.lr_decay_start)

            entries[f'lr/{name}'] = (lr_at, setter)
        hyperparam = optimizer.hyperparam
        if config.beta2_start is not None and hasattr(hyperparam, 'beta2'):
            end = hyperparam.beta2
            entries[f'beta2/{name}'] = (
                lambda t, end=end: ramp(t, iterations, config.beta2_start, end),
                lambda value, hp=hyperparam: setattr(hp, 'beta2', value))
    if config.penalty_weight_end is not None and updater.penalty is not None:
        start = penalty_weight(updater.penalty)
        entries['penalty_weight'] = (
            lambda t: ramp(t, iterations, start, config.penalty_weight_end),
            lambda value: set_penalty_weight(updater.penalty, value))
    return Schedule(entries) if entries else None


def net_config(net: chainer.Link) -> dict:
    """What ``config.json`` records of a network: its ``config()``, or its class."""
    if hasattr(net, 'config'):
        config = dict(net.config())
        return config
    cls = type(net)
    return {'arch': 'custom', 'class': f'{cls.__module__}.{cls.__qualname__}'}


def make_optimizers(gen: chainer.Link, dis: chainer.Link, config: RunConfig,
                    den: chainer.Link | None = None) -> dict:
    """``{'gen': ..., 'dis': ...}``: each network's optimizer of the run, set up.

    With DFM's denoiser ``den``, also ``'den'``: D's optimizer settings, as
    chainer-gan-lib gives the denoiser the same Adam as both networks.
    """
    optimizers = {name: make_optimizer(net, config.optimizer_spec(name))
                  for name, net in (('gen', gen), ('dis', dis))}
    if den is not None:
        optimizers['den'] = make_optimizer(den, config.optimizer_spec('dis'))
    return optimizers


def z_sampler(config: RunConfig):
    """The run's z distribution, with its truncation when it has one."""
    return get_sampler(config.z_dist, threshold=config.z_threshold)


def real_label(config: RunConfig):
    """``real_label`` as the updater takes it: None, a number or ``(lo, hi)``."""
    if config.real_label is None:
        return None
    return config.real_label[0] if len(config.real_label) == 1 else tuple(config.real_label)


def loader_processes(config: RunConfig, facts: dict, group: Group) -> int:
    """Worker processes for the training iterator: ``loaderjob`` or its default.

    Only a folder's images are worth decoding in workers; the in-memory
    datasets (digits, mnist, cifar10) are read in the training process.
    """
    if group.parallel:
        # Forking a process that has initialised MPI is unsafe (MPI
        # implementations do not support fork() after MPI_Init), so a
        # data-parallel run reads in each training process.
        if config.loaderjob and group.lead:
            warnings.warn(f'--loaderjob {config.loaderjob} is ignored with --communicator; '
                          'each process decodes its own images', RunWarning, stacklevel=3)
        return 0
    if not facts['decodes_files']:
        return 0
    if config.loaderjob is None:
        return min(2, os.cpu_count() or 1)
    return config.loaderjob
