#!/usr/bin/env python
"""What the per-iteration checks cost: host transfers counted, the guard timed.

    python benchmarks/nan_guard_cost.py
    python benchmarks/nan_guard_cost.py --src /path/to/another/checkout   # before/after
    python benchmarks/nan_guard_cost.py --preset keras-dcgan-notes --repeats 20

1. *Transfers.* One iteration of the tiny nets of the tests (with an EMA of
   G), then every array the extensions read is turned into the counting
   array type of ``tests/test_nan_guard.py`` (a NumPy array standing for a
   GPU array: each ``float()``, ``bool()``, ``item()``, ``tolist()`` counts
   as one transfer, as each is one synchronisation on CuPy), and what runs
   every iteration after the update (``NaNGuard``, ``DivergenceMonitor``,
   ``LogReport`` between log lines) is called once. Printed: the implicit
   conversions, and the explicit transfers through
   ``gan_trainer.finite.to_host`` (absent before it existed).
2. *Time.* The default run's networks (digits, ``base_width`` 32) after one
   real iteration of the run's Adam (:class:`gan_trainer.ops.Adam`), with an
   EMA of G: the guard's ``__call__`` timed alone (median of
   ``--repeats``), beside one ``GANUpdater.update()``; then (this checkout only) four ways to reduce the same arrays:
   ``isfinite`` of each network's arrays concatenated (the guard before), a
   float64 sum of them (the guard before that), ``isfinite`` array by array
   (one synchronisation each on a GPU), and the guard's ``isfinite`` array
   by array with the flags stacked on the device (one synchronisation).

``--src`` imports ``gan_trainer`` from another checkout (the test helpers
always come from this one), to print the same figures for older code.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--src', default=HERE, help='checkout to import gan_trainer from')
    p.add_argument('--repeats', type=int, default=200)
    p.add_argument('--preset', help="time the networks of this preset (a checkout with "
                   "gan_trainer.run) instead of the default run's")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error('--repeats must be at least 1')
    return args


def count_transfers():
    import chainer
    import numpy
    from chainer import training
    from chainer.training import extensions
    from test_nan_guard import DeviceArray, move_to_fake_device, updated_optimizers

    from gan_trainer.extensions import DivergenceMonitor, NaNGuard

    updater = updated_optimizers(ema_decay=0.5)
    trainer = training.Trainer(updater, (10, 'iteration'))
    reporter = chainer.Reporter()
    reporter.add_observer('gen', updater.gen)
    reporter.add_observer('dis', updater.dis)
    with reporter.scope(trainer.observation):
        updater.update()
    move_to_fake_device(updater, trainer.observation)
    explicit = []
    try:
        from gan_trainer import finite
    except ImportError:
        finite = None
    else:
        real = finite.to_host
        finite.to_host = lambda a: explicit.append(a.shape) or real(a.view(numpy.ndarray))
    DeviceArray.implicit = 0
    for extension in (NaNGuard(), DivergenceMonitor(window=2),
                      extensions.LogReport(trigger=(50, 'iteration'))):
        extension(trainer)
    if finite is not None:
        finite.to_host = real
    return DeviceArray.implicit, len(explicit)


def time_guard(repeats: int, preset: str | None = None):
    import chainer
    import numpy
    from chainer import training

    from gan_trainer import GANUpdater
    from gan_trainer.datasets import get_digits
    from gan_trainer.ema import GeneratorEMA
    from gan_trainer.extensions import NaNGuard
    from gan_trainer.nets import Discriminator, Generator

    numpy.random.seed(0)
    if preset is None:
        gen = Generator(size=28, channels=1, base_width=32)
        dis = Discriminator(size=28, channels=1, base_width=32)
    else:
        from gan_trainer.run import PRESETS
        from gan_trainer.run.parts import build_networks
        gen, dis = build_networks(PRESETS[preset], (1, 28, 28))
    try:  # the run's Adam: parameters and state as views of flat buffers
        from gan_trainer.ops import Adam
    except ImportError:  # a checkout from before it
        Adam = chainer.optimizers.Adam
    opts = {}
    for name, net in (('gen', gen), ('dis', dis)):
        opts[name] = Adam(alpha=2e-4, beta1=0.5)
        opts[name].setup(net)
    iterator = chainer.iterators.SerialIterator(get_digits('train'), 64)
    kwargs = {'ema': GeneratorEMA(gen, decay=0.999)}
    try:
        updater = GANUpdater(iterator, opts, device=-1, seed=0, **kwargs)
    except TypeError:  # a checkout without the EMA
        updater = GANUpdater(iterator, opts, device=-1, seed=0)
    trainer = training.Trainer(updater, (10**6, 'iteration'))
    reporter = chainer.Reporter()
    reporter.add_observer('gen', gen)
    reporter.add_observer('dis', dis)
    steps = []
    for _ in range(6):
        observation = {}
        start = time.perf_counter()
        with reporter.scope(observation):
            updater.update()
        steps.append(time.perf_counter() - start)
    guard = NaNGuard()
    times = []
    for _ in range(repeats):
        # A fresh observation each time: the guard replaces its values.
        trainer.observation = dict(observation)
        start = time.perf_counter()
        guard(trainer)
        times.append(time.perf_counter() - start)
    n = sum(p.size for p in gen.params()) + sum(p.size for p in dis.params())
    reductions = {}
    if hasattr(guard, 'groups'):
        groups = [[a for _, a in group] for group in guard.groups(updater).values()]
        ways = {
            'isfinite(concatenate)': lambda: [numpy.isfinite(numpy.concatenate(
                [a.ravel() for a in g])).all() for g in groups],
            'float64 sum(concatenate)': lambda: [numpy.concatenate(
                [a.ravel() for a in g]).sum(dtype=numpy.float64) for g in groups],
            'isfinite per array': lambda: [numpy.isfinite(a).all() for g in groups for a in g],
            'isfinite per array, stacked (the guard)': lambda: [numpy.concatenate(
                [numpy.isfinite(a).all(keepdims=True).reshape((1,)) for a in g]).all()
                for g in groups],
        }
        for name, way in ways.items():
            spent = []
            for _ in range(repeats):
                start = time.perf_counter()
                way()
                spent.append(time.perf_counter() - start)
            reductions[name] = statistics.median(spent)
        reductions['numbers'] = sum(a.size for g in groups for a in g)
    return statistics.median(times), statistics.median(steps[1:]), n, reductions


def main(argv=None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, os.path.abspath(args.src))
    sys.path.insert(1, os.path.join(HERE, 'tests'))
    import gan_trainer

    print(f'gan_trainer from {os.path.dirname(gan_trainer.__file__)}; '
          f'{platform.processor() or platform.machine()}, Python {platform.python_version()}')
    implicit, explicit = count_transfers()
    print(f'transfers per iteration (guard + divergence monitor + log summary): '
          f'{implicit} implicit (float/bool/item), {explicit} through finite.to_host')
    guard_s, step_s, n, reductions = time_guard(args.repeats, args.preset)
    print(f'{args.preset or "default"} networks ({n} parameters): guard {guard_s * 1e3:.3f} ms per call, '
          f'update {step_s * 1e3:.1f} ms per iteration ({guard_s / step_s:.2%})')
    numbers = reductions.pop('numbers', 0)
    for name, seconds in reductions.items():
        print(f'  {name} over {numbers} numbers: {seconds * 1e3:.3f} ms')
    return 0


if __name__ == '__main__':
    sys.exit(main())
