"""NaNGuard: stop training at the first NaN or infinity, before it is saved.

A GAN that blows up usually does so in one step: a loss becomes ``nan`` and
every parameter it touches follows. Training on would waste hours and, worse,
the next snapshot would save the broken weights, and ``n_retains`` would then
delete a good snapshot to make room for it. The guard checks the losses of
every iteration and the networks' parameters, and raises
:class:`TrainingDiverged` naming the iteration and the quantity. It runs
before every writer (its priority is above ``PRIORITY_WRITER``; Chainer's
snapshots have priority -100), so no snapshot, preview or log entry of the
bad state is written and the newest snapshot on disk is the last good one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import chainer
import numpy
from chainer import training


class TrainingDiverged(RuntimeError):
    """Training produced a NaN or infinity; the message says where and when."""


class NaNGuard(training.Extension):
    """Stops training when a reported value or a parameter is not finite.

    Reported values: every float in ``trainer.observation`` (``gen/loss``,
    ``dis/loss``, ``dis/acc_real``, ...), or only ``keys``. Parameters: those
    of the target of each of the updater's optimizers (``gen``, ``dis``).

    Cost: the observation holds a handful of scalars. For the parameters, each
    network is reduced to one number, the float64 sum of all its parameters,
    which is finite exactly when every parameter is (NaN and infinities
    propagate through a sum; float64 cannot overflow on float32 values), so
    one pass over the weights and one device synchronisation per network,
    small next to a training step's forward and backward passes. Only when
    that sum is not finite are the parameters searched one by one to name the
    culprit. ``param_interval`` checks the parameters less often; keep the
    snapshot interval a multiple of it, or a snapshot may save bad weights
    that the losses do not show yet (a NaN made by the last update of an
    iteration shows in the losses of the next one).

    Args:
        keys: Observation keys to check; all float values when None.
        param_interval: Check the parameters every this many iterations;
            0 never.

    Raises:
        TrainingDiverged: From ``__call__``, e.g. ``training stopped at
            iteration 57: dis/loss is nan``.
    """

    trigger = 1, 'iteration'
    # Above every writer (PRIORITY_WRITER = 300: evaluator, image grid;
    # snapshots at -100), so nothing of the bad state is written.
    priority = training.PRIORITY_WRITER + 1
    default_name = 'nan_guard'

    def __init__(self, *, keys: Iterable[str] | None = None, param_interval: int = 1) -> None:
        if param_interval < 0:
            raise ValueError(f'param_interval must be >= 0, got {param_interval}')
        self.keys = None if keys is None else list(keys)
        self.param_interval = param_interval

    def __call__(self, trainer: training.Trainer) -> None:
        iteration = trainer.updater.iteration
        problem = self.check_observation(trainer.observation)
        if problem is None and self.param_interval and iteration % self.param_interval == 0:
            problem = self.check_params(trainer.updater.get_all_optimizers())
        if problem is not None:
            raise TrainingDiverged(f'training stopped at iteration {iteration}: {problem}')

    def check_observation(self, observation: dict) -> str | None:
        """Returns ``'KEY is nan'`` for the first non-finite value, or None."""
        keys = sorted(observation) if self.keys is None else self.keys
        for key in keys:
            value = observation.get(key)
            if isinstance(value, chainer.Variable):
                value = value.array
            if isinstance(value, (float, numpy.floating)):
                if not math.isfinite(value):
                    return f'{key} is {float(value)}'
            elif getattr(value, 'dtype', None) is not None and value.dtype.kind == 'f':
                if value.size == 1:
                    scalar = float(value.reshape(()))  # CuPy: one device sync
                    if not math.isfinite(scalar):
                        return f'{key} is {scalar}'
                elif not bool(_xp(value).isfinite(value).all()):
                    return f'{key} contains {_kind(value)}'
        return None

    def check_params(self, optimizers: dict[str, chainer.Optimizer]) -> str | None:
        """Returns ``'parameter dis/conv0/W holds nan'`` for the first bad one."""
        for name in sorted(optimizers):
            link = optimizers[name].target
            arrays = [(path, p.array) for path, p in link.namedparams() if p.array is not None]
            if not arrays:
                continue
            total = sum(a.sum(dtype=numpy.float64) for _, a in arrays)
            if math.isfinite(float(total)):
                continue
            for path, array in arrays:
                if not bool(_xp(array).isfinite(array).all()):
                    return f'parameter {name}{path} holds {_kind(array)}'
        return None


def _xp(array):
    return chainer.backend.get_array_module(array)


def _kind(array) -> str:
    """'nan' if the array holds a NaN, else 'inf' (it holds an infinity)."""
    return 'nan' if bool(_xp(array).isnan(array).any()) else 'inf'
