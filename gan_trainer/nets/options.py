"""The options of the DCGAN nets, each declared once.

An option of G or D is one field of :class:`GeneratorOptions` or
:class:`DiscriminatorOptions`, made by :func:`net_option`: its default (the
DCGAN paper's net), what values it takes (a kind, choices, checks from
:mod:`gan_trainer.rules`), one line of help, and the name a run gives it.
Everything else reads that field:

* the constructors (:class:`~gan_trainer.nets.Generator`,
  :class:`~gan_trainer.nets.Discriminator`, the conditional nets and the
  layer stacks they share) take the options as keyword arguments, checked
  here with a one-line ``ValueError`` that names the argument
  (:func:`set_options`);
* a net's ``config()`` records the options that differ from their defaults
  (:func:`recorded_options`), so a default net's config, and the
  ``config.json`` of its runs, is what it was before the options existed;
* :class:`~gan_trainer.run.RunConfig` has one run option per field, named
  by the field's ``run`` (``gen_upsample`` is G's ``upsample``, ``dis_noise``
  D's ``noise_sigma``), with the same default, rule and help, hence a
  command-line flag, a preset setting and a ``config.json`` key; and
  :func:`~gan_trainer.run.build_networks` hands each run option to its net
  (:func:`run_options`).

So a new option of the DCGAN nets is one field here and the code in
:mod:`._blocks` that uses it. What the fields leave out is what every
architecture takes (``size``, ``channels``, ``n_hidden``, ``widths``,
``base_width``; the ResNet nets too) and what only the conditional nets
take (``n_classes``, ``mode``, ``n_embed``), plus ``ksize``, whose rule
depends on how the stages resample (:func:`~gan_trainer.nets._layers.resolve_ksize`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from gan_trainer.nets._common import BN_DECAY, BN_EPS, INITS, NORMS, PROJECT_NORMS
from gan_trainer.nets._layers import ACTIVATIONS, DOWNSAMPLES, PADDINGS, UPSAMPLES
from gan_trainer.rules import KIND_WORDS, Check, above, at_least, between, convert, finite


def net_option(default: Any, *, kind: str, help: str, run: str | None,
               choices: Sequence[Any] | None = None, checks: Sequence[Check] = (),
               flags: Sequence[str] = (), recorded: bool = False, conditional: bool = True):
    """A field of :class:`GeneratorOptions` or :class:`DiscriminatorOptions`.

    Args:
        default: The value of the DCGAN paper's net.
        kind: ``'int'``, ``'float'``, ``'str'`` or ``'bool'``
            (:func:`gan_trainer.rules.convert`).
        help: One line for ``gan-trainer train --help`` and the docs.
        run: The name of the :class:`~gan_trainer.run.RunConfig` option that
            sets it, or ``None`` for an option a run sets from others (in
            :func:`~gan_trainer.run.build_networks`). G and D may share one
            (both declare it alike).
        choices: The values it takes, or ``None`` for any of its kind.
        checks: Rules the value must pass (skipped for ``None``).
        flags: The run option's command-line spellings, when not only
            ``--RUN`` (an old short name).
        recorded: Whether ``config()`` records it even at its default (the
            options configs have always carried).
        conditional: Whether the conditional nets take it too (they refuse
            it otherwise, and a conditional run leaves it out).
    """
    meta = {'kind': kind, 'help': help, 'run': run, 'choices': choices,
            'checks': tuple(checks), 'flags': tuple(flags), 'recorded': recorded,
            'conditional': conditional}
    return dataclasses.field(default=default, metadata=meta)


# The options both nets take under one run name (how their weights start, their
# batch normalizations' running averages and epsilon): each declared once, by a
# function that both classes call for their field (its rules made once, so the
# two fields hold the same ones).
_DECAY_RULE, _EPS_RULE = between(0, 1), above(0)


def _init_option():
    return net_option(
        'normal', kind='str', choices=INITS, run='init',
        help="initial weights: 'normal', the DCGAN paper's N(0, 0.02), or 'glorot', Keras' "
             'defaults (Glorot-uniform, BatchNorm scales 1)')


def _bn_decay_option():
    return net_option(BN_DECAY, kind='float', checks=[_DECAY_RULE], run='bn_decay',
                      help="BatchNorm's running-average decay (Keras' momentum: 0.99)")


def _bn_eps_option():
    return net_option(BN_EPS, kind='float', checks=[_EPS_RULE], run='bn_eps',
                      help="BatchNorm's epsilon (Keras: 1e-3)")


@dataclasses.dataclass(frozen=True)
class GeneratorOptions:
    """The options of the DCGAN generators beyond their shape (see the module docstring).

    Each is off by default, so the default G is the paper's, parameter for
    parameter; the recipes of the DCGAN write-ups set them
    (:mod:`~gan_trainer.nets.dcgan`).

    Attributes:
        upsample (str): How each stage doubles the side: ``'deconv'`` (a
            stride-2 transposed convolution, the paper's), ``'nearest'`` or
            ``'bilinear'`` (upsampling, then a stride-1 convolution
            ``convs/i`` in place of ``deconvs/i``).
        activation (str): Hidden-layer nonlinearity: ``'relu'`` (the
            paper's), ``'elu'``, ``'tanh'`` or ``'leaky_relu'`` (slope 0.2).
        fc_width (int or None): Width of a hidden fully connected layer
            ``fc`` between ``z`` and the projection, followed by the
            activation and no normalization (keras-dcgan: 1024 with tanh);
            ``None`` for none (the paper).
        project_norm (str): What ``bn0`` normalises: ``'channel'`` (the
            paper's reference code: each channel of the reshaped
            ``widths[-1] x s0 x s0`` map over the batch and the positions)
            or ``'unit'`` (each unit of the projection over the batch
            alone, before the reshape: Keras' ``BatchNormalization`` after
            a ``Dense`` layer, as keras-dcgan and TensorFlow's tutorial
            have it). With ``'unit'`` every unit varies over the batch
            whatever its bias, so the map G builds on keeps depending on
            ``z`` (keras-dcgan's G collapsed without it; see
            :data:`~gan_trainer.nets._common.PROJECT_NORMS`).
        stage_norm (bool): Whether the upsampling stages but the last are
            batch-normalized (the paper); ``False`` leaves ``bn0`` as G's
            only normalization, as keras-dcgan does.
        init (str): ``'normal'`` (the paper's N(0, 0.02) weights and N(1,
            0.02) batch-norm scales) or ``'glorot'`` (Keras' defaults:
            Glorot-uniform weights, scales 1), see
            :func:`~gan_trainer.nets._common.weight_initializer`. D
            declares it too: a run sets both nets' with ``init``.
        bn_decay (float): The batch normalizations' running-average decay:
            Chainer's 0.9 or, as Keras' ``momentum``, 0.99. Shared with D.
        bn_eps (float): Added to their variance: Chainer's 2e-5, Keras'
            1e-3. Shared with D.
        norm (str): ``'batch'`` (the paper) or ``'none'``: no batch
            normalization anywhere (BEGAN's G; chainer-gan-lib's
            ``DCGANGenerator(use_bn=False)``). Not for the conditional nets,
            whose ``'cbn'`` mode conditions the batch normalization.
    """

    upsample: str = net_option(
        'deconv', kind='str', choices=UPSAMPLES, run='gen_upsample',
        help="how G doubles the side: 'deconv' (transposed convolution), or "
             "'nearest'/'bilinear' upsampling and a convolution (no checkerboard artefacts, "
             'Odena et al. 2016)')
    activation: str = net_option('relu', kind='str', choices=tuple(ACTIVATIONS),
                                 run='gen_activation', help="G's hidden activation")
    fc_width: int | None = net_option(
        None, kind='int', checks=[at_least(1)], run='gen_fc',
        help="a hidden fully connected layer of this width before G's projection "
             "(keras-dcgan's Dense 1024)")
    project_norm: str = net_option(
        'channel', kind='str', choices=PROJECT_NORMS, run='gen_project_norm',
        help="what G's first BatchNorm normalises: each channel of the projection's map "
             "(the DCGAN paper's code) or each unit of the projection over the batch "
             "(Keras' BatchNormalization after Dense: keras-dcgan, TensorFlow's tutorial)")
    stage_norm: bool = net_option(
        True, kind='bool', run='gen_stage_norm',
        help="BatchNorm after G's upsampling stages (--no-gen_stage_norm: after the "
             'projection only, as keras-dcgan)')
    init: str = _init_option()
    bn_decay: float = _bn_decay_option()
    bn_eps: float = _bn_eps_option()
    norm: str = net_option('batch', kind='str', choices=NORMS, run='gen_norm', conditional=False,
                           help="normalisation in G ('none': BEGAN's G, without BatchNorm)")

    def __post_init__(self) -> None:
        _check_each(self)


@dataclasses.dataclass(frozen=True)
class DiscriminatorOptions:
    """The options of the DCGAN discriminators beyond their shape (see the module docstring).

    The defaults are the paper's D; ``norm`` and ``spectral_norm`` are for
    the losses that need them (WGAN-GP's critic, SNGAN), the others for the
    recipes of the DCGAN write-ups (:mod:`~gan_trainer.nets.dcgan`).

    Attributes:
        downsample (str): How each stage halves the side: ``'stride'`` (a
            stride-2 convolution, the paper's), ``'max_pool'`` or
            ``'avg_pool'`` (a stride-1 convolution and its activation, then
            2x2 pooling; keras-dcgan).
        activation (str): Hidden-layer nonlinearity: ``'leaky_relu'``
            (slope 0.2, the paper's), ``'tanh'`` (keras-dcgan), ``'relu'``
            or ``'elu'``.
        fc_width (int or None): Width of a hidden fully connected layer
            ``fc`` between the last feature map and ``out`` (keras-dcgan:
            1024; the Keras DCGAN notes: 2048); ``None`` for none (the
            paper). It has no normalization.
        fc_activation (str or None): ``fc``'s nonlinearity; ``None`` means
            ``activation``. Needs ``fc_width``.
        noise_sigma (float): Standard deviation of Gaussian noise added to
            D's input and to every hidden layer before its activation, in
            training only (Chainer's DCGAN example: 0.2); 0 for none. The
            noise comes from the net's own random state, saved with it as
            ``noise_rng`` (see :class:`~gan_trainer.nets._layers.Stochastic`).
        dropout (float): Fraction of each hidden layer's units dropped
            after its activation, in training only (TensorFlow's DCGAN
            tutorial: 0.3); 0 for none. Same random state as the noise.
        bn_gamma (bool): Whether D's batch normalizations learn a scale;
            ``False`` keeps only their shift, as Chainer's DCGAN example
            does. Needs ``norm='batch'``.
        padding (str): With pooling, ``'same'`` (every convolution keeps
            the side) or ``'valid'``: the convolutions after the first are
            unpadded, as keras-dcgan's second one (Keras' default padding),
            which shrinks the map D reads out (5x5 instead of 7x7 on 28x28
            digits with 5x5 kernels; see
            :data:`~gan_trainer.nets._layers.PADDINGS`). Needs a pooling
            ``downsample``.
        init, bn_decay, bn_eps: As for :class:`GeneratorOptions` (one run
            option sets both nets').
        norm (str): ``'batch'`` (the paper) or ``'none'``: no batch
            normalization, as WGAN-GP critics (whose gradient penalty is per
            example, which batch statistics would break; Gulrajani et al.
            2017) and SNGAN discriminators use.
        spectral_norm (bool): Whether to spectrally normalize every conv
            and linear weight (Miyato et al. 2018) with
            :class:`chainer.link_hooks.SpectralNormalization`, one power
            iteration per forward pass in train mode. The iteration's
            vectors are persistent (``convs/i/W_u``, ``out/W_u``), so they
            are saved and loaded with the weights.
        out_dim (int): Outputs per image: 1 (a logit, shape ``(B,)``) or
            more (shape ``(B, out_dim)``), the feature vector a Cramér GAN
            critic compares (Bellemare et al. 2017; chainer-gan-lib: 256).
            A run sets it from its loss (:func:`~gan_trainer.run.parts.dis_outputs`).
        minibatch_kernels (int or None): With a number ``B``, minibatch
            discrimination (Salimans et al. 2016,
            :class:`~gan_trainer.nets.minibatch.MinibatchDiscrimination`)
            appends ``B`` cross-batch closeness counts to what ``out``
            reads (chainer-gan-lib: 100); ``None`` for none. A run sets it
            with ``minibatch_discrimination``.
        minibatch_dim (int): The dimension ``C`` of each minibatch kernel
            (chainer-gan-lib: 5).
    """

    downsample: str = net_option(
        'stride', kind='str', choices=DOWNSAMPLES, run='dis_downsample',
        help="how D halves the side: 'stride' (stride-2 convolution), or a stride-1 "
             "convolution and 'max_pool'/'avg_pool'")
    activation: str = net_option('leaky_relu', kind='str', choices=tuple(ACTIVATIONS),
                                 run='dis_activation', help="D's hidden activation")
    fc_width: int | None = net_option(
        None, kind='int', checks=[at_least(1)], run='dis_fc',
        help="a hidden fully connected layer of this width before D's logit")
    fc_activation: str | None = net_option(
        None, kind='str', choices=tuple(ACTIVATIONS), run='dis_fc_activation',
        help="the activation of D's hidden fully connected layer (default: D's activation)")
    noise_sigma: float = net_option(
        0.0, kind='float', checks=[at_least(0), finite], run='dis_noise',
        help="sigma of Gaussian noise added to D's input and hidden layers in training "
             "(Chainer's DCGAN example: 0.2)")
    dropout: float = net_option(0.0, kind='float', checks=[between(0, 1)], run='dis_dropout',
                                help="dropout rate after D's hidden activations, in training")
    bn_gamma: bool = net_option(
        True, kind='bool', run='dis_bn_gamma',
        help="a learned scale in D's BatchNorm (--no-dis_bn_gamma: none, as Chainer's DCGAN "
             'example)')
    padding: str = net_option(
        'same', kind='str', choices=PADDINGS, run='dis_padding',
        help="with a pooling D: 'valid' leaves its convolutions after the first unpadded "
             "(Keras' default; keras-dcgan's second conv)")
    init: str = _init_option()
    bn_decay: float = _bn_decay_option()
    bn_eps: float = _bn_eps_option()
    norm: str = net_option('batch', kind='str', choices=NORMS, run='dis_norm', recorded=True,
                           help='normalisation in D')
    spectral_norm: bool = net_option(False, kind='bool', run='spectral_norm', recorded=True,
                                     flags=('--spectral_norm', '--sn'),
                                     help="spectral normalisation of D's layers")
    out_dim: int = net_option(1, kind='int', checks=[at_least(1)], run=None, conditional=False,
                              help="D's outputs per image")
    minibatch_kernels: int | None = net_option(
        None, kind='int', checks=[at_least(1)], run=None, conditional=False,
        help='minibatch discrimination kernels')
    minibatch_dim: int = net_option(5, kind='int', checks=[at_least(1)], run=None,
                                    conditional=False,
                                    help='the dimension of each minibatch kernel')

    def __post_init__(self) -> None:
        _check_each(self)
        if self.fc_activation is not None and self.fc_width is None:
            raise ValueError(f'fc_activation={self.fc_activation!r} needs fc_width: '
                             'without it there is no hidden fully connected layer')
        if not self.bn_gamma and self.norm != 'batch':
            raise ValueError(f"bn_gamma=False needs norm='batch': norm={self.norm!r} has no "
                             'batch normalization to drop the scale from')
        if self.padding == 'valid' and self.downsample == 'stride':
            raise ValueError("padding='valid' needs downsample='max_pool' or 'avg_pool': "
                             'stride-2 stages are padded to halve the side exactly')


def _check_each(options) -> None:
    """Checks (and converts) every field of ``options`` by its declaration."""
    for field in dataclasses.fields(options):
        name, meta, value = field.name, field.metadata, getattr(options, field.name)
        if value is None and field.default is None:
            continue  # an option that is off unless given
        if meta['choices'] is not None and value not in meta['choices']:
            raise ValueError(f'unknown {name} {value!r}; valid ones are '
                             f'{", ".join(map(str, meta["choices"]))}')
        try:
            value = convert(meta['kind'], value)
        except (TypeError, ValueError):
            raise ValueError(f'{name} must be {KIND_WORDS[meta["kind"]]}, got {value!r}') from None
        for check in meta['checks']:
            message = check(value)
            if message:
                raise ValueError(f'{name} {message}, got {value!r}')
        object.__setattr__(options, name, value)


def set_options(net, declared: type, options: dict[str, Any]) -> None:
    """Checks ``options`` as ``declared`` (an options class) and sets each on ``net``.

    The net's code then reads ``net.upsample``, ``net.fc_width``, ...; the
    options left out take their defaults.

    Raises:
        TypeError: If a key is not an option of ``declared`` (naming the
            net's class and its options).
        ValueError: If a value or a combination is not allowed (naming the
            option).
    """
    known = {f.name for f in dataclasses.fields(declared)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f'{type(net).__name__} got an unexpected keyword argument '
                        f'{unknown[0]!r}; its options are {", ".join(sorted(known))}')
    checked = declared(**options)
    for field in dataclasses.fields(checked):
        setattr(net, field.name, getattr(checked, field.name))


def refuse_unconditional(net_class: type, declared: type, options: dict[str, Any]) -> None:
    """Raises a TypeError naming the first of ``options`` that the conditional nets do not take."""
    for field in dataclasses.fields(declared):
        if not field.metadata['conditional'] and field.name in options:
            raise TypeError(f'{net_class.__name__} takes no {field.name}: it is an option of '
                            'the unconditional nets only')


def recorded_options(net, declared: type) -> dict[str, Any]:
    """The options of ``net`` that its ``config()`` records: those off their defaults.

    Plus the ``recorded`` ones (``norm``, ``spectral_norm``), which configs
    have always carried.
    """
    return {f.name: getattr(net, f.name) for f in dataclasses.fields(declared)
            if f.metadata['recorded'] or getattr(net, f.name) != f.default}


def run_names(declared: type, *, conditional: bool | None = None) -> dict[str, str]:
    """``{option: its run name}`` for the options of ``declared`` that a run sets.

    With ``conditional`` True or False, only the options whose
    ``conditional`` declaration is that (False: the unconditional nets' own).
    """
    return {f.name: f.metadata['run'] for f in dataclasses.fields(declared)
            if f.metadata['run'] is not None
            and conditional in (None, f.metadata['conditional'])}


def run_options(declared: type, config) -> dict[str, Any]:
    """The options of ``declared`` that a run sets: ``{option: config.<its run name>}``.

    Args:
        declared: :class:`GeneratorOptions` or :class:`DiscriminatorOptions`.
        config: A :class:`~gan_trainer.run.RunConfig` (anything with the
            run names as attributes); for a conditional one, the options
            the conditional nets do not take are left out.
    """
    names = run_names(declared, conditional=True if config.conditional else None)
    return {name: getattr(config, run) for name, run in names.items()}


__all__ = [
    'DiscriminatorOptions',
    'GeneratorOptions',
    'net_option',
    'recorded_options',
    'refuse_unconditional',
    'run_names',
    'run_options',
    'set_options',
]
