"""The rules between a run's options, and the optimizers they make.

:class:`~gan_trainer.run.RunConfig` checks each option on its own (its
declaration says what values it takes); this module checks what only the
options together can say: an ADA target needs augmentation, a label range
needs a loss with targets, the write-ups' network options need the DCGAN
nets, each network's optimizer settings must belong to its optimizer.
"""

from __future__ import annotations

from gan_trainer.nets import DiscriminatorOptions, GeneratorOptions
from gan_trainer.nets.options import run_names
from gan_trainer.run.options import ConfigError, declared

#: The settings an optimizer may have (:data:`gan_trainer.optimizers.SETTINGS`).
OPTIMIZER_SETTINGS = ('lr', 'beta1', 'beta2', 'eps', 'momentum', 'nesterov', 'rho',
                      'weight_decay')


def check_combinations(config) -> None:
    """The combinations of options that cannot work together (a ConfigError naming one)."""
    if config.eval_fakes and (config.reuse_fakes or config.order == 'simultaneous'):
        raise ConfigError('eval_fakes', "cannot go with reuse_fakes or order 'simultaneous': "
                                        'the G step would train through fakes made in '
                                        'evaluation mode')
    if config.reuse_fakes and config.order != 'dis_first':
        raise ConfigError('reuse_fakes', "needs order 'dis_first': the G step reuses "
                                         'the fakes of the D step before it (the default '
                                         'preset reuses them; --no-reuse_fakes does not)')
    _check_recipes(config)
    _check_ganlib(config)
    if config.ada_target is not None and config.augment == 'none':
        raise ConfigError('ada_target', 'needs augment (a policy, or ada)')
    if config.arch == 'resnet' and config.conditional and (
            config.gen_cond != 'cbn' or config.dis_cond != 'projection'):
        raise ConfigError('arch', "resnet takes labels by conditional BatchNorm in G and "
                                  "projection in D: use gen_cond 'cbn' and dis_cond "
                                  "'projection'")
    if config.allow_change and not config.resume:
        raise ConfigError('allow_change', 'is for a resumed run (resume)')
    _check_schedules(config)
    if config.mnbn and config.communicator is None:
        raise ConfigError('mnbn', 'needs communicator (a data-parallel run under mpiexec)')


def _check_schedules(config) -> None:
    if config.penalty == 'none':
        for name in ('penalty_weight_end', 'penalty_every'):
            if getattr(config, name) not in (None, 1):
                raise ConfigError(name, "needs a penalty (penalty is 'none')")
    if config.lr_schedule == 'none':
        for name in ('lr_floor', 'lr_decay_start'):
            if getattr(config, name) != 0:
                raise ConfigError(name, "is a setting of the decay: needs lr_schedule "
                                        "'linear' or 'cosine'")
    if config.beta2_start is not None and 'adam' not in (
            config.gen_optimizer or config.optimizer, config.dis_optimizer or config.optimizer):
        raise ConfigError('beta2_start', 'is a setting of Adam, and neither network uses it')
    if config.ema_rampup is not None and config.ema is None:
        raise ConfigError('ema_rampup', 'needs ema (the decay whose half-life it ramps)')


def _check_recipes(config) -> None:
    from gan_trainer.losses import check_real_label

    if config.arch == 'resnet':
        defaults = type(config)()
        for name in _NOT_RESNET:
            if getattr(config, name) != getattr(defaults, name):
                raise ConfigError(name, "is an option of the DCGAN nets, not of arch "
                                        "'resnet'")
    if config.arch == 'began':
        if config.loss != 'began':
            raise ConfigError('arch', "'began' (the BEGAN paper's nets, an autoencoder D) "
                                      f"needs loss 'began', not {config.loss!r}")
        defaults = type(config)()
        for name in _NOT_BEGAN:
            if getattr(config, name) != getattr(defaults, name):
                raise ConfigError(name, "is an option of the DCGAN nets, not of arch 'began' "
                                        '(its one width is base_width, the paper\'s n)')
    if config.dis_padding == 'valid' and config.dis_downsample == 'stride':
        raise ConfigError('dis_padding', "'valid' needs --dis_downsample max_pool or "
                                         'avg_pool (stride-2 convolutions are padded to halve '
                                         'the side exactly)')
    if config.dis_fc_activation is not None and config.dis_fc is None:
        raise ConfigError('dis_fc_activation', 'needs dis_fc (the hidden layer it is for)')
    if not config.dis_bn_gamma and config.dis_norm == 'none':
        raise ConfigError('dis_bn_gamma', "is about D's BatchNorm, and dis_norm is 'none'")
    if config.ksize is not None:
        resampled = config.gen_upsample != 'deconv' or config.dis_downsample != 'stride'
        strided = config.gen_upsample == 'deconv' or config.dis_downsample == 'stride'
        if config.ksize == 4 and resampled:
            raise ConfigError('ksize', "4 does not keep the side around up- or "
                                       "downsampling (use 3 or 5)")
        if config.ksize == 7 and strided:
            raise ConfigError('ksize', '7 is for upsampling G and pooling D (use 4 or 5 '
                                       'with strided stages)')
    if config.z_threshold is not None and config.z_dist != 'truncated_normal':
        raise ConfigError('z_threshold', "is for z_dist 'truncated_normal'")
    if config.real_label is not None:
        value = config.real_label[0] if len(config.real_label) == 1 else config.real_label
        if len(config.real_label) > 2:
            raise ConfigError('real_label', 'is one number or two (lo,hi)')
        try:
            check_real_label(value, config.loss)
        except ValueError as e:
            raise ConfigError('real_label', str(e)) from None
    for net in ('gen', 'dis'):
        try:
            config.optimizer_spec(net)
        except ValueError as e:
            raise ConfigError(f'{net}_optimizer' if getattr(config, f'{net}_optimizer')
                              else 'optimizer', f'for {net}: {e}') from None

def _run_names(*declared: type, conditional: bool | None = None) -> tuple[str, ...]:
    """The run names of the nets' declared options (:mod:`gan_trainer.nets.options`), once each."""
    return tuple(dict.fromkeys(name for cls in declared
                               for name in run_names(cls, conditional=conditional).values()))


#: What a run turns into options of the unconditional DCGAN D (build_networks).
_MADE_INTO_DIS_OPTIONS = ('dis_out_dim', 'minibatch_discrimination', 'dfm')

#: Options of the package's unconditional DCGAN nets only: those declared so, and
#: those a run makes D's options of.
_DCGAN_ONLY = (*_run_names(GeneratorOptions, DiscriminatorOptions, conditional=False),
               *_MADE_INTO_DIS_OPTIONS)

#: Options of the DCGAN nets that the ResNet nets do not have: every declared one
#: but ``spectral_norm``, which the ResNet D takes too, and ``dis_norm``, which it
#: has no use for (no BatchNorm in SNGAN's D) but the presets set; and ksize.
_NOT_RESNET = (*(n for n in _run_names(GeneratorOptions, DiscriminatorOptions)
                 if n not in ('spectral_norm', 'dis_norm')), 'ksize', *_MADE_INTO_DIS_OPTIONS)

#: Options of the DCGAN nets that BEGAN's own nets (arch 'began') do not have: every
#: declared one but ``init`` (they start as either) and the normalisations, which
#: the ``began`` preset sets for its DCGAN G (the paper's nets have none); widths
#: and ksize (the paper's nets take one width, ``base_width``, and 3x3 kernels).
_NOT_BEGAN = (*(n for n in _run_names(GeneratorOptions, DiscriminatorOptions)
                if n not in ('init', 'gen_norm', 'dis_norm')), 'widths', 'ksize',
              *_MADE_INTO_DIS_OPTIONS)

#: Options of the DCGAN discriminator that BEGAN's autoencoder D does not have:
#: every declared one but ``dis_norm`` (the presets set it) and ``init`` (the
#: autoencoder's weights start as either), and those a run makes D's options of.
_NOT_AUTOENCODER = (*(n for n in _run_names(DiscriminatorOptions) if n not in ('dis_norm', 'init')),
                    *_MADE_INTO_DIS_OPTIONS)

#: The losses whose D outputs are not logits: no accuracy, no ADA, no soft labels.
_NOT_LOGITS = ('began', 'cramer')


def _check_ganlib(config) -> None:
    """The options of chainer-gan-lib's algorithms: BEGAN, Cramér GAN, DFM, minibatch discrimination."""
    defaults = {name: field.default for name, field in declared(type(config)).items()}
    given = [n for n in _DCGAN_ONLY if getattr(config, n) != defaults[n]]
    if config.conditional and given:
        raise ConfigError(given[0], 'is an option of the unconditional DCGAN nets, not of '
                                    'conditional ones')
    for name in ('began_gamma', 'began_k0', 'began_lambda_k'):
        if getattr(config, name) is not None and config.loss != 'began':
            raise ConfigError(name, "is BEGAN's: needs loss 'began'")
    if config.cramer_penalty is not None and config.loss != 'cramer':
        raise ConfigError('cramer_penalty', "is the Cramér GAN's: needs loss 'cramer'")
    for name in ('dfm_weight', 'dfm_width'):
        if getattr(config, name) is not None and not config.dfm:
            raise ConfigError(name, 'is a setting of dfm: needs dfm')
    if config.loss == 'began':
        if config.arch not in ('dcgan', 'began') or config.conditional:
            raise ConfigError('loss', "began needs an autoencoder D: chainer-gan-lib's, built "
                                      "for the unconditional DCGAN nets (arch 'dcgan'), or "
                                      "the paper's (arch 'began')")
        for name in _NOT_AUTOENCODER:
            if getattr(config, name) != defaults[name]:
                raise ConfigError(name, "is an option of the DCGAN discriminator; loss 'began' "
                                        'uses the autoencoder D, which has no such option')
    if config.loss == 'cramer':
        if config.dis_out_dim == 1:
            raise ConfigError('dis_out_dim', "must be above 1 for loss 'cramer': its critic "
                                             "compares D's output vectors (256 by default)")
        if not config.separate_batches:
            raise ConfigError('separate_batches', "is needed by loss 'cramer' (three batches "
                                                  'through D, each on its own)')
    elif config.dis_out_dim not in (None, 1):
        raise ConfigError('dis_out_dim', f"{config.dis_out_dim} outputs are for loss 'cramer'; "
                                         f'loss {config.loss!r} reads one logit per image')
    if config.loss in _NOT_LOGITS:
        for name in ('lecam', 'bcr'):
            if getattr(config, name):
                raise ConfigError(name, f"reads D's logits, and loss {config.loss!r} has none")
    if config.loss in _NOT_LOGITS and config.augment == 'ada' or (
            config.loss in _NOT_LOGITS and config.ada_target is not None):
        raise ConfigError('augment', f"ada adapts to the sign of D's logits, and loss "
                                     f"{config.loss!r} has none")


def normalizations_without_effect(config) -> dict[str, str]:
    """The normalisation options ``config``'s nets do not have: name -> why.

    Every run holds ``gen_norm`` and ``dis_norm`` (``'batch'`` unless a
    preset says otherwise), but BEGAN's own nets (arch ``'began'``), BEGAN's
    autoencoder D (loss ``'began'``) and SNGAN's ResNet D have no BatchNorm
    layer at all. A config cannot tell a value the user chose
    from the default it holds, so the command line, which can, refuses such
    a flag when it is given as anything but ``'none'``
    (:func:`gan_trainer.cli.train.config_from_args`).
    """
    ignored = {}
    if config.arch == 'began':
        why = "arch 'began' (the BEGAN paper's nets) has no normalisation in G or D"
        ignored = {'gen_norm': why, 'dis_norm': why}
    elif config.loss == 'began':
        ignored = {'dis_norm': "loss 'began' trains an autoencoder D, which has no "
                               'normalisation'}
    elif config.arch == 'resnet':
        ignored = {'dis_norm': "arch 'resnet' has SNGAN's D, which has no BatchNorm (its "
                               'one normalisation is --spectral_norm)'}
    return ignored


def optimizer_spec(config, net: str):
    """The :class:`~gan_trainer.optimizers.OptimizerSpec` of ``'gen'`` or ``'dis'``.

    The shared settings, then the network's own overrides over them.
    """
    from gan_trainer.optimizers import SETTINGS, OptimizerSpec

    name = getattr(config, f'{net}_optimizer') or config.optimizer
    own = SETTINGS.get(name, {})
    # The shared settings an optimizer does not have are left to the
    # other network's (when their optimizers differ); the overrides must fit.
    shared = {k: getattr(config, k) for k in OPTIMIZER_SETTINGS
              if k in own or k == 'weight_decay'}
    if name == config.optimizer:
        shared = {k: getattr(config, k) for k in OPTIMIZER_SETTINGS}
    shared = {k: v for k, v in shared.items() if v is not None}
    overrides = {k: getattr(config, f'{net}_{k}') for k in OPTIMIZER_SETTINGS}
    return OptimizerSpec(name, **shared).updated(**overrides)


def with_optimizer_settings(config, changes: dict) -> dict:
    """``changes``, plus ``None`` for the settings a change of optimizer leaves behind.

    ``--optimizer sgd`` over a config with Adam's ``beta1`` means "SGD":
    the old optimizer's settings go (unless given again in the same call),
    as :meth:`gan_trainer.optimizers.OptimizerSpec.updated` does.
    """
    from gan_trainer.optimizers import SETTINGS

    changes = dict(changes)
    for prefix in ('', 'gen_', 'dis_'):
        key = f'{prefix}optimizer'
        new = changes.get(key)
        if new is None or new == getattr(config, key):
            continue
        for setting in OPTIMIZER_SETTINGS:
            field = f'{prefix}{setting}'
            if field not in changes and setting not in SETTINGS.get(new, {}) and (
                    setting != 'weight_decay'):
                changes[field] = None
    return changes
