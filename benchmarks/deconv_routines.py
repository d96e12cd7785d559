#!/usr/bin/env python
"""Times the three transposed-convolution routines of gan_trainer.ops.conv.

    python benchmarks/deconv_routines.py
    python benchmarks/deconv_routines.py --batchsize 64 --reps 5

``deconv_nhwc`` computes a transposed convolution by one of three routines
(see :func:`gan_trainer.ops.conv.deconv_routine`): by output *phases*, by
one product and a per-phase *gather*, or by one product and a channel-first
*scatter*. All three give the same values (``tests/test_ops.py``); this
prints how long each takes, forward only, on the shapes of the DCGAN layers
in ``benchmarks/throughput.py`` (k4 s2 p1, channel-last input) plus a few
others, the median of ``--reps`` calls after one untimed call, and which
routine ``deconv_routine`` picks. It is how the rule was chosen.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gan_trainer.ops import conv

# (side, C_in, C_out, k, s, p, where it is)
SHAPES = [
    (7, 128, 64, 4, 2, 1, 'digits28 G hidden; D conv2 input grad'),
    (14, 64, 1, 4, 2, 1, 'digits28 G image layer'),
    (4, 512, 256, 4, 2, 1, 'dcgan64 G hidden 1; D conv4 input grad'),
    (8, 256, 128, 4, 2, 1, 'dcgan64 G hidden 2; D conv3 input grad'),
    (16, 128, 64, 4, 2, 1, 'dcgan64 G hidden 3; D conv2 input grad'),
    (32, 64, 3, 4, 2, 1, 'dcgan64 G image layer'),
    (14, 64, 32, 4, 2, 1, 'a narrower G'),
    (16, 128, 128, 5, 2, 2, 'k5 s2 p2, channels kept'),
    (32, 64, 64, 3, 1, 1, "a 'same' 3x3 conv's input grad"),
]
ROUTINES = ('_deconv_phases', '_deconv_gather', '_deconv_scatter')


def time_call(fn, args, reps: int) -> float:
    """Median milliseconds of ``fn(*args)`` over ``reps`` calls after one warm-up."""
    fn(*args)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--batchsize', type=int, default=64)
    p.add_argument('--reps', type=int, default=5)
    args = p.parse_args(argv)
    if args.batchsize < 1 or args.reps < 1:
        p.error('--batchsize and --reps must be at least 1')
    rng = numpy.random.default_rng(0)
    print(f'# batch {args.batchsize}, float32, median of {args.reps} calls, ms')
    print(f'{"input HxWxC":>12} {"C_out":>5} {"k s p":>5} {"phases":>8} {"gather":>8} '
          f'{"scatter":>8}  {"picked":8} layer')
    for side, ci, co, k, s, p_, where in SHAPES:
        x = rng.standard_normal((args.batchsize, side, side, ci), numpy.float32)
        W = rng.standard_normal((ci, co, k, k), numpy.float32)
        out = conv.conv_utils.get_deconv_outsize(side, k, s, p_)
        call = (x, W, (s, s), (p_, p_), (out, out))
        ms = [time_call(getattr(conv, name), call, args.reps) for name in ROUTINES]
        picked = conv.deconv_routine(ci, co).__name__.removeprefix('_deconv_')
        print(f'{f"{side}x{side}x{ci}":>12} {co:>5} {k} {s} {p_} '
              + ' '.join(f'{v:8.2f}' for v in ms) + f'  {picked:8} {where}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
