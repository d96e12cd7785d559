#!/usr/bin/env python
"""2x2 pooling, forward and backward: gan_trainer.ops against Chainer's, on keras-dcgan's maps.

    python benchmarks/pooling.py
    python benchmarks/pooling.py --repeats 10

keras-dcgan's D (``--preset keras-dcgan``) pools twice per pass: a
``256 x 64 x 28 x 28`` map (one batch of 128 reals and 128 fakes) after its
first convolution and a ``256 x 128 x 14 x 14`` one after its second, both
stored channel-last as the fast convolutions leave them. For each map and
each of max- and average-pooling this prints the best of ``--repeats``
forward+backward passes of :func:`gan_trainer.ops.max_pooling_2x2` (and
``average_pooling_2x2``) and of Chainer's ``F.max_pooling_2d(x, 2, stride=2,
cover_all=False)`` (``F.average_pooling_2d``), and checks that outputs and
gradients are the same.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import chainer
import numpy

from gan_trainer import ops
from gan_trainer.ops import pooling

SHAPES = ((256, 64, 28, 28), (256, 128, 14, 14))
WAYS = {
    'max': (ops.max_pooling_2x2, pooling.chainer_max_pooling_2x2),
    'average': (ops.average_pooling_2x2, pooling.chainer_average_pooling_2x2),
}


def pass_of(fn, x: numpy.ndarray, gy: numpy.ndarray):
    v = chainer.Variable(x)
    y = fn(v)
    y.grad = gy
    y.backward()
    return y.array, v.grad


def best(fn, x, gy, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        pass_of(fn, x, gy)
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--repeats', type=int, default=5)
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error(f'--repeats must be at least 1, got {args.repeats}')
    print(f'{platform.processor() or platform.machine()}, {os.cpu_count()} cores, '
          f'Python {platform.python_version()}, NumPy {numpy.__version__}')
    rng = numpy.random.default_rng(0)
    for shape in SHAPES:
        # Channel-last storage, NCHW shape: what the fast convolutions return.
        x = numpy.moveaxis(rng.standard_normal((shape[0], *shape[2:], shape[1]),
                                               dtype=numpy.float32), -1, 1)
        for name, (ours, chainers) in WAYS.items():
            gy = rng.standard_normal((shape[0], shape[1], shape[2] // 2, shape[3] // 2),
                                     dtype=numpy.float32)
            (y1, g1), (y2, g2) = pass_of(ours, x, gy), pass_of(chainers, x, gy)
            same = numpy.array_equal(y1, y2) and numpy.allclose(g1, g2, rtol=0, atol=1e-7)
            t_ours, t_chainer = best(ours, x, gy, args.repeats), best(chainers, x, gy, args.repeats)
            print(f'{name:7} {"x".join(map(str, shape)):15} ours {t_ours * 1e3:7.1f} ms, '
                  f'Chainer {t_chainer * 1e3:7.1f} ms ({t_chainer / t_ours:.1f}x), '
                  f'{"same values" if same else "VALUES DIFFER"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
