"""An exponential moving average (EMA) of the generator's weights.

Samples from an average of G's recent weights are usually cleaner and more
stable than samples from G itself (Karras et al. 2018; Yazici et al. 2019),
at no training cost: after each G update,

    ema = decay * ema + (1 - decay) * gen

for every parameter and for BatchNorm's running mean and variance (so the
averaged network is usable in evaluation mode as it is). Before ``start``
iterations the average simply copies G, because the first weights are
noise that would otherwise linger for ``1 / (1 - decay)`` steps.

:class:`GeneratorEMA` is owned by the updater (``GANUpdater(ema=...)``),
which calls :meth:`GeneratorEMA.update` and saves the average in trainer
snapshots; image grids, the evaluator and ``generate.py`` use
``ema.target`` when it exists.
"""

from __future__ import annotations

import copy

import chainer


class GeneratorEMA:
    """Keeps ``target``, a moving-average copy of a generator.

    Args:
        gen: The generator being trained; it is deep-copied once.
        decay: Weight of the old average per update; 0.999 averages over
            roughly the last 1,000 updates.
        start: Iteration from which averaging begins; before it the
            average is a plain copy of G.
    """

    def __init__(self, gen: chainer.Link, *, decay: float = 0.999, start: int = 0) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f'EMA decay must be in [0, 1), got {decay}')
        if start < 0:
            raise ValueError(f'EMA start must be >= 0, got {start}')
        self.decay = decay
        self.start = start
        self.target = copy.deepcopy(gen)

    def _pairs(self, gen: chainer.Link):
        """Yields matching (ema array, gen array) pairs: params, then BN stats."""
        for (name, p_ema), (_, p_gen) in zip(
                sorted(self.target.namedparams()), sorted(gen.namedparams())):
            yield name, p_ema.array, p_gen.array
        ema_links = dict(self.target.namedlinks())
        for name, link in gen.namedlinks():
            for attr in sorted(link._persistent):
                value = getattr(link, attr)
                if hasattr(value, 'dtype') and value.dtype.kind == 'f':
                    yield f'{name}/{attr}', getattr(ema_links[name], attr), value

    def update(self, gen: chainer.Link, iteration: int) -> None:
        """Folds G's current weights into the average (in place)."""
        decay = self.decay if iteration >= self.start else 0.0
        for _, ema, new in self._pairs(gen):
            # In place, so the arrays stay where they are (CPU or GPU).
            ema *= decay
            ema += (1.0 - decay) * new

    def serialize(self, serializer) -> None:
        """Saves/restores the averaged weights (a trainer snapshot holds them)."""
        self.target.serialize(serializer)


def generator_to_show(gen: chainer.Link, ema: GeneratorEMA | None) -> chainer.Link:
    """The generator whose samples a run shows, measures and validates.

    The moving average when there is one (it is the one worth using), else
    G itself. Preview grids, the quality report, the evaluator and the
    generator snapshot tools all choose through this function.
    """
    return ema.target if ema is not None else gen
