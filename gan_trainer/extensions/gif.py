"""TrainingGif: the run's preview grids as ``OUT/training.gif`` when the run ends.

:class:`~gan_trainer.extensions.ImageGrid` saves the same z's grid every
``--preview_interval`` iterations; played in order they show the samples
grow from noise. When training ends (or stops cleanly at a signal) this
extension writes them as one GIF with :func:`gan_trainer.animation.make_gif`,
so a run leaves its film behind without a second command. A run that ends
in an error writes none; ``gan-trainer gif OUT`` makes one at any time.
"""

from __future__ import annotations

import os
import warnings

from chainer import training

from gan_trainer import files
from gan_trainer.animation import AnimationError, make_gif
from gan_trainer.extensions.stop import Stopped
from gan_trainer.priorities import priority_of


class TrainingGif(training.Extension):
    """Writes ``OUT/training.gif`` from ``OUT/preview/image_N.png`` at the end of training.

    Args:
        max_frames: At most this many frames, evenly spaced (a long run
            with frequent previews would otherwise make a large file).
        duration_ms: Display time of each frame.
    """

    trigger = 1, 'iteration'
    priority = priority_of('training_gif')
    default_name = 'training_gif'

    def __init__(self, *, max_frames: int = 100, duration_ms: int = 300) -> None:
        self.max_frames, self.duration_ms = max_frames, duration_ms
        self._out: str | None = None
        self._failed = False
        self.written: str | None = None

    def initialize(self, trainer: training.Trainer) -> None:
        self._out = trainer.out

    def __call__(self, trainer: training.Trainer) -> None:
        pass  # all the work is at the end

    def on_error(self, trainer, exc, tb) -> None:
        self._failed = not isinstance(exc, Stopped)

    def finalize(self, trainer=None) -> None:
        if self._out is None or self._failed:
            return
        try:
            self.written = os.fspath(make_gif(
                os.path.join(self._out, files.PREVIEW_DIR), os.path.join(self._out, files.GIF),
                duration_ms=self.duration_ms, max_frames=self.max_frames))
        except AnimationError:
            pass  # no preview grid yet: nothing to animate
        except OSError as e:  # a full disk must not hide how training ended
            warnings.warn(f'could not write {files.GIF}: {e}', stacklevel=2)
