"""The show-and-tell commands on a real tiny run: make_gif, interpolate, generate --out_dir,
export_onnx, plot_log and train_dcgan --tensorboard.

Each runs through the ``main(argv)`` its script calls, in this process
(helpers.here); the bad-input cases of make_gif, interpolate and plot_log
also once in a real process each.
"""

import json

import numpy
import pytest
from helpers import (
    assert_one_line_error,
    grid_side,
    here,
    images,
    in_this_and_one_real_process,
    read_events,
    read_png,
    run,
    scalars,
    succeeded,
)
from PIL import Image, ImageSequence

from gan_trainer.image import tile_images
from gan_trainer.run import load_generator
from gan_trainer.sampling import draw_hidden, generate, interpolation_grid

TINY = (
    '--base_width 4 --batchsize 8 --iteration 4 --snapshot_interval 4 --display_interval 2 '
    '--preview_interval 1 --eval_interval 4 --no_progress'
)


@pytest.fixture(scope='session')
def tiny_run(tmp_path_factory):
    """4 iterations on the digits with a grid at each and TensorBoard events."""
    out = tmp_path_factory.mktemp('tools') / 'result'
    proc = succeeded(here('train_dcgan.py', *TINY.split(), '--tensorboard', '--out', out))
    assert proc.stderr == ''
    return out


def test_train_with_tensorboard_writes_the_log_and_the_grids_as_events(tiny_run):
    events = read_events(tiny_run / 'tensorboard')
    log = json.loads((tiny_run / 'log').read_text())
    found = scalars(events)
    assert [s for s, _ in found['gen/loss']] == [e['iteration'] for e in log] == [2, 4]
    assert [s for s, _ in found['validation/dis/accuracy']] == [4]
    assert [(tag, step) for tag, step, _ in images(events)] == [
        ('preview', i) for i in (1, 2, 3, 4)
    ]


def test_make_gif_plays_the_preview_grids_in_order(tiny_run, tmp_path):
    gif = tmp_path / 'train.gif'
    succeeded(here('make_gif.py', tiny_run, '--out', gif, '--duration', '50'))
    with Image.open(gif) as img:
        frames = [numpy.asarray(f.convert('L')) for f in ImageSequence.Iterator(img)]
    assert len(frames) == 4
    for i, frame in enumerate(frames, start=1):
        numpy.testing.assert_array_equal(
            frame, read_png(tiny_run / 'preview' / f'image_{i:08d}.png')
        )


@pytest.mark.parametrize('make, command', in_this_and_one_real_process(
    ['missing', 'empty'], 'missing', here, run))
def test_make_gif_without_frames_is_one_line_and_exit_status_2(tmp_path, make, command):
    if make == 'empty':
        (tmp_path / 'preview').mkdir()
    proc = command('make_gif.py', tmp_path, '--out', tmp_path / 'x.gif')
    assert_one_line_error(proc, tmp_path / 'preview', prog='make_gif.py')
    assert not (tmp_path / 'x.gif').exists()


@pytest.mark.parametrize('mode', ['linear', 'both'])
def test_interpolate_writes_the_grid_of_the_snapshot(tiny_run, tmp_path, mode):
    out = tmp_path / 'interp.png'
    args = ['--rows', '2', '--steps', '4', '--mode', mode, '--seed', '3', '--out', out]
    succeeded(here('interpolate.py', tiny_run / 'gen_iter_4.npz', *args))
    gen, _ = load_generator(str(tiny_run / 'gen_iter_4.npz'))
    pairs = draw_hidden(4, gen.n_hidden, seed=3).reshape(2, 2, -1)
    modes = ['linear'] if mode == 'linear' else ['linear', 'spherical']
    blocks = [interpolation_grid(gen, pairs, 4, mode=m).reshape(2, 1, 4, 1, 28, 28) for m in modes]
    expected = numpy.concatenate(blocks, axis=1).reshape(-1, 1, 28, 28)  # rows alternate modes
    pixels = read_png(out)
    assert pixels.shape == (grid_side(2 * len(modes), 28), grid_side(4, 28))
    numpy.testing.assert_array_equal(pixels, tile_images(expected, 2 * len(modes), 4))


BAD_INTERPOLATE = {  # id -> (args after the snapshot's folder, what the line names)
    'steps_1': (['gen_iter_4.npz', '--steps', '1'], '--steps'),
    'missing_snapshot': (['gen_iter_9.npz'], 'gen_iter_9.npz'),
    'label_unconditional': (['gen_iter_4.npz', '--label', '1'], '--label'),
}


@pytest.mark.parametrize('case, command', in_this_and_one_real_process(
    BAD_INTERPOLATE, 'steps_1', here, run))
def test_interpolate_bad_input_is_one_line_and_exit_status_2(tiny_run, tmp_path, case, command):
    (name, *flags), names = BAD_INTERPOLATE[case]
    folder = tiny_run if name == 'gen_iter_4.npz' else tmp_path
    proc = command('interpolate.py', folder / name, *flags, '--out', tmp_path / 'x.png')
    assert_one_line_error(proc, names, prog='interpolate.py')
    assert not (tmp_path / 'x.png').exists()


def test_generate_out_dir_writes_n_repeatable_single_images(tiny_run, tmp_path):
    folders = {}
    for name, seed in (('a', 5), ('b', 5), ('c', 6)):
        folders[name] = tmp_path / name
        args = ['--n', '3', '--out_dir', folders[name], '--seed', seed]
        succeeded(here('generate.py', tiny_run / 'gen_iter_4.npz', *args))
    names = ['000000.png', '000001.png', '000002.png']
    assert sorted(p.name for p in folders['a'].iterdir()) == names
    gen, _ = load_generator(str(tiny_run / 'gen_iter_4.npz'))
    expected = tile_images(generate(gen, draw_hidden(3, gen.n_hidden, seed=5)), 1, 3, padding=0)
    for i, name in enumerate(names):
        pixels = read_png(folders['a'] / name)
        numpy.testing.assert_array_equal(pixels, expected[:, 28 * i : 28 * i + 28])
        assert (folders['a'] / name).read_bytes() == (folders['b'] / name).read_bytes()
    assert not numpy.array_equal(
        read_png(folders['a'] / names[0]), read_png(folders['c'] / names[0])
    )


def test_generate_n_without_out_dir_is_one_line_and_exit_status_2(tiny_run):
    proc = here('generate.py', tiny_run / 'gen_iter_4.npz', '--n', '3')
    assert_one_line_error(proc, '--out_dir', prog='generate.py')


def test_export_onnx_writes_a_model_onnx_runtime_runs_like_chainer(tiny_run, tmp_path):
    onnxruntime = pytest.importorskip('onnxruntime')
    path = tmp_path / 'gen.onnx'
    proc = succeeded(
        here('export_onnx.py', tiny_run / 'gen_iter_4.npz', '--out', path, '--batch', 2)
    )
    assert 'z (2, 100)' in proc.stdout and 'images (2, 1, 28, 28)' in proc.stdout
    session = onnxruntime.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    z = draw_hidden(2, 100, seed=1)
    gen, _ = load_generator(str(tiny_run / 'gen_iter_4.npz'))
    numpy.testing.assert_allclose(session.run(None, {'z': z})[0], generate(gen, z), atol=1e-4)


def test_plot_log_redraws_the_chosen_curves(tiny_run, tmp_path):
    out = tmp_path / 'acc.png'
    succeeded(here('plot_log.py', tiny_run, '--keys', 'dis/acc_real', 'dis/acc_fake',
                   '--out', out))
    assert read_png(out).shape[:2] == (400, 640)


@pytest.mark.parametrize('command', [here, pytest.param(run, marks=pytest.mark.process)],
                         ids=['here', 'process'])
def test_plot_log_of_a_key_not_in_the_log_is_one_line(tiny_run, tmp_path, command):
    proc = command('plot_log.py', tiny_run, '--keys', 'no/such', '--out', tmp_path / 'x.png')
    assert_one_line_error(proc, 'no/such', prog='plot_log.py')
    assert not (tmp_path / 'x.png').exists()
