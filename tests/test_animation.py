"""The training GIF: frames in iteration order, exact pixels, one-line errors."""

import numpy
import pytest
from PIL import Image, ImageSequence

from gan_trainer.animation import AnimationError, find_frames, make_gif


def write_frames(folder, iterations, size=(12, 10), mode='L'):
    """A PNG per iteration whose every pixel is (iteration % 250), plus latest.png."""
    folder.mkdir(parents=True, exist_ok=True)
    for it in iterations:
        value = it % 250
        Image.new(mode, size, value if mode == 'L' else (value, 0, 255 - value)).save(
            folder / f'image_{it:08d}.png'
        )
    Image.new(mode, size, 255 if mode == 'L' else (255, 255, 255)).save(folder / 'latest.png')
    return folder


def read_gif(path):
    with Image.open(path) as gif:
        assert gif.format == 'GIF'
        return [
            (numpy.asarray(f.convert('RGB')), f.info.get('duration'))
            for f in ImageSequence.Iterator(gif)
        ], gif.info.get('loop')


@pytest.mark.parametrize('mode', ['L', 'RGB'])
def test_make_gif_has_one_frame_per_grid_in_iteration_order(tmp_path, mode):
    # Written out of order; 1000 must follow 200 (numeric, not text order).
    preview = write_frames(tmp_path / 'preview', [1000, 100, 200, 50], mode=mode)
    path = make_gif(preview, tmp_path / 'out' / 'train.gif', duration_ms=120, last_frame_ms=None)
    frames, loop = read_gif(path)
    assert loop == 0
    assert [f.shape for f, _ in frames] == [(10, 12, 3)] * 4
    assert [d for _, d in frames] == [120] * 4
    red = [int(f[0, 0, 0]) for f, _ in frames]
    assert red == [50, 100, 200, 1000 % 250]


def test_make_gif_holds_the_last_frame_longer_and_can_drop_frames(tmp_path):
    preview = write_frames(tmp_path / 'preview', range(10, 110, 10))
    frames, _ = read_gif(make_gif(preview, tmp_path / 'a.gif', duration_ms=100, max_frames=4))
    assert [int(f[0, 0, 0]) for f, _ in frames] == [10, 40, 70, 100]
    assert [d for _, d in frames] == [100, 100, 100, 1500]


def test_find_frames_ignores_latest_and_other_files(tmp_path):
    preview = write_frames(tmp_path, [3, 1])
    (tmp_path / 'image_7.png.tmp').write_text('x')
    (tmp_path / 'notes.txt').write_text('x')
    assert [p.name for p in find_frames(preview)] == ['image_00000001.png', 'image_00000003.png']


@pytest.mark.parametrize('make', ['missing', 'empty', 'only_latest'])
def test_no_frames_is_an_animation_error_naming_the_folder(tmp_path, make):
    folder = tmp_path / 'preview'
    if make != 'missing':
        folder.mkdir()
    if make == 'only_latest':
        Image.new('L', (4, 4)).save(folder / 'latest.png')
    with pytest.raises(AnimationError, match=str(folder)):
        make_gif(folder, tmp_path / 'x.gif')
    assert not (tmp_path / 'x.gif').exists()
