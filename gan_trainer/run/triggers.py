"""When a run's periodic extensions fire: every N iterations and at the last one.

A run's snapshots, grids, validations and log lines come every
``interval`` iterations and once more at the run's last iteration, so a
run always ends with a record of its final state even when it is shorter
than an interval. Chainer's ``ManualScheduleTrigger`` can say that, but
only as a list of every point of the whole run: ``--iteration 10**10``
then builds a list of a billion integers before the first iteration, and
each iteration searches it. :class:`Every` computes the same points from
the iteration number, so its memory and its cost per iteration do not
depend on the run's length.

The trigger keeps no state, so a resumed run (whatever its new last
iteration) fires exactly where an uninterrupted one would, and trainer
snapshots of earlier versions, which hold a ``ManualScheduleTrigger``'s
state, still load (Chainer reads a trigger's state only from triggers that
have a ``serialize``).
"""

from __future__ import annotations

import operator


class Every:
    """Fires at iterations ``interval``, ``2 * interval``, ... and at ``last``.

    Args:
        interval: Iterations between two firings (at least 1).
        last: The run's last iteration (at least 1): it fires there too.

    The trainer calls it after each update with the iteration just done;
    iteration 0 (before any update) never fires.
    """

    def __init__(self, interval: int, last: int) -> None:
        self.interval = _count('interval', interval)
        self.last = _count('last', last)

    def fires_at(self, iteration: int) -> bool:
        """Whether it fires after update number ``iteration``."""
        return 0 < iteration <= self.last and (
            iteration % self.interval == 0 or iteration == self.last)

    def __call__(self, trainer) -> bool:
        return self.fires_at(trainer.updater.iteration)

    def __repr__(self) -> str:
        return f'Every({self.interval}, last={self.last})'


class AnyOf:
    """Fires where any of ``triggers`` (each with a ``fires_at``) fires."""

    def __init__(self, *triggers: Every) -> None:
        self.triggers = triggers

    def fires_at(self, iteration: int) -> bool:
        return any(t.fires_at(iteration) for t in self.triggers)

    def __call__(self, trainer) -> bool:
        return self.fires_at(trainer.updater.iteration)

    def __repr__(self) -> str:
        return f'AnyOf{self.triggers!r}'


def _count(name: str, value) -> int:
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f'{name} must be an integer, got {value!r}') from None
    if value < 1:
        raise ValueError(f'{name} must be at least 1, got {value}')
    return value
