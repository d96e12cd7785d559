"""LossPlot: the run's loss curves as a picture, redrawn when it is worth the time.

Chainer's ``PlotReport`` redraws its figure with matplotlib at every trigger
(every log line, 50 iterations in the default run): a new figure, the
curves, a legend, a tight bounding box, a PNG. Each drawing costs a
noticeable fraction of a second on a small CPU, which made it one of the
largest costs of the whole training process outside the training step
itself (``benchmarks/profile_run.py`` prints it as ``extension
PlotReport``; the figures are in benchmarks/RESULTS.md).

:class:`LossPlot` keeps ``PlotReport``'s data and its state in snapshots
and the window it is averaging (its subclass, under the same name: a run
resumed in the middle of a window plots what an uninterrupted one does), and adds a
point at every trigger as ``PlotReport`` does, but draws at most once every
``min_seconds`` of wall time, at the first point, and when training ends
(``finalize``), so the last picture always holds every point. The picture
is :func:`gan_trainer.logs.plot_log`'s, drawn by the same function.
"""

from __future__ import annotations

import os
import time
import warnings

import chainer
from chainer.training import extensions

from gan_trainer.logs import draw_curves


class LossPlot(extensions.PlotReport):
    """Plots ``y_keys`` against the iteration into ``OUT/filename``, drawing sparingly.

    Args:
        y_keys: Observation keys, one curve each (a key never reported
            draws nothing).
        trigger: When a point (the mean since the last one) is added.
        filename: The picture, under the trainer's ``out``.
        min_seconds: Wall time between two drawings, at least.
    """

    def __init__(self, y_keys, *, trigger, filename: str, min_seconds: float = 30.0) -> None:
        super().__init__(list(y_keys), 'iteration', trigger=trigger, filename=filename)
        self.min_seconds = min_seconds
        self._drawn_at: float | None = None  # time.monotonic() of the last drawing
        self._out: str | None = None
        self._undrawn = False  # points added since the last drawing

    def __call__(self, trainer) -> None:
        observation = trainer.observation
        self._summary.add({k: observation[k] for k in self._y_keys if k in observation})
        if not self._trigger(trainer):
            return
        means = self._summary.compute_mean()
        iteration = trainer.updater.iteration
        for key in self._y_keys:
            if key in means:
                self._data[key].append((iteration, float(means[key])))
        self._init_summary()
        self._out, self._undrawn = trainer.out, True
        if self._drawn_at is None or time.monotonic() - self._drawn_at >= self.min_seconds:
            self.draw()

    def draw(self) -> None:
        """Draws the curves so far (nothing before the first point)."""
        curves = {k: ([x for x, _ in xy], [y for _, y in xy])
                  for k, xy in self._data.items() if xy}
        if curves and self._out is not None:
            draw_curves(curves, os.path.join(self._out, self._file_name))
        self._drawn_at, self._undrawn = time.monotonic(), False

    def serialize(self, serializer) -> None:
        # Chainer's PlotReport saves only the points already plotted, so a
        # run resumed in the middle of a window plotted that window's mean
        # over the iterations after the resume alone (LogReport keeps its
        # window; the log and the plot then disagreed). The window is kept too.
        super().serialize(serializer)
        if isinstance(serializer, chainer.serializer.Serializer):
            self._summary.serialize(serializer['_summary'])
            return
        with warnings.catch_warnings():
            # A snapshot of an earlier version has no window: it starts empty.
            warnings.filterwarnings('ignore', message='The names of statistics are not saved')
            self._summary.serialize(serializer['_summary'])

    def finalize(self) -> None:
        if self._undrawn:
            self.draw()
