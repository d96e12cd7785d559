"""NaNGuard: stop training at the first NaN or infinity, before it is saved.

A GAN that blows up usually does so in one step: a loss becomes ``nan`` and
every parameter it touches follows. Training on would waste hours and, worse,
the next snapshot would save the broken weights, and ``n_retains`` would then
delete a good snapshot to make room for it. The guard checks every number a
snapshot would save, not only the losses: the reported values of the
iteration, and for each network its parameters, its persistent values
(BatchNorm's ``avg_mean``/``avg_var``, spectral normalisation's ``u``) and
its optimizer's state (Adam's ``m`` and ``v``), and the EMA copy of G. A
huge learning rate can leave every loss and weight finite while BatchNorm's
running variance overflows to ``inf``; ``dis_iter_N.npz`` then held it, and
the run exited 0. The guard raises :class:`TrainingDiverged` naming the
iteration and the array. It runs before every writer (its priority is
above ``PRIORITY_WRITER``; Chainer's snapshots have priority -100), so no
snapshot, preview or log entry of the bad state is written and the newest
snapshot on disk is the last good one.

Mixed precision: with dynamic loss scaling (:mod:`gan_trainer.precision`)
an update whose float16 gradients overflowed is skipped by the optimizer
and the loss scale halved; the weights stay finite and the run goes on, as
it should. The guard stops only when a network's updates have been skipped
``max_skips`` iterations in a row at loss scale 1, where halving cannot
help any more: its gradients themselves are not finite.
"""

from __future__ import annotations

from collections.abc import Iterable

import chainer
import numpy
from chainer import training

from gan_trainer import finite
from gan_trainer.precision import LOSS_SCALE_KEY, SKIPPED_KEY
from gan_trainer.priorities import priority_of


class TrainingDiverged(RuntimeError):
    """Training produced a NaN or infinity; the message says where and when."""


def named_arrays(prefix: str, link: chainer.Link, optimizer: chainer.Optimizer | None = None):
    """Yields ``(description, array)`` for every float array a snapshot saves of ``link``.

    Descriptions read ``parameter dis/convs/1/W``, ``persistent
    dis/bns/0/avg_var`` and ``optimizer state dis/convs/1/W/m`` (the key
    of that array in a trainer snapshot, without ``updater/optimizer:``).
    """
    for path, param in link.namedparams():
        if param.array is not None:
            yield f'parameter {prefix}{path}', param.array
    for path, sub in link.namedlinks():
        for attr in sorted(sub._persistent):
            value = getattr(sub, attr)
            if getattr(value, 'dtype', None) is not None and value.dtype.kind == 'f':
                yield f'persistent {prefix}{path.rstrip("/")}/{attr}', value
    if optimizer is None:
        return
    for path, param in link.namedparams():
        state = getattr(getattr(param, 'update_rule', None), 'state', None) or {}
        for key in sorted(state):
            value = state[key]
            if getattr(value, 'dtype', None) is not None and value.dtype.kind == 'f':
                yield f'optimizer state {prefix}{path}/{key}', value


class NaNGuard(training.Extension):
    """Stops training when a reported value or a saved array is not finite.

    Reported values: every float in ``trainer.observation`` (``gen/loss``,
    ``dis/loss``, ``dis/acc_real``, ...), or only ``keys``. Arrays: for each
    of the updater's optimizers (``gen``, ``dis``) its target's parameters
    and persistent values and the optimizer's state, and the updater's
    ``ema.target`` (as ``gen_ema``) when it has one.

    Cost: ``isfinite(a).all()`` of each array, the flags stacked into one
    per network on its device, and one device-to-host transfer per iteration for all
    networks and reported values together (:mod:`gan_trainer.finite`).
    Afterwards the reported one-element values in the observation are
    replaced by those host numbers (``numpy.float64``), so the extensions
    after the guard (``DivergenceMonitor``, ``LogReport``) read them without
    a transfer of their own. Only when a flag is down are the arrays searched
    one by one to name the culprit. ``param_interval`` checks the arrays less
    often; keep the snapshot interval a multiple of it, or a snapshot may
    save bad weights that the losses do not show yet.

    Args:
        keys: Observation keys to check; all float values when None.
        param_interval: Check the arrays every this many iterations; 0 never.
        max_skips: Stop after this many iterations in a row in which one
            network's update was skipped at loss scale 1 (mixed precision;
            see the module docstring). 20: a healthy run at scale 1 skips
            an update now and then, never twenty in a row.

    Raises:
        TrainingDiverged: From ``__call__``, e.g. ``training stopped at
            iteration 57: persistent dis/bns/0/avg_var holds inf``.
    """

    trigger = 1, 'iteration'
    # Above every writer (evaluator, image grid, snapshots), so nothing of
    # the bad state is written.
    priority = priority_of('nan_guard')
    default_name = 'nan_guard'

    def __init__(self, *, keys: Iterable[str] | None = None, param_interval: int = 1,
                 max_skips: int = 20) -> None:
        if param_interval < 0:
            raise ValueError(f'param_interval must be >= 0, got {param_interval}')
        if max_skips < 1:
            raise ValueError(f'max_skips must be >= 1, got {max_skips}')
        self.keys = None if keys is None else list(keys)
        self.param_interval = param_interval
        self.max_skips = max_skips
        self._skips: dict[str, int] = {}  # network -> skipped updates in a row at scale 1

    def __call__(self, trainer: training.Trainer) -> None:
        iteration = trainer.updater.iteration
        arrays = self.param_interval and iteration % self.param_interval == 0
        groups = self.groups(trainer.updater) if arrays else {}
        problem = self.check(trainer.observation, groups, replace=True)
        if problem is None:
            problem = self._check_skips(trainer.observation, trainer.updater)
        if problem is not None:
            raise TrainingDiverged(f'training stopped at iteration {iteration}: {problem}')

    @staticmethod
    def groups(updater) -> dict[str, list[tuple[str, object]]]:
        """``{network: [(description, array), ...]}``: what a snapshot saves of it."""
        result = {}
        optimizers = updater.get_all_optimizers()
        for name in sorted(optimizers):
            optimizer = optimizers[name]
            result[name] = list(named_arrays(name, optimizer.target, optimizer))
        ema = getattr(updater, 'ema', None)
        if ema is not None:
            result['gen_ema'] = list(named_arrays('gen_ema', ema.target))
        return result

    def check(self, observation: dict, groups: dict | None = None, *,
              replace: bool = False) -> str | None:
        """The first problem among reported values and ``groups``, or None.

        One transfer for everything; ``replace`` puts the reported
        one-element values back into ``observation`` as host numbers.
        """
        groups = groups or {}
        keys = sorted(observation) if self.keys is None else self.keys
        scalars, arrays = [], []  # (key, value): one element / several
        for key in keys:
            value = observation.get(key)
            raw = value.array if isinstance(value, chainer.Variable) else value
            if isinstance(raw, bool):
                continue
            if isinstance(raw, (float, numpy.floating)):
                scalars.append((key, raw))
            elif getattr(raw, 'dtype', None) is not None and raw.dtype.kind == 'f':
                (scalars if raw.size == 1 else arrays).append((key, raw))
        names = sorted(groups)
        values, flags = finite.reduce_to_host(
            [v for _, v in scalars],
            [[a for _, a in arrays]] + [[a for _, a in groups[n]] for n in names])
        if replace:
            for (key, _), value in zip(scalars, values):
                observation[key] = numpy.float64(value)
        for (key, _), value in zip(scalars, values):
            if not numpy.isfinite(value):
                return f'{key} is {value}'
        if not flags[0]:
            key, kind = finite.first_nonfinite(arrays)
            return f'{key} contains {kind}'
        for name, ok in zip(names, flags[1:]):
            if not ok:
                culprit = finite.first_nonfinite(groups[name])
                if culprit is not None:
                    return f'{culprit[0]} holds {culprit[1]}'
        return None

    def check_observation(self, observation: dict) -> str | None:
        """Returns ``'KEY is nan'`` for the first non-finite value, or None."""
        return self.check(observation)

    def check_params(self, optimizers: dict[str, chainer.Optimizer]) -> str | None:
        """Returns ``'parameter dis/conv0/W holds nan'`` (or a persistent, a state) or None."""
        groups = {name: list(named_arrays(name, opt.target, opt))
                  for name, opt in optimizers.items()}
        return self.check({}, groups)

    def _check_skips(self, observation: dict, updater) -> str | None:
        for name in sorted(updater.get_all_optimizers()):
            skipped = observation.get(f'{name}/{SKIPPED_KEY}')
            scale = observation.get(f'{name}/{LOSS_SCALE_KEY}')
            if skipped is None or scale is None:
                continue
            at_floor = float(skipped) > 0 and float(scale) <= 1
            self._skips[name] = self._skips.get(name, 0) + 1 if at_floor else 0
            if self._skips[name] >= self.max_skips:
                return (f'{name}: {self._skips[name]} updates in a row skipped at loss scale 1 '
                        '(its gradients are not finite even unscaled)')
        return None
