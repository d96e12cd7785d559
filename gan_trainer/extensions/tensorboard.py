"""TensorBoardReport: the logged scalars and the preview grid in TensorBoard.

An optional extension (``pip install -e '.[tensorboard]'``, which installs
tensorboardX; no TensorFlow needed). It does not average anything itself: at
its trigger it writes the newest entry of the trainer's ``LogReport`` (the
same means the ``log`` file holds), if that entry is new, and the newest
preview grid that :class:`~gan_trainer.extensions.ImageGrid` saved, if it
changed. Open the result with ``tensorboard --logdir OUT/tensorboard``.
"""

from __future__ import annotations

import os

import numpy
from chainer import training

from gan_trainer import files
from gan_trainer.priorities import priority_of

#: The scalars not written: bookkeeping, not measurements.
SKIPPED_KEYS = ('iteration', 'epoch', 'elapsed_time')


def _summary_writer():
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise ImportError(
            "TensorBoardReport needs tensorboardX: pip install -e '.[tensorboard]'"
        ) from None
    return SummaryWriter


def _every_iteration(trainer) -> bool:
    return True


class TensorBoardReport(training.Extension):
    """Writes ``LogReport``'s scalars and the preview grid as TensorBoard events.

    Each new ``LogReport`` entry becomes one scalar per numeric key (tag
    ``gen/loss``, ``validation/dis/accuracy``, ...) at its ``iteration``;
    ``OUT/<preview>`` (``preview/latest.png``), when its modification time
    changed since the last call, becomes the image ``preview`` at the
    current iteration. The event file is flushed whenever something was
    written, so TensorBoard shows a running job, and closed when training
    ends.

    Its priority is below ``LogReport``'s (``PRIORITY_READER``) and far
    below :class:`~gan_trainer.extensions.ImageGrid`'s, so within one
    iteration it runs after both and sees their newest output. A snapshot
    keeps how many log entries were written, so a resumed run writes only
    the new ones, into a new event file in the same folder (TensorBoard
    joins them by step); resuming a snapshot taken without this extension
    writes the whole log so far.

    Args:
        logdir: Folder of the event files; ``None`` means
            ``OUT/tensorboard``, a relative path is taken under ``OUT``.
        trigger: When to look for new values; ``None`` (the default) is
            every iteration, which never misses the last entry of a run and
            costs one ``stat`` of the preview file when nothing is new. It is
            a plain function with no state, so a snapshot of a run without
            this extension resumes without a warning.
        log_report: Name of the ``LogReport`` extension to read.
        preview: The image to show, relative to ``OUT``; ``None`` for none.

    Raises:
        ImportError: When tensorboardX is missing (at construction, so a
            training script fails before training starts).
    """

    priority = priority_of('tensorboard')
    default_name = 'tensorboard'

    def __init__(
        self,
        logdir: str | None = None,
        *,
        trigger=None,
        log_report: str = 'LogReport',
        preview: str | None = os.path.join(files.PREVIEW_DIR, files.PREVIEW_LATEST),
    ) -> None:
        self._writer_class = _summary_writer()
        self.trigger = _every_iteration if trigger is None else trigger
        self.logdir, self.log_report, self.preview = logdir, log_report, preview
        self._writer = None
        self._logged = 0  # LogReport entries already written
        self._preview_seen = None

    def _open(self, trainer):
        if self._writer is None:
            logdir = os.path.join(trainer.out, self.logdir or files.TENSORBOARD_DIR)
            # The file name holds the time in seconds only: the suffix keeps a
            # run resumed within the same second from overwriting the first file.
            suffix = f'.{os.getpid()}.{trainer.updater.iteration}'
            self._writer = self._writer_class(logdir, filename_suffix=suffix)
        return self._writer

    def __call__(self, trainer: training.Trainer) -> None:
        log = trainer.get_extension(self.log_report).log
        wrote = False
        for entry in log[self._logged :]:
            step = entry.get('iteration', trainer.updater.iteration)
            for key, value in entry.items():
                if key not in SKIPPED_KEYS and isinstance(value, (int, float, numpy.number)):
                    self._open(trainer).add_scalar(key, float(value), step)
                    wrote = True
        self._logged = len(log)
        if self.preview is not None:
            wrote = self._write_preview(trainer) or wrote
        if wrote:
            self._writer.flush()

    def _write_preview(self, trainer) -> bool:
        path = os.path.join(trainer.out, self.preview)
        try:
            stat = os.stat(path)
        except OSError:  # no grid yet
            return False
        # ImageGrid replaces the file by a rename: a new inode or a new time.
        seen = (stat.st_ino, stat.st_mtime_ns)
        if seen == self._preview_seen:
            return False
        from PIL import Image

        with Image.open(path) as img:
            pixels = numpy.asarray(img.convert('RGB'))  # (H, W, 3) uint8
        self._open(trainer).add_image(
            'preview', pixels, trainer.updater.iteration, dataformats='HWC'
        )
        self._preview_seen = seen
        return True

    def serialize(self, serializer) -> None:
        try:
            self._logged = int(serializer('logged', self._logged))
        except KeyError:  # a snapshot taken without this extension
            self._logged = 0

    def finalize(self) -> None:
        """Closes the event file (Chainer calls this when training ends)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
