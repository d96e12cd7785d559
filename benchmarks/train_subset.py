#!/usr/bin/env python
"""``examples/train_dcgan.py`` on a small subset of the built-in digits, measured on all of them.

    python benchmarks/train_subset.py --subset 500 --augment translation,cutout \\
        --fid_interval 2500 --no_progress --out result_500

The training command's flags, plus ``--subset N``: the run trains on the
first ``N / 10`` training digits of each class (so ``N`` is a multiple of
10, at most 4,500) and validates on the usual 500 held-out digits. The
quality report of the log (``--fid_interval``) compares G with the ``N``
digits it trained on, as a user's run on a folder of ``N`` pictures would;
after the run the same report (the package's :class:`QualityReport`, same
fixed z and sample count) is made once more against all 4,500 training
digits, the distribution the subset was drawn from, and written to
``OUT/quality_full.json``. That second figure is the one that shows whether
G learned digits or memorised its ``N`` examples. ``benchmarks/recipes.py
--subset N`` runs this script instead of the training command.
"""

from __future__ import annotations

import os
import sys

import numpy

from gan_trainer import files
from gan_trainer.cli._args import Parser, fail
from gan_trainer.cli.train import flags_of_options, parse_config
from gan_trainer.datasets import Data, get_digits
from gan_trainer.extensions import QualityReport
from gan_trainer.metrics import load_digits_classifier
from gan_trainer.metrics.quality import real_images
from gan_trainer.run import build_trainer

PROG = 'train_subset.py'
#: The file the measurement against every training digit is written to, in OUT.
FULL_QUALITY = 'quality_full.json'


def digits_subset(n: int):
    """The first ``n / 10`` training digits of each class, in the training set's order.

    Returns:
        A ``TupleDataset`` of ``n`` ``(image, label)`` examples.

    Raises:
        ValueError: When ``n`` is not a multiple of 10 in [10, 4500].
    """
    if n < 10 or n % 10 or n > 4500:
        raise ValueError(f'--subset must be a multiple of 10 from 10 to 4500, got {n}')
    import chainer

    train = get_digits('train')
    images, labels = train.images, train.labels
    keep = numpy.sort(numpy.concatenate(
        [numpy.flatnonzero(labels == c)[:n // 10] for c in range(10)]))
    return chainer.datasets.TupleDataset(images[keep], labels[keep])


def main(argv=None) -> int:
    parser = Parser(prog=PROG, add_help=False)
    parser.add_argument('--subset', type=int, required=True)
    args, rest = parser.parse_known_args(argv)
    try:
        subset = digits_subset(args.subset)
    except ValueError as e:
        parser.error(str(e))
    config = parse_config(rest, prog=PROG)
    data = Data.of(subset, get_digits('test'), name=f'digits[{args.subset}]', n_classes=10)
    try:
        trainer = build_trainer(config, data=data, log=lambda line: print(f'{PROG}: {line}'))
        trainer.run()
    except ValueError as e:
        return fail(PROG, e, flags_of_options())
    # The report of the log, once more, against every training digit.
    report = QualityReport(real_images(get_digits('train')),
                           embed=load_digits_classifier().embed, seed=config.seed,
                           n_samples=config.fid_samples, best_name=None)
    result = report(trainer)
    files.write_json(os.path.join(config.out, FULL_QUALITY),
                     dict(result, iteration=trainer.updater.iteration, subset=args.subset,
                          reference='4,500 training digits'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
