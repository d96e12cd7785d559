#!/usr/bin/env python
"""jacobgil/keras-dcgan's recipe in Keras 3, on the package's digits: the peer of ``--preset keras-dcgan``.

    python3 -m venv /work/venv-tf && /work/venv-tf/bin/pip install tensorflow-cpu
    python benchmarks/peers/compare.py --recipe keras-dcgan      # runs this script there

or by hand, with an input file that ``compare.py --inputs_only`` writes::

    /work/venv-tf/bin/python benchmarks/peers/keras_dcgan.py --data in.npz --out peer0

Written here from the original's ``dcgan.py`` (HEAD 0603639, Keras 2),
with only what Keras 3 renamed: ``Input`` layers instead of
``input_dim``/``input_shape``, ``learning_rate=``, import paths,
channel-last images. The recipe, as the original has it:

* G: Dense 1024 + tanh -> Dense 128*7*7 -> BatchNormalization -> tanh ->
  reshape 7x7x128 -> UpSampling2D -> Conv2D 64 5x5 'same' + tanh ->
  UpSampling2D -> Conv2D 1 5x5 'same' + tanh. One BatchNorm, on the
  Dense layer's 6,272 units: each unit is normalised over the batch alone.
* D: Conv2D 64 5x5 'same' + tanh -> MaxPooling2D -> Conv2D 128 5x5
  'valid' (14 -> 10) + tanh -> MaxPooling2D -> Flatten (3,200) -> Dense
  1024 + tanh -> Dense 1 + sigmoid.
* Keras' defaults: Glorot-uniform kernels, zero biases, BatchNorm
  momentum 0.99 and epsilon 1e-3; the binary cross-entropy of the sigmoid.
* SGD(5e-4, momentum 0.9, Nesterov) for D and for the combined model;
  batch 128; z uniform in [-1, 1]^100.
* Per batch: fakes from G in inference mode (the original's
  ``g.predict``; here ``g(z, training=False)``, the same computation
  without ``predict``'s per-call data pipeline), D trained on the 256
  images of one concatenated batch with labels 1 and 0 (one mean over all
  256), then the combined model trained on fresh z with labels 1 while
  ``d.trainable`` is False.

Whether D is really frozen in the combined model is checked, not assumed:
after the first iteration the script fails unless the G step left D's
weights unchanged and the D step changed them. The differences from the
original are the data (the package's 4,500 training digits, shuffled every
epoch: they are stored by class; see :mod:`peer_io`) and the z of the grid
and the samples (the package's, for the preset's comparison).
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

BATCH = 128
N_HIDDEN = 100


def generator() -> keras.Model:
    return keras.Sequential([
        keras.Input((N_HIDDEN,)),
        layers.Dense(1024), layers.Activation('tanh'),
        layers.Dense(128 * 7 * 7), layers.BatchNormalization(), layers.Activation('tanh'),
        layers.Reshape((7, 7, 128)),
        layers.UpSampling2D((2, 2)), layers.Conv2D(64, (5, 5), padding='same'),
        layers.Activation('tanh'),
        layers.UpSampling2D((2, 2)), layers.Conv2D(1, (5, 5), padding='same'),
        layers.Activation('tanh'),
    ], name='generator')


def discriminator() -> keras.Model:
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(64, (5, 5), padding='same'), layers.Activation('tanh'),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(128, (5, 5)), layers.Activation('tanh'),  # 'valid': 14 -> 10
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dense(1024), layers.Activation('tanh'),
        layers.Dense(1), layers.Activation('sigmoid'),
    ], name='discriminator')


def sgd() -> keras.optimizers.Optimizer:
    return keras.optimizers.SGD(learning_rate=5e-4, momentum=0.9, nesterov=True)


def build() -> tuple[keras.Model, keras.Model, keras.Model]:
    """``(g, d, d_on_g)`` compiled in the original's order.

    D is frozen while the combined model is compiled, then trainable again
    for its own compile; :func:`train_step` freezes it around the G step
    too, as Keras 3 reads ``trainable`` when a step is traced.
    """
    d, g = discriminator(), generator()
    d.trainable = False
    d_on_g = keras.Sequential([g, d])
    d_on_g.compile(loss='binary_crossentropy', optimizer=sgd())
    d.trainable = True
    d.compile(loss='binary_crossentropy', optimizer=sgd())
    return g, d, d_on_g


def draw(g: keras.Model, z: numpy.ndarray) -> numpy.ndarray:
    """G in inference mode (the original's ``g.predict``)."""
    return g(z, training=False).numpy()


def train_step(g, d, d_on_g, real: numpy.ndarray, z_dis: numpy.ndarray,
               z_gen: numpy.ndarray, check: bool = False) -> tuple[float, float]:
    """One iteration of the original: D on real+fakes of ``z_dis``, then G on ``z_gen``.

    With ``check``, fails unless the D step changed D's weights and the G
    step left them unchanged (whether D is really frozen in the combined
    model is checked, not assumed). Returns ``(d_loss, g_loss)``.
    """
    fakes = draw(g, z_dis)
    labels_d = numpy.array([1.0] * len(real) + [0.0] * len(fakes), numpy.float32)
    before = [w.copy() for w in d.get_weights()] if check else None
    d_loss = d.train_on_batch(numpy.concatenate([real, fakes]), labels_d)
    after_d = [w.copy() for w in d.get_weights()] if check else None
    d.trainable = False
    g_loss = d_on_g.train_on_batch(z_gen, numpy.ones(len(z_gen), numpy.float32))
    d.trainable = True
    if check:
        moved = any(not numpy.array_equal(a, b) for a, b in zip(before, after_d))
        frozen = all(numpy.array_equal(a, b) for a, b in zip(after_d, d.get_weights()))
        if not (moved and frozen):
            raise SystemExit(f'keras_dcgan.py: D trained in its step: {moved}, frozen in '
                             f"G's step: {frozen}; this Keras does not freeze D as the "
                             'original does')
    return float(d_loss), float(g_loss)


def main(argv=None) -> int:
    args = peer_io.parse(__doc__.splitlines()[1], argv)
    keras.utils.set_random_seed(args.seed)
    rng = numpy.random.RandomState(args.seed)
    train, z_grid, z_samples = peer_io.load(args.data)
    g, d, d_on_g = build()
    draws = peer_io.keras_dcgan_draws(train, BATCH, N_HIDDEN, rng)
    recorder = peer_io.Recorder(args, lambda z: draw(g, z), z_grid)
    for iteration in range(1, args.iterations + 1):
        z_dis, real, z_gen = next(draws)
        d_loss, g_loss = train_step(g, d, d_on_g, real, z_dis, z_gen, check=iteration == 1)
        recorder.step(iteration, d_loss=d_loss, g_loss=g_loss)
    recorder.save(z_samples, framework=f'keras {keras.__version__}', batch=BATCH)
    return 0


if __name__ == '__main__':
    sys.exit(main())
