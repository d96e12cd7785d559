"""ImageGrid: a picture of G(z) for one fixed z, saved during training.

Watching the same z over training shows how the generator evolves (and
whether it collapses) far better than loss curves. The extension draws its
z once, from its own ``RandomState(seed)``, so the grid at iteration 5,000
of a resumed run shows the same z as in the original run, and training's
own random stream is never touched.
"""

from __future__ import annotations

import os

import chainer
import numpy
from chainer import training

from gan_trainer import files
from gan_trainer.extensions.protocol import is_conditional, shown_generator
from gan_trainer.image import save_grid
from gan_trainer.latent import global_seed
from gan_trainer.priorities import priority_of


class ImageGrid(training.Extension):
    """Saves a ``rows x cols`` grid of generated images for a fixed z.

    Each call writes ``OUT/<out_dir>/image_{iteration:08d}.png`` and
    replaces ``OUT/<out_dir>/latest.png``, both with
    :func:`gan_trainer.files.atomic_write`, so neither a viewer nor
    :mod:`gan_trainer.animation` ever sees a half-written picture.

    The generator is :func:`~gan_trainer.extensions.protocol.shown_generator`
    (the moving average of G when the updater keeps one); z comes
    from ``trainer.updater.make_hidden(n, rng)``, as
    :class:`~gan_trainer.GANUpdater` provides. The generator runs in
    evaluation mode (BatchNorm with running statistics) without a graph.
    For a conditional GAN (``updater.conditional``) the grid has one row
    per class, and each column uses one z for all classes, so a column
    shows one "style" written as every class.

    Args:
        rows: Grid rows.
        cols: Grid columns.
        seed: Seed of the fixed z.
        out_dir: Folder under the trainer's ``out``.
        filename: Per-iteration file name, a function of the iteration
            (:func:`gan_trainer.files.preview_frame` by default, the names
            :func:`gan_trainer.animation.find_frames` collects).
    """

    trigger = 1000, 'iteration'
    priority = priority_of('image_grid')
    default_name = 'image_grid'

    def __init__(self, *, rows: int = 10, cols: int = 10, seed: int = 0,
                 out_dir: str = files.PREVIEW_DIR,
                 filename=files.preview_frame) -> None:
        if rows < 1 or cols < 1:
            raise ValueError(f'rows and cols must be at least 1, got {rows}x{cols}')
        self.rows, self.cols, self.seed = rows, cols, seed
        self.out_dir, self.filename = out_dir, filename

    def fixed_hidden(self, updater, n: int):
        """``n`` latent vectors on the updater's device; the same at every call."""
        with global_seed(self.seed):
            return updater.make_hidden(n, numpy.random.RandomState(self.seed))

    def __call__(self, trainer: training.Trainer) -> str:
        updater = trainer.updater
        gen = shown_generator(updater)
        rows, cols = self.rows, self.cols
        with chainer.using_config('train', False), chainer.no_backprop_mode():
            if is_conditional(updater):
                rows = gen.n_classes
                z = self.fixed_hidden(updater, cols)
                xp = updater.device.xp
                z = z[xp.tile(xp.arange(cols), rows)]
                labels = xp.repeat(xp.arange(rows, dtype=xp.int32), cols)
                images = gen(z, labels).array
            else:
                images = gen(self.fixed_hidden(updater, rows * cols)).array
        folder = os.path.join(trainer.out, self.out_dir)
        path = os.path.join(folder, self.filename(updater.iteration))
        for target in (path, os.path.join(folder, files.PREVIEW_LATEST)):
            save_grid(images, target, rows, cols)  # each written atomically
        return path
