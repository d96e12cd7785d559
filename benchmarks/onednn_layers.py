#!/usr/bin/env python
"""Each convolution layer of a network, timed on oneDNN's layouts and on NumPy.

    python benchmarks/onednn_layers.py                 # the default network
    python benchmarks/onednn_layers.py --net dcgan64 --reps 5

For every convolution and transposed convolution of ``--net`` (batch 64,
channel-last inputs as the layers get them in training, each with the
activation the network fuses into it), the best of ``--reps`` runs of the
forward pass and of forward + backward (input and weight gradients),
through :func:`gan_trainer.ops.convolution_2d` /
:func:`~gan_trainer.ops.deconvolution_2d`, in three settings:

* ``nhwc``: oneDNN, maps channel-last as the arrays are stored (the
  package's choice, :data:`gan_trainer.ops.onednn_conv.LAYOUT`);
* ``any``: oneDNN, maps in the layout oneDNN picks (blocked on AVX-512),
  with reorders in and out;
* ``numpy``: the NumPy functions (oneDNN switched off).

Image layers (at most 4 channels on the written side) use ``nchw`` maps in
both oneDNN settings. The last line is ``layers NET nhwc X any Y numpy Z ms``:
the forward + backward sums over the layers.

``--bn`` times the batch normalizations of ``--net`` instead (with the
activation each fuses: ReLU in G, LeakyReLU in D; G's projection as the
``nchw`` map a linear layer writes, the others channel-last), through
:func:`gan_trainer.ops.batch_normalization` with oneDNN (:mod:`gan_trainer.ops.onednn_norm`)
and with the NumPy arithmetic, alternating per repetition; the best of
``--reps`` forward and forward + backward passes. Its last line is
``bn NET onednn X numpy Y ms``: the forward + backward sums over the layers.

``--contention`` asks the question of the thread policy
(:mod:`gan_trainer.ops.threads`) instead: per round, alone and then beside
a second busy process (a Python loop that keeps one core busy, as a loader
worker, a second MPI rank or another user's job would), the sum of the
layers' forward + backward passes on the package's layout with oneDNN's
OpenMP team at each size from the process's cores down to 1
(``omp_set_num_threads``) and with the NumPy functions; the median of
``--reps`` runs, since under contention the fastest run hides what the
others cost. Its last lines are ``contention ROUND CONDITION SETTING X ms``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import chainer
import numpy

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gan_trainer import ops
from gan_trainer.ops import dnnl, onednn_conv

# name: (size, channels, base width)
NETS = {'default': (28, 1, 32), 'digits28': (28, 1, 64), 'dcgan64': (64, 3, 64)}


def layers(size: int, channels: int, base: int):
    """``(kind, c_in, c_out, side_in, activation)`` of D's convs and G's deconvs."""
    n = 2 if size == 28 else 4
    widths = [base * 2 ** i for i in range(n)]
    out = []
    side, c = size, channels
    for i, w in enumerate(widths):  # D: LeakyReLU fused where no BN follows (the first)
        out.append(('conv', c, w, side, 'leaky_relu' if i == 0 else None))
        side, c = side // 2, w
    g = widths[::-1] + [channels]
    for i in range(n):  # G: tanh fused into the last
        out.append(('deconv', g[i], g[i + 1], side, 'tanh' if i == n - 1 else None))
        side *= 2
    return out


def bn_layers(size: int, channels: int, base: int):
    """``(name, channels, side, layout, activation)`` of the nets' batch normalizations."""
    n = 2 if size == 28 else 4
    widths = [base * 2 ** i for i in range(n)]
    s0 = size // 2 ** n
    out = [('G projection', widths[-1], s0, 'nchw', 'relu')]
    side = s0
    for w in widths[::-1][1:]:  # G's deconvolutions but the image layer
        side *= 2
        out.append(('G deconv', w, side, 'nhwc', 'relu'))
    side = size
    for i, w in enumerate(widths):  # D's convolutions but the first
        side //= 2
        if i > 0:
            out.append(('D conv', w, side, 'nhwc', 'leaky_relu'))
    return out


def time_bn(layer, batch: int, reps: int) -> dict:
    """``{setting: (forward ms, forward+backward ms)}``, settings alternating per rep."""
    _, c, side, layout, act = layer
    rng = numpy.random.default_rng(0)
    shape = (batch, c, side, side)
    x = channel_last(shape, rng) if layout == 'nhwc' else rng.standard_normal(shape).astype(
        numpy.float32)
    gamma = numpy.ones(c, numpy.float32)
    beta = numpy.zeros(c, numpy.float32)
    gy = channel_last(shape, rng)
    mean, var = numpy.zeros(c, numpy.float32), numpy.ones(c, numpy.float32)

    def forward():
        return ops.batch_normalization(x, gamma, beta, running_mean=mean, running_var=var,
                                       activation=act)

    def both():
        xv, gv, bv = (chainer.Variable(a) for a in (x, gamma, beta))
        y = ops.batch_normalization(xv, gv, bv, running_mean=mean, running_var=var,
                                    activation=act)
        y.grad = gy
        y.backward()

    times = {s: ([], []) for s in ('onednn', 'numpy')}
    for rep in range(reps + 1):
        for setting, (fwd, fb) in times.items():
            with chainer.using_config(ops.ONEDNN_KEY, setting == 'onednn'):
                for fn, out in ((forward, fwd), (both, fb)):
                    start = time.perf_counter()
                    fn()
                    if rep:  # the first builds the primitives
                        out.append(1e3 * (time.perf_counter() - start))
    return {s: (min(f), min(b)) for s, (f, b) in times.items()}


def bn(args) -> int:
    totals = {'onednn': 0.0, 'numpy': 0.0}
    print(f'# {args.net}, batch {args.batchsize}, best of {args.reps}; '
          'ms forward / forward+backward')
    for layer in bn_layers(*NETS[args.net]):
        result = time_bn(layer, args.batchsize, args.reps)
        name, c, side, layout, act = layer
        for setting, (_, both) in result.items():
            totals[setting] += both
        print(f'{name:12s} {c:3d} ch {side:2d}x{side:<2d} {layout} {act:10s} '
              + '   '.join(f'{k} {f:6.3f} / {b:6.3f}' for k, (f, b) in result.items()))
    print('bn {} {} ms'.format(args.net, ' '.join(f'{k} {v:.3f}' for k, v in totals.items())))
    return 0


def channel_last(shape, rng):
    n, c, h, w = shape
    return rng.standard_normal((n, h, w, c)).astype(numpy.float32).transpose(0, 3, 1, 2)


def best(fn, reps: int, stat=min) -> float:
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * stat(times)


def time_layer(layer, batch: int, reps: int, stat=min) -> tuple[float, float]:
    kind, ci, co, side, act = layer
    rng = numpy.random.default_rng(0)
    x = channel_last((batch, ci, side, side), rng)
    shape = (ci, co, 4, 4) if kind == 'deconv' else (co, ci, 4, 4)
    W = (rng.standard_normal(shape) * 0.02).astype(numpy.float32)
    b = numpy.zeros(co, numpy.float32)
    f = ops.deconvolution_2d if kind == 'deconv' else ops.convolution_2d
    xv, Wv, bv = (chainer.Variable(a) for a in (x, W, b))
    gy = channel_last(f(x, W, b, 2, 1, activation=act).shape, rng)

    def forward_backward():
        y = f(xv, Wv, bv, 2, 1, activation=act)
        y.grad = gy
        y.backward()

    return (best(lambda: f(x, W, b, 2, 1, activation=act), reps, stat),
            best(forward_backward, reps, stat))


def layer_sums(net: str, batch: int, reps: int, stat) -> float:
    """Forward + backward summed over ``net``'s layers, each the ``stat`` of ``reps`` runs."""
    total = 0.0
    for layer in layers(*NETS[net]):
        total += time_layer(layer, batch, reps, stat)[1]
    return total


def contention(args) -> int:
    import ctypes
    import subprocess

    from gan_trainer.ops import threads
    gomp = ctypes.CDLL('libgomp.so.1')
    cores = threads.available_cores()
    settings = [f'onednn {n} threads' for n in range(cores, 0, -1)] + ['numpy']
    print(f'# {args.net}, batch {args.batchsize}, median of {args.reps} runs per layer; '
          f'{cores} cores; ms forward+backward summed over the layers')
    lines = []
    for r in range(1, args.rounds + 1):
        for condition in ('alone', 'busy'):
            busy = None
            if condition == 'busy':
                busy = subprocess.Popen([sys.executable, '-c', 'while True: pass'])
            try:
                for setting in settings:
                    onednn = setting != 'numpy'
                    if onednn:
                        gomp.omp_set_num_threads(int(setting.split()[1]))
                    with chainer.using_config(ops.ONEDNN_KEY, onednn):
                        ms = layer_sums(args.net, args.batchsize, args.reps, statistics.median)
                    lines.append(f'contention {r} {condition} {setting.replace(" ", "_")} '
                                 f'{ms:.2f} ms')
                    print(lines[-1], flush=True)
            finally:
                if busy is not None:
                    busy.kill()
                    busy.wait()
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--net', choices=sorted(NETS), default='default')
    p.add_argument('--batchsize', type=int, default=64)
    p.add_argument('--reps', type=int, default=None, help='default: 20 (5 for dcgan64)')
    p.add_argument('--contention', action='store_true',
                   help='team sizes and NumPy, alone and beside a busy process (see above)')
    p.add_argument('--rounds', type=int, default=2, help='with --contention')
    p.add_argument('--bn', action='store_true',
                   help='the batch normalizations, oneDNN against NumPy (see above)')
    args = p.parse_args(argv)
    reps = args.reps = args.reps or (5 if args.net == 'dcgan64' else 20)
    if dnnl.library() is None:
        print('onednn_layers.py: error: oneDNN does not load here', file=sys.stderr)
        return 2
    if args.contention:
        return contention(args)
    if args.bn:
        return bn(args)
    totals = {'nhwc': 0.0, 'any': 0.0, 'numpy': 0.0}
    print(f'# {args.net}, batch {args.batchsize}, best of {reps}; ms forward / forward+backward')
    for layer in layers(*NETS[args.net]):
        kind, ci, co, side, act = layer
        cells = []
        for setting in totals:
            onednn_conv.LAYOUT = 'any' if setting == 'any' else 'nhwc'
            with chainer.using_config(ops.ONEDNN_KEY, setting != 'numpy'):
                fwd, both = time_layer(layer, args.batchsize, reps)
            totals[setting] += both
            cells.append(f'{setting} {fwd:7.2f} / {both:7.2f}')
        print(f'{kind:6s} {ci:3d} -> {co:3d} at {side:2d}x{side:<2d} {act or "":10s} '
              + '   '.join(cells))
    onednn_conv.LAYOUT = 'nhwc'
    print('layers {} {} ms'.format(args.net, ' '.join(f'{k} {v:.2f}' for k, v in totals.items())))
    return 0


if __name__ == '__main__':
    sys.exit(main())
