"""Presets as a user runs them (the command's ``main(argv)``, in this process): each trains
end to end; conditional runs and labels."""

import json

import numpy
import preset_nets
import pytest
from helpers import here, succeeded, train_here
from PIL import Image

from gan_trainer.run import PRESETS


def toy_widths(preset):
    """Flags that shrink a preset's fixed widths and dense layers to toy sizes.

    What a preset trains end to end is its loss, optimizers, step and layer
    kinds; its networks at full size are pinned bit for bit by
    ``test_every_presets_nets_are_bit_for_bit_the_recorded_ones``, and at
    full size the write-ups' nets (Dense 1024 and 2048, 64 and 128
    channels) cost seconds per evaluation here.
    """
    settings = PRESETS[preset]
    flags = ['--widths', ','.join(['8', '16'][:len(settings.widths)])] if settings.widths else []
    for name in ('gen_fc', 'dis_fc'):
        if getattr(settings, name):
            flags += [f'--{name}', '16']
    return flags


@pytest.mark.parametrize('preset', list(PRESETS))
def test_every_preset_trains_end_to_end(preset, tmp_path):
    out = tmp_path / preset
    succeeded(train_here('--preset', preset, '--n_dis', '1', *toy_widths(preset), '--out', out))
    log = json.loads((out / 'log').read_text())
    assert all(numpy.isfinite(v) for e in log for v in e.values() if isinstance(v, float))
    config = json.loads((out / 'config.json').read_text())
    assert config['preset'] == preset and config['loss'] == PRESETS[preset].loss
    assert config['run']['preset'] == preset and config['run']['n_dis'] == 1
    assert config['dis'].get('spectral_norm', False) == PRESETS[preset].spectral_norm
    if PRESETS[preset].penalty != 'none':
        assert 'dis/penalty' in log[-1]


def test_conditional_run_grids_one_row_per_class_and_generates_a_label(tmp_path):
    out = tmp_path / 'cond'
    succeeded(train_here('--conditional', '--ema', '0.9', '--out', out))
    config = json.loads((out / 'config.json').read_text())
    assert config['conditional'] and config['gen']['n_classes'] == 10
    assert (out / 'gen_ema_iter_6.npz').exists()
    # 10 classes x 10 columns of 28x28 digits with 2-pixel padding.
    assert Image.open(out / 'preview' / 'latest.png').size == (10 * 30 + 2, 10 * 30 + 2)
    grid = tmp_path / 'seven.png'
    proc = succeeded(here('generate.py', out / 'gen_iter_6.npz', '--label', '7',
                         '--rows', '2', '--cols', '2', '--out', grid))
    assert 'gen_ema_iter_6.npz' in proc.stdout
    assert Image.open(grid).size == (2 * 30 + 2, 2 * 30 + 2)
    bad = here('generate.py', out / 'gen_iter_6.npz', '--label', '10', '--out', grid)
    assert bad.returncode == 2 and 'outside the trained classes 0..9' in bad.stderr
    # The classes are saved with their labels, and listed.
    assert config['classes'] == [str(k) for k in range(10)]
    listed = succeeded(here('generate.py', out / 'gen_iter_6.npz', '--list_labels'))
    assert listed.stdout.splitlines()[-10:] == [f'{k:5d}  {k}' for k in range(10)]


def test_conditional_on_an_unlabelled_folder_is_a_one_line_error(tmp_path):
    folder = tmp_path / 'flat'
    folder.mkdir()
    for i in range(12):
        Image.new('RGB', (8, 8), (i * 20, 0, 0)).save(folder / f'{i}.png')
    proc = train_here('--conditional', '--dataset', folder, '--size', '8', '--out', tmp_path / 'o')
    assert proc.returncode == 2
    assert proc.stderr.strip().count('\n') == 0
    assert 'conditional needs labelled data with at least 2 classes' in proc.stderr


def test_every_presets_nets_are_bit_for_bit_the_recorded_ones():
    # tests/preset_nets.py says what is recorded, and how to record a change that is meant.
    recorded = json.loads(preset_nets.RECORD.read_text())
    built = preset_nets.digests()
    changed = sorted(case for case in built.keys() | recorded.keys()
                     if built.get(case) != recorded.get(case))
    assert not changed, (f'the nets of {", ".join(changed)} differ from tests/preset_nets.json; '
                         'if that is meant, run: .venv/bin/python tests/preset_nets.py')
