"""Presets: paper settings by name, explicit flags win, each runs end to end."""

import json
import os
import sys

import numpy
import pytest
from PIL import Image
from test_examples import REPO, run, succeeded, train

from gan_trainer.presets import PRESETS, apply_preset, get_preset

sys.path.insert(0, os.path.join(REPO, 'examples'))
import train_dcgan

sys.path.pop(0)


def test_get_preset_returns_a_copy():
    options = get_preset('wgan-gp')
    options['n_dis'] = 99
    assert PRESETS['wgan-gp']['n_dis'] == 5


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown preset 'began'; valid presets: dcgan, wgan-gp"):
        get_preset('began')


def test_explicit_values_override_and_none_means_not_given():
    options = apply_preset('sngan', {'loss': 'nonsaturating', 'sn': None, 'lr': 1e-3})
    assert (options['loss'], options['sn'], options['lr']) == ('nonsaturating', True, 1e-3)


@pytest.mark.parametrize('argv, expected', [
    ([], {'loss': 'nonsaturating', 'penalty': 'none', 'sn': False, 'n_dis': 1, 'lr': 2e-4}),
    (['--preset', 'wgan-gp'], {'loss': 'wasserstein', 'penalty': 'wgan-gp', 'n_dis': 5,
                               'beta1': 0.0, 'beta2': 0.9, 'dis_norm': 'none'}),
    (['--preset', 'wgan-gp', '--n_dis', '2', '--beta1', '0.5'], {'n_dis': 2, 'beta1': 0.5}),
    (['--preset', 'sngan', '--no-sn'], {'loss': 'hinge', 'sn': False}),
    (['--preset', 'lsgan', '--loss', 'hinge'], {'loss': 'hinge'}),
])
def test_command_line_takes_the_preset_then_the_flags(argv, expected):
    args = train_dcgan.parse_args(argv)
    assert {k: getattr(args, k) for k in expected} == expected


@pytest.mark.parametrize('preset', list(PRESETS))
def test_every_preset_trains_end_to_end(preset, tmp_path):
    out = tmp_path / preset
    succeeded(train('--preset', preset, '--n_dis', '1', '--out', out))
    log = json.loads((out / 'log').read_text())
    assert all(numpy.isfinite(v) for e in log for v in e.values() if isinstance(v, float))
    config = json.loads((out / 'config.json').read_text())
    assert config['preset'] == preset and config['loss'] == PRESETS[preset]['loss']
    assert config['dis']['spectral_norm'] == PRESETS[preset]['sn']
    if PRESETS[preset]['penalty'] != 'none':
        assert 'dis/penalty' in log[-1]


def test_conditional_run_grids_one_row_per_class_and_generates_a_label(tmp_path):
    out = tmp_path / 'cond'
    succeeded(train('--conditional', '--ema', '0.9', '--out', out))
    config = json.loads((out / 'config.json').read_text())
    assert config['conditional'] and config['gen']['n_classes'] == 10
    assert (out / 'gen_ema_iter_6.npz').exists()
    # 10 classes x 10 columns of 28x28 digits with 2-pixel padding.
    assert Image.open(out / 'preview' / 'latest.png').size == (10 * 30 + 2, 10 * 30 + 2)
    grid = tmp_path / 'seven.png'
    proc = succeeded(run('generate.py', out / 'gen_iter_6.npz', '--label', '7',
                         '--rows', '2', '--cols', '2', '--out', grid))
    assert 'gen_ema_iter_6.npz' in proc.stdout
    assert Image.open(grid).size == (2 * 30 + 2, 2 * 30 + 2)
    bad = run('generate.py', out / 'gen_iter_6.npz', '--label', '10', '--out', grid)
    assert bad.returncode == 2 and 'outside the trained classes 0..9' in bad.stderr


def test_conditional_on_an_unlabelled_folder_is_a_one_line_error(tmp_path):
    folder = tmp_path / 'flat'
    folder.mkdir()
    for i in range(12):
        Image.new('RGB', (8, 8), (i * 20, 0, 0)).save(folder / f'{i}.png')
    proc = train('--conditional', '--dataset', folder, '--size', '8', '--out', tmp_path / 'o')
    assert proc.returncode == 2
    assert proc.stderr.strip().count('\n') == 0
    assert '--conditional needs labelled data' in proc.stderr
