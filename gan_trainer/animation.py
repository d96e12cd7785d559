"""An animated GIF of a run's preview grids: training as a short film.

:class:`~gan_trainer.extensions.ImageGrid` saves ``OUT/preview/image_N.png``
every ``--preview_interval`` iterations, always for the same z, so played in
order they show the same samples grow from noise into digits.
:func:`make_gif` collects them by iteration (``latest.png``, a copy of the
newest one, is left out) and writes one GIF with Pillow.
"""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

from gan_trainer import files


class AnimationError(ValueError):
    """The preview folder is missing or holds no frames."""


def find_frames(preview_dir: str | os.PathLike) -> list[Path]:
    """The ``image_N.png`` files of ``preview_dir``, ordered by the iteration N.

    N is compared as a number, so ``image_1000.png`` follows ``image_200.png``
    even without the zero padding ``ImageGrid`` writes.

    Raises:
        AnimationError: If the folder does not exist or holds no such file.
    """
    folder = Path(preview_dir)
    if not folder.is_dir():
        raise AnimationError(f"preview folder '{folder}' does not exist")
    found = []
    for path in folder.iterdir():
        match = files.PREVIEW_FRAME.match(path.name)  # the names ImageGrid writes
        if match and path.is_file():
            found.append((int(match.group(1)), path))
    if not found:
        raise AnimationError(
            f"no preview images (image_N.png) in '{folder}': train with --preview_interval"
        )
    return [path for _, path in sorted(found)]


def _pick(frames: list[Path], max_frames: int | None) -> list[Path]:
    """At most ``max_frames`` frames, evenly spaced, always keeping the last."""
    if max_frames is None or len(frames) <= max_frames:
        return frames
    if max_frames < 2:
        return frames[-1:]
    last = len(frames) - 1
    indices = sorted({round(i * last / (max_frames - 1)) for i in range(max_frames)})
    return [frames[i] for i in indices]


def make_gif(
    preview_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    duration_ms: int = 300,
    loop: int = 0,
    max_frames: int | None = None,
    last_frame_ms: int | None = 1500,
) -> Path:
    """Writes the preview grids of ``preview_dir`` as one animated GIF.

    Frames are the ``image_N.png`` files in the order of N (see
    :func:`find_frames`). A GIF holds at most 256 colours per frame; the
    grids of gray digits have fewer, so they are stored exactly, and RGB
    grids are quantised by Pillow. Pillow merges consecutive identical
    frames into one (adding their display times).

    Args:
        preview_dir: A run's ``OUT/preview`` folder.
        out_path: The GIF to write; parent folders are created.
        duration_ms: Display time of each frame in milliseconds.
        loop: Times the animation repeats; 0 (the default) loops forever.
        max_frames: Keep at most this many frames, evenly spaced over the
            run and always including the last one (a long run with frequent
            previews would otherwise give a large file); ``None`` keeps all.
        last_frame_ms: Display time of the final frame, so the end result
            stays on screen a moment before the loop restarts; ``None``
            shows it for ``duration_ms`` like the others.

    Returns:
        pathlib.Path: The file written.

    Raises:
        AnimationError: If there are no frames, or an option is out of range.
        OSError: If a frame cannot be read or the GIF cannot be written.
    """
    if duration_ms < 1 or loop < 0 or (max_frames is not None and max_frames < 1):
        raise AnimationError(
            f'make_gif: need duration_ms >= 1, loop >= 0 and max_frames >= 1, got '
            f'{duration_ms}, {loop}, {max_frames}'
        )
    frames = _pick(find_frames(preview_dir), max_frames)
    images = []
    for path in frames:
        with Image.open(path) as img:
            images.append(img.convert('RGB') if img.mode not in ('L', 'RGB') else img.copy())
    durations = [duration_ms] * len(images)
    if last_frame_ms is not None:
        durations[-1] = last_frame_ms
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # Atomically: a full disk leaves the old file (or none), never an empty one.
    with files.atomic_write(out_path) as f:
        images[0].save(
            f,
            format='GIF',
            save_all=True,
            append_images=images[1:],
            duration=durations,
            loop=loop,
            optimize=False,
        )
    return out_path
