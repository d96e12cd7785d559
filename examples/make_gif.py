#!/usr/bin/env python
"""Turn a run's preview grids into an animated GIF of training.

    python examples/make_gif.py result                       # result/training.gif
    python examples/make_gif.py result --out docs/images/training.gif --duration 250

Frames are ``OUT/preview/image_N.png`` in the order of N (the same z at
every N, so you watch the same samples learn); ``latest.png`` is left out.
"""

from __future__ import annotations

import argparse
import os
import sys

from _cli import Parser, fail, positive_int

from gan_trainer.animation import AnimationError, make_gif

PROG = 'make_gif.py'


def parse_args(argv=None) -> argparse.Namespace:
    p = Parser(prog=PROG, description='Make an animated GIF from the preview grids of a run.')
    a = p.add_argument
    a('out_dir', metavar='OUT', help='output folder of a training run (holds preview/)')
    a('--out', '-o', help='GIF to write (default OUT/training.gif)')
    a('--duration', type=positive_int, default=300, help='milliseconds per frame (default 300)')
    a('--max_frames', type=positive_int, help='keep at most this many frames, evenly spaced')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    out = args.out or os.path.join(args.out_dir, 'training.gif')
    try:
        path = make_gif(
            os.path.join(args.out_dir, 'preview'),
            out,
            duration_ms=args.duration,
            max_frames=args.max_frames,
        )
    except (AnimationError, OSError) as e:
        return fail(PROG, e)
    print(f'wrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
