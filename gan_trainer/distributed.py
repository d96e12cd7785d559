"""Data-parallel GAN training over MPI with ChainerMN.

``mpiexec -n N`` starts N processes (ranks); each holds a full copy of G
and D, trains on its own share of the data with its own z, and after every
backward pass the gradients are averaged over the processes (an
allreduce), so every process applies the same update and the networks stay
identical: one model trained on a global batch of N times the per-process
batch. ChainerMN (shipped inside the ``chainer`` package) does the
communication; this module wraps the parts a GAN needs, in the order
:func:`gan_trainer.run.build_trainer` uses them for a config with
``communicator`` set (``gan-trainer train --communicator naive`` under
``mpiexec``):

1. :func:`create_communicator`: checks the name, the GPU and that MPI
   started the process, each with a one-line :class:`DistributedError`.
2. :func:`rank_seed`: each process's own z and data-order seed.
3. :func:`scatter_dataset`: rank 0's dataset, shuffled and split into
   equal shares.
4. :func:`use_multi_node_batch_norm` (optional): BatchNorm statistics over
   the global batch instead of each process's share.
5. :func:`setup_distributed`: the optimizers become ChainerMN multi-node
   optimizers and every process starts from rank 0's weights.
6. In the trainer: :func:`create_multi_node_evaluator` around
   :class:`~gan_trainer.GANEvaluator`,
   :class:`~gan_trainer.extensions.MeanOverRanks` every iteration, and
   :func:`average_persistents` before evaluations, previews and
   snapshots; extensions that write files on rank 0 only, except the
   trainer snapshot, which every process writes for itself
   (``snapshot_iter_N.rank{r}``, see :class:`gan_trainer.run.RunFolder`)
   since each has its own iterator and random states.

A process that fails alone would leave the others waiting forever in the
next collective call, so everything that can fail on one process only
(reading the output folder, the dataset, a snapshot) runs under
:meth:`gan_trainer.run.group.Group.agreeing` (:func:`agree` here), which
makes all processes fail together;
:meth:`gan_trainer.run.RunFolder.latest_common` makes them agree on which
snapshot to resume.
"""

from __future__ import annotations

import os
import shlex
import sys
import warnings
from typing import Any

import chainer
import chainer.links as L
import numpy

from gan_trainer.priorities import priority_of

#: The communicators of ChainerMN 7 and where they run.
COMMUNICATORS = {
    'naive': 'CPU or GPU: one MPI allreduce per array (tests, CPU clusters)',
    'flat': 'GPU: one packed allreduce through a CUDA-aware MPI',
    'non_cuda_aware': 'GPU: NCCL inside a node, MPI through host memory between nodes',
    'pure_nccl': 'GPU: NCCL 2 for everything (the usual choice on GPU clusters)',
}
#: Communicators of ChainerMN 6 that ChainerMN 7 (so Chainer 7.8.1) removed.
REMOVED = ('hierarchical', 'two_dimensional', 'single_node')

#: Environment variables that MPI launchers set in every process they start:
#: MPICH's and Intel MPI's Hydra, PMIx (Open MPI 5, Slurm), Open MPI, MVAPICH2.
LAUNCHER_VARIABLES = ('PMI_RANK', 'PMIX_RANK', 'OMPI_COMM_WORLD_RANK', 'MV2_COMM_WORLD_RANK')


class DistributedError(ValueError):
    """A data-parallel run cannot start (or another process failed); one line."""


def launched_by_mpi() -> bool:
    """Whether an MPI launcher (``mpiexec``, ``srun``, ...) started this process.

    True when one of :data:`LAUNCHER_VARIABLES` is set (``mpiexec -n 1``
    counts), or when MPI's world has more than one process. A plain
    ``python train.py`` is an MPI "singleton" of size 1 with none of them:
    a run meant to be distributed that was started without the launcher,
    which would otherwise train alone without saying so.
    """
    if any(name in os.environ for name in LAUNCHER_VARIABLES):
        return True
    from mpi4py import MPI

    return MPI.COMM_WORLD.Get_size() > 1


def world_rank() -> int:
    """This process's rank from the launcher's environment (0 without one).

    Known before MPI is initialised, so that only rank 0 prints an error
    that every process finds.
    """
    for name in LAUNCHER_VARIABLES:
        if name in os.environ:
            try:
                return int(os.environ[name])
            except ValueError:
                pass
    return 0


def _mpiexec_hint() -> str:
    here = os.path.join(os.path.dirname(sys.executable), 'mpiexec')
    mpiexec = here if os.path.isfile(here) else 'mpiexec'
    return f'{mpiexec} -n 2 {shlex.join([sys.executable, *sys.argv])}'


def check_communicator(name: str, *, gpu: bool = False) -> None:
    """Checks a communicator name against the devices, without starting MPI.

    Raises:
        DistributedError: For an unknown or removed name, or a GPU-only
            communicator without ``gpu`` or without CuPy; the message says
            what to use instead.
    """
    if name in REMOVED:
        raise DistributedError(
            f"communicator '{name}' was removed in ChainerMN 7 (Chainer 7.8.1); "
            "use 'pure_nccl' on GPUs or 'naive' on CPUs"
        )
    if name not in COMMUNICATORS:
        raise DistributedError(
            f"unknown communicator '{name}'; choose 'naive' (CPU or GPU) or one of "
            "'pure_nccl', 'flat', 'non_cuda_aware' (GPU only)"
        )
    if name == 'naive':
        return
    if not gpu:
        raise DistributedError(
            f"communicator '{name}' needs GPUs (--gpu 0: each process then uses the GPU "
            "of its local rank); on CPUs use 'naive'"
        )
    from chainer.backends import cuda

    if not cuda.available:
        raise DistributedError(
            f"communicator '{name}' needs CuPy and a GPU, and CuPy cannot use one here; "
            "install 'gan_trainer[gpu]' on a CUDA machine, or use 'naive' on CPUs"
        )


def create_communicator(name: str, *, gpu: bool = False):
    """Returns ChainerMN's communicator ``name`` after checking it can work.

    Args:
        name: A key of :data:`COMMUNICATORS`: ``'naive'`` on CPUs,
            ``'pure_nccl'`` on GPUs.
        gpu: Whether the processes train on GPUs.

    Returns:
        A ``chainermn.CommunicatorBase`` (``rank``, ``size``,
        ``intra_rank``, ...).

    Raises:
        DistributedError: As :func:`check_communicator`; when mpi4py or an
            MPI library is missing; or when no MPI launcher started the
            process (the message gives the ``mpiexec`` command line).
    """
    check_communicator(name, gpu=gpu)
    try:
        from mpi4py import MPI  # noqa: F401 (loads the MPI library)
    except ImportError as e:
        raise DistributedError(
            f'a data-parallel run needs mpi4py and an MPI library ({e}): pip install '
            "'gan_trainer[dist]' (MPICH from PyPI), or mpi4py built against your "
            "cluster's MPI"
        ) from None
    if not launched_by_mpi():
        raise DistributedError(
            f'no MPI launcher started this process: run {_mpiexec_hint()} '
            '(or leave out --communicator to train in one process)'
        )
    import chainermn

    return chainermn.create_communicator(name)


def rank_seed(seed: int, rank: int) -> int:
    """The seed of process ``rank``'s z stream and data order, from the run's ``seed``.

    ``numpy.random.SeedSequence(seed, spawn_key=(rank,))``: independent
    streams for every ``(seed, rank)`` pair, the same every time, and no two
    pairs collide (as ``seed * 1000 + rank`` would for ``(0, 1000)`` and
    ``(1, 0)``).

    Returns:
        An integer in ``[0, 2**32)`` for ``numpy.random.RandomState``.

    Raises:
        ValueError: For a negative seed.
    """
    if seed < 0:
        raise ValueError(f'seed must be >= 0, got {seed}')
    state = numpy.random.SeedSequence(seed, spawn_key=(rank,)).generate_state(1)
    return int(state[0])


def scatter_dataset(comm, dataset, *, seed: int, root: int = 0):
    """Rank ``root``'s dataset, shuffled with ``seed`` and split into equal shares.

    Only ``root`` needs the dataset (the others may pass None): it is sent
    to every process, which keeps its share as a ``SubDataset``. Shares
    have equal length (a few examples are repeated when the size is not a
    multiple of ``comm.size``), so every process runs the same number of
    iterations per epoch and the same number of evaluation batches.

    Raises:
        ValueError: For a seed outside ``[0, 2**32)``, on every process.
    """
    if not 0 <= seed < 2**32:
        raise ValueError(f'the shuffle seed must be in [0, 2**32), got {seed}')
    import chainermn

    return chainermn.scatter_dataset(
        dataset if comm.rank == root else None, comm, root=root, shuffle=True, seed=seed
    )


def use_multi_node_batch_norm(link: chainer.Link, comm) -> int:
    """Replaces every ``L.BatchNormalization`` inside ``link`` by ChainerMN's MNBN.

    ``chainermn.links.MultiNodeBatchNormalization`` normalises with the mean
    and variance of the global batch (one allreduce per BN layer and pass)
    instead of each process's share: worth it when the per-process batch
    is small. Parameters (``gamma``, ``beta``) and statistics (``avg_mean``,
    ``avg_var``, ``N``) are copied and keep their names, so snapshots load
    into the plain networks (``generate.py``). The BN inside
    :class:`~gan_trainer.nets.conditional.ConditionalBatchNormalization`
    (no gamma, no beta of its own) is replaced too. Call it before
    :func:`setup_distributed` and before moving ``link`` to a GPU.

    Returns:
        The number of layers replaced.

    Raises:
        ValueError: For a BN layer that MNBN cannot stand in for (an
            ``axis`` argument, or not yet initialised).
    """
    from chainermn.links import MultiNodeBatchNormalization

    replaced = 0
    for parent in list(link.links()):
        if isinstance(parent, chainer.ChainList):
            children = list(enumerate(parent._children))
        elif isinstance(parent, chainer.Chain):
            children = [(name, getattr(parent, name)) for name in sorted(parent._children)]
        else:
            continue
        for key, child in children:
            if not isinstance(child, L.BatchNormalization):
                continue
            if child.avg_mean is None or child.axis is not None:
                raise ValueError(
                    f'{child.name}: MultiNodeBatchNormalization needs a BatchNormalization '
                    'built with its size and without axis'
                )
            with warnings.catch_warnings():  # "experimental": it is, and we know
                warnings.simplefilter('ignore', FutureWarning)
                mnbn = MultiNodeBatchNormalization(
                    child.avg_mean.shape,
                    comm,
                    decay=child.decay,
                    eps=child.eps,
                    dtype=child.avg_mean.dtype,
                    use_gamma=child.gamma is not None,
                    use_beta=child.beta is not None,
                )
            mnbn.copyparams(child)
            for name in child._persistent:
                setattr(mnbn, name, _copy(getattr(child, name)))
            if isinstance(parent, chainer.ChainList):
                parent._children[key] = mnbn
                mnbn.name = str(key)
            else:
                delattr(parent, key)
                with parent.init_scope():
                    setattr(parent, key, mnbn)
            replaced += 1
    return replaced


def _copy(value):
    return value.copy() if hasattr(value, 'copy') else value


def setup_distributed(comm, optimizers: dict[str, chainer.Optimizer]) -> dict[str, Any]:
    """Makes each optimizer a multi-node one, starting from rank 0's weights.

    ``chainermn.create_multi_node_optimizer`` wraps an optimizer so that
    ``update()`` first averages the gradients over the processes (it does
    so when called without a loss function, as
    :class:`~gan_trainer.GANUpdater` calls it after its own backward pass)
    and then applies the wrapped optimizer's rule; ``target`` and
    ``serialize`` are the wrapped optimizer's. Left alone, its first
    ``update()`` broadcasts rank 0's parameters *instead of* updating, and
    it would do so again on the first update after a resume, so a resumed
    run would skip one step. Here the parameters are broadcast now and the
    wrapper is told that they are, so every ``update()`` is a real one.

    Args:
        comm: The communicator.
        optimizers: ``{'gen': opt, 'dis': opt}`` (any names), each already
            ``setup`` with its network.

    Returns:
        The same keys with the multi-node optimizers, for ``GANUpdater``.

    Raises:
        ValueError: When an optimizer has no target or a parameter is not
            initialised yet (its shape would change the wrapper's state).
    """
    import chainermn

    wrapped = {}
    for name, optimizer in optimizers.items():
        target = getattr(optimizer, 'target', None)
        if target is None:
            raise ValueError(f"optimizer '{name}' has no target: call setup(link) first")
        lazy = [path for path, param in target.namedparams() if param.array is None]
        if lazy:
            raise ValueError(
                f"optimizer '{name}': parameters {', '.join(lazy)} are not initialised; "
                'build the network with its input sizes'
            )
        comm.bcast_data(target)
        multi = chainermn.create_multi_node_optimizer(optimizer, comm)
        multi.is_changed(target)  # records the parameters: no broadcast in update()
        wrapped[name] = multi
    return wrapped


def create_multi_node_evaluator(evaluator, comm):
    """``evaluator`` (e.g. a :class:`~gan_trainer.GANEvaluator`) reporting means over processes.

    ChainerMN's wrapper: each process evaluates its share of the held-out
    set (:func:`scatter_dataset`), then every reported value is averaged
    over the processes, so all of them log the same numbers.
    """
    import chainermn

    return chainermn.create_multi_node_evaluator(evaluator, comm)


def average_persistents(comm, links):
    """An extension that averages the links' BatchNorm statistics over processes.

    With per-process BatchNorm each process keeps running statistics of its
    own share of the data; ChainerMN's ``AllreducePersistent`` replaces them
    by their mean (it averages every float persistent, and spectral
    normalisation's vectors, identical on all processes, stay as they are).
    Training itself uses batch statistics, so this changes only what
    evaluation mode sees: run it before evaluations, previews and
    snapshots, on every process at the same iterations.
    """
    from chainermn.extensions import AllreducePersistent

    parts = [AllreducePersistent(link, comm) for link in links]

    # Above the evaluator and the preview grid, below the NaN guard.
    @chainer.training.make_extension(
        default_name='average_persistents', priority=priority_of('average_persistents')
    )
    def average(trainer=None):
        for part in parts:
            part(trainer)

    return average


def agree(comm, error: BaseException | None) -> None:
    """Collective: every process raises if any process had an error.

    The process that had it re-raises its own; the others raise a
    :class:`DistributedError` with its message (prefixed with its rank
    unless it is rank 0), so rank 0 alone can print one line for all.
    """
    messages = comm.mpi_comm.allgather(None if error is None else str(error))
    for rank, message in enumerate(messages):
        if message is None:
            continue
        if error is not None:
            raise error
        raise DistributedError(message if rank == 0 else f'process {rank}: {message}')
