"""TeamTuner: oneDNN's OpenMP team at the size that runs this machine's iterations fastest.

An OpenMP team waits at the end of every parallel region for its slowest
thread. On a machine whose cores are also busy with other work (a second
training, a loader worker, another user's job), a thread of the team is
regularly descheduled, and every one of the fifty-odd oneDNN calls of an
iteration can then wait for a scheduler time slice: on two shared cores the
default run took about twice as long with two threads as with one, while
on quiet cores two threads are faster (``benchmarks/profile_run.py --ab
threads`` measures both in one process; the figures are in
benchmarks/RESULTS.md). The best size depends on the load, which changes,
so it is measured, not guessed: now and then the tuner runs windows of
``window`` iterations with each candidate size (the team
:func:`gan_trainer.ops.threads.share_cores` chose, half of it, one
thread), alternating, and keeps the size with the lowest median
milliseconds per iteration (the larger one unless another is faster by
more than ``tolerance``). The first such exploration comes right after the
warm-up; the next one ``explore_every`` iterations later, and the interval
doubles (up to ``max_every``) each time the choice stays the same, so
that a steady machine spends few iterations on the worse size.

Its choice never changes a number: before it first changes the team, it
builds every cached oneDNN convolution and normalization for each
candidate size (a primitive keeps the team it was built for, so
:func:`gan_trainer.ops.dnnl.cached` keeps one per team) and checks that
they give the same bits (:func:`gan_trainer.ops.onednn_conv.team_independent`:
the kernels of the machine's CPU may split a gradient's sums by thread),
and where that does not hold it leaves the team alone for the whole run.
So a run with the tuner is the run without it, bit for bit, and a resumed
run continues exactly; it keeps no state in snapshots. Where the team
matters to the sums (on the AVX2 CPU of benchmarks/RESULTS.md, the batch
normalizations and some convolutions), it times the cached convolutions
with each team once, outside the training step, and if a smaller team is
faster by more than a fifth (other work on the cores) says so, in a run
of 500 iterations or more, in one warning (:class:`ThreadsWarning`) with the ``OMP_NUM_THREADS`` that would
use it from the start: a run's team is chosen when it starts
(:func:`gan_trainer.ops.threads.share_cores`), not in the middle.
``GAN_TRAINER_TEAM_ADVICE=0`` turns the warning off (the test suite does:
its processes share the cores).
"""

from __future__ import annotations

import os
import statistics
import time
import warnings

from chainer import training

from gan_trainer.ops import onednn_conv, threads
from gan_trainer.priorities import priority_of

#: Environment variable that turns the warning off (``0``).
ADVICE_SWITCH = 'GAN_TRAINER_TEAM_ADVICE'


class ThreadsWarning(UserWarning):
    """A smaller oneDNN team would run this run faster (see :class:`TeamTuner`)."""


def long_run(trainer, iterations: int) -> bool:
    """Whether the trainer stops after ``iterations`` or more (a run by epochs counts as long;
    a stop trigger of another kind too)."""
    length = getattr(trainer, 'stop_trigger', None)
    length = getattr(length, 'get_training_length', lambda: None)()
    return not (length and length[1] == 'iteration' and length[0] < iterations)


def candidates(team: int) -> list[int]:
    """The team sizes tried: the full team, half of it, one thread (distinct, largest first)."""
    return sorted({team, max(1, team // 2), 1}, reverse=True)


class TeamTuner(training.Extension):
    """Keeps oneDNN's OpenMP team at the fastest size for the current load.

    Args:
        window: Iterations per measured window (the median of each window
            counts, so an iteration that saves a snapshot does not).
        rounds: Windows per candidate in one exploration, alternating.
        explore_every: Iterations from one exploration's start to the next
            at first, and after a changed choice.
        max_every: The longest interval, reached by doubling.
        warmup: Iterations before the first (oneDNN builds its primitives).
        tolerance: A smaller team must be faster by this fraction to be chosen.
    """

    trigger = 1, 'iteration'
    priority = priority_of('team_tuner')
    default_name = 'team_tuner'

    def __init__(self, *, window: int = 8, rounds: int = 2, explore_every: int = 200,
                 max_every: int = 3200, warmup: int = 10, tolerance: float = 0.05) -> None:
        if window < 2 or rounds < 1 or not 1 <= explore_every <= max_every or warmup < 0:
            raise ValueError('window >= 2, rounds >= 1, 1 <= explore_every <= max_every '
                             'and warmup >= 0')
        self.window, self.rounds, self.explore_every = window, rounds, explore_every
        self.max_every, self._every = max_every, explore_every
        self.warmup, self.tolerance = warmup, tolerance
        self.enabled: bool | None = None  # None: not decided yet
        self.sizes: list[int] = []  # the candidates, largest first
        self.team: int | None = None  # the size in use
        self.choices: list[tuple[int, int]] = []  # (iteration, team chosen), for reports
        self._plan: list[int] = []  # the team of each iteration still to measure
        self._times: dict[int, list[list[float]]] = {}  # team -> windows of durations
        self._last: float | None = None
        self._next = None  # the iteration the next exploration starts at
        self.advise_above = 0.2  # a smaller team this much faster is worth a warning,
        self.advise_min_iterations = 500  # in a run at least this long
        self.timed: dict[int, float] = {}  # team -> ms, where the check found the team matters
        self.advice: int | None = None  # the team the warning proposed

    def _set(self, team: int) -> None:
        threads.set_team(team)
        self.team = team

    def _decide(self, advise: bool = True) -> bool:
        full = threads.team
        if full is None or full < 2 or not threads.onednn_loaded():
            return False
        self.sizes = candidates(full)
        try:
            same = onednn_conv.team_independent(self.sizes, threads.set_team)
            if not same and advise:
                self._advise(full)
        finally:
            threads.set_team(full)
            self.team = full
        return same

    def _advise(self, full: int) -> None:
        """One warning when a smaller team runs the layers clearly faster now (timed
        on the cached convolutions, outside the training step), though the
        tuner may not switch: the user can start with that team."""
        ms = onednn_conv.team_times(self.sizes, threads.set_team)
        if not ms:
            return
        best = min(ms, key=ms.get)
        self.timed = ms
        if best != full and ms[best] < ms[full] * (1 - self.advise_above):
            self.advice = best
            warnings.warn(
                f"oneDNN ran this run's convolutions {ms[full] / ms[best]:.1f}x faster with "
                f'{best} thread(s) than with {full} (other work is using the cores); start '
                f'with OMP_NUM_THREADS={best} to use that (the team is kept during a run: '
                f"this CPU's kernels sum in another order with another team)",
                ThreadsWarning, stacklevel=2)

    def __call__(self, trainer) -> None:
        now = time.perf_counter()
        last, self._last = self._last, now
        iteration = trainer.updater.iteration
        if self.enabled is False or iteration <= self.warmup:
            return
        if self.enabled is None:
            advise = (long_run(trainer, self.advise_min_iterations)
                      and os.environ.get(ADVICE_SWITCH, '1').strip() != '0')
            self.enabled = self._decide(advise)
            self._next = iteration
            self._last = time.perf_counter()  # the check's own time is no iteration's
            return
        if self._plan:  # the iteration that just ended ran with the planned team
            team = self._plan.pop(0)
            if last is not None:
                self._times[team][-1].append(1e3 * (now - last))
            if not self._plan:
                self._choose(iteration)
            else:
                self._start_window(self._plan[0])
        elif iteration >= self._next:
            self._plan = [team for _ in range(self.rounds) for team in self.sizes
                          for _ in range(self.window)]
            self._times = {team: [] for team in self.sizes}
            self._start_window(self._plan[0])
            self._next = iteration + self._every

    def _start_window(self, team: int) -> None:
        if not self._times[team] or len(self._times[team][-1]) >= self.window:
            self._times[team].append([])
        if team != self.team:
            self._set(team)

    def _choose(self, iteration: int) -> None:
        medians = {team: statistics.median([statistics.median(w) for w in windows if w])
                   for team, windows in self._times.items()}
        best = self.sizes[0]
        for team in self.sizes[1:]:
            if medians[team] < medians[best] * (1 - self.tolerance):
                best = team
        same = bool(self.choices) and self.choices[-1][1] == best
        self._every = min(2 * self._every, self.max_every) if same else self.explore_every
        self._set(best)
        self.choices.append((iteration, best))
