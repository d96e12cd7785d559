"""DivergenceMonitor: warn when D wins every batch while G's loss climbs.

The classic failure of a GAN that is still numerically healthy: the
discriminator becomes perfect (it classifies nearly every real and fake
image correctly), its gradients to G vanish or explode, and G's loss rises
steadily while the samples stop improving or collapse to a few modes. No
NaN appears, so :class:`~gan_trainer.extensions.NaNGuard` stays quiet; this
extension watches a sliding window of iterations instead and, when both
signs hold over the whole window, reports ``warning/divergence`` = 1 (so it
lands in ``LogReport``'s log for every interval where it holds) and emits
one :class:`DivergenceWarning` per episode on the console. It only warns:
training goes on, since a GAN sometimes recovers.
"""

from __future__ import annotations

import math
import warnings
from collections import deque

import chainer
import numpy
from chainer import training

from gan_trainer import finite
from gan_trainer.precision import SKIPPED_KEY
from gan_trainer.priorities import priority_of


class DivergenceWarning(UserWarning):
    """D wins almost every batch while G's loss keeps rising."""


def slope(values) -> float:
    """Least-squares slope of ``values`` against ``0, 1, 2, ...`` (per step)."""
    y = numpy.asarray(values, numpy.float64)
    x = numpy.arange(len(y), dtype=numpy.float64)
    x -= x.mean()
    return float((x * (y - y.mean())).sum() / (x * x).sum())


class DivergenceMonitor(training.Extension):
    """Warns once per episode when D dominates and G's loss keeps rising.

    Every iteration it reads D's accuracy, the mean of ``dis/acc_real`` and
    ``dis/acc_fake`` (:class:`~gan_trainer.GANUpdater` reports both), and
    ``gen/loss`` from the observation. Once ``window`` iterations are in,
    divergence is declared when the mean accuracy over the window is at
    least ``acc_threshold`` *and* the least-squares slope of G's loss over
    the window is above ``min_slope``. A D that wins while G's loss is flat
    or falling is just a strong D, and a rising G loss alone is ordinary GAN
    noise; together, over hundreds of iterations, they are the pattern of a
    run that has stopped learning.

    An episode starts at the first iteration where the condition holds (one
    warning) and ends after ``2 * window`` iterations in a row without it; a
    later episode warns again. Twice the window, because one odd iteration
    keeps the condition from holding for the ``window`` iterations it stays
    in the window: the episode ends only when the run itself has looked
    healthy for a whole window, not after every lucky batch of G.
    Iterations whose observation lacks a key or holds a NaN are skipped, and
    so are those in which an optimizer skipped its update (``NAME/skipped``,
    reported under mixed precision when float16 gradients overflowed): the
    networks did not change, so the iteration is no training step. The
    window and the episode state are saved in snapshots.

    Cost: the three values are read in one device-to-host transfer, and in
    none when :class:`~gan_trainer.extensions.NaNGuard` (which runs first)
    has already put them into the observation as host numbers.

    Args:
        window: Iterations the decision looks at; long enough that a few
            lucky D batches do not trigger it.
        acc_threshold: Mean D accuracy at or above which D "wins".
        min_slope: G's loss must rise faster than this per iteration.
        acc_keys: Observation keys averaged as D's accuracy.
        loss_key: Observation key of G's loss.
    """

    trigger = 1, 'iteration'
    # It adds to the observation before LogReport summarises it.
    priority = priority_of('divergence_monitor')
    default_name = 'divergence_monitor'

    def __init__(
        self,
        *,
        window: int = 200,
        acc_threshold: float = 0.99,
        min_slope: float = 0.0,
        acc_keys: tuple[str, ...] = ('dis/acc_real', 'dis/acc_fake'),
        loss_key: str = 'gen/loss',
    ) -> None:
        if window < 2:
            raise ValueError(f'window must be at least 2 iterations, got {window}')
        self.window = window
        self.acc_threshold = acc_threshold
        self.min_slope = min_slope
        self.acc_keys = tuple(acc_keys)
        self.loss_key = loss_key
        self._history: deque[tuple[float, float]] = deque(maxlen=window)
        self._in_episode = False
        self._quiet = 0  # iterations in a row without the condition

    def __call__(self, trainer: training.Trainer) -> None:
        values = self._read(trainer.observation)
        if values is None:
            return
        self._history.append(values)
        if not self.diverging():
            if self._in_episode:
                self._quiet += 1
                if self._quiet >= 2 * self.window:
                    self._in_episode = False
            return
        self._quiet = 0
        chainer.report({'warning/divergence': 1.0})
        if not self._in_episode:
            self._in_episode = True
            acc, _ = numpy.mean(self._history, axis=0)
            loss_slope = slope([loss for _, loss in self._history])
            warnings.warn(
                f'training may be diverging at iteration {trainer.updater.iteration}: '
                f'D was right on {acc:.1%} of the images of the last {self.window} '
                f'iterations while {self.loss_key} rose by {loss_slope:.3g} per iteration',
                DivergenceWarning,
                stacklevel=2,
            )

    def diverging(self) -> bool:
        """Whether the current window shows the divergence pattern."""
        if len(self._history) < self.window:
            return False
        history = numpy.asarray(self._history, numpy.float64)
        return bool(
            history[:, 0].mean() >= self.acc_threshold and slope(history[:, 1]) > self.min_slope
        )

    def _read(self, observation: dict) -> tuple[float, float] | None:
        if any(float(observation.get(key, 0.0)) > 0 for key in self._skip_keys(observation)):
            return None  # a skipped update: the networks are as they were
        try:
            raw = [observation[key] for key in (*self.acc_keys, self.loss_key)]
        except KeyError:
            return None
        values, _ = finite.reduce_to_host(raw, [])
        *accs, loss = values
        if not all(math.isfinite(v) for v in values):
            return None  # NaNGuard's business
        return sum(accs) / len(accs), loss

    @staticmethod
    def _skip_keys(observation: dict) -> list[str]:
        # Host floats reported by gan_trainer.precision; no transfer.
        return [key for key in observation if key.endswith('/' + SKIPPED_KEY)]

    def serialize(self, serializer) -> None:
        loading = isinstance(serializer, chainer.serializer.Deserializer)
        history = numpy.asarray(list(self._history), numpy.float64).reshape(-1, 2)
        # A placeholder of None makes the npz deserializer return the saved
        # array whatever its length.
        history = serializer('history', None if loading else history)
        state = serializer(
            'state', None if loading else numpy.array([self._in_episode, self._quiet], numpy.int64)
        )
        if loading:
            self._history = deque(
                (tuple(map(float, row)) for row in numpy.asarray(history).reshape(-1, 2)),
                maxlen=self.window,
            )
            self._in_episode, self._quiet = bool(state[0]), int(state[1])
