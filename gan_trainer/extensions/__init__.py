"""Trainer extensions: one extension per module.

Extensions read what they need from ``trainer.updater`` (its optimizers'
targets and ``make_hidden``) and ``trainer.observation``, and write under
``trainer.out``; they never import the updater. Chainer's own ``LogReport``,
``PrintReport``, ``ProgressBar`` and
``snapshot``/``snapshot_object`` (with ``n_retains``) are used as they are.

* :class:`ImageGrid`: G(z) for a fixed z, saved during training.
* :class:`LossPlot`: the loss curves (``loss.png``), Chainer's
  ``PlotReport`` drawn at most every ``min_seconds``.
* :class:`NaNGuard`: stops training (:class:`TrainingDiverged`) at the first
  NaN or infinity, before any snapshot of it is written.
* :class:`DivergenceMonitor`: warns (:class:`DivergenceWarning`) when D wins
  every batch while G's loss keeps rising.
* :class:`QualityReport`: FID, KID, precision/recall and class scores of
  G's samples, and the best generator by FID.
* :class:`TensorBoardReport`: the logged scalars and the preview grid as
  TensorBoard events (optional: needs tensorboardX).
* :class:`MeanOverRanks`: in a data-parallel run, the reported values
  averaged over the processes (see :mod:`gan_trainer.distributed`).
* :class:`Snapshots`: the trainer and network snapshots, written
  atomically and pruned to the newest ``keep`` by iteration.
* :class:`GracefulStop`: SIGINT/SIGTERM stop at the iteration's end with a
  snapshot (:class:`Stopped`).
* :class:`TrainingGif`: ``OUT/training.gif`` from the preview grids when
  training ends.
* :class:`TeamTuner`: oneDNN's thread count at the fastest size for the
  machine's load, where that changes no number (elsewhere a warning when a
  smaller team would run faster: :class:`ThreadsWarning`).

What they read from the updater is declared in :mod:`.protocol`.
"""

from gan_trainer.extensions.divergence import DivergenceMonitor, DivergenceWarning
from gan_trainer.extensions.gif import TrainingGif
from gan_trainer.extensions.image_grid import ImageGrid
from gan_trainer.extensions.loss_plot import LossPlot
from gan_trainer.extensions.mean_over_ranks import MeanOverRanks
from gan_trainer.extensions.nan_guard import NaNGuard, TrainingDiverged
from gan_trainer.extensions.quality import QualityReport
from gan_trainer.extensions.snapshot import Snapshots
from gan_trainer.extensions.stop import GracefulStop, Stopped
from gan_trainer.extensions.team_tuner import TeamTuner, ThreadsWarning
from gan_trainer.extensions.tensorboard import TensorBoardReport

__all__ = [
    'DivergenceMonitor',
    'DivergenceWarning',
    'GracefulStop',
    'ImageGrid',
    'LossPlot',
    'MeanOverRanks',
    'NaNGuard',
    'QualityReport',
    'Snapshots',
    'Stopped',
    'TeamTuner',
    'TensorBoardReport',
    'ThreadsWarning',
    'TrainingDiverged',
    'TrainingGif',
]
