"""An exponential moving average (EMA) of the generator's weights.

Samples from an average of G's recent weights are usually cleaner and more
stable than samples from G itself (Karras et al. 2018; Yazici et al. 2019),
at almost no training cost: after each G update,

    ema = decay * ema + (1 - decay) * gen

for every parameter. Before ``start`` iterations the average simply copies
G, because the first weights are noise that would otherwise linger for
``1 / (1 - decay)`` steps.

**Ramp-up** (``rampup``, StyleGAN2's ``ema_rampup``, Karras et al. 2020):
instead of a fixed start, the average's half-life grows with the run. With
``decay`` the half-life is ``h = ln(1/2) / ln(decay)`` updates (693 for
0.999); at update ``t`` the average uses the half-life ``min(h, rampup *
t)``, so its decay is ``0.5 ** (1 / min(h, rampup * t))``. Early in a run,
when G changes fast, the average then spans only the last few percent of
the run (``rampup`` 0.05: the last twentieth) and never mixes in the noise of
the first weights; later it reaches the full half-life. A fixed decay of
0.999 averages over about the last thousand updates, which in a run of
3,000 is a third of it, much of it a G that was still poor.

BatchNorm's running mean and variance are not weights: the statistics that
fit the averaged weights are those of the averaged network's own
activations, not an average of G's. With ``bn_stats='recompute'`` (the
default) each update also runs the average forward, in training mode and
without a graph, on the z (and labels) of that G step, so its BatchNorm
links keep running statistics of their own (the "standing statistics" of
BigGAN, Brock et al. 2019, kept up to date). ``bn_stats='average'``
averages G's statistics as well, as the weights; on this package's digits
run that left the average's samples far worse than G's (FID 99.9 against
44.4, one seed, 2,565 iterations; recomputed once at the end, 51.4: see
``benchmarks/ema_bn_stats.py`` and benchmarks/RESULTS.md). A generator without BatchNorm is
unaffected either way, and costs no extra forward pass.

:class:`GeneratorEMA` is owned by the updater (``GANUpdater(ema=...)``),
which calls :meth:`GeneratorEMA.update` with the G step's inputs and saves
the average in trainer snapshots; image grids, the evaluator and
``generate.py`` use ``ema.target`` when it exists.
"""

from __future__ import annotations

import copy
import math

import chainer

from gan_trainer.nets import call_net

#: What :class:`GeneratorEMA` does with BatchNorm's running statistics.
BN_STATS = ('recompute', 'average')


class GeneratorEMA:
    """Keeps ``target``, a moving-average copy of a generator.

    Args:
        gen: The generator being trained; it is deep-copied once.
        decay: Weight of the old average per update; 0.999 averages over
            roughly the last 1,000 updates.
        start: Iteration from which averaging begins; before it the
            average is a plain copy of G.
        bn_stats: ``'recompute'``: the average's BatchNorm statistics are
            its own, from a forward pass on each G step's z (see the module
            docstring); ``'average'``: the moving average of G's.
        rampup: The half-life's ramp (see the module docstring): at update
            ``t`` it is at most ``rampup * t`` updates; ``None`` for a
            fixed decay.
    """

    def __init__(self, gen: chainer.Link, *, decay: float = 0.999, start: int = 0,
                 bn_stats: str = 'recompute', rampup: float | None = None) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f'EMA decay must be in [0, 1), got {decay}')
        if start < 0:
            raise ValueError(f'EMA start must be >= 0, got {start}')
        if bn_stats not in BN_STATS:
            raise ValueError(f'EMA bn_stats must be one of {", ".join(BN_STATS)}, '
                             f'got {bn_stats!r}')
        if rampup is not None and not (isinstance(rampup, (int, float)) and 0 < rampup < 1e6):
            raise ValueError(f'EMA rampup must be a number > 0, got {rampup!r}')
        self.decay = decay
        self.start = start
        self.rampup = rampup
        self.bn_stats = bn_stats
        self.target = copy.deepcopy(gen)
        self._has_bn = any(isinstance(link, chainer.links.BatchNormalization)
                           for link in self.target.links())

    def _pairs(self, gen: chainer.Link, *, statistics: bool = True):
        """Yields matching (ema array, gen array) pairs: params, then BN stats."""
        for (name, p_ema), (_, p_gen) in zip(
                sorted(self.target.namedparams()), sorted(gen.namedparams())):
            yield name, p_ema.array, p_gen.array
        if not statistics:
            return
        ema_links = dict(self.target.namedlinks())
        for name, link in gen.namedlinks():
            for attr in sorted(link._persistent):
                value = getattr(link, attr)
                if hasattr(value, 'dtype') and value.dtype.kind == 'f':
                    yield f'{name}/{attr}', getattr(ema_links[name], attr), value

    def decay_at(self, iteration: int) -> float:
        """The decay of the update at ``iteration`` (0-based: the updater's count before it)."""
        if iteration < self.start or self.decay == 0:
            return 0.0
        if self.rampup is None:
            return self.decay
        half_life = min(math.log(0.5) / math.log(self.decay),
                        self.rampup * (iteration + 1 - self.start))
        return 0.5 ** (1.0 / half_life) if half_life > 0 else 0.0

    def update(self, gen: chainer.Link, iteration: int, *, z=None, labels=None) -> None:
        """Folds G's current weights into the average (in place).

        Args:
            gen: The generator, just updated.
            iteration: The updater's iteration (averaging begins at ``start``).
            z: The G step's latent batch (on G's device). With
                ``bn_stats='recompute'`` the average runs forward on it to
                update its own BatchNorm statistics; without it (``None``)
                G's statistics are averaged instead.
            labels: The G step's class labels, for a conditional G.
        """
        decay = self.decay_at(iteration)
        own = self.bn_stats == 'recompute' and z is not None and self._has_bn and decay > 0
        for _, ema, new in self._pairs(gen, statistics=not own):
            # In place, so the arrays stay where they are (CPU or GPU).
            ema *= decay
            ema += (1.0 - decay) * new
        if own:
            # Training mode: BatchNorm normalises by the batch and moves its
            # running statistics; no graph, so nothing else changes.
            with chainer.using_config('train', True), chainer.no_backprop_mode():
                call_net(self.target, z, labels)

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
