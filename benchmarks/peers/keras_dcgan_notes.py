#!/usr/bin/env python
"""The Keras DCGAN notes' recipe in Keras 3, on the package's digits: the peer of ``--preset keras-dcgan-notes``.

    python3 -m venv /work/venv-tf && /work/venv-tf/bin/pip install tensorflow-cpu
    python benchmarks/peers/compare.py --recipe keras-dcgan-notes   # runs this script there

The notes' own code was not at hand when this was written (the package's
library of public sources has no copy), so this peer is written from the
recipe as :data:`gan_trainer.run.presets.DESCRIPTIONS` records it, in the
Keras idiom of keras-dcgan (``keras_dcgan.py``): it checks what the
framework does to the recipe (initialisation, where BatchNorm sits and its
defaults, the optimizers' own formulas, the combined model), not the
notes' code-level slips that the preset corrects. The recipe:

* G: z of 64, uniform in [-1, 1] -> Dense 128*7*7 -> BatchNormalization
  -> ELU -> reshape 7x7x128 -> UpSampling2D -> Conv2D 64 3x3 'same' ->
  BatchNormalization -> ELU -> UpSampling2D -> Conv2D 1 3x3 'same' +
  tanh. The first BatchNorm, on a Dense layer, normalises each of its
  6,272 units over the batch (Keras' BatchNormalization of a 2-d input).
* D: Conv2D 64 3x3 stride 2 'same' -> LeakyReLU -> Conv2D 128 3x3 stride 2
  'same' -> LeakyReLU -> Flatten -> Dense 2048 -> LeakyReLU -> Dense 1 +
  sigmoid; no BatchNorm (the notes dropped it after it collapsed their
  runs). LeakyReLU's Keras default slope, 0.3.
* Keras' defaults: Glorot-uniform kernels, zero biases, BatchNorm
  momentum 0.99 and epsilon 1e-3; the binary cross-entropy of the sigmoid.
* Adam(2e-4, beta1 0.5) for G through the combined model (D frozen),
  Adam(1e-5, beta1 0.1) for D; batch 200.
* Per batch, G's step first (fresh z, labels 1), then D's: fakes of fresh
  z from G in inference mode, one concatenated batch of 400 with labels 1
  and 0.

As in the other peers, the data are the package's 4,500 training digits in
[-1, 1] (the preset's correction of the notes' [0, 1] for a tanh G; see
:mod:`peer_io` for the shuffling) and the grid's and samples' z are the
package's.
"""

from __future__ import annotations

import os
import sys

import numpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import peer_io

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
import keras
from keras import layers

BATCH = 200
N_HIDDEN = 64


def generator() -> keras.Model:
    return keras.Sequential([
        keras.Input((N_HIDDEN,)),
        layers.Dense(128 * 7 * 7), layers.BatchNormalization(), layers.Activation('elu'),
        layers.Reshape((7, 7, 128)),
        layers.UpSampling2D((2, 2)), layers.Conv2D(64, (3, 3), padding='same'),
        layers.BatchNormalization(), layers.Activation('elu'),
        layers.UpSampling2D((2, 2)), layers.Conv2D(1, (3, 3), padding='same'),
        layers.Activation('tanh'),
    ], name='generator')


def discriminator() -> keras.Model:
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(64, (3, 3), strides=(2, 2), padding='same'), layers.LeakyReLU(),
        layers.Conv2D(128, (3, 3), strides=(2, 2), padding='same'), layers.LeakyReLU(),
        layers.Flatten(),
        layers.Dense(2048), layers.LeakyReLU(),
        layers.Dense(1), layers.Activation('sigmoid'),
    ], name='discriminator')


def main(argv=None) -> int:
    args = peer_io.parse(__doc__.splitlines()[1], argv)
    keras.utils.set_random_seed(args.seed)
    rng = numpy.random.RandomState(args.seed)
    train, z_grid, z_samples = peer_io.load(args.data)

    d, g = discriminator(), generator()
    d.trainable = False
    d_on_g = keras.Sequential([g, d])
    d_on_g.compile(loss='binary_crossentropy',
                   optimizer=keras.optimizers.Adam(learning_rate=2e-4, beta_1=0.5))
    d.trainable = True
    d.compile(loss='binary_crossentropy',
              optimizer=keras.optimizers.Adam(learning_rate=1e-5, beta_1=0.1))

    def draw(z):
        return g(z, training=False).numpy()

    labels_d = numpy.array([1.0] * BATCH + [0.0] * BATCH, numpy.float32)
    labels_g = numpy.ones(BATCH, numpy.float32)
    real_batches = peer_io.batches(train, BATCH, rng)
    recorder = peer_io.Recorder(args, draw, z_grid)
    for iteration in range(1, args.iterations + 1):
        noise = rng.uniform(-1, 1, (BATCH, N_HIDDEN)).astype(numpy.float32)
        d.trainable = False
        g_loss = d_on_g.train_on_batch(noise, labels_g)
        d.trainable = True
        noise = rng.uniform(-1, 1, (BATCH, N_HIDDEN)).astype(numpy.float32)
        x = numpy.concatenate([next(real_batches), draw(noise)])
        d_loss = d.train_on_batch(x, labels_d)
        recorder.step(iteration, d_loss=d_loss, g_loss=g_loss)
    recorder.save(z_samples, framework=f'keras {keras.__version__}', batch=BATCH)
    return 0


if __name__ == '__main__':
    sys.exit(main())
