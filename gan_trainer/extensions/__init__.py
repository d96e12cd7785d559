"""Trainer extensions: one extension per module.

Extensions read what they need from ``trainer.updater`` (its optimizers'
targets and ``make_hidden``) and write under ``trainer.out``; they never
import the updater. Chainer's own ``LogReport``, ``PrintReport``,
``ProgressBar``, ``PlotReport`` and ``snapshot``/``snapshot_object`` (with
``n_retains``) are used as they are.
"""

from gan_trainer.extensions.image_grid import ImageGrid

__all__ = ['ImageGrid']
