"""The gan-trainer command: subcommands, repeating a run from its config.json, one-line errors.

Through ``gan_trainer.cli.main(argv)`` in this process (helpers.here), and
once as the installed command in a real process.
"""

import importlib.metadata

import pytest
from helpers import FAST, assert_same_weights, gan_trainer, here, succeeded
from PIL import Image


def test_the_command_is_installed_as_a_console_script():
    [entry] = [e for e in importlib.metadata.entry_points(group='console_scripts')
               if e.name == 'gan-trainer']
    assert entry.value == 'gan_trainer.cli:main'


def test_without_a_subcommand_it_says_which_there_are():
    proc = here('gan-trainer')
    assert proc.returncode == 2
    assert proc.stderr.strip() == ('gan-trainer: error: a subcommand is required: train, '
                                   'generate, interpolate, gif, plot, export')
    unknown = here('gan-trainer', 'fit')
    assert unknown.returncode == 2 and "unknown subcommand 'fit'" in unknown.stderr
    assert succeeded(here('gan-trainer', '--help')).stdout.startswith('usage: gan-trainer')


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp('cli') / 'result'
    succeeded(here('gan-trainer', 'train', *FAST.split(), '--out', out))
    return out


def test_train_repeats_a_run_from_its_config_json_bit_for_bit(run_dir, tmp_path):
    again = tmp_path / 'again'
    proc = succeeded(here('gan-trainer', 'train', '--config', run_dir / 'config.json',
                          '--no_progress', '--out', again))
    assert proc.stdout.startswith("gan-trainer train: data 'digits': 4,500 training images")
    for name in ('gen_iter_6.npz', 'dis_iter_6.npz'):
        assert_same_weights(again / name, run_dir / name)
    # A flag given with --config wins over the file.
    longer = tmp_path / 'longer'
    succeeded(here('gan-trainer', 'train', '--config', run_dir / 'config.json', '--iteration', 9,
                   '--no_progress', '--out', longer))
    assert (longer / 'snapshot_iter_9').exists()


def test_the_tools_are_subcommands(run_dir, tmp_path):
    grid = tmp_path / 'grid.png'
    succeeded(here('gan-trainer', 'generate', run_dir / 'gen_iter_6.npz', '--rows', 2,
                   '--cols', 2, '--out', grid))
    assert Image.open(grid).size == (2 * 30 + 2, 2 * 30 + 2)
    succeeded(here('gan-trainer', 'interpolate', run_dir / 'gen_iter_6.npz', '--rows', 1,
                   '--steps', 3, '--out', tmp_path / 'i.png'))
    gif = succeeded(here('gan-trainer', 'gif', run_dir, '--out', tmp_path / 't.gif'))
    assert gif.stdout.strip() == f'wrote {tmp_path / "t.gif"}'
    succeeded(here('gan-trainer', 'plot', run_dir, '--out', tmp_path / 'p.png'))
    assert (tmp_path / 'p.png').exists()


@pytest.mark.parametrize('command', [
    lambda *args: here('gan-trainer', *args),
    pytest.param(gan_trainer, marks=pytest.mark.process),
], ids=['here', 'process'])
def test_a_bad_flag_is_one_line_under_the_subcommands_name(tmp_path, command):
    proc = command('train', '--lr', '0', '--out', tmp_path / 'r')
    assert proc.returncode == 2
    assert proc.stderr == 'gan-trainer train: error: --lr: must be a number above 0, got 0.0\n'
