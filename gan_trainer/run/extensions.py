"""The extensions of a run, and the one table of the order they run in.

Chainer runs a trainer's extensions after every update, highest priority
first. The order matters: the NaN guard must look before anything writes,
BatchNorm statistics must be averaged over processes before they are
evaluated or saved, and the trainer snapshot must come after every other
extension's trigger has been checked, or a resumed run would fire one
twice. :data:`PRIORITIES` holds every extension a run adds, with the reason
for its place; :func:`add_extensions` adds them from a
:class:`~gan_trainer.run.RunConfig`.
"""

from __future__ import annotations

import sys
import warnings

from chainer import training
from chainer.training import extensions
from chainer.training.extension import PRIORITY_READER, PRIORITY_WRITER

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
    TrainingGif,
)
from gan_trainer.run.errors import RunWarning
from gan_trainer.run.parts import make_schedule

#: Extension name -> (priority, why it runs there). Higher runs first. The names
#: are those of earlier versions (Chainer's defaults for its own extensions),
#: because trainer snapshots store each extension's state under its name.
PRIORITIES: dict[str, tuple[int, str]] = {
    'mean_over_ranks': (
        PRIORITY_WRITER + 3,
        (
            'data-parallel: the reported values are '
            'averaged over the processes before anything reads them'
        ),
    ),
    'nan_guard': (
        PRIORITY_WRITER + 2,
        (
            'before every writer, so nothing of a state holding '
            'a NaN or infinity is evaluated, drawn, logged or saved'
        ),
    ),
    'average_persistents': (
        PRIORITY_WRITER + 1,
        (
            "data-parallel: every process's "
            'BatchNorm statistics averaged before they are evaluated, drawn '
            'or saved'
        ),
    ),
    'validation': (PRIORITY_WRITER, 'reports validation/* into the observation the log reads'),
    'quality': (PRIORITY_WRITER, 'reports validation/fid and friends, likewise'),
    'image_grid': (PRIORITY_WRITER, 'a writer of its own; after the averaged statistics'),
    'divergence_monitor': (
        PRIORITY_WRITER - 1,
        ('adds warning/divergence before the log reads the observation'),
    ),
    'schedule': (
        PRIORITY_WRITER - 2,
        ("reports the scheduled values of this update before the log reads the "
         "observation, then sets the next update's"),
    ),
    'LogReport': (PRIORITY_READER, "Chainer's reader: summarises the observation"),
    'PrintReport': (PRIORITY_READER - 1, 'prints the entry the log has just made'),
    'PlotReport': (PRIORITY_READER - 1, 'draws the log (LossPlot)'),
    'tensorboard': (PRIORITY_READER - 2, 'reads the entry the log has just made'),
    'ProgressBar': (PRIORITY_READER - 3, 'redraws below what was printed'),
    'training_gif': (PRIORITY_READER - 4, 'does its work when training ends'),
    'snapshots': (
        -100,
        (
            "after every other extension's trigger: the trainer snapshot "
            'holds their state after this iteration, so a resumed run fires none twice'
        ),
    ),
    'graceful_stop': (
        -200,
        (
            'last: at a signal, saves the iteration (after its regular '
            'snapshot, if there was one) and stops'
        ),
    ),
}


def every(interval: int, last: int) -> training.triggers.ManualScheduleTrigger:
    """Fires every ``interval`` iterations and at the ``last`` one.

    So a run always ends with a snapshot, a grid and a log entry of its
    final state, even when it is shorter than the interval.
    """
    points = [*range(interval, last, interval), last]
    return training.triggers.ManualScheduleTrigger(points, 'iteration')


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
    """Adds a run's extensions to ``trainer`` in the order of :data:`PRIORITIES`.

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
    added = {}

    def add(name, extension, trigger=None, *, shared=True):
        # Files every process would write alike come from the lead alone.
        if shared and not group.lead:
            return
        trainer.extend(extension, name=name, trigger=trigger, priority=PRIORITIES[name][0])
        added[name] = extension

    if group.parallel:
        from gan_trainer.distributed import average_persistents

        add('mean_over_ranks', MeanOverRanks(group.comm), shared=False)
        moments = sorted(
            {
                point
                for interval in (
                    config.snapshot_interval,
                    config.eval_interval,
                    config.preview_interval,
                )
                for point in every(interval, iterations).points
            }
        )
        add(
            'average_persistents',
            average_persistents(group.comm, list(nets.values())),
            training.triggers.ManualScheduleTrigger(moments, 'iteration'),
            shared=False,
        )
    add('nan_guard', NaNGuard(), shared=False)
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
    log = every(config.display_interval, iterations)
    add('LogReport', extensions.LogReport(trigger=log, filename=files.LOG))
    penalty = ['dis/penalty'] if config.penalty != 'none' else []
    if config.augment == 'ada' or config.ada_target is not None:
        penalty.append('dis/augment_p')
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
                'dis/acc_real',
                'dis/acc_fake',
                'validation/gen/loss',
                'validation/dis/loss',
                'validation/dis/accuracy',
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
    add('training_gif', TrainingGif())
    snapshots = Snapshots(folder, nets if group.lead else {}, keep=config.keep)
    add('snapshots', snapshots, every(config.snapshot_interval, iterations), shared=False)
    # Its notice is a warning: one line on stderr, from the lead process.
    notice = (lambda line: warnings.warn(line, RunWarning, stacklevel=2)) if group.lead else None
    agree = group.any if group.parallel else None
    add('graceful_stop', GracefulStop(snapshots, agree=agree, notice=notice), shared=False)
    return added
