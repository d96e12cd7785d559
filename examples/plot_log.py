#!/usr/bin/env python
"""Draw the curves of a finished run's log again, with the keys you choose.

    python examples/plot_log.py result                                  # result/loss_replot.png
    python examples/plot_log.py result --keys dis/acc_real dis/acc_fake --out acc.png

Reads ``OUT/log`` (the JSON that ``LogReport`` writes) and plots each key
against the iteration; ``--keys`` defaults to the four curves of ``loss.png``.
"""

from __future__ import annotations

import argparse
import os
import sys

from _cli import Parser, fail

from gan_trainer.logs import DEFAULT_KEYS, LogError, plot_log

PROG = 'plot_log.py'


def parse_args(argv=None) -> argparse.Namespace:
    p = Parser(prog=PROG, description='Plot the log of a gan_trainer run.')
    a = p.add_argument
    a('out_dir', metavar='OUT', help="output folder of a training run, or its 'log' file")
    a(
        '--keys',
        nargs='+',
        default=list(DEFAULT_KEYS),
        metavar='KEY',
        help=f'log keys to plot (default: {" ".join(DEFAULT_KEYS)})',
    )
    a('--out', '-o', help='image to write (default OUT/loss_replot.png)')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    folder = args.out_dir if os.path.isdir(args.out_dir) else os.path.dirname(args.out_dir)
    out = args.out or os.path.join(folder, 'loss_replot.png')
    try:
        path = plot_log(args.out_dir, out, keys=args.keys)
    except (LogError, OSError) as e:
        return fail(PROG, e)
    print(f'wrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
