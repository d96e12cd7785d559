"""The training run as a library: its options, its folder, and the trainer that runs it.

``examples/train_dcgan.py`` and ``gan-trainer train`` are a few lines over
this package, and so can your own project be::

    from gan_trainer.run import RunConfig, build_trainer
    build_trainer(RunConfig(iteration=5000, ema=0.999)).run()

    # your own networks (and data) get every safety the command has
    build_trainer(RunConfig(out='mine'), gen=MyGen(), dis=MyDis()).run()

* :class:`RunConfig` (:mod:`.config`): every option of a run, in one
  vocabulary, checked; :data:`PRESETS` are RunConfig values
  (:mod:`.presets`).
* :class:`RunRecord` (:mod:`.record`): the ``config.json`` schema, the one
  reader and writer of that file.
* :class:`RunFolder` (:mod:`.folder`): the output folder, locked for one
  run, with the snapshot rules; the file names come from
  :mod:`gan_trainer.files`.
* :func:`build_trainer` (:mod:`.builder`) -> :class:`RunTrainer`
  (:mod:`.trainer`): everything the run needs, for one process or a
  data-parallel group (:mod:`.group`), with the extensions in the order of
  :data:`~gan_trainer.priorities.PRIORITIES`.
* :func:`load_generator`, :func:`load_discriminator` (:mod:`.loading`): a
  run's networks, anywhere; :func:`load_params` (:mod:`gan_trainer.checkpoint`)
  loads a snapshot file into a link.
* The ways a run ends and their exit statuses: :mod:`.errors`.
"""

from gan_trainer.checkpoint import SnapshotError, load_params
from gan_trainer.run.builder import build_trainer
from gan_trainer.run.config import RunConfig, network_options, preset_options
from gan_trainer.run.errors import (
    EXIT_DIVERGED,
    EXIT_DONE,
    EXIT_INPUT,
    EXIT_RESOURCE,
    FolderBusy,
    ResourceError,
    RunWarning,
    Stopped,
    TrainingDiverged,
)
from gan_trainer.run.folder import RunFolder
from gan_trainer.run.loading import load_discriminator, load_generator
from gan_trainer.run.options import ConfigError
from gan_trainer.run.parts import build_networks
from gan_trainer.run.presets import PRESETS, apply_preset, get_preset
from gan_trainer.run.record import RunRecord, read_record
from gan_trainer.run.trainer import RunTrainer

__all__ = [
    'EXIT_DIVERGED',
    'EXIT_DONE',
    'EXIT_INPUT',
    'EXIT_RESOURCE',
    'PRESETS',
    'ConfigError',
    'FolderBusy',
    'ResourceError',
    'RunConfig',
    'RunFolder',
    'RunRecord',
    'RunTrainer',
    'RunWarning',
    'SnapshotError',
    'Stopped',
    'TrainingDiverged',
    'apply_preset',
    'build_networks',
    'build_trainer',
    'get_preset',
    'load_discriminator',
    'load_generator',
    'load_params',
    'network_options',
    'preset_options',
    'read_record',
]
