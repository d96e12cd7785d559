"""QualityReport: FID, KID, precision/recall and class scores during training.

Losses of a GAN say little about the images; these metrics compare what G
makes with real data (see :mod:`gan_trainer.metrics`). Every time it runs,
the extension generates the same ``n_samples`` images (a fixed z from its own
``RandomState(seed)``, G in evaluation mode, the moving average of G when the
updater keeps one), embeds them with a feature network and reports, under
``validation/``:

* ``fid``, ``kid``, ``precision``, ``recall`` (always);
* ``is``, ``classes``, ``class_kl`` (when the feature network classifies);
* ``label_accuracy`` (for a conditional G, which is asked for the classes
  ``0, 1, ..., K-1, 0, 1, ...`` in turn).

The real set is embedded once, at the first run. The generator with the
lowest FID so far is kept as ``OUT/gen_best.npz`` (loadable like
``gen_iter_N.npz``) with ``OUT/gen_best.json`` holding its iteration and
metrics; both are written to a temporary file and renamed, and the best FID
is saved in trainer snapshots, so a resumed run only replaces the file with
a better generator.
"""

from __future__ import annotations

import math
import os

import chainer
import numpy
from chainer import training

from gan_trainer import files
from gan_trainer.extensions.protocol import is_conditional, shown_generator
from gan_trainer.latent import global_seed
from gan_trainer.metrics.features import FeatureNet
from gan_trainer.metrics.quality import RealStatistics
from gan_trainer.priorities import priority_of
from gan_trainer.sampling import generate


class QualityReport(training.Extension):
    """Reports sample-quality metrics of G and keeps its best snapshot by FID.

    Args:
        real: A :class:`~gan_trainer.metrics.RealStatistics`, or real images
            ``(n, C, H, W)`` in [-1, 1] whose statistics are computed (with
            ``embed``) at the first run.
        embed: The feature network; needed when ``real`` is images.
        n_samples: Images generated per run. FID falls as this grows, so
            compare FIDs only at equal ``n_samples``.
        seed: Seed of the fixed z.
        batchsize: Images per forward pass of G.
        prefix: Prefix of the reported keys (not ``name``: the trainer sets
            that to the extension's name).
        best_name: File stem of the best generator (``OUT/<best_name>.npz``
            and ``.json``); ``None`` keeps no snapshot.
    """

    trigger = 1000, 'iteration'
    priority = priority_of('quality')
    default_name = 'quality'

    def __init__(
        self,
        real,
        *,
        embed: FeatureNet | None = None,
        n_samples: int = 1000,
        seed: int = 0,
        batchsize: int = 100,
        prefix: str = 'validation',
        best_name: str | None = files.BEST_STEM,
    ) -> None:
        if not isinstance(real, RealStatistics) and embed is None:
            raise ValueError('QualityReport needs embed= (a feature network) for real images')
        if n_samples < 4:
            raise ValueError(f'n_samples must be at least 4 (for 3-NN radii), got {n_samples}')
        self.real = real
        self.embed = embed
        self.n_samples, self.seed, self.batchsize = n_samples, seed, batchsize
        self.prefix, self.best_name = prefix, best_name
        self.best_fid = math.inf
        self.best_iteration = -1

    def statistics(self) -> RealStatistics:
        """The real set's statistics, computed at the first call."""
        if not isinstance(self.real, RealStatistics):
            self.real = RealStatistics(self.embed, self.real)
        return self.real

    def samples(self, updater):
        """``(images, labels, gen)``: the fixed-z images ``(n_samples, C, H, W)``,
        the labels asked for (None unless conditional) and the G that made them."""
        gen = shown_generator(updater)
        with global_seed(self.seed):
            z = updater.make_hidden(self.n_samples, numpy.random.RandomState(self.seed))
        labels = None
        if is_conditional(updater):
            labels = numpy.arange(self.n_samples, dtype=numpy.int32) % numpy.int32(gen.n_classes)
        return generate(gen, z, labels, batchsize=self.batchsize), labels, gen

    def __call__(self, trainer: training.Trainer) -> dict[str, float]:
        images, labels, gen = self.samples(trainer.updater)
        result = self.statistics().measure(images, labels)
        chainer.report({f'{self.prefix}/{key}': value for key, value in result.items()})
        iteration = trainer.updater.iteration
        if self.best_name and result['fid'] < self.best_fid:
            self.best_fid, self.best_iteration = result['fid'], iteration
            self._save_best(
                trainer.out, gen, dict(result, iteration=iteration, n_samples=self.n_samples)
            )
        return result

    def _save_best(self, out: str, gen: chainer.Link, info: dict) -> None:
        os.makedirs(out, exist_ok=True)
        # Each file atomically (gan_trainer.files): a crash never leaves a
        # half-written best snapshot behind its final name.
        path = os.path.join(out, self.best_name)
        files.save_npz(path + '.npz', gen)
        files.write_json(path + '.json', info)

    def serialize(self, serializer) -> None:
        """Keeps the best FID so far (and its iteration) in trainer snapshots."""
        self.best_fid = float(serializer('best_fid', self.best_fid))
        self.best_iteration = int(serializer('best_iteration', self.best_iteration))
