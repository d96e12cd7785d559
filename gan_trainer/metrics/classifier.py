"""A small digit classifier whose features measure generated digits offline.

FID and its relatives need a feature network. The standard one,
Inception-v3 trained on ImageNet, is a 100 MB download and knows little
about 28x28 handwritten digits; for the built-in digits this package has
its own instead, trained on the data it ships::

    (n, 1, 28, 28) -> conv 3x3 16, ReLU, max-pool 2 -> (n, 16, 14, 14)
                   -> conv 3x3 32, ReLU, max-pool 2 -> (n, 32, 7, 7)
                   -> linear 128, ReLU            -> features (n, 128)
                   -> dropout 0.3, linear 10      -> logits (n, 10)

**Its trained weights ship with the package** (:data:`WEIGHTS`, ``digits_classifier.npz``
beside this module, 0.77 MB) and :func:`load_digits_classifier` loads them
without training: the same samples give the same FID on every machine
(up to float rounding), and no run waits for a training. Training is
deterministic on one machine but not across machines (float rounding
differs between them, and eight epochs of Adam amplify it: the same recipe
and seed gave 97.2% and 97.6% held-out accuracy on two machines of the same
kind, issue #17), so weights trained at first use, as before, made FIDs
from different machines incomparable.

:func:`train_digits_classifier` is the recipe the shipped file was made with
(``python benchmarks/digits_classifier.py --out
gan_trainer/metrics/digits_classifier.npz``): Adam on the 4,500 training
digits, random shifts of up to 2 pixels, 8 epochs, seed 0. The file stores
its accuracy on the 500 held-out digits as ``test_accuracy``.
"""

from __future__ import annotations

import os
import sys
import time

import chainer
import chainer.functions as F
import chainer.links as L
import numpy

from gan_trainer.checkpoint import load_params
from gan_trainer.datasets import get_digits
from gan_trainer.latent import global_seed
from gan_trainer.metrics.features import fit_images

#: The shipped weights (installed with the package, see setup.py's package_data).
WEIGHTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'digits_classifier.npz')


class DigitsClassifier(chainer.Chain):
    """A 2-conv CNN for 28x28 gray digits; its penultimate layer is the feature.

    Args:
        widths: Channels of the two convolutions.
        n_features: Size of the feature layer (the penultimate one).
        n_classes: Number of classes.

    Attributes:
        test_accuracy (float): Accuracy on ``get_digits('test')`` measured
            after training (``nan`` before); saved with the weights.
    """

    size = 28
    channels = 1

    def __init__(
        self, *, widths: tuple[int, int] = (16, 32), n_features: int = 128, n_classes: int = 10
    ) -> None:
        super().__init__()
        self.n_features, self.n_classes = n_features, n_classes
        with self.init_scope():
            self.conv1 = L.Convolution2D(1, widths[0], 3, pad=1)
            self.conv2 = L.Convolution2D(widths[0], widths[1], 3, pad=1)
            self.fc = L.Linear(widths[1] * 7 * 7, n_features)
            self.out = L.Linear(n_features, n_classes)
        self.add_persistent('test_accuracy', numpy.float64(numpy.nan))

    def features(self, x) -> chainer.Variable:
        """Features ``(n, n_features)`` of images ``(n, 1, 28, 28)`` in [-1, 1]."""
        h = F.max_pooling_2d(F.relu(self.conv1(x)), 2)
        h = F.max_pooling_2d(F.relu(self.conv2(h)), 2)
        return F.relu(self.fc(h))

    def forward(self, x) -> chainer.Variable:
        """Class logits ``(n, n_classes)``."""
        return self.out(F.dropout(self.features(x), 0.3))

    def embed(self, images, *, batchsize: int = 500):
        """The feature network of :mod:`gan_trainer.metrics.features`.

        Args:
            images: ``(n, C, H, W)`` in [-1, 1]; RGB is converted to gray and
                other sides are resized to 28 (see
                :func:`~gan_trainer.metrics.features.fit_images`).
            batchsize: Images per forward pass.

        Returns:
            ``(features, probs)``: float32 ``(n, 128)`` and ``(n, 10)`` NumPy
            arrays, computed in evaluation mode without a graph.
        """
        x = fit_images(images, size=self.size, channels=self.channels)
        feats, probs = [], []
        with chainer.using_config('train', False), chainer.no_backprop_mode():
            for i in range(0, len(x), batchsize):
                h = self.features(self.device.send(x[i : i + batchsize]))
                feats.append(chainer.backend.CpuDevice().send(h.array))
                probs.append(chainer.backend.CpuDevice().send(F.softmax(self.out(h)).array))
        return numpy.concatenate(feats), numpy.concatenate(probs)

    def accuracy(self, images, labels) -> float:
        """Share of ``images`` classified as ``labels``."""
        return float((self.embed(images)[1].argmax(axis=1) == numpy.asarray(labels)).mean())


def _shifted(x: numpy.ndarray, rng: numpy.random.RandomState, shift: int) -> numpy.ndarray:
    """Each image moved by its own random offset of up to ``shift`` pixels."""
    n, _, h, w = x.shape
    padded = numpy.pad(x, ((0, 0), (0, 0), (shift, shift), (shift, shift)), constant_values=-1)
    dy, dx = rng.randint(0, 2 * shift + 1, (2, n))
    return numpy.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])


def train_digits_classifier(
    *,
    seed: int = 0,
    epochs: int = 8,
    n_train: int | None = None,
    batchsize: int = 64,
    verbose: bool = False,
) -> DigitsClassifier:
    """Trains a :class:`DigitsClassifier` on the built-in training digits.

    Args:
        seed: Seed of the weights, the data order, the shifts and dropout.
        epochs: Passes over the training digits; the learning rate drops
            from 1e-3 to 1e-4 for the last quarter of them.
        n_train: Train on only ``n_train`` digits drawn at random (for tests).
        batchsize: Digits per update.
        verbose: Print the held-out accuracy and time to stderr.

    Returns:
        The classifier on the CPU, with ``test_accuracy`` set.
    """
    start = time.perf_counter()
    train = get_digits('train')
    images, labels = train.images, train.labels
    rng = numpy.random.RandomState(seed)
    if n_train is not None:
        # The digits are sorted by class: a subset must be drawn at random.
        keep = numpy.sort(rng.permutation(len(images))[:n_train])
        images, labels = images[keep], labels[keep]
    # Initializers and dropout draw from NumPy's global RNG.
    with global_seed(seed):
        model = DigitsClassifier()
        optimizer = chainer.optimizers.Adam(alpha=1e-3)
        optimizer.setup(model)
        for epoch in range(epochs):
            if epoch >= epochs - epochs // 4:
                optimizer.alpha = 1e-4
            order = rng.permutation(len(images))
            for i in range(0, len(order), batchsize):
                batch = order[i : i + batchsize]
                loss = F.softmax_cross_entropy(
                    model(_shifted(images[batch], rng, 2)), labels[batch]
                )
                model.cleargrads()
                loss.backward()
                optimizer.update()
    test = get_digits('test')
    test_images, test_labels = test.images, test.labels
    model.test_accuracy = numpy.float64(model.accuracy(test_images, test_labels))
    if verbose:
        print(
            f'gan_trainer: digits classifier trained in {time.perf_counter() - start:.0f} s, '
            f'held-out accuracy {float(model.test_accuracy):.1%}',
            file=sys.stderr,
            flush=True,
        )
    return model


def load_digits_classifier(path: str | os.PathLike | None = None) -> DigitsClassifier:
    """Returns the digits classifier with the shipped weights; nothing is trained.

    Args:
        path: Another weights file written by ``chainer.serializers.save_npz``
            of a :class:`DigitsClassifier` (e.g. by
            ``benchmarks/digits_classifier.py --out``); :data:`WEIGHTS` by default.

    Returns:
        The classifier on the CPU.

    Raises:
        gan_trainer.checkpoint.SnapshotError: If the file is missing,
            unreadable or not a classifier's (one line naming it).
    """
    return load_params(os.fspath(path) if path is not None else WEIGHTS, DigitsClassifier())
