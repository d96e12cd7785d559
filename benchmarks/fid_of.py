#!/usr/bin/env python
"""FID of 1,000 samples against the training digits, by the package's metric.

    python benchmarks/fid_of.py --export digits.npy        # the 4,500 training digits
    python benchmarks/fid_of.py --samples samples.npy      # images (N, 1, 28, 28) in [-1, 1]
    python benchmarks/fid_of.py --run result               # G of a run's last gen_iter_*.npz

``--run`` draws ``--n_samples`` images from G in evaluation mode with a
fixed z (``--seed``, drawn from the run's ``z_dist``), as
:class:`~gan_trainer.extensions.QualityReport` does. The reference is what ``train_dcgan.py --fid_interval`` measures
against: the digits classifier's features of the 4,500 training digits
(:class:`gan_trainer.metrics.RealStatistics`). ``benchmarks/whole_run.sh``
scores both its runs with this script. The last line is ``fid VALUE``.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gan_trainer.datasets import get_digits
from gan_trainer.metrics import RealStatistics, load_digits_classifier
from gan_trainer.metrics.quality import real_images
from gan_trainer.run import RunFolder, load_generator
from gan_trainer.sampling import draw_hidden, generate


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument('--export', metavar='NPY', help='write the training digits and exit')
    g.add_argument('--samples', metavar='NPY')
    g.add_argument('--run', metavar='DIR')
    p.add_argument('--n_samples', type=int, default=1000)
    p.add_argument('--seed', type=int, default=0)
    args = p.parse_args(argv)
    train = real_images(get_digits('train'))
    if args.export:
        numpy.save(args.export, train)
        print(f'exported {len(train)} digits to {args.export}')
        return 0
    if args.samples:
        images = numpy.load(args.samples).astype(numpy.float32)
    else:
        path = RunFolder(args.run).latest_net('gen')
        if path is None:
            p.error(f'--run: no gen_iter_N.npz in {args.run}')
        gen, record = load_generator(path)
        # z from the run's own distribution (a uniform-z preset scored on normal z
        # would be scored on inputs G never saw).
        images = generate(gen, draw_hidden(args.n_samples, gen.n_hidden, z_dist=record.sampler,
                                           seed=args.seed))
    real = RealStatistics(load_digits_classifier().embed, train)
    print(f'fid {real.measure(images)["fid"]:.2f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
