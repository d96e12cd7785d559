"""What every peer script shares: its flags, the digits and fixed z it is handed, its outputs.

The peers (``keras_dcgan.py``, ``keras_dcgan_notes.py``, ``tf_dcgan.py``)
run in a virtual environment of their own framework, where gan_trainer is
not installed, so this module imports NumPy only. ``compare.py`` (run with
gan_trainer's Python) writes their input, one ``.npz``:

* ``train``: the 4,500 training digits, ``(N, 28, 28, 1)`` float32 in
  [-1, 1] (channel-last, as Keras and TensorFlow take them);
* ``z_grid``: the 100 latent vectors of the preset's preview grid and
  ``z_samples``: the 1,000 of its quality measurement, drawn by the
  package from the preset's own z distribution with ``RandomState(0)``,
  so both frameworks are judged on the same z.

A peer writes into ``--out``: ``grids.npz`` (``it_000100``, ... : the fixed
z's 100 images every ``--grid_every`` iterations, ``(100, 1, 28, 28)`` in
[-1, 1], G in inference mode as the write-ups draw their pictures),
``samples.npy`` (the 1,000 images of ``z_samples`` after the last
iteration) and ``log.json`` (every ``--log_every`` iterations: the losses
and ``elapsed``, the seconds since training started, grid drawing
included, as gan_trainer's log counts them).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy


def parse(description: str, argv=None) -> argparse.Namespace:
    """The flags every peer takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument('--data', required=True, help="compare.py's input .npz")
    p.add_argument('--out', required=True, help='folder for grids.npz, samples.npy, log.json')
    p.add_argument('--iterations', type=int, default=600)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--grid_every', type=int, default=100)
    p.add_argument('--log_every', type=int, default=50)
    args = p.parse_args(argv)
    if args.iterations < 1:
        p.error(f'--iterations must be at least 1, got {args.iterations}')
    return args


def load(path: str) -> tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray]:
    """``(train, z_grid, z_samples)`` from compare.py's input file."""
    with numpy.load(path) as f:
        return (f['train'].astype(numpy.float32), f['z_grid'].astype(numpy.float32),
                f['z_samples'].astype(numpy.float32))


def batches(train: numpy.ndarray, batchsize: int, rng: numpy.random.RandomState):
    """Endless full batches of ``train``, reshuffled every epoch.

    The originals walk MNIST's stored order, which mixes the classes; the
    package's digits are stored by class (450 zeros first), so the peers
    shuffle, as gan_trainer's iterator does. The last partial batch of an
    epoch is dropped, as keras-dcgan's ``range(int(N / BATCH_SIZE))`` does.
    """
    while True:
        order = rng.permutation(len(train))
        for i in range(len(train) // batchsize):
            yield train[order[i * batchsize:(i + 1) * batchsize]]


def keras_dcgan_draws(train: numpy.ndarray, batchsize: int, n_hidden: int,
                      rng: numpy.random.RandomState):
    """Endless ``(z of D's step, real batch, z of G's step)`` in ``keras_dcgan.py``'s order.

    One ``rng`` for all three, drawn in this order every iteration (the
    order of the runs recorded in benchmarks/RESULTS.md); z uniform in
    [-1, 1], float32. ``step_check.py --streams peer`` replays it.
    """
    real_batches = batches(train, batchsize, rng)
    while True:
        z_dis = rng.uniform(-1, 1, (batchsize, n_hidden)).astype(numpy.float32)
        real = next(real_batches)
        z_gen = rng.uniform(-1, 1, (batchsize, n_hidden)).astype(numpy.float32)
        yield z_dis, real, z_gen


def nchw(images) -> numpy.ndarray:
    """``(N, H, W, C)`` -> ``(N, C, H, W)`` float32, the package's layout."""
    return numpy.ascontiguousarray(numpy.asarray(images, numpy.float32).transpose(0, 3, 1, 2))


class Recorder:
    """Times the training loop and keeps the grids and log lines until :meth:`save`.

    Args:
        args: The parsed flags (:func:`parse`).
        draw: ``z -> images (N, H, W, C)``: G in inference mode.
        z_grid: The grid's latent vectors.
    """

    def __init__(self, args: argparse.Namespace, draw, z_grid: numpy.ndarray):
        self.args, self.draw, self.z_grid = args, draw, z_grid
        self.grids: dict[str, numpy.ndarray] = {}
        self.log: list[dict] = []
        self.start = time.perf_counter()

    def step(self, iteration: int, **losses: float) -> None:
        """After iteration ``iteration`` (from 1): the grid and the log line when due."""
        if iteration % self.args.grid_every == 0 or iteration == self.args.iterations:
            self.grids[f'it_{iteration:06d}'] = nchw(self.draw(self.z_grid))
        if iteration % self.args.log_every == 0 or iteration == self.args.iterations:
            self.log.append({'iteration': iteration,
                             'elapsed': time.perf_counter() - self.start,
                             **{k: float(v) for k, v in losses.items()}})
            line = ' '.join(f'{k} {v:.4f}' for k, v in losses.items())
            print(f'iteration {iteration} {line} elapsed {self.log[-1]["elapsed"]:.1f}',
                  flush=True)

    def save(self, z_samples: numpy.ndarray, **info) -> None:
        """Writes grids.npz, samples.npy (G on ``z_samples``) and log.json."""
        os.makedirs(self.args.out, exist_ok=True)
        numpy.savez(os.path.join(self.args.out, 'grids.npz'), **self.grids)
        numpy.save(os.path.join(self.args.out, 'samples.npy'), nchw(self.draw(z_samples)))
        with open(os.path.join(self.args.out, 'log.json'), 'w') as f:
            json.dump({'log': self.log, **info}, f, indent=1)
