"""RunConfig and its schema: checks that name the option, presets, config.json, flags."""

import dataclasses
import json

import pytest

from gan_trainer.cli.train import build_parser, config_from_args, flags_of_options
from gan_trainer.files import write_json
from gan_trainer.run import (
    PRESETS,
    ConfigError,
    RunConfig,
    RunRecord,
    SnapshotError,
    apply_preset,
    get_preset,
    network_options,
    preset_options,
    read_record,
)
from gan_trainer.run.options import declared
from gan_trainer.run.presets import NAMES


@pytest.mark.parametrize('option, value, says', [
    ('lr', -1, 'must be a number above 0, got -1.0'),
    ('lr', float('nan'), 'must be a number above 0'),
    ('lr', float('inf'), 'must be a number above 0'),
    ('beta1', 5, 'must be in [0, 1), got 5.0'),
    ('beta2', 1.0, 'must be in [0, 1)'),
    ('ema', 1.0, 'must be in (0, 1)'),
    ('ema', 0, 'must be in (0, 1)'),
    ('batchsize', 0, 'must be at least 1, got 0'),
    ('batchsize', True, 'expected an integer, got True'),
    ('batchsize', 2.5, 'expected an integer'),
    ('iteration', -3, 'must be at least 1'),
    ('snapshot_interval', 0, 'must be at least 1'),
    ('keep', 0, 'must be at least 1'),
    ('loaderjob', -1, 'must be at least 0, got -1'),
    ('fid_interval', -500, 'must be at least 0'),
    ('fid_samples', 3, 'must be at least 4'),
    ('seed', -1, 'must be in [0, 4294967296)'),
    ('seed', 2**32, 'must be in [0, 4294967296)'),
    ('penalty_weight', -10, 'must be at least 0'),
    ('n_dis', 0, 'must be at least 1'),
    ('gpu', -2, 'must be at least -1'),
    ('widths', '4,0', 'expected a list of positive integers'),
    ('widths', (), 'expected a list of positive integers'),
    ('ksize', 6, 'must be one of 3, 4, 5, 7; got 6'),
    ('real_label', '0.5,0.7,0.9', 'is one number or two'),
    ('real_label', 1.5, 'above 1'),
    ('dis_dropout', 1.0, 'must be in [0, 1)'),
    ('dis_noise', -0.1, 'must be at least 0'),
    ('gen_upsample', 'pixelshuffle', 'must be one of deconv, nearest, bilinear'),
    ('gen_lr', 0, 'must be a number above 0'),
    ('augment', 'blur', "must be 'none', 'ada' or a comma-separated mix"),
    ('dtype', 'float16', 'must be one of float32, mixed16'),
    ('loss', 'wgan', ('must be one of began, cramer, hinge, lsgan, minimax, nonsaturating, '
                     'rpgan, wasserstein')),
    ('penalty', 'gp', "unknown penalty 'gp'; valid penalties: dragan, r1, r2, wgan-gp, none"),
    ('penalty', 'r1,r1', 'names a penalty twice'),
    ('penalty_every', 0, 'must be at least 1'),
    ('penalty_weight_end', -1, 'must be at least 0'),
    ('lr_schedule', 'step', 'must be one of none, linear, cosine'),
    ('lr_floor', 1.5, 'must be in [0, 1]'),
    ('lr_decay_start', 1.0, 'must be in [0, 1)'),
    ('lr_warmup', -5, 'must be at least 0'),
    ('lr_warmup', 1e13, 'must be below 1e12'),
    ('beta2_start', 1.0, 'must be in [0, 1)'),
    ('ema_rampup', 0, 'must be a number above 0'),
    ('lecam', float('inf'), 'must be a finite number'),
    ('bcr', -1, 'must be at least 0'),
    ('dis_norm', 'layer', 'must be one of batch, none'),
    ('preset', 'stylegan', 'must be one of default, dcgan, wgan-gp, sngan, lsgan, keras-dcgan'),
    ('dataset', 3, 'expected a string'),
])
def test_a_bad_value_is_a_config_error_naming_the_option(option, value, says):
    # A label above 1 is wrong for the cross-entropy losses (lsgan takes any target).
    loss = {'loss': 'nonsaturating'} if option == 'real_label' else {}
    with pytest.raises(ConfigError) as excinfo:
        RunConfig(**{option: value}, **loss)
    assert excinfo.value.option == option
    assert str(excinfo.value) == f'{option}: {excinfo.value.reason}'
    assert says in excinfo.value.reason and '\n' not in str(excinfo.value)


@pytest.mark.parametrize('changes, option', [
    ({'reuse_fakes': True, 'order': 'gen_first'}, 'reuse_fakes'),
    ({'mnbn': True}, 'mnbn'),
    ({'ada_target': 0.6}, 'ada_target'),
    ({'arch': 'resnet', 'conditional': True, 'gen_cond': 'concat'}, 'arch'),
    ({'arch': 'resnet', 'gen_upsample': 'nearest'}, 'gen_upsample'),
    ({'dis_fc_activation': 'tanh'}, 'dis_fc_activation'),
    ({'dis_bn_gamma': False, 'dis_norm': 'none'}, 'dis_bn_gamma'),
    ({'ksize': 4, 'gen_upsample': 'nearest'}, 'ksize'),
    ({'ksize': 7}, 'ksize'),
    ({'z_threshold': 1.5}, 'z_threshold'),
    ({'real_label': 0.9, 'loss': 'hinge'}, 'real_label'),
    ({'optimizer': 'sgd', 'beta1': 0.5}, 'optimizer'),
    ({'dis_optimizer': 'rmsprop', 'dis_momentum': 0.9}, 'dis_optimizer'),
    ({'optimizer': 'sgd', 'nesterov': True}, 'optimizer'),
    ({'penalty_every': 4}, 'penalty_every'),
    ({'penalty_weight_end': 0.1}, 'penalty_weight_end'),
    ({'lr_floor': 0.1}, 'lr_floor'),
    ({'lr_decay_start': 0.5}, 'lr_decay_start'),
    ({'beta2_start': 0.9, 'optimizer': 'sgd'}, 'beta2_start'),
    ({'ema_rampup': 0.05}, 'ema_rampup'),
    ({'real_label': 0.9, 'loss': 'rpgan'}, 'real_label'),
    ({'eval_fakes': True}, 'eval_fakes'),  # the default reuses the fakes
    ({'dis_padding': 'valid'}, 'dis_padding'),  # a strided D
    ({'arch': 'resnet', 'init': 'glorot'}, 'init'),
    ({'arch': 'resnet', 'bn_decay': 0.99}, 'bn_decay'),
])
def test_combinations_that_cannot_work_are_refused(changes, option):
    with pytest.raises(ConfigError) as excinfo:
        RunConfig(**changes)
    assert excinfo.value.option == option


def test_each_network_gets_the_shared_optimizer_settings_and_its_own():
    # gen_lr=None: G follows lr (RunConfig's own default is the default recipe's 1.6e-3).
    config = RunConfig(lr=2e-4, beta1=0.5, dis_lr=1e-5, dis_beta1=0.1, weight_decay=1e-4,
                       gen_lr=None)
    assert config.optimizer_spec('gen').settings() == {
        'name': 'adam', 'lr': 2e-4, 'beta1': 0.5, 'beta2': 0.999, 'eps': 1e-8,
        'weight_decay': 1e-4}
    assert config.optimizer_spec('dis').settings() == {
        'name': 'adam', 'lr': 1e-5, 'beta1': 0.1, 'beta2': 0.999, 'eps': 1e-8,
        'weight_decay': 1e-4}
    assert RunConfig(lr=1e-3).optimizer_spec('gen').settings()['lr'] == 1.6e-3
    mixed = RunConfig(dis_optimizer='sgd', dis_momentum=0.9, beta1=0.5)
    assert mixed.optimizer_spec('dis').settings()['name'] == 'sgd'
    assert mixed.optimizer_spec('gen').settings()['beta1'] == 0.5


def test_changing_the_optimizer_drops_the_old_ones_settings():
    # --optimizer sgd over a preset (or config.json) with Adam's betas means SGD.
    config = RunConfig(lr=2e-4, beta1=0.5, beta2=0.999).replace(optimizer='sgd', momentum=0.9)
    assert (config.beta1, config.beta2, config.lr, config.momentum) == (None, None, 2e-4, 0.9)
    dis = RunConfig(dis_beta1=0.1).replace(dis_optimizer='rmsprop')
    assert dis.dis_beta1 is None and dis.optimizer_spec('dis').settings()['name'] == 'rmsprop'


def test_values_are_normalised():
    config = RunConfig(widths='64,128', lr=1, seed=3)
    assert config.widths == (64, 128) and isinstance(config.lr, float)
    assert RunConfig(widths=[8, 16]).widths == (8, 16)


def test_replace_checks_again_and_ignores_none():
    config = RunConfig(lr=2e-4).replace(iteration=10, lr=None)
    assert (config.iteration, config.lr) == (10, 2e-4)
    with pytest.raises(ConfigError, match='lr'):
        config.replace(lr=0)
    with pytest.raises(ConfigError, match="learning_rate: is not an option"):
        config.replace(learning_rate=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.lr = 1


def test_to_dict_and_from_dict_round_trip_and_unknown_keys_are_named():
    config = RunConfig(widths=(8, 16), ema=0.99, conditional=True, out='x', resume='auto')
    values = config.to_dict()
    assert 'out' not in values and 'resume' not in values  # actions, not settings
    assert values['widths'] == [8, 16]
    assert json.loads(json.dumps(values)) == values
    again = RunConfig.from_dict(values)
    assert again == dataclasses.replace(config, out='result', resume=None)
    with pytest.raises(ConfigError, match=r"colour: is not an option of a run \(f.json\)"):
        RunConfig.from_dict({'colour': 'red'}, where='f.json')


def test_every_option_is_declared_once_with_help_and_a_group():
    fields = declared(RunConfig)
    assert len(fields) >= 40
    for name, field in fields.items():
        assert field.metadata['help'], name
    assert {'loss', 'penalty', 'penalty_weight', 'dis_norm', 'spectral_norm', 'n_dis', 'lr',
            'beta1', 'beta2', 'optimizer', 'dis_lr', 'batchsize', 'gen_upsample'} <= set(
        preset_options())
    assert not {'iteration', 'out', 'seed', 'dataset', 'gpu'} & set(preset_options())
    assert {'dataset', 'size', 'widths', 'base_width', 'spectral_norm', 'conditional'} <= set(
        network_options())


# ------------------------------------------------------------------ presets


def test_preset_names_are_the_presets():
    assert NAMES == tuple(PRESETS)


@pytest.mark.parametrize('name, expected', [
    ('dcgan', {'loss': 'nonsaturating', 'penalty': 'none', 'spectral_norm': False,
               'dis_norm': 'batch', 'n_dis': 1, 'lr': 2e-4, 'beta1': 0.5, 'beta2': 0.999}),
    ('keras-dcgan', {'batchsize': 128, 'z_dist': 'uniform', 'gen_upsample': 'nearest',
                     'gen_fc': 1024, 'dis_downsample': 'max_pool', 'dis_fc': 1024,
                     'optimizer': 'sgd', 'lr': 5e-4, 'momentum': 0.9, 'nesterov': True,
                     'separate_batches': False, 'gen_project_norm': 'unit', 'dis_lr': 2.5e-4}),
    ('keras-dcgan-notes', {'order': 'gen_first', 'dis_lr': 1e-5, 'dis_beta1': 0.1,
                           'gen_activation': 'elu', 'dis_fc': 2048, 'n_hidden': 64}),
    ('chainer-example', {'dis_noise': 0.2, 'dis_bn_gamma': False, 'weight_decay': 1e-4,
                         'batchsize': 50, 'reuse_fakes': True}),
    ('tf-gan', {'dis_dropout': 0.3, 'lr': 1e-4, 'beta1': 0.9, 'eps': 1e-7, 'batchsize': 256}),
    ('wgan-gp', {'loss': 'wasserstein', 'penalty': 'wgan-gp', 'penalty_weight': 10.0,
                 'dis_norm': 'none', 'n_dis': 5, 'lr': 1e-4, 'beta1': 0.0, 'beta2': 0.9}),
    ('sngan', {'loss': 'hinge', 'spectral_norm': True, 'dis_norm': 'none', 'n_dis': 1}),
    ('lsgan', {'loss': 'lsgan', 'dis_norm': 'batch'}),
])
def test_presets_hold_the_papers_settings(name, expected):
    preset = get_preset(name)
    assert isinstance(preset, RunConfig) and preset.preset == name
    assert {k: getattr(preset, k) for k in expected} == expected


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="unknown preset 'stylegan'; valid presets: default, dcgan, wgan-gp"):
        get_preset('stylegan')


def test_apply_preset_then_explicit_options_win():
    config = apply_preset(RunConfig(iteration=7), 'sngan', loss='nonsaturating',
                          spectral_norm=None, lr=1e-3)
    assert (config.loss, config.spectral_norm, config.lr) == ('nonsaturating', True, 1e-3)
    assert (config.iteration, config.preset) == (7, 'sngan')


# ------------------------------------------------------------------ flags


def parse(*argv):
    args = build_parser('t').parse_args(list(argv))
    if not hasattr(args, 'config'):
        args.config = None
    return config_from_args(args)


@pytest.mark.parametrize('argv, expected', [
    ([], {'loss': 'lsgan', 'penalty': 'none', 'spectral_norm': False, 'n_dis': 1,
          'lr': 2e-4, 'gen_lr': 1.6e-3, 'dis_lr': None, 'preset': 'default', 'reuse_fakes': True,
          'iteration': 3000}),
    # A shared setting given alone is both networks': the default's own G rate gives way.
    (['--lr', '1e-3'], {'lr': 1e-3, 'gen_lr': None, 'dis_lr': None}),
    (['--lr', '1e-3', '--gen_lr', '5e-4'], {'lr': 1e-3, 'gen_lr': 5e-4}),
    (['--optimizer', 'sgd'], {'optimizer': 'sgd', 'gen_lr': None}),
    (['--beta1', '0.0'], {'lr': 2e-4, 'gen_lr': 1.6e-3, 'beta1': 0.0}),
    (['--dis_lr', '1e-4'], {'gen_lr': 1.6e-3, 'dis_lr': 1e-4}),
    (['--preset', 'lsgan'], {'lr': 2e-4, 'gen_lr': None}),
    (['--preset', 'dcgan'], {'loss': 'nonsaturating', 'preset': 'dcgan'}),
    (['--preset', 'keras-dcgan', '--optimizer', 'adam'], {'optimizer': 'adam', 'lr': 5e-4,
                                                          'momentum': None, 'batchsize': 128}),
    (['--lr_dis', '1e-5', '--dis_beta1', '0.1'], {'dis_lr': 1e-5, 'dis_beta1': 0.1}),
    (['--real_label', '0.7,1'], {'real_label': (0.7, 1.0)}),
    (['--augment', 'translation,cutout', '--arch', 'resnet'],
     {'augment': 'translation,cutout', 'arch': 'resnet'}),
    (['--preset', 'wgan-gp'], {'loss': 'wasserstein', 'penalty': 'wgan-gp', 'n_dis': 5,
                               'beta1': 0.0, 'beta2': 0.9, 'dis_norm': 'none'}),
    (['--preset', 'wgan-gp', '--n_dis', '2', '--beta1', '0.5'], {'n_dis': 2, 'beta1': 0.5}),
    (['--preset', 'sngan', '--no-sn'], {'loss': 'hinge', 'spectral_norm': False}),
    (['--sn'], {'spectral_norm': True}),
    (['--preset', 'lsgan', '--loss', 'hinge'], {'loss': 'hinge'}),
    (['--concat_batches', '--no_progress'], {'separate_batches': False, 'progress': False}),
    (['-b', '16', '-o', 'x', '-j', '0', '--widths', '8,16'],
     {'batchsize': 16, 'out': 'x', 'loaderjob': 0, 'widths': (8, 16)}),
])
def test_command_line_takes_the_preset_then_the_flags(argv, expected):
    config = parse(*argv)
    assert {k: getattr(config, k) for k in expected} == expected


def test_every_option_has_a_flag_named_after_it_or_an_old_spelling():
    flags = flags_of_options()
    assert flags['spectral_norm'] == '--spectral_norm' and flags['batchsize'] == '--batchsize'
    assert flags['progress'] == '--no_progress' and flags['separate_batches'] == '--concat_batches'
    for name, flag in flags.items():
        assert flag.startswith('--'), name


def test_a_run_repeats_from_its_config_json_and_flags_override_it(tmp_path):
    original = RunConfig(preset='sngan', loss='hinge', spectral_norm=True, dis_norm='none',
                         iteration=30, ema=0.99, widths=(8, 16))
    record = RunRecord.of(original, {'size': 28}, {'size': 28}, classes=('a', 'b'))
    record.write(str(tmp_path))
    again = parse('--config', str(tmp_path / 'config.json'), '--iteration', '40')
    assert again == dataclasses.replace(original, iteration=40)
    # --preset with --config: the preset's settings over the file's, then the flags.
    mixed = parse('--config', str(tmp_path / 'config.json'), '--preset', 'dcgan')
    assert (mixed.loss, mixed.spectral_norm, mixed.iteration) == ('nonsaturating', False, 30)


def test_a_version_1_config_cannot_be_repeated_but_names_what_to_do(tmp_path):
    write_json(tmp_path / 'config.json', {'gen': {'size': 28}, 'dis': {'size': 28},
                                          'z_dist': 'normal', 'loss': 'nonsaturating'})
    with pytest.raises(SnapshotError, match='older gan_trainer .* pass the flags of that run'):
        parse('--config', str(tmp_path / 'config.json'))


# ------------------------------------------------------------------ config.json


def test_record_round_trips_through_json(tmp_path):
    config = RunConfig(conditional=True, ema=0.999, z_dist='uniform')
    record = RunRecord.of(config, {'size': 8, 'n_classes': 3}, {'size': 8},
                          classes=('cats', 'dogs', 'owls'), data={'name': 'pets', 'train': 9})
    path = record.write(str(tmp_path))
    data = json.loads((tmp_path / 'config.json').read_text())
    assert (data['format'], data['version']) == ('gan_trainer.run', 2)
    # The keys version 1 had, for readers of that layout.
    assert (data['z_dist'], data['conditional'], data['ema'], data['loss']) == (
        'uniform', True, 0.999, 'lsgan')
    again = read_record(path)
    assert again == record and again.n_classes == 3 and read_record(str(tmp_path)) == record


def test_a_version_1_record_loads_without_options(tmp_path):
    write_json(tmp_path / 'config.json', {'gen': {'size': 8, 'n_classes': 10},
                                          'dis': {'size': 8}, 'conditional': True,
                                          'z_dist': 'uniform', 'ema': 0.9})
    record = read_record(str(tmp_path))
    assert record.config is None and record.version == 1
    assert (record.conditional, record.z_dist, record.ema, record.n_classes) == (
        True, 'uniform', 0.9, 10)


@pytest.mark.parametrize('content, says', [
    ({'gen': {}}, 'not the config.json of a gan_trainer run'),
    ([1, 2], 'not the config.json of a gan_trainer run'),
    ({'gen': {}, 'dis': {}, 'version': 99}, ('config version 99; this gan_trainer reads versions '
                                            '1 to 2: upgrade gan_trainer')),
    ({'gen': {}, 'dis': {}, 'version': 2, 'run': {'lr': -1}}, 'lr: must be a number above 0'),
])
def test_a_bad_config_json_is_one_line_naming_the_file(tmp_path, content, says):
    write_json(tmp_path / 'config.json', content)
    with pytest.raises(SnapshotError) as excinfo:
        read_record(str(tmp_path))
    message = str(excinfo.value)
    assert says in message and str(tmp_path / 'config.json') in message and '\n' not in message


def test_a_config_that_names_no_preset_is_the_default_preset():
    from gan_trainer.run.checks import optimizer_spec
    from gan_trainer.run.config import DEFAULT_PRESET, preset_options

    plain, preset = RunConfig(), PRESETS[DEFAULT_PRESET]
    assert plain.preset == DEFAULT_PRESET
    for name in preset_options():
        if getattr(preset, name) != getattr(plain, name):
            # Only optimizer settings may differ: None there means the
            # optimizer's default, which must be the preset's value.
            assert name in ('lr', 'beta1', 'beta2'), name
    for net in ('gen', 'dis'):
        assert optimizer_spec(plain, net).settings() == optimizer_spec(preset, net).settings()
