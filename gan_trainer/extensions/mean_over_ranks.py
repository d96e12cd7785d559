"""MeanOverRanks: the reported values averaged over a data-parallel run's processes.

In a data-parallel run (:mod:`gan_trainer.distributed`) every process
reports the losses and accuracies of its own share of the batch. This
extension replaces each scalar of the current observation by its mean over
all processes, every iteration, before anything reads it: ``LogReport`` on
rank 0 then logs the statistics of the whole global batch, and
:class:`~gan_trainer.extensions.NaNGuard` and
:class:`~gan_trainer.extensions.DivergenceMonitor` see the same values on
every process, so a NaN stops every process at the same iteration instead
of leaving the others waiting in the next allreduce.

Cost: one ``allgather`` of a small dict per iteration.
"""

from __future__ import annotations

import chainer
import numpy
from chainer import training

from gan_trainer.priorities import priority_of


class MeanOverRanks(training.Extension):
    """Averages the observation's scalars over the processes of ``comm``.

    Every process must run it at the same iterations (the default trigger,
    every iteration, does). The mean is computed in rank order from the
    gathered values on every process, so all of them end with bit-identical
    numbers. Keys that some process did not report are left as they are.

    Args:
        comm: A ChainerMN communicator (anything with ``size`` and an
            mpi4py ``mpi_comm``).
        keys: The observation keys to average; every scalar when None.
    """

    trigger = 1, 'iteration'
    # Above NaNGuard and everything that reads the observation, so they all
    # see the means.
    priority = priority_of('mean_over_ranks')
    default_name = 'mean_over_ranks'

    def __init__(self, comm, *, keys=None) -> None:
        self.comm = comm
        self.keys = None if keys is None else list(keys)

    def __call__(self, trainer: training.Trainer) -> None:
        observation = trainer.observation
        local = {}
        for key in sorted(observation) if self.keys is None else self.keys:
            value = _scalar(observation.get(key))
            if value is not None:
                local[key] = value
        gathered = self.comm.mpi_comm.allgather(local)
        for key in local:
            values = [values.get(key) for values in gathered]
            if all(v is not None for v in values):
                observation[key] = numpy.float64(sum(values) / len(values))


def _scalar(value) -> float | None:
    """``value`` as a float if it is a float scalar (array, Variable, number), else None."""
    if isinstance(value, chainer.Variable):
        value = value.array
    if isinstance(value, (float, numpy.floating)):
        return float(value)
    dtype = getattr(value, 'dtype', None)
    if dtype is not None and dtype.kind == 'f' and value.size == 1:
        return float(value.reshape(()))  # CuPy: one device synchronisation
    return None
