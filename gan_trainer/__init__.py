"""gan_trainer: train GANs with Chainer's Trainer/Updater machinery.

Public names::

    from gan_trainer import GANUpdater, GANEvaluator, LOSSES

``GANUpdater`` is the one training loop (see :mod:`gan_trainer.updater`),
``GANEvaluator`` reports validation losses (:mod:`gan_trainer.evaluator`).
Importing this package first applies :mod:`gan_trainer_compat`, which lets
Chainer 7.8.1 run on NumPy 2 and Python 3.12+ (the installed ``.pth`` hook
does the same for programs that import ``chainer`` first).
"""

import gan_trainer_compat

gan_trainer_compat.install()

from gan_trainer.evaluator import GANEvaluator
from gan_trainer.losses import LOSSES, GANLoss
from gan_trainer.updater import GANUpdater

__version__ = '0.1.0'
__all__ = ['LOSSES', 'GANEvaluator', 'GANLoss', 'GANUpdater']
