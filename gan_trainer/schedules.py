"""Schedules over a run: learning-rate warm-up and decay, and ramps of other settings.

A short GAN run gains most from a learning rate that decays towards its end:
the last iterations then refine G instead of moving it around the
equilibrium by a full step each time. R3GAN (Huang et al. 2024) also ramps
its other settings over a run with a cosine: Adam's beta2 up (0.9 to 0.99:
quick to adapt early, smooth late) and the R1/R2 weight down (0.05 to
0.005). This module gives both as pure functions of the iteration, and one
extension, :class:`Schedule`, that applies them.

* :func:`lr_factor`: the learning rate's factor at an iteration: a linear
  warm-up from 0 over ``warmup`` iterations (large learning rates early
  blow up Adam's first steps, whose second-moment estimate is still
  poor), then 1 until ``decay_start`` (a fraction of the run), then a
  ``'linear'`` or ``'cosine'`` decay to ``floor`` at the last iteration
  (``'none'``: no decay).
* :func:`ramp`: a cosine from one value to another over the whole run.

Why not Chainer's ``LinearShift`` and friends: they count their own calls
and keep that count in snapshots, one shift per attribute; a warm-up and a
decay of the same learning rate would be two extensions writing one
attribute. Here each value is a function of the updater's iteration only,
so the schedule has no state, and a resumed run sets exactly the values of
an uninterrupted one (a test interrupts runs with each schedule and compares
bit for bit). Chainer's Adam learning rate is its ``alpha`` (its ``lr`` is the
bias-corrected step, read-only); the other optimizers' is ``lr``.

The recipes' measured effect is in docs/results.md (``benchmarks/recipes.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import chainer
from chainer.training import extension

from gan_trainer.priorities import priority_of

#: Shapes of the learning-rate decay (``--lr_schedule``).
LR_SCHEDULES = ('none', 'linear', 'cosine')


def _progress(iteration: int, begin: float, end: float) -> float:
    """Where ``iteration`` lies in ``[begin, end]``, clipped to [0, 1]."""
    if end <= begin:
        return 1.0 if iteration >= end else 0.0
    return min(max((iteration - begin) / (end - begin), 0.0), 1.0)


def _shaped(u: float, shape: str) -> float:
    """0 -> 1 along ``shape`` at progress ``u``: linear, or a half cosine (flat at both ends)."""
    return u if shape == 'linear' else (1.0 - math.cos(math.pi * u)) / 2.0


def lr_factor(iteration: int, total: int, *, shape: str = 'none', floor: float = 0.0,
              warmup: int = 0, decay_start: float = 0.0) -> float:
    """The learning rate's multiplier for the update that follows ``iteration`` updates.

    Args:
        iteration: Updates done so far (the updater's ``iteration``).
        total: The run's last iteration.
        shape: ``'none'``, ``'linear'`` or ``'cosine'`` decay.
        floor: The factor at the end of the decay.
        warmup: Iterations of linear warm-up: ``(iteration + 1) / warmup``.
        decay_start: Fraction of the run after which the decay begins (it
            begins no earlier than the end of the warm-up).

    Returns:
        The factor, in ``[0, 1]``.
    """
    if shape not in LR_SCHEDULES:
        raise ValueError(f'unknown lr schedule {shape!r}; valid: {", ".join(LR_SCHEDULES)}')
    if iteration < warmup:
        return (iteration + 1) / warmup
    if shape == 'none':
        return 1.0
    begin = max(float(warmup), decay_start * total)
    return 1.0 - (1.0 - floor) * _shaped(_progress(iteration, begin, total), shape)


def ramp(iteration: int, total: int, start: float, end: float) -> float:
    """A cosine from ``start`` (iteration 0) to ``end`` (iteration ``total``)."""
    return start + (end - start) * _shaped(_progress(iteration, 0, total), 'cosine')


#: ``iteration -> value``.
ValueAt = Callable[[int], float]
#: ``value -> None``: writes the value where it acts.
Setter = Callable[[float], None]


class Schedule(extension.Extension):
    """Sets values that follow the iteration, before every update.

    Args:
        entries: Name -> ``(value_at, setter)``: ``value_at(iteration)``
            is written by ``setter`` before the update that follows
            ``iteration`` updates. The name is the reported key
            (``lr/gen`` ...), so the log shows every scheduled value.

    The values are set when training starts (or resumes) and after every
    update, so each update sees the value of the iteration it starts from.
    """

    trigger = 1, 'iteration'
    priority = priority_of('schedule')
    default_name = 'schedule'

    def __init__(self, entries: dict[str, tuple[ValueAt, Setter]]) -> None:
        self.entries = dict(entries)
        self._current: dict[str, float] = {}

    def _apply(self, iteration: int) -> dict[str, float]:
        values = {}
        for name, (value_at, setter) in self.entries.items():
            values[name] = value = value_at(iteration)
            setter(value)
        return values

    def initialize(self, trainer) -> None:
        self._current = self._apply(trainer.updater.iteration)

    def __call__(self, trainer) -> None:
        # Reported with the values of the update that just ran, then set
        # for the next one.
        chainer.report(self._current)
        self._current = self._apply(trainer.updater.iteration)


def optimizer_lr_setter(optimizer: chainer.Optimizer) -> tuple[float, Setter]:
    """``(base learning rate, setter)`` of an optimizer: Adam's ``alpha``, others' ``lr``."""
    attr = 'alpha' if hasattr(optimizer.hyperparam, 'alpha') and hasattr(
        optimizer.hyperparam, 'beta1') else 'lr'
    return getattr(optimizer.hyperparam, attr), lambda value: setattr(
        optimizer.hyperparam, attr, value)
