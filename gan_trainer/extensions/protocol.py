"""What the package's extensions read from ``trainer.updater``, declared once.

Extensions never import the updater; they read the few things below from
whatever ``trainer.updater`` is. :class:`~gan_trainer.GANUpdater` provides
all of them, and so may any updater of your own that wants the package's
image grid, quality report or snapshot tools.
"""

from __future__ import annotations

from typing import Any, Protocol

import chainer

from gan_trainer.ema import GeneratorEMA, generator_to_show


class GANUpdaterView(Protocol):
    """The updater as the extensions see it.

    Attributes:
        iteration: Iterations trained so far.
        conditional: Whether G and D take class labels.
        ema: The moving average of G, or None.
        device: Where batches and z live.
    """

    iteration: int
    conditional: bool
    ema: GeneratorEMA | None
    device: chainer.backend.Device

    def get_optimizer(self, name: str) -> chainer.Optimizer:
        """``'gen'`` and ``'dis'``: the optimizers whose targets are G and D."""

    def make_hidden(self, batchsize: int, rng: Any = None) -> Any:
        """z for ``batchsize`` images on :attr:`device`, drawn from ``rng``."""


def shown_generator(updater: GANUpdaterView) -> chainer.Link:
    """The generator an extension shows or measures: the EMA's when there is one."""
    return generator_to_show(updater.get_optimizer('gen').target, getattr(updater, 'ema', None))


def is_conditional(updater: GANUpdaterView) -> bool:
    """Whether the updater trains a class-conditional GAN."""
    return bool(getattr(updater, 'conditional', False))
