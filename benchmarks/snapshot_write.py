#!/usr/bin/env python
"""What writing a snapshot costs: the trainer's npz stored against deflated.

    python benchmarks/snapshot_write.py
    python benchmarks/snapshot_write.py --preset keras-dcgan --repeats 3

Builds a run's trainer (``gan_trainer.run.build_trainer`` with the preset's
networks and optimizers, on the built-in digits), runs it for one iteration
so that the optimizers' state is not zero, and writes the whole trainer
(what ``snapshot_iter_N`` holds) with :func:`gan_trainer.files.save_npz`,
its members stored and deflated in turn, ``--repeats`` times each,
alternating. Printed: the file size and the median seconds of each, and
the generator's file (``gen_iter_N.npz``) alike. Reading both back gives
the same arrays (checked here too).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
import zipfile

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, 'benchmarks'))

WAYS = {'stored': zipfile.ZIP_STORED, 'deflated': zipfile.ZIP_DEFLATED}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    from gan_trainer.run import PRESETS

    p.add_argument('--preset', default='default', choices=list(PRESETS),
                   help='the run whose trainer is written')
    p.add_argument('--repeats', type=int, default=3)
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error('--repeats must be at least 1')
    return args


def build(preset: str, out: str):
    from gan_trainer.run import RunConfig, build_trainer
    from gan_trainer.run.presets import apply_preset

    config = apply_preset(RunConfig(out=out, iteration=1, progress=False), preset)
    with contextlib.redirect_stdout(io.StringIO()):  # the log's table
        trainer = build_trainer(config, log=None)
        trainer.run()  # one iteration: the optimizers' state is not zero
    return trainer


def time_writes(obj, folder: str, repeats: int) -> dict:
    """``{way: (bytes, [seconds, ...])}`` for ``obj`` written ``repeats`` times each way, alternating."""
    from gan_trainer import files

    seconds = {way: [] for way in WAYS}
    for _ in range(repeats):
        for way, compression in WAYS.items():
            start = time.perf_counter()
            files.save_npz(os.path.join(folder, way + '.npz'), obj, compression=compression)
            seconds[way].append(time.perf_counter() - start)
    return {way: (os.path.getsize(os.path.join(folder, way + '.npz')), s)
            for way, s in seconds.items()}


def same_arrays(folder: str) -> bool:
    import numpy

    with numpy.load(os.path.join(folder, 'stored.npz')) as a, \
            numpy.load(os.path.join(folder, 'deflated.npz')) as b:
        return sorted(a.files) == sorted(b.files) and all(
            numpy.array_equal(a[k], b[k]) for k in a.files)


def main(argv=None) -> int:
    args = parse_args(argv)
    from recipes import cpu_name

    print(f'{cpu_name()}; preset {args.preset}; median of {args.repeats}')
    with tempfile.TemporaryDirectory() as tmp:
        trainer = build(args.preset, os.path.join(tmp, 'run'))
        for name, obj in (('trainer', trainer), ('gen', trainer.updater.gen)):
            results = time_writes(obj, tmp, args.repeats)
            if not same_arrays(tmp):
                print(f'{name}: the two files hold different arrays', file=sys.stderr)
                return 1
            for way, (size, s) in results.items():
                print(f'{name:8} {way:9} {size / 1e6:8.1f} MB {statistics.median(s):7.3f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
