#!/usr/bin/env python
"""Milliseconds per GANUpdater iteration of each write-up's recipe, on the CPU.

    python benchmarks/recipe_steps.py                   # 28x28, batch 64
    python benchmarks/recipe_steps.py --repeats 3 --iters 2 --only dcgan keras-dcgan
    python benchmarks/recipe_steps.py --stages          # G's upsampling stages alone

The recipes are the networks, optimizers and loop options of the DCGAN
write-ups at the built-in digits' size (1 x 28 x 28, widths 64, 128), the
settings the presets will carry (see ``tests/test_recipes.py`` for the same
recipes at toy widths): ``dcgan`` (today's nets), ``keras-dcgan``
(upsample + 5x5 conv and a Dense 1024 head in G; 5x5 conv + max-pooling
and a Dense 1024 in D; tanh; SGD with Nesterov momentum),
``keras-dcgan-notes`` (upsample + 3x3 conv + ELU; 3x3 stride-2 D with a
Dense 2048), ``chainer-example`` (D noise 0.2, BN without gamma, weight
decay) and ``tf-gan`` (5x5 kernels, LeakyReLU in G, dropout 0.3 in D).

Protocol: one untimed warm-up iteration per recipe, then ``--repeats``
rounds in which every recipe runs ``--iters`` iterations in turn
(round-robin, so a change in the machine's load reaches every recipe
alike); the figure is the median round's milliseconds per iteration, with
the fastest and slowest round beside it. Run it under the machine's CPU
lock; the first line names the CPU.

``--stages`` times instead the generator's upsampling stages of these
recipes (nearest-neighbour upsampling and a stride-1 convolution, forward
and backward, batch ``--batchsize``) both ways: as written (upsample, then
:class:`gan_trainer.ops.Convolution2D`) and fused into one transposed
convolution (:func:`gan_trainer.nets._layers.upsample_conv`, what the nets
run on the CPU), alternating in each round; it prints the median
milliseconds of each and their ratio.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import chainer
import numpy

from gan_trainer import GANUpdater, ops
from gan_trainer.latent import global_seed
from gan_trainer.nets import Discriminator, Generator
from gan_trainer.nets._layers import upsample, upsample_conv
from gan_trainer.optimizers import OptimizerSpec, make_optimizer

NET = {'size': 28, 'channels': 1, 'widths': [64, 128]}
ADAM = OptimizerSpec('adam', lr=2e-4, beta1=0.5)
NESTEROV = OptimizerSpec('sgd', lr=5e-4, momentum=0.9, nesterov=True)

#: Recipe -> (G kwargs, D kwargs, G optimizer, D optimizer, updater kwargs).
RECIPES = {
    'dcgan': ({}, {}, ADAM, ADAM, {}),
    'keras-dcgan': (
        {'upsample': 'nearest', 'ksize': 5, 'activation': 'tanh', 'fc_width': 1024},
        {'downsample': 'max_pool', 'ksize': 5, 'activation': 'tanh', 'norm': 'none',
         'fc_width': 1024},
        NESTEROV, NESTEROV, {'separate_batches': False, 'z_dist': 'uniform'}),
    'keras-dcgan-notes': (
        {'n_hidden': 64, 'upsample': 'nearest', 'ksize': 3, 'activation': 'elu'},
        {'ksize': 3, 'norm': 'none', 'fc_width': 2048},
        ADAM, OptimizerSpec('adam', lr=1e-5, beta1=0.1),
        {'order': 'gen_first', 'z_dist': 'uniform'}),
    'chainer-example': (
        {}, {'noise_sigma': 0.2, 'bn_gamma': False},
        ADAM.updated(weight_decay=1e-4), ADAM.updated(weight_decay=1e-4),
        {'z_dist': 'uniform'}),
    'tf-gan': (
        {'ksize': 5, 'activation': 'leaky_relu'}, {'ksize': 5, 'norm': 'none', 'dropout': 0.3},
        OptimizerSpec('adam', lr=1e-4, beta1=0.9), OptimizerSpec('adam', lr=1e-4, beta1=0.9),
        {}),
}


def cpu_name() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            lines = f.read().splitlines()
    except OSError:
        return platform.processor() or 'unknown CPU'
    name = next((ln.split(':', 1)[1].strip() for ln in lines if ln.startswith('model name')),
                'unknown CPU')
    flags = next((ln for ln in lines if ln.startswith('flags')), '')
    return f'{name}, {os.cpu_count()} cores, AVX-512 {"yes" if "avx512f" in flags else "no"}'


def make_updater(name: str, batchsize: int) -> GANUpdater:
    gen_kw, dis_kw, opt_gen, opt_dis, loop = RECIPES[name]
    with global_seed(0):
        gen = Generator(**NET, **gen_kw)
        dis = Discriminator(**NET, **dis_kw)
    data = numpy.random.RandomState(0).uniform(-1, 1, (4 * batchsize, 1, 28, 28))
    it = chainer.iterators.SerialIterator(data.astype(numpy.float32), batchsize, shuffle=False)
    optimizers = {'gen': make_optimizer(gen, opt_gen), 'dis': make_optimizer(dis, opt_dis)}
    return GANUpdater(it, optimizers, device=-1, seed=0, **loop)


#: G's upsampling stages at 28x28: (name, in channels, out channels, input side, ksize).
STAGES = [
    ('keras-dcgan stage 0', 128, 64, 7, 5),
    ('keras-dcgan stage 1', 64, 1, 14, 5),
    ('keras-dcgan-notes stage 0', 128, 64, 7, 3),
]


def time_stages(batchsize: int, repeats: int, iters: int) -> None:
    """Prints the median ms of each stage, unfused and fused (alternating)."""
    rng = numpy.random.RandomState(0)
    print(f'{"stage":28} {"as written":>10} {"fused":>8} {"ratio":>6}')
    for name, c_in, c_out, side, k in STAGES:
        conv = ops.Convolution2D(c_in, c_out, k, pad=k // 2)
        # Channel-last, as the fast layers before a stage leave their maps.
        x = rng.randn(batchsize, side, side, c_in).astype(numpy.float32).transpose(0, 3, 1, 2)
        ways = {'as written': lambda v, conv=conv: conv(upsample(v, 'nearest')),
                'fused': lambda v, conv=conv: upsample_conv(conv, v, 'nearest')}
        times = {way: [] for way in ways}
        for _ in range(repeats + 1):  # the first round warms up
            for way, stage in ways.items():
                start = time.perf_counter()
                for _ in range(iters):
                    v = chainer.Variable(x)
                    y = stage(v)
                    y.grad = numpy.ones_like(y.array)
                    conv.cleargrads()
                    y.backward()
                times[way].append(1e3 * (time.perf_counter() - start) / iters)
        plain, fused = (statistics.median(times[w][1:]) for w in ways)
        print(f'{name:28} {plain:10.1f} {fused:8.1f} {plain / fused:6.2f}')


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--batchsize', type=int, default=64)
    p.add_argument('--iters', type=int, default=3, help='iterations per recipe per round')
    p.add_argument('--repeats', type=int, default=5, help='rounds')
    p.add_argument('--only', nargs='*', choices=list(RECIPES), help='time only these')
    p.add_argument('--stages', action='store_true',
                   help="time G's upsampling stages as written and fused instead")
    args = p.parse_args()
    if args.batchsize < 1 or args.iters < 1 or args.repeats < 1:
        p.error('--batchsize, --iters and --repeats must be at least 1')
    names = args.only or list(RECIPES)
    print(f'cpu: {cpu_name()}')
    if args.stages:
        print(f'batch {args.batchsize}, {args.repeats} rounds of {args.iters} forward+backward')
        time_stages(args.batchsize, args.repeats, args.iters)
        return 0
    print(f'batch {args.batchsize}, 1x28x28, {args.repeats} rounds of {args.iters} iterations')
    updaters = {name: make_updater(name, args.batchsize) for name in names}
    for updater in updaters.values():
        updater.update()  # warm-up: allocations, the fast path's first calls
    rounds = {name: [] for name in names}
    for _ in range(args.repeats):
        for name, updater in updaters.items():
            start = time.perf_counter()
            for _ in range(args.iters):
                updater.update()
            rounds[name].append(1e3 * (time.perf_counter() - start) / args.iters)
    print(f'{"recipe":20} {"ms/iter":>8} {"fastest":>8} {"slowest":>8}')
    for name, times in rounds.items():
        print(f'{name:20} {statistics.median(times):8.1f} {min(times):8.1f} {max(times):8.1f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
