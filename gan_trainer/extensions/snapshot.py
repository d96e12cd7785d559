"""Snapshots: the trainer and the networks saved together, atomically, then pruned.

At each trigger the extension writes, with :func:`gan_trainer.files.save_npz`
(a temporary file renamed into place, so a crash leaves the old file or
the new one, never half of one):

* ``NAME_iter_N.npz`` for every network it is given (``gen``, ``dis``,
  ``gen_ema``): the networks alone, for ``gan-trainer generate`` and
  friends;
* ``snapshot_iter_N`` (``.rank{r}`` in a data-parallel run): the whole
  trainer, for ``--resume``; written last, so a trainer snapshot on disk
  always has its network snapshots beside it.

It then keeps the newest ``keep`` snapshots of each kind by their N
(``folder.prune``), counting those of earlier, resumed parts of the run.
Its priority is the lowest but the graceful stop's, so that the trainer
snapshot holds the state of every other extension's trigger after this
iteration: a run resumed from it fires nothing twice.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import chainer
from chainer import training

from gan_trainer import files
from gan_trainer.priorities import priority_of


class Snapshots(training.Extension):
    """Writes trainer and network snapshots into a run folder and prunes old ones.

    Args:
        folder: The run's :class:`~gan_trainer.run.RunFolder` (its
            ``trainer_snapshot(n)``, ``net_snapshot(name, n)`` and
            ``prune(keep, nets=...)``).
        nets: Network name -> link, written as ``NAME_iter_N.npz``; empty
            on the processes of a data-parallel run that are not rank 0.
        keep: Snapshots of each kind to keep (0 keeps all).
    """

    trigger = 500, 'iteration'
    # Below every other extension but the graceful stop (see the module docstring).
    priority = priority_of('snapshots')
    default_name = 'snapshots'

    def __init__(self, folder, nets: Mapping[str, chainer.Link], *, keep: int = 0) -> None:
        if keep < 0:
            raise ValueError(f'keep must be 0 (all) or positive, got {keep}')
        self.folder, self.nets, self.keep = folder, dict(nets), keep
        self.last_written: int | None = None

    def __call__(self, trainer: training.Trainer) -> str:
        return self.write(trainer)

    def write(self, trainer: training.Trainer) -> str:
        """Writes the snapshots of the current iteration (once); returns the trainer's path."""
        iteration = trainer.updater.iteration
        path = self.folder.trainer_snapshot(iteration)
        if self.last_written == iteration and os.path.exists(path):
            return path
        for name, net in self.nets.items():
            files.save_npz(self.folder.net_snapshot(name, iteration), net)
        files.save_npz(path, trainer)
        self.last_written = iteration
        if self.keep:
            self.folder.prune(self.keep, nets=bool(self.nets))
        return path
