#!/usr/bin/env python
"""FID of a run's last G and EMA of G, with their saved and with recomputed BatchNorm statistics.

    python examples/train_dcgan.py --ema 0.999 --iteration 2565 --fid_interval 2565 --out ema_run
    python benchmarks/ema_bn_stats.py ema_run

For ``gen_iter_N.npz`` and ``gen_ema_iter_N.npz`` of the highest N, the
package's FID (1,000 samples of z seed 0, against the 4,500 training digits,
as ``benchmarks/fid_of.py``) twice: with the BatchNorm statistics the file
holds, then after one training-mode forward pass on 2,000 other z with the
BatchNorm decay at 0, which sets each running mean and variance to the
network's own statistics. A large gap for the EMA (and none for G) means
the file's statistics do not fit its weights, as the average of G's
statistics did not fit averaged weights (see gan_trainer/ema.py).
"""

from __future__ import annotations

import os
import sys

import chainer

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gan_trainer.datasets import get_digits
from gan_trainer.metrics import RealStatistics, load_digits_classifier
from gan_trainer.metrics.quality import real_images
from gan_trainer.run import RunFolder, load_generator
from gan_trainer.sampling import draw_hidden, generate


def recompute_statistics(gen: chainer.Link, n: int = 2000, seed: int = 123) -> int:
    """Sets G's BatchNorm running statistics to those of one batch of ``n`` z; returns the count."""
    links = [link for link in gen.links() if isinstance(link, chainer.links.BatchNormalization)]
    decays = [link.decay for link in links]
    for link in links:
        link.decay = 0.0
    with chainer.using_config('train', True), chainer.no_backprop_mode():
        gen(draw_hidden(n, gen.n_hidden, seed=seed))
    for link, decay in zip(links, decays):
        link.decay = decay
    return len(links)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise SystemExit('usage: ema_bn_stats.py RUN_FOLDER')
    run = argv[0]
    real = RealStatistics(load_digits_classifier().embed, real_images(get_digits('train')))
    z = draw_hidden(1000, 100, seed=0)
    for stem in ('gen', 'gen_ema'):
        path = RunFolder(run).latest_net(stem)
        if path is None:
            raise SystemExit(f'ema_bn_stats.py: error: no {stem}_iter_N.npz in {run}')
        gen, _ = load_generator(path)
        saved = real.measure(generate(gen, z))['fid']
        count = recompute_statistics(gen)
        own = real.measure(generate(gen, z))['fid']
        print(f'{os.path.basename(path)}: FID {saved:.2f} with its saved statistics, '
              f'{own:.2f} with its own ({count} BatchNorm links)', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
