"""The example scripts as a user runs them: real subprocesses, tiny nets, a few iterations.

One digits run (``digits_run`` in conftest.py) is shared by the tests that
only read its output; everything else writes under its own ``tmp_path``.
Bad input is tried in this process through the command's ``main(argv)``
(helpers.here), with one case of each command in a real process.
"""

import json
import multiprocessing
import shutil
import warnings

import chainer
import numpy
import pytest
from helpers import (
    FAST,
    assert_one_line_error,
    assert_same_weights,
    grid_side,
    here,
    in_this_and_one_real_process,
    read_png,
    run,
    succeeded,
    train,
    train_here,
    weights,
)
from PIL import Image

from gan_trainer.cli.train import parse_config
from gan_trainer.datasets import SkippedFilesWarning
from gan_trainer.image import tile_images
from gan_trainer.run import build_trainer, load_discriminator, load_generator
from gan_trainer.sampling import draw_hidden, generate, nice_samples

# Two loader processes decode the images (the default for a folder, given
# explicitly so the tests below compare with it whatever the default becomes).
FOLDER = ('--size', '8', '--eval_interval', '6', '--loaderjob', '2')


@pytest.fixture(scope='session')
def folder_run(tmp_path_factory, image_folder):
    """A run on the image folder at 8x8 with two loader processes, evaluated only at its end."""
    out = tmp_path_factory.mktemp('folder') / 'result'
    proc = train('--dataset', image_folder, *FOLDER, '--out', out)
    return out, succeeded(proc)


@pytest.mark.every_stack  # the one short real training of every CI stack
def test_training_on_digits_writes_logs_previews_snapshots_and_config(digits_run):
    out, proc = digits_run
    assert proc.stderr == ''  # no warnings from Chainer, NumPy or us
    assert {p.name for p in out.iterdir()} == {
        '.lock',  # the folder's lock (released when the run ended)
        'log',
        'loss.png',
        'preview',
        'training.gif',
        'config.json',
        'snapshot_iter_3',
        'snapshot_iter_6',
        'gen_iter_3.npz',
        'gen_iter_6.npz',
        'dis_iter_3.npz',
        'dis_iter_6.npz',
    }
    with Image.open(out / 'training.gif') as gif:
        assert gif.n_frames == 2  # the grids of iterations 3 and 6

    log = json.loads((out / 'log').read_text())
    assert isinstance(log, list) and all(isinstance(entry, dict) for entry in log)
    assert [entry['iteration'] for entry in log] == [3, 6]
    for entry in log:
        for key in ('gen/loss', 'dis/loss', 'validation/gen/loss', 'validation/dis/loss'):
            assert numpy.isfinite(entry[key]), (entry['iteration'], key)

    read_png(out / 'loss.png')
    preview = out / 'preview'
    assert sorted(p.name for p in preview.iterdir()) == [
        'image_00000003.png',
        'image_00000006.png',
        'latest.png',
    ]
    latest = read_png(preview / 'latest.png')
    assert latest.shape == (grid_side(10, 28), grid_side(10, 28))  # 10x10 grid of 28x28 digits
    numpy.testing.assert_array_equal(latest, read_png(preview / 'image_00000006.png'))

    config = json.loads((out / 'config.json').read_text())
    assert config['gen'] == {
        'size': 28,
        'channels': 1,
        'n_hidden': 100,
        'widths': [4, 8],
        'ksize': 4,
    }
    assert config['dis'] == {'size': 28, 'channels': 1, 'widths': [4, 8], 'ksize': 4,
                             'norm': 'batch', 'spectral_norm': False}
    assert (config['z_dist'], config['loss'], config['dataset']) == (
        'normal',
        'lsgan',
        'digits',
    )
    # Six iterations of training changed G.
    gen3, gen6 = weights(out / 'gen_iter_3.npz'), weights(out / 'gen_iter_6.npz')
    assert not numpy.array_equal(gen3['project/W'], gen6['project/W'])


@pytest.mark.process
def test_resume_continues_where_the_snapshot_left_off_exactly(digits_run, tmp_path):
    first, _ = digits_run
    out = tmp_path / 'resumed'
    proc = succeeded(train('--resume', first / 'snapshot_iter_3', '--out', out))
    assert proc.stderr == ''

    # Iterations 4..6 only: no preview or snapshot of iterations 1..3 (it did
    # not restart from 0), and none at 4 (each trigger's state was restored).
    assert {p.name for p in out.iterdir()} == {
        '.lock',
        'log',
        'loss.png',
        'preview',
        'training.gif',
        'config.json',
        'snapshot_iter_6',
        'gen_iter_6.npz',
        'dis_iter_6.npz',
    }
    assert sorted(p.name for p in (out / 'preview').iterdir()) == [
        'image_00000006.png',
        'latest.png',
    ]
    # The log carries on from the snapshot: the iteration-3 entry comes from
    # there and the iteration-6 entry matches the uninterrupted run's.
    resumed_log = json.loads((out / 'log').read_text())
    original_log = json.loads((first / 'log').read_text())
    assert [entry['iteration'] for entry in resumed_log] == [3, 6]
    for resumed, original in zip(resumed_log, original_log):
        resumed.pop('elapsed_time')
        original.pop('elapsed_time')
        assert resumed == original

    # Data order, z stream, optimizer moments and BN statistics all resumed.
    assert_same_weights(out / 'gen_iter_6.npz', first / 'gen_iter_6.npz')
    assert_same_weights(out / 'dis_iter_6.npz', first / 'dis_iter_6.npz')
    numpy.testing.assert_array_equal(
        read_png(out / 'preview' / 'latest.png'), read_png(first / 'preview' / 'latest.png')
    )


@pytest.mark.process
def test_resume_across_an_epoch_boundary_is_exact(folder_run, image_folder, tmp_path):
    # 10 training images, batch 8: iterations 4..6 start two new epochs, so
    # the random state that shuffles each new epoch must be in the snapshot.
    first, _ = folder_run
    out = tmp_path / 'resumed'
    resume = ['--resume', first / 'snapshot_iter_3', '--out', out]
    succeeded(train('--dataset', image_folder, *FOLDER, *resume))
    assert_same_weights(out / 'gen_iter_6.npz', first / 'gen_iter_6.npz')


@pytest.mark.process
def test_loader_processes_train_on_the_batches_of_the_training_process(
        image_folder, tmp_path):
    # Decoded once into memory (the default), decoded every epoch in two
    # loader processes, or in the training process: the same seed gives the
    # same batches, and the run the same thread team (loaders are not counted
    # by ops.threads.share_cores), so the same weights.
    runs = {}
    for loaders in ('2', '0', None):
        runs[loaders] = tmp_path / f'loaders{loaders}'
        flags = () if loaders is None else ('--loaderjob', loaders)
        succeeded(train('--dataset', image_folder, *FOLDER[:-2], *flags, '--out', runs[loaders]))
    for name in ('gen_iter_6.npz', 'dis_iter_6.npz'):
        assert_same_weights(runs['0'] / name, runs['2'] / name)
        assert_same_weights(runs[None] / name, runs['2'] / name)


@pytest.mark.process
def test_resume_auto_with_loader_processes_is_exact(folder_run, image_folder, tmp_path):
    # Half the run, then --resume auto in the same folder up to the end. The
    # loader processes run ahead of training and shuffle the next epochs
    # early; the snapshot must still hold the data order of the batches
    # trained on (see gan_trainer.iterators).
    out = tmp_path / 'result'
    succeeded(train('--dataset', image_folder, *FOLDER, '--iteration', '3', '--out', out))
    proc = succeeded(train('--dataset', image_folder, *FOLDER, '--resume', 'auto', '--out', out))
    assert proc.stdout.startswith(f'train_dcgan.py: resuming from {out}/snapshot_iter_3\n')
    for name in ('gen_iter_6.npz', 'dis_iter_6.npz'):
        assert_same_weights(out / name, folder_run[0] / name)


def build(tmp_path, *flags):
    """The trainer the script builds from these flags (in this process)."""
    config = parse_config([*FAST.split(), *map(str, flags), '--out', str(tmp_path / 'out')],
                          prog='train_dcgan.py')
    return build_trainer(config, log=None)


@pytest.mark.parametrize('dataset, loaderjob, workers', [
    ('folder', [], 0),  # the default for a folder that fits in memory: decoded once
    ('folder', ['--loaderjob', '2'], 2),  # asked for: decoded every epoch in workers
    ('folder', ['--loaderjob', '0'], 0),
    ('digits', ['--loaderjob', '2'], 0),  # in memory: nothing to decode
], ids=['folder-default', 'folder-2', 'folder-0', 'digits-2'])
def test_loader_processes_decode_folders_and_stop_when_the_run_ends(
        image_folder, tmp_path, dataset, loaderjob, workers):
    dataset = image_folder if dataset == 'folder' else dataset
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', SkippedFilesWarning)  # broken.png
        trainer = build(tmp_path, '--iteration', '2', '--dataset', dataset, '--size', '8',
                        *loaderjob)
    iterator = trainer.updater.get_iterator('main')
    assert getattr(iterator, 'n_processes', 0) == workers
    trainer.run()
    assert multiprocessing.active_children() == []  # Trainer.run finalized the iterator


@pytest.mark.parametrize('flags, expected', [
    ([], (True, 'dis_first', 1)),  # the default preset reuses the D step's fakes
    (['--no-reuse_fakes', '--n_dis', '2'], (False, 'dis_first', 2)),
    (['--preset', 'dcgan', '--order', 'gen_first'], (False, 'gen_first', 1)),
])
def test_loop_flags_reach_the_updater(tmp_path, flags, expected):
    updater = build(tmp_path, *flags).updater
    assert (updater.reuse_fakes, updater.order, updater.n_dis) == expected


@pytest.mark.process
def test_training_on_an_image_folder_warns_once_about_the_broken_file(folder_run):
    out, proc = folder_run
    broken = [line for line in proc.stderr.splitlines() if 'broken.png' in line]
    assert len(broken) == 1, proc.stderr
    assert broken[0].startswith('train_dcgan.py: warning: skipped 1 unreadable file')
    # One line in all: no source location, and no other warning.
    assert proc.stderr.strip().splitlines() == broken, proc.stderr

    config = json.loads((out / 'config.json').read_text())
    assert (config['gen']['size'], config['gen']['channels']) == (8, 3)
    latest = read_png(out / 'preview' / 'latest.png')
    assert latest.shape == (grid_side(10, 8), grid_side(10, 8), 3)
    log = json.loads((out / 'log').read_text())
    assert [entry['iteration'] for entry in log] == [3, 6]
    # --eval_interval 6: validation ran at the end only.
    assert 'validation/gen/loss' not in log[0]
    assert numpy.isfinite(log[1]['validation/gen/loss'])
    assert numpy.isfinite(log[1]['gen/loss'])


@pytest.mark.process
@pytest.mark.parametrize('keep, kept', [(1, [6]), (2, [4, 6])])
def test_keep_retains_only_the_newest_snapshots(image_folder, tmp_path, keep, kept):
    out = tmp_path / 'result'
    options = ['--snapshot_interval', '2', '--keep', keep, '--out', out]
    succeeded(train('--dataset', image_folder, '--size', '8', *options))
    for prefix, suffix in (('snapshot_iter_', ''), ('gen_iter_', '.npz'), ('dis_iter_', '.npz')):
        found = sorted(p.name for p in out.glob(prefix + '*'))
        assert found == sorted(f'{prefix}{i}{suffix}' for i in kept)


@pytest.mark.process
def test_generate_writes_the_grid_of_the_snapshot(digits_run, tmp_path):
    out, _ = digits_run
    grid = tmp_path / 'grid.png'
    proc = succeeded(
        run('generate.py', out / 'gen_iter_6.npz', '--rows', '2', '--cols', '3', '--out', grid)
    )
    assert str(grid) in proc.stdout
    pixels = read_png(grid)
    assert pixels.shape == (grid_side(2, 28), grid_side(3, 28))
    gen, _ = load_generator(str(out / 'gen_iter_6.npz'))
    expected = tile_images(generate(gen, draw_hidden(6, 100, seed=0)), 2, 3)
    numpy.testing.assert_array_equal(pixels, expected)


def test_generate_nice_keeps_what_the_discriminator_likes_best(digits_run, tmp_path):
    out, _ = digits_run
    grid = tmp_path / 'nice.png'
    args = ['--rows', '2', '--cols', '3', '--nice', '--out', grid]
    succeeded(here('generate.py', out / 'gen_iter_6.npz', *args))
    pixels = read_png(grid)
    assert pixels.shape == (grid_side(2, 28), grid_side(3, 28))
    gen, _ = load_generator(str(out / 'gen_iter_6.npz'))
    dis = load_discriminator(str(out / 'dis_iter_6.npz'))
    kept = nice_samples(gen, dis, draw_hidden(6 * 20, 100, seed=0), 6)
    numpy.testing.assert_array_equal(pixels, tile_images(kept, 2, 3))


def test_generate_is_repeatable_by_seed(digits_run, tmp_path):
    out, _ = digits_run
    paths = {}
    for name, seed in (('a', 5), ('b', 5), ('c', 6)):
        paths[name] = tmp_path / f'{name}.png'
        args = ['--rows', '2', '--cols', '2', '--seed', seed, '--out', paths[name]]
        succeeded(here('generate.py', out / 'gen_iter_6.npz', *args))
    assert paths['a'].read_bytes() == paths['b'].read_bytes()
    assert not numpy.array_equal(read_png(paths['a']), read_png(paths['c']))


def bad_train_cases():
    """id -> f(tmp_path, digits_out) returning (args, text the error must name)."""

    def dataset(make):
        def case(tmp, _):
            folder = tmp / 'data'
            make(folder)
            return ['--dataset', folder], str(folder)

        return case

    def only_file(name, content):
        def make(folder):
            folder.mkdir()
            (folder / name).write_text(content)

        return make

    def resume_from(content):
        def case(tmp, _):
            path = tmp / 'snapshot_iter_3'
            if content is not None:
                path.write_bytes(content)
            return ['--resume', path], str(path)

        return case

    def out_under_file(tmp, _):
        (tmp / 'file.txt').write_text('a file')
        return ['--out', tmp / 'file.txt' / 'out'], str(tmp / 'file.txt' / 'out')

    return {
        'dataset_missing': dataset(lambda folder: None),
        'dataset_empty': dataset(lambda folder: folder.mkdir()),
        'dataset_text_file_only': dataset(only_file('notes.txt', 'hello')),
        'dataset_undecodable_only': dataset(only_file('broken.png', 'not an image')),
        'batchsize_zero': lambda tmp, _: (['--batchsize', '0'], '--batchsize'),
        'loaderjob_negative': lambda tmp, _: (
            ['--loaderjob', '-1'],
            '--loaderjob: must be at least 0, got -1',
        ),
        'batchsize_text': lambda tmp, _: (
            ['--batchsize', 'abc'],
            "--batchsize/-b: expected an integer, got 'abc'",
        ),
        'gpu_without_cupy': lambda tmp, _: (['--gpu', '0'], '--gpu 0'),
        'reuse_fakes_gen_first': lambda tmp, _: (
            ['--reuse_fakes', '--order', 'gen_first'],
            "--reuse_fakes: needs order 'dis_first'",
        ),
        'size_odd': lambda tmp, _: (['--size', '9'], 'size 9'),
        'size_vs_widths': lambda tmp, _: (['--size', '30', '--widths', '4,8'], 'size 30'),
        'out_under_a_file': out_under_file,
        'resume_missing': resume_from(None),
        'resume_garbage': resume_from(b'this is not a snapshot\n'),
        'resume_gen_snapshot': lambda tmp, out: (
            ['--resume', out / 'gen_iter_3.npz'],
            str(out / 'gen_iter_3.npz'),
        ),
    }


BAD_TRAIN = bad_train_cases()


@pytest.mark.parametrize('case, command', in_this_and_one_real_process(
    BAD_TRAIN, 'dataset_missing', train_here, train))
def test_bad_training_input_is_one_line_and_exit_status_2(case, command, tmp_path, digits_run):
    if case == 'gpu_without_cupy' and chainer.backends.cuda.available:
        pytest.skip('CuPy with a GPU is available here')
    args, names = BAD_TRAIN[case](tmp_path, digits_run[0])
    out = tmp_path / 'result'
    proc = command('--out', out, *args)
    assert_one_line_error(proc, names, 'train_dcgan.py')
    assert not (out / 'log').exists() and not list(out.glob('*iter*'))  # nothing trained


def bad_generate_cases():
    def copy(out, tmp, *names):
        folder = tmp / 'copy'
        folder.mkdir()
        for name in names:
            shutil.copy(out / name, folder / name)
        return folder

    def missing(out, tmp):
        return [tmp / 'gen_iter_6.npz', '--out', tmp / 'grid.png'], str(tmp / 'gen_iter_6.npz')

    def no_config(out, tmp):
        folder = copy(out, tmp, 'gen_iter_6.npz')
        return [folder / 'gen_iter_6.npz', '--out', tmp / 'grid.png'], str(folder / 'config.json')

    def nice_without_dis(out, tmp):
        folder = copy(out, tmp, 'gen_iter_6.npz', 'config.json')
        return [folder / 'gen_iter_6.npz', '--nice', '--out', tmp / 'grid.png'], str(
            folder / 'dis_iter_6.npz'
        )

    def out_under_file(out, tmp):
        (tmp / 'file.txt').write_text('a file')
        return [out / 'gen_iter_6.npz', '--out', tmp / 'file.txt' / 'g.png'], str(tmp / 'file.txt')

    def rows_zero(out, tmp):
        return [out / 'gen_iter_6.npz', '--rows', '0', '--out', tmp / 'grid.png'], '--rows'

    return {
        'missing_snapshot': missing,
        'no_config': no_config,
        'nice_without_dis': nice_without_dis,
        'out_under_a_file': out_under_file,
        'rows_zero': rows_zero,
    }


BAD_GENERATE = bad_generate_cases()


@pytest.mark.parametrize('case, command', in_this_and_one_real_process(
    BAD_GENERATE, 'missing_snapshot', here, run))
def test_bad_generate_input_is_one_line_and_exit_status_2(case, command, tmp_path, digits_run):
    args, names = BAD_GENERATE[case](digits_run[0], tmp_path)
    proc = command('generate.py', *args)
    assert_one_line_error(proc, names, 'generate.py')
    assert not list(tmp_path.rglob('*.png'))
