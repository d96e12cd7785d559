"""build_trainer: a complete, safe training run from a RunConfig.

``build_trainer(config)`` does what a training script used to do by hand,
for one process or a data-parallel group, and returns a
:class:`~gan_trainer.run.RunTrainer` (a Chainer ``Trainer``) ready to
``run()``. Your own networks and data get every safety the command has::

    from gan_trainer.run import RunConfig, build_trainer
    trainer = build_trainer(RunConfig(iteration=5000, out='result'),
                            gen=MyGenerator(), dis=MyDiscriminator())
    trainer.run()

In order, with nothing written into the output folder until every check
has passed (``config.json`` is written by ``run()``):

1. the device, the output folder (writable, locked for this run, the
   remains of interrupted writes removed) and the snapshot to resume
   (``resume='auto'``: the newest complete one, damaged ones moved aside);
2. the data (``Data``), its size against the machine's memory, and a
   resumed run's ``config.json`` against this config: a resume is the same
   run, so only the options declared ``resume='free'`` may differ, and
   those declared ``'ask'`` when ``allow_change`` names them (see
   :func:`~gan_trainer.run.resume.check_resumed_options`);
3. the networks, their moving average, the optimizers, the iterators
   (loader processes for folders of images) and the
   :class:`~gan_trainer.GANUpdater`;
4. the extensions, in the order of
   :data:`gan_trainer.priorities.PRIORITIES`;
5. the resumed snapshot, loaded into all of it.

In a data-parallel run (``config.communicator``, under ``mpiexec``) every
process calls this; the steps that can fail on one process run under
:meth:`~gan_trainer.run.group.Group.agreeing`, so that they fail on all.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import warnings
from collections.abc import Callable
from typing import Any

import chainer

from gan_trainer import GANEvaluator, GANUpdater, precision
from gan_trainer.checkpoint import SnapshotError, snapshot_iteration
from gan_trainer.datasets import CACHE_BYTES, Data, DatasetError, load_dataset
from gan_trainer.device import get_device
from gan_trainer.ema import GeneratorEMA, generator_to_show
from gan_trainer.iterators import train_iterator
from gan_trainer.nets import default_n_stages
from gan_trainer.ops.threads import share_cores
from gan_trainer.penalties import get_penalty
from gan_trainer.run import memory
from gan_trainer.run.config import ConfigError, RunConfig
from gan_trainer.run.errors import RunWarning
from gan_trainer.run.extensions import add_extensions
from gan_trainer.run.folder import RunFolder, is_rank_file
from gan_trainer.run.group import Group
from gan_trainer.run.parts import (
    build_networks,
    loader_processes,
    make_augment,
    make_denoiser,
    make_dfm,
    make_loss,
    make_optimizers,
    make_regularizers,
    net_config,
    real_label,
    z_sampler,
)
from gan_trainer.run.record import RunRecord
from gan_trainer.run.resume import check_resumed_options, previous_record, resume_point
from gan_trainer.run.trainer import RunTrainer

#: Where a message line goes: the command prefixes its name; the default prints it.
Log = Callable[[str], None]


def build_trainer(config: RunConfig, *, gen: chainer.Link | None = None,
                  dis: chainer.Link | None = None, data: Data | None = None, comm=None,
                  log: Log | None = print) -> RunTrainer:
    """Builds the trainer of a run (see the module docstring for the steps).

    Args:
        config: The run's options.
        gen, dis: Networks of your own (both or neither); by default they
            are built from ``config`` for the data's image shape. A network
            with a ``config()`` method (the package's nets) can be rebuilt
            from ``config.json`` by ``gan-trainer generate``; others are
            recorded by class name.
        data: Data of your own (:meth:`Data.of <gan_trainer.datasets.Data.of>`);
            by default ``config.dataset`` is loaded.
        comm: A ChainerMN communicator; by default one is created when
            ``config.communicator`` is set.
        log: Prints one line (resuming, the data found); None for silence.

    Returns:
        A :class:`~gan_trainer.run.RunTrainer`; its ``run()`` trains.

    Raises:
        ValueError: Bad input (its subclasses name the option, file or
            folder): exit status 2 in the command.
        ResourceError: Not enough memory or disk for the run: exit status 4.
    """
    _check_arguments(config, gen, dis, data, comm, log)
    say = log or (lambda line: None)
    if comm is None and config.communicator is not None:
        comm = _start_distributed(config)
    group = Group(comm)
    lead_say = say if group.lead else (lambda line: None)

    # 1. Device, folder, snapshot to resume.
    with group.agreeing():
        # Before the device (its line names the dtype) and the networks
        # (their weights take it when they are made).
        precision.use_dtype(config.dtype)
        device = get_device(config.gpu if not group.parallel or config.gpu < 0
                            else comm.intra_rank, tf32=config.tf32,
                            announce=lead_say if config.gpu >= 0 else None)
        if config.resume and not group.parallel and is_rank_file(config.resume):
            raise SnapshotError(
                f"'{config.resume}' is one process's snapshot of a data-parallel run: resume "
                'it with mpiexec, --communicator and as many processes as wrote it')
        folder = RunFolder(config.out, rank=group.rank)
        folder.check_writable()
        if group.lead:
            folder.lock()
    try:
        return _build(config, group, folder, device, gen=gen, dis=dis, data=data,
                      say=lead_say)
    except BaseException:
        folder.abandon()  # a run refused at its start leaves no trace
        raise


def _build(config, group, folder, device, *, gen, dis, data, say) -> RunTrainer:
    """Steps 1 (resume) to 5 of :func:`build_trainer`, with the folder locked, phase by phase."""
    if group.lead:
        folder.remove_temporaries()
    resume, later = resume_point(config, folder, group, say)
    config, run_data = _data(config, group, resume, gen=gen, data=data, say=say)
    gen, dis, ema, net_configs = _networks(config, group, device, run_data.facts, gen=gen,
                                           dis=dis)
    updater, seed = _updater(config, group, device, run_data, gen, dis, ema)
    trainer = _trainer(config, group, folder, run_data, updater, net_configs, say=say)
    _extensions(trainer, config, group, folder, device, run_data, gen, dis, ema, seed)
    if resume:
        _resume(trainer, folder, group, resume, later)
    return trainer


@dataclasses.dataclass
class _RunData:
    """What step 2 found: the data's facts, this process's share, the run's start."""

    facts: dict
    train: Any
    test: Any
    quality: Any  # (reference images, feature network) for the quality report, or None
    resumed_at: int
    changes: tuple  # the options resumes changed, for config.json


def _data(config, group, resume, *, gen, data, say) -> tuple[RunConfig, _RunData]:
    """2. Data, memory, the resumed run's settings; the batch size lowered to a small set."""
    with group.agreeing():
        resumed_at = snapshot_iteration(resume) if resume else 0
        previous = previous_record(resume)
        changes = ()
        if previous is not None:
            changes = previous.changes + check_resumed_options(
                config, previous.config, resume, side=previous.gen.get('size'),
                iteration=resumed_at)
        if data is None and group.lead:
            memory.require(memory.data_bytes(config), _named(config, 'size', 'dataset'),
                           'use a smaller --size')
            # Loader processes asked for (-j N) decode every epoch; otherwise a
            # folder that fits in 1 GiB (and a quarter of the free memory) is
            # decoded once (ImageFolderDataset). Not in a data-parallel run:
            # the lead sends each rank its dataset, and the pixels with it.
            lazy = config.loaderjob or group.parallel
            cache = 0 if lazy else min(CACHE_BYTES, memory.available_bytes() // 4)
            data = load_dataset(config.dataset, size=config.size, gray=config.gray,
                                cache_bytes=cache)
    facts = _share_facts(group, data)
    with group.agreeing():
        if config.conditional and facts['n_classes'] < 2:
            raise DatasetError(
                f"conditional needs labelled data with at least 2 classes; dataset "
                f"'{config.dataset}' has {facts['n_classes']} (use one subfolder per class)")
        if gen is None:
            _warn_about_size(config, facts['shape'])
            memory.require(memory.training_bytes(config, facts['shape']),
                           _named(config, 'size', 'batchsize', 'widths', 'base_width'),
                           'use a smaller --size, --batchsize or --base_width')
        quality = None
        if config.fid_interval and group.lead:
            quality = _quality_inputs(config, data)
    train, test = (data.train, data.test) if data is not None else (None, None)
    if group.parallel:
        from gan_trainer.distributed import scatter_dataset

        train = scatter_dataset(group.comm, train, seed=config.seed)
        test = scatter_dataset(group.comm, test, seed=config.seed)
    if config.batchsize > len(train):
        # A small folder should just work: every batch is then the whole
        # (reshuffled) training set, instead of one padded with repeats.
        if group.lead:
            warnings.warn(f'--batchsize {config.batchsize} is larger than the {len(train)} '
                          f'training images; using {len(train)}', RunWarning, stacklevel=3)
        config = config.replace(batchsize=len(train))
    say(_summary(facts, len(train) * group.size, len(test) * group.size))
    return config, _RunData(facts, train, test, quality, resumed_at, changes)


def _networks(config, group, device, facts, *, gen, dis):
    """3a. G and D (built from the config unless given) on the device, G's EMA, and
    the networks' configs for ``config.json``."""
    with group.agreeing():
        if gen is None:
            gen, dis = build_networks(config, facts['shape'], facts['n_classes'])
        net_configs = net_config(gen), net_config(dis)
    if config.mnbn:
        from gan_trainer.distributed import use_multi_node_batch_norm

        use_multi_node_batch_norm(gen, group.comm)
        use_multi_node_batch_norm(dis, group.comm)
    gen.to_device(device)
    dis.to_device(device)
    # (Every process builds the same nets from the seed, so the EMA's copy of
    # G is the same everywhere too.)
    ema = GeneratorEMA(gen, decay=config.ema, start=config.ema_start,
                       rampup=config.ema_rampup) if config.ema else None
    return gen, dis, ema, net_configs


def _updater(config, group, device, run_data, gen, dis, ema):
    """3b. The optimizers, the training iterator and the :class:`~gan_trainer.GANUpdater`."""
    den = make_denoiser(config, dis)  # DFM's, trained beside D
    if den is not None:
        den.to_device(device)
    optimizers = make_optimizers(gen, dis, config, den)
    precision.configure_optimizers(optimizers, config.dtype)
    if group.parallel:  # gradients averaged over the processes; rank 0's weights
        from gan_trainer.distributed import rank_seed, setup_distributed

        optimizers = setup_distributed(group.comm, optimizers)
        seed = rank_seed(config.seed, group.rank)  # each process its own z and data order
    else:
        seed = config.seed
    loaders = loader_processes(config, run_data.facts, group)
    train_iter = train_iterator(run_data.train, config.batchsize, seed=seed, n_processes=loaders)
    # The run's ranks on this machine share its cores (oneDNN's team). Loader
    # processes are not counted: they wait for most of an iteration, and a
    # team sized for them made folder runs slower (benchmarks/folder_speed.py);
    # and so a run gets the same team, and the same numbers, with any
    # --loaderjob.
    share_cores(ranks=group.comm.intra_size if group.parallel else 1)
    updater = GANUpdater(
        train_iter, optimizers, device=device, loss=make_loss(config), n_dis=config.n_dis,
        order=config.order, z_dist=z_sampler(config), separate_batches=config.separate_batches,
        seed=seed, penalty=get_penalty(config.penalty, config.penalty_weight),
        conditional=config.conditional, ema=ema, reuse_fakes=config.reuse_fakes,
        eval_fakes=config.eval_fakes,
        augment=make_augment(config), real_label=real_label(config),
        penalty_every=config.penalty_every, regularizers=make_regularizers(config),
        dfm=make_dfm(config))
    return updater, seed


def _trainer(config, group, folder, run_data, updater, net_configs, *, say) -> RunTrainer:
    """3c. The run's length, its record (``config.json``) and the :class:`RunTrainer`."""
    train, test, facts = run_data.train, run_data.test, run_data.facts
    iterations = config.iteration
    if config.epoch:
        iterations = math.ceil(config.epoch * len(train) / (config.batchsize * config.n_dis))
    record = RunRecord.of(config, *net_configs, classes=facts['class_names'], data={
                              'name': facts['name'], 'train': len(train) * group.size,
                              'test': len(test) * group.size, 'shape': list(facts['shape'])},
                          changes=run_data.changes)
    return RunTrainer(updater, (iterations, 'iteration'), folder=folder, record=record,
                      group=group, resumed_at=run_data.resumed_at, log=say)


def _extensions(trainer, config, group, folder, device, run_data, gen, dis, ema, seed) -> None:
    """4. The evaluator on the held-out images, then every extension of the run."""
    nets = {'gen': gen, 'dis': dis, **({'gen_ema': ema.target} if ema else {})}
    test_iter = chainer.iterators.SerialIterator(run_data.test, config.batchsize, repeat=False,
                                                 shuffle=False)
    evaluator = GANEvaluator(test_iter, {'gen': generator_to_show(gen, ema), 'dis': dis},
                             device=device, loss=trainer.updater.loss, z_dist=z_sampler(config), seed=seed,
                             conditional=config.conditional)
    if group.parallel:
        from gan_trainer.distributed import create_multi_node_evaluator

        evaluator = create_multi_node_evaluator(evaluator, group.comm)
    with group.agreeing():
        add_extensions(trainer, config, folder=folder, group=group, nets=nets,
                       iterations=trainer.last_iteration, evaluator=evaluator,
                       quality=run_data.quality)


def _resume(trainer, folder, group, resume, later) -> None:
    """5. The snapshot to resume, loaded, and the ones after it out of the way."""
    with group.agreeing():
        trainer.load(resume)
        moved = folder.set_aside(later)
        if moved:
            warnings.warn(f'moved {len(later)} snapshot(s) newer than {resume}, which '
                          f"cannot be resumed, to '{moved}': "
                          f"{', '.join(os.path.basename(p) for p in later)}",
                          RunWarning, stacklevel=4)


# ------------------------------------------------------------------ steps


def _check_arguments(config, gen, dis, data, comm, log) -> None:
    """One line for an argument of the wrong kind, before anything is touched.

    Raises:
        TypeError: For an argument of the wrong type (naming it).
        ValueError: For gen without dis, or data that has no images.
    """
    def wrong(name, expected, value):
        raise TypeError(f'build_trainer: {name} must be {expected}, got '
                        f'{type(value).__name__} {_short(value)}')

    if not isinstance(config, RunConfig):
        wrong('config', 'a gan_trainer.run.RunConfig', config)
    if (gen is None) != (dis is None):
        raise ValueError('build_trainer needs both gen and dis, or neither')
    for name, net in (('gen', gen), ('dis', dis)):
        if net is not None and not isinstance(net, chainer.Link):
            wrong(name, 'a chainer.Link (a Chain of your own)', net)
    if gen is not None and getattr(gen, 'n_hidden', None) is None and (
            not hasattr(gen, 'make_hidden')):
        raise ValueError(f'build_trainer: gen ({type(gen).__name__}) needs an n_hidden attribute '
                         '(the dimension of z) or a make_hidden(batchsize) method')
    if data is not None:
        if not isinstance(data, Data):
            wrong('data', 'a gan_trainer.datasets.Data (wrap your datasets with '
                          'Data.of(train, test))', data)
        for part in ('train', 'test'):
            dataset = getattr(data, part)
            if not (hasattr(dataset, '__len__') and hasattr(dataset, '__getitem__')):
                wrong(f'data.{part}', 'a dataset (len() and [i])', dataset)
            if len(dataset) == 0:
                raise DatasetError(f'build_trainer: data.{part} is empty')
        shape = data.shape
        if not (isinstance(shape, tuple) and len(shape) == 3 and all(
                isinstance(d, numbers.Integral) and not isinstance(d, bool) and d > 0
                for d in shape)):
            raise DatasetError(f'build_trainer: data.shape must be (C, H, W) of positive '
                               f'integers, got {shape!r}')
    if comm is not None and not hasattr(comm, 'mpi_comm'):
        wrong('comm', 'a ChainerMN communicator', comm)
    if log is not None and not callable(log):
        wrong('log', 'a function of one line, or None', log)


def _short(value) -> str:
    text = ' '.join(repr(value).split())
    return text if len(text) <= 40 else text[:37] + '...'


def _start_distributed(config: RunConfig):
    from gan_trainer.distributed import create_communicator

    comm = create_communicator(config.communicator, gpu=config.gpu >= 0)
    # An uncaught exception on one process aborts them all (MPI_Abort)
    # instead of leaving the others waiting in the next allreduce.
    import chainermn.global_except_hook

    chainermn.global_except_hook.add_hook()
    return comm


def _shown(value) -> str:
    if isinstance(value, tuple):
        return ','.join(map(str, value))
    return 'none' if value is None else str(value)


def _named(config: RunConfig, *names: str) -> str:
    return ' with '.join(f'--{n} {_shown(getattr(config, n))}' for n in names)


def _share_facts(group: Group, data: Data | None) -> dict:
    """The data's facts on every process (rank 0 alone loaded it)."""
    facts = None
    if data is not None:
        facts = {'name': data.name, 'shape': tuple(data.shape),
                 'class_names': tuple(data.class_names), 'n_classes': data.n_classes,
                 'decodes_files': data.decodes_files, 'train': len(data.train),
                 'test': len(data.test)}
    if group.parallel:
        facts = group.comm.mpi_comm.bcast(facts, root=0)
    return facts


def _summary(facts: dict, n_train: int, n_test: int) -> str:
    classes = facts['class_names']
    shown = (f'{len(classes)} classes' if classes else 'no classes')
    channels, height, width = facts['shape']
    return (f"data '{facts['name']}': {n_train:,} training images, {n_test:,} held out, "
            f'{shown}, {channels}x{height}x{width}')


def _warn_about_size(config: RunConfig, shape) -> None:
    side = shape[1]
    if config.widths is not None or default_n_stages(side) == 0:
        return
    n = default_n_stages(side)
    start = side // 2 ** n
    if start > 8:
        warnings.warn(
            f'--size {side} halves only {n} time(s) with the default widths (to {start}x'
            f'{start}), so G and D have {n} stride-2 stage(s); a size like 32, 48 or 64 '
            'gives the usual 4x4 to 7x7 start (or set --widths)', RunWarning, stacklevel=3)


def _quality_inputs(config: RunConfig, data: Data):
    """``(reference images, feature network)`` for the quality report."""
    from gan_trainer.metrics import FeatureNetError, inception_features, load_digits_classifier
    from gan_trainer.metrics.onnx_features import WHERE_TO_GET_WEIGHTS
    from gan_trainer.metrics.quality import real_images

    memory.require(memory.sampling_bytes(config.fid_samples, data.shape) * 2,
                   _named(config, 'fid_samples'), 'use a smaller --fid_samples')
    if config.fid_weights is None:
        if config.dataset not in ('digits', 'mnist'):
            raise ConfigError('fid_weights', f"is needed for --fid_interval on dataset "
                                             f"'{config.dataset}' (Inception-v3 weights): "
                                             f'{WHERE_TO_GET_WEIGHTS}')
        embed = load_digits_classifier().embed
    else:
        try:
            embed = inception_features(config.fid_weights)
        except FeatureNetError as e:
            raise ConfigError('fid_weights', str(e)) from None
    # FID compares with the whole training set, taken before it is scattered.
    return real_images(data.train), embed


