"""The extensions of a run, and the one table of the order they run in.

Chainer runs a trainer's extensions after every update, highest priority
first. The order matters: the NaN guard must look before anything writes,
BatchNorm statistics must be averaged over processes before they are
evaluated or saved, and the trainer snapshot must come after every other
extension's trigger has been checked, or a resumed run would fire one
twice. :data:`gan_trainer.priorities.PRIORITIES` holds every extension a
run adds, with the reason for its place (the extension classes take their
default priority from it too); :func:`add_extensions` adds them from a
:class:`~gan_trainer.run.RunConfig`.
"""

from __future__ import annotations

import sys
import warnings

from chainer import training
from chainer.training import extensions

from gan_trainer import files
from gan_trainer.extensions import (
    DivergenceMonitor,
    GracefulStop,
    ImageGrid,
    LossPlot,
    MeanOverRanks,
    NaNGuard,
    QualityReport,
    Snapshots,
    TeamTuner,
    TrainingGif,
)
from gan_trainer.priorities import PRIORITIES
from gan_trainer.run.errors import RunWarning
from gan_trainer.run.parts import make_schedule
from gan_trainer.run.triggers import AnyOf, Every


def every(interval: int, last: int) -> Every:
    """Fires every ``interval`` iterations and at the ``last`` one.

    So a run always ends with a snapshot, a grid and a log entry of its
    final state, even when it is shorter than the interval. The points are
    computed, not listed (:mod:`gan_trainer.run.triggers`): a run of 10**13
    iterations costs what one of 300 does.
    """
    return Every(interval, last)


class _PlainOutput:
    """stdout without the cursor escape ``PrintReport`` writes before each line.

    The escape (``ESC [J``, "clear below") only matters under a progress
    bar; in a log file or a pipe it is noise.
    """

    def __init__(self, stream) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        return self.stream.write(text.replace('\033[J', ''))

    def flush(self) -> None:
        self.stream.flush()


def add_extensions(
    trainer: training.Trainer,
    config,
    *,
    folder,
    group,
    nets: dict,
    iterations: int,
    evaluator,
    quality=None,
) -> dict:
    """Adds a run's extensions to ``trainer`` at their places in :data:`PRIORITIES`.

    In four phases, each a function below: what keeps the processes of a
    data-parallel run in agreement and the guard against NaNs; what
    measures and draws the state (validation, quality, preview, divergence,
    schedules); what reports it (log, table, plot, TensorBoard, progress);
    and what ends the run (GIF, snapshots, the graceful stop). Extensions
    of equal priority run in the order they are added.

    Args:
        trainer: The trainer.
        config: The :class:`~gan_trainer.run.RunConfig`.
        folder: The :class:`~gan_trainer.run.RunFolder`.
        group: The :class:`~gan_trainer.run.group.Group` of processes.
        nets: Name -> network written as ``NAME_iter_N.npz``.
        iterations: The last iteration.
        evaluator: The (possibly multi-node) :class:`~gan_trainer.GANEvaluator`.
        quality: ``(reference images, feature network)`` for the quality
            report, or None.

    Returns:
        The added extensions by name.
    """
    add = _Adder(trainer, group)
    _add_agreement_and_guard(add, config, group, nets, iterations)
    _add_measurements(add, config, trainer, iterations, evaluator, quality)
    _add_reports(add, config, iterations, quality)
    _add_endings(add, config, folder, group, nets, iterations)
    return add.added


class _Adder:
    """``add(name, extension, trigger, shared=...)`` at the priority of ``name``."""

    def __init__(self, trainer: training.Trainer, group) -> None:
        self.trainer, self.group, self.added = trainer, group, {}

    def __call__(self, name, extension, trigger=None, *, shared=True) -> None:
        # Files every process would write alike come from the lead alone.
        if shared and not self.group.lead:
            return
        self.trainer.extend(extension, name=name, trigger=trigger, priority=PRIORITIES[name][0])
        self.added[name] = extension


def _add_agreement_and_guard(add, config, group, nets, iterations) -> None:
    """Data-parallel means and BatchNorm statistics, then the NaN guard."""
    if group.parallel:
        from gan_trainer.distributed import average_persistents

        add('mean_over_ranks', MeanOverRanks(group.comm), shared=False)
        moments = AnyOf(*(every(interval, iterations) for interval in (
            config.snapshot_interval, config.eval_interval, config.preview_interval)))
        add(
            'average_persistents',
            average_persistents(group.comm, list(nets.values())),
            moments,
            shared=False,
        )
    add('nan_guard', NaNGuard(), shared=False)


def _add_measurements(add, config, trainer, iterations, evaluator, quality) -> None:
    """Validation, the quality report, the preview grid, the divergence monitor, schedules."""
    add('validation', evaluator, every(config.eval_interval, iterations), shared=False)
    if quality is not None:
        reference, embed = quality
        # Rank 0 alone: a measurement costs about 2 s per 1,000 digits on a CPU.
        add(
            'quality',
            QualityReport(reference, embed=embed, seed=config.seed, n_samples=config.fid_samples),
            every(config.fid_interval, iterations),
        )
    add(
        'image_grid',
        ImageGrid(rows=10, cols=10, seed=config.seed),
        every(config.preview_interval, iterations),
    )
    add('divergence_monitor', DivergenceMonitor())
    schedule = make_schedule(config, trainer.updater, iterations)
    if schedule is not None:  # every process: each has its own optimizers
        add('schedule', schedule, shared=False)


def _add_reports(add, config, iterations, quality) -> None:
    """The log and what reads it: the printed table, the plot, TensorBoard, the progress bar."""
    log = every(config.display_interval, iterations)
    add('LogReport', extensions.LogReport(trigger=log, filename=files.LOG))
    penalty = ['dis/penalty'] if config.penalty != 'none' else []
    if config.augment == 'ada' or config.ada_target is not None:
        penalty.append('dis/augment_p')
    # BEGAN's equilibrium and DFM's two losses, where D's accuracies would be
    # (BEGAN's and the Cramér GAN's outputs say neither real nor fake).
    judged = ['dis/acc_real', 'dis/acc_fake']
    if config.loss == 'began':
        judged = ['dis/k_t', 'dis/measure']
    elif config.loss == 'cramer':
        judged = []
    if config.dfm:
        judged += ['den/loss', 'gen/dfm']
    accuracy = [] if config.loss in ('began', 'cramer') else ['validation/dis/accuracy']
    fid = ['validation/fid'] if quality is not None else []
    out = sys.stdout if config.progress and sys.stdout.isatty() else _PlainOutput(sys.stdout)
    add(
        'PrintReport',
        extensions.PrintReport(
            [
                'epoch',
                'iteration',
                'gen/loss',
                'dis/loss',
                *penalty,
                *judged,
                'validation/gen/loss',
                'validation/dis/loss',
                *accuracy,
                *fid,
                'elapsed_time',
            ],
            out=out,
        ),
    )
    if extensions.PlotReport.available():
        # Named as Chainer's PlotReport was (snapshots keep its points under the name).
        add(
            'PlotReport',
            LossPlot(
                ['gen/loss', 'dis/loss', 'validation/gen/loss', 'validation/dis/loss'],
                trigger=every(config.display_interval, iterations),
                filename=files.LOSS_PLOT,
            ),
        )
    if config.tensorboard:
        from gan_trainer.extensions import TensorBoardReport

        try:
            report = TensorBoardReport(logdir=files.TENSORBOARD_DIR)
        except ImportError as e:  # tensorboardX missing: one line, before training
            raise ValueError(f'tensorboard: {e}') from None
        add('tensorboard', report)
    if config.progress:
        add('ProgressBar', extensions.ProgressBar(update_interval=10))


def _add_endings(add, config, folder, group, nets, iterations) -> None:
    """The GIF at the end, the snapshots, and the graceful stop after them."""
    add('training_gif', TrainingGif())
    add('team_tuner', TeamTuner(), shared=False)  # each process times its own iterations
    snapshots = Snapshots(folder, nets if group.lead else {}, keep=config.keep)
    add('snapshots', snapshots, every(config.snapshot_interval, iterations), shared=False)
    # Its notice is a warning: one line on stderr, from the lead process.
    notice = (lambda line: warnings.warn(line, RunWarning, stacklevel=2)) if group.lead else None
    agree = group.any if group.parallel else None
    add('graceful_stop', GracefulStop(snapshots, agree=agree, notice=notice), shared=False)
