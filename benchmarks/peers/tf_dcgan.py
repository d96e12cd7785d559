#!/usr/bin/env python
"""TensorFlow's DCGAN tutorial in TensorFlow 2 / Keras 3, on the package's digits: the peer of ``--preset tf-gan``.

    python3 -m venv /work/venv-tf && /work/venv-tf/bin/pip install tensorflow-cpu
    python benchmarks/peers/compare.py --recipe tf-gan      # runs this script there

Written here from the tutorial (tensorflow/docs,
``site/en/tutorials/generative/dcgan.ipynb``); the recipe, as it has it:

* G: Dense 7*7*256 without bias -> BatchNormalization -> LeakyReLU ->
  reshape 7x7x256 -> Conv2DTranspose 128 5x5 stride 1 -> BN -> LeakyReLU
  -> Conv2DTranspose 64 5x5 stride 2 -> BN -> LeakyReLU ->
  Conv2DTranspose 1 5x5 stride 2 + tanh; every transposed convolution
  'same' and without bias. The first BatchNorm normalises each of the
  Dense layer's 12,544 units over the batch.
* D: Conv2D 64 5x5 stride 2 'same' -> LeakyReLU -> Dropout 0.3 ->
  Conv2D 128 5x5 stride 2 'same' -> LeakyReLU -> Dropout 0.3 -> Flatten
  -> Dense 1 (a logit).
* Keras' defaults: Glorot-uniform kernels, zero biases, BatchNorm
  momentum 0.99 and epsilon 1e-3, LeakyReLU slope 0.3; Adam(1e-4) with
  beta1 0.9, beta2 0.999, epsilon 1e-7 for each net; the cross-entropy
  on logits.
* One ``train_step`` per batch: z ~ N(0, 1) of 256, G in training mode,
  D on the real batch and on the fakes (two calls, training mode), both
  losses from those outputs and both nets updated at once from the same
  forward pass (two gradient tapes).
* Batches of 256 from ``shuffle().batch()``: every epoch ends with a
  partial batch (4,500 = 17 x 256 + 148), where 148 reals meet 256
  fakes, as in the tutorial.

The grids and samples are drawn with ``training=False`` (BatchNorm's moving
averages), as the tutorial draws its pictures. The differences from the
tutorial are the data (the package's 4,500 training digits instead of
MNIST's 60,000; epochs are shuffled by the peer's own ``RandomState``,
see :mod:`peer_io`) and the z of the grid and the samples.
"""

from __future__ import annotations

import os
import sys

import numpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import peer_io

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
import keras
import tensorflow as tf
from keras import layers

BATCH = 256
N_HIDDEN = 100


def generator() -> keras.Model:
    return keras.Sequential([
        keras.Input((N_HIDDEN,)),
        layers.Dense(7 * 7 * 256, use_bias=False), layers.BatchNormalization(),
        layers.LeakyReLU(),
        layers.Reshape((7, 7, 256)),
        layers.Conv2DTranspose(128, (5, 5), strides=(1, 1), padding='same', use_bias=False),
        layers.BatchNormalization(), layers.LeakyReLU(),
        layers.Conv2DTranspose(64, (5, 5), strides=(2, 2), padding='same', use_bias=False),
        layers.BatchNormalization(), layers.LeakyReLU(),
        layers.Conv2DTranspose(1, (5, 5), strides=(2, 2), padding='same', use_bias=False,
                               activation='tanh'),
    ], name='generator')


def discriminator() -> keras.Model:
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(64, (5, 5), strides=(2, 2), padding='same'), layers.LeakyReLU(),
        layers.Dropout(0.3),
        layers.Conv2D(128, (5, 5), strides=(2, 2), padding='same'), layers.LeakyReLU(),
        layers.Dropout(0.3),
        layers.Flatten(), layers.Dense(1),
    ], name='discriminator')


def epochs(train: numpy.ndarray, rng: numpy.random.RandomState):
    """Endless batches of 256, each epoch reshuffled and ending with its partial batch."""
    while True:
        order = rng.permutation(len(train))
        for i in range(0, len(train), BATCH):
            yield train[order[i:i + BATCH]]


def main(argv=None) -> int:
    args = peer_io.parse(__doc__.splitlines()[1], argv)
    keras.utils.set_random_seed(args.seed)
    rng = numpy.random.RandomState(args.seed)
    train, z_grid, z_samples = peer_io.load(args.data)
    g, d = generator(), discriminator()
    cross_entropy = keras.losses.BinaryCrossentropy(from_logits=True)
    g_opt, d_opt = keras.optimizers.Adam(1e-4), keras.optimizers.Adam(1e-4)

    @tf.function
    def train_step(images):
        noise = tf.random.normal([BATCH, N_HIDDEN])
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            fakes = g(noise, training=True)
            real_out = d(images, training=True)
            fake_out = d(fakes, training=True)
            g_loss = cross_entropy(tf.ones_like(fake_out), fake_out)
            d_loss = (cross_entropy(tf.ones_like(real_out), real_out)
                      + cross_entropy(tf.zeros_like(fake_out), fake_out))
        g_opt.apply_gradients(zip(g_tape.gradient(g_loss, g.trainable_variables),
                                  g.trainable_variables))
        d_opt.apply_gradients(zip(d_tape.gradient(d_loss, d.trainable_variables),
                                  d.trainable_variables))
        return d_loss, g_loss

    def draw(z):
        return g(z, training=False).numpy()

    batches = epochs(train, rng)
    recorder = peer_io.Recorder(args, draw, z_grid)
    for iteration in range(1, args.iterations + 1):
        d_loss, g_loss = train_step(tf.constant(next(batches)))
        recorder.step(iteration, d_loss=d_loss.numpy(), g_loss=g_loss.numpy())
    recorder.save(z_samples, framework=f'tensorflow {tf.__version__}', batch=BATCH)
    return 0


if __name__ == '__main__':
    sys.exit(main())
