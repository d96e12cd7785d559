#!/usr/bin/env python
"""Images per second of data-parallel GAN training with 1 and 2 processes.

    python benchmarks/scaling.py                  # CPU: the three runs below
    python benchmarks/scaling.py --iteration 50 --base_width 16
    mpiexec -n 8 python benchmarks/scaling.py --communicator pure_nccl --gpu   # a GPU cluster

Each run times ``GANUpdater.update()`` alone (no trainer extensions, no
evaluation) on the built-in digits with the package's DCGAN at
``--base_width``, ``--batchsize`` images per process and step, after
``--warmup`` untimed iterations. Images per second counts the real images
that D trains on, over all processes: ``processes * batchsize *
iterations / seconds`` (G also generates twice as many fakes per
iteration). With several processes the gradients of both networks are
averaged over them after every backward pass (ChainerMN, see
``gan_trainer.distributed``), so the global batch is ``processes *
batchsize``.

Without an MPI launcher (the first two lines) it runs three
configurations as separate processes and prints a table:

* 1 process, 1 BLAS thread (``OMP_NUM_THREADS=1``);
* 1 process, 2 BLAS threads (all of a 2-core machine's cores);
* ``mpiexec -n 2`` with ``--communicator naive``, 1 BLAS thread each.

What limits the CPU numbers: two cores. The two processes share them, so
2 processes can at best reach twice the 1-process, 1-thread figure, minus
the allreduce of every gradient and MPI's busy-waiting while one process
waits for the other; and BLAS threads are set to 1 per process so that the
processes do not fight over the cores. One process with 2 BLAS threads is
the other way to use both cores: it parallelises only the matrix products
of Chainer's im2col convolutions, not im2col itself, the elementwise
functions and Adam, so on this small DCGAN it gains less than a second
process does. On two cores all of this says little about a cluster, where
each process has its own GPU (or machine) and only the allreduce is shared.

On a GPU cluster start it under the launcher, one process per GPU
(each uses the GPU of its local rank): ``mpiexec -n 8 python
benchmarks/scaling.py --communicator pure_nccl --gpu`` prints one line for
8 processes; ``python benchmarks/scaling.py --gpu`` runs the one-GPU
baseline and ``mpiexec -n N`` for each ``--processes N`` (default 2) with
``pure_nccl``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MPIEXEC = os.path.join(os.path.dirname(sys.executable), 'mpiexec')
THREAD_VARIABLES = ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS')


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--iteration', type=int, default=30, help='timed iterations')
    p.add_argument('--warmup', type=int, default=5, help='untimed iterations first')
    p.add_argument('--batchsize', type=int, default=64, help='images per process and step')
    p.add_argument('--base_width', type=int, default=32)
    p.add_argument('--communicator', help='under mpiexec: naive (CPU) or pure_nccl (GPUs)')
    p.add_argument('--gpu', action='store_true', help='train on GPUs (GPU = local rank)')
    p.add_argument(
        '--processes',
        type=int,
        nargs='*',
        default=[2],
        help='process counts the driver runs under mpiexec',
    )
    p.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    return p.parse_args(argv)


def measure(args) -> dict:
    """Times the updater in this process (one of ``mpiexec -n N``, or alone)."""
    import atexit
    import shutil
    import tempfile

    import chainer

    from gan_trainer.run import RunConfig, build_trainer

    # The run the training command builds (data scattered by rank 0, each
    # process its own z and data order, gradients averaged, the same nets
    # from the seed), in a scratch folder; only its updater is timed.
    out = tempfile.mkdtemp(prefix='scaling-')
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    config = RunConfig(base_width=args.base_width, batchsize=args.batchsize,
                       communicator=args.communicator, gpu=0 if args.gpu else -1,
                       progress=False, out=out)
    trainer = build_trainer(config, log=None)
    updater, group = trainer.updater, trainer.group
    comm, rank, size = group.comm, group.rank or 0, group.size

    def synchronize():  # all GPU work done, all processes here
        if args.gpu:
            chainer.backends.cuda.cupy.cuda.Device().synchronize()
        if comm is not None:
            comm.mpi_comm.Barrier()

    for _ in range(args.warmup):
        updater.update()
    synchronize()
    start = time.perf_counter()
    for _ in range(args.iteration):
        updater.update()
    synchronize()
    seconds = time.perf_counter() - start
    return {
        'processes': size,
        'blas_threads': os.environ.get('OMP_NUM_THREADS', 'default'),
        'device': 'gpu' if args.gpu else 'cpu',
        'batch_per_process': args.batchsize,
        'iterations': args.iteration,
        'seconds': round(seconds, 3),
        'images_per_s': round(size * args.batchsize * args.iteration / seconds, 1),
        'rank': rank,
    }


def run(args, processes: int, threads: int | None, communicator: str | None) -> dict:
    """One configuration as its own process(es); returns rank 0's measurement."""
    command = [
        sys.executable,
        os.path.abspath(__file__),
        '--worker',
        '--iteration',
        str(args.iteration),
        '--warmup',
        str(args.warmup),
        '--batchsize',
        str(args.batchsize),
        '--base_width',
        str(args.base_width),
    ]
    command += ['--gpu'] if args.gpu else []
    if communicator:
        command = [MPIEXEC, '-n', str(processes), *command, '--communicator', communicator]
    env = dict(os.environ)
    if threads is not None:
        env.update({name: str(threads) for name in THREAD_VARIABLES})
    proc = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f'scaling.py: error: {" ".join(command)} failed:\n{proc.stderr}')
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    args = parse_args(argv)
    from gan_trainer.distributed import LAUNCHER_VARIABLES

    # Under mpiexec (ours, or yours on a cluster): this process is one worker.
    if args.worker or any(name in os.environ for name in LAUNCHER_VARIABLES):
        if not args.worker and not args.communicator:
            args.communicator = 'pure_nccl' if args.gpu else 'naive'
        result = measure(args)
        if result['rank'] == 0:
            print(json.dumps(result), flush=True)
        return 0
    if args.gpu:
        configs = [(1, None, None)] + [(n, None, 'pure_nccl') for n in args.processes]
    else:
        configs = [(1, 1, None), (1, 2, None)] + [(n, 1, 'naive') for n in args.processes]
    print(
        f'{"processes":>9} {"BLAS threads":>12} {"batch/process":>13} {"seconds":>8} '
        f'{"images/s":>9} {"vs 1 process":>12}'
    )
    base = None
    for processes, threads, communicator in configs:
        result = run(args, processes, threads, communicator)
        base = base or result['images_per_s']
        print(
            f'{processes:9d} {threads or "default":>12} {args.batchsize:13d} '
            f'{result["seconds"]:8.2f} {result["images_per_s"]:9.1f} '
            f'{result["images_per_s"] / base:11.2f}x',
            flush=True,
        )
    cores = os.cpu_count()
    print(
        f'{cores} CPU core(s); {"GPU" if args.gpu else "CPU"}; {args.iteration} timed '
        f'iterations after {args.warmup}; base_width {args.base_width}'
    )
    return 0


if __name__ == '__main__':
    sys.exit(main())
