"""Issue 28: does the ``began`` preset's autoencoder D learn to reconstruct real digits?

Trains the preset's D alone (``k_t = 0``: D's loss is then the real images'
reconstruction error alone) with the preset's Adam on batches of the built-in
digits, once per ``--init``, and prints the held-out error every
``--interval`` steps beside the error of the best image that ignores its
input (the pixel-wise median of the held-out images). A D that stays near
that line has not learned to read its input::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/began_digits.py --steps 300
"""

from __future__ import annotations

import argparse

import chainer
import chainer.functions as F
import numpy as np

from gan_trainer.datasets import get_digits
from gan_trainer.run import PRESETS, build_networks


def images(split: str) -> np.ndarray:
    data = get_digits(split)
    return np.stack([data[i][0] for i in range(len(data))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--steps', type=int, default=300)
    parser.add_argument('--interval', type=int, default=50)
    parser.add_argument('--inits', default='normal,glorot')
    args = parser.parse_args()
    train, test = images('train'), images('test')
    median = float(np.abs(test - np.median(test, axis=0)).mean())
    print(f'held-out error of the median image: {median:.3f}')
    for init in args.inits.split(','):
        config = PRESETS['began'].replace(init=init)
        _, dis = build_networks(config, train.shape[1:])
        optimizer = chainer.optimizers.Adam(alpha=config.lr, beta1=config.beta1,
                                            beta2=config.beta2)
        optimizer.setup(dis)
        rng = np.random.RandomState(0)
        errors = []
        for step in range(1, args.steps + 1):
            loss = F.mean(dis(train[rng.randint(len(train), size=config.batchsize)]))
            dis.cleargrads()
            loss.backward()
            optimizer.update()
            if step % args.interval == 0:
                with chainer.no_backprop_mode():
                    errors.append(f'{step}: {float(F.mean(dis(test)).array):.3f}')
        print(f'init {init:7s} widths {list(dis.widths)}  ' + '  '.join(errors))


if __name__ == '__main__':
    main()
