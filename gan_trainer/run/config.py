"""RunConfig: every option of a training run, in one vocabulary, checked.

One frozen dataclass holds what ``examples/train_dcgan.py`` and
``gan-trainer train`` used to spread over flags, presets and a hand-built
``config.json``: the data, the networks, the loop, the optimizer, the
schedule, the quality report and the output. Names follow the constructors
that receive them (``spectral_norm`` as in
:class:`~gan_trainer.nets.Discriminator`, ``separate_batches`` as in
:class:`~gan_trainer.GANUpdater`); an option that belongs to one of the two
networks and whose constructor name would be ambiguous carries the
network's prefix (``dis_norm`` is D's ``norm``, ``gen_cond`` G's ``mode``).
The command-line flags are these names (with a few old spellings kept as
aliases: ``--sn``, ``--concat_batches``, ``--no_progress``), and so are the
presets (:mod:`gan_trainer.run.presets`) and the ``run`` section of
``config.json`` (:mod:`gan_trainer.run.record`).

Making a config checks every value (:class:`ConfigError` names the option)
and the combinations that cannot work together; ``dataclasses.replace``
checks again, so a config is valid wherever it is seen::

    from gan_trainer.run import RunConfig, build_trainer
    config = RunConfig(iteration=5000, ema=0.999, out='result_ema')
    build_trainer(config).run()
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

from gan_trainer.datasets import CACHE_BYTES
from gan_trainer.latent import SAMPLERS
from gan_trainer.losses import loss_names
from gan_trainer.nets import DiscriminatorOptions, GeneratorOptions
from gan_trainer.penalties import PENALTIES
from gan_trainer.rules import above, at_least, between, finite, nonempty
from gan_trainer.run.checks import check_combinations, optimizer_spec, with_optimizer_settings
from gan_trainer.run.options import (
    ConfigError,
    check_value,
    declared,
    option,
    resume_rule,
)

#: Bounds of a NumPy ``RandomState`` seed.
_SEED = between(0, 2**32)


def _not_absurd(value) -> str | None:
    return None if value < 1e12 else 'must be below 1e12'


def _penalty_names(value: str) -> str | None:
    if value == 'none':
        return None
    from gan_trainer.penalties import penalty_names

    try:
        penalty_names(value)
    except ValueError as e:
        return str(e)
    return None


def _cramer_penalties():
    from gan_trainer.cramer import PENALTY_CRITICS

    return PENALTY_CRITICS


def _augment_policy(value: str) -> str | None:
    if value in ('none', 'ada'):
        return None
    from gan_trainer.augment import parse_policy

    try:
        parse_policy(value)
    except ValueError:
        from gan_trainer.augment import POLICIES

        return (f"must be 'none', 'ada' or a comma-separated mix of "
                f"{', '.join(sorted(POLICIES))}")
    return None


def _changeable(names: tuple[str, ...]) -> str | None:
    fields = declared(RunConfig)
    for name in names:
        if name not in fields:
            return f'{name!r} is not an option of a run'
        if resume_rule(fields[name]) == 'keep':
            return (f'{name} shapes the networks, the data or the snapshots, which a resumed '
                    'run keeps (start a new run in another --out to change it)')
    return None


def _override(net: str, setting: str, checks, *, kind: str = 'float', default=None,
              note: str = ''):
    """A per-network optimizer setting: ``--gen_lr`` (also spelled ``--lr_gen``)."""
    return option(default, kind=kind, group='optimizer', resume='ask', preset=True,
                  nullable=True, checks=checks, flags=(f'--{net}_{setting}', f'--{setting}_{net}'),
                  help=f'{setting} of {"G" if net == "gen" else "D"} only{note}')


#: G's learning rate in the default recipe: eight times D's 2e-4. In issue 24's
#: sweep a larger step for G was the one lever that clearly improved the default
#: run's samples in its iterations (benchmarks/recipes.py; RESULTS.md, "Issue
#: 24's sweep"); the other presets leave G's rate to ``lr``.
DEFAULT_GEN_LR = 1.6e-3


#: The names of the presets (:mod:`gan_trainer.run.presets`, whose values are
#: RunConfigs and so are made there; a test checks the two agree).
PRESET_NAMES = ('default', 'dcgan', 'wgan-gp', 'sngan', 'lsgan', 'keras-dcgan', 'keras-dcgan-notes',
                'chainer-example', 'tf-gan', 'dragan', 'began', 'began-paper', 'cramer', 'dfm',
                'minibatch-discrimination')

#: The preset of a run that names none, and so the defaults of RunConfig's
#: fields (a test checks ``RunConfig()`` is that preset): the recipe with the
#: best FID in the default run's time by ``benchmarks/recipes.py`` (see
#: benchmarks/RESULTS.md, "Recipes for the same minutes").
DEFAULT_PRESET = 'default'


def _network_fields() -> dict[str, tuple[str, dataclasses.Field]]:
    """RunConfig's fields for the nets' options: run name -> (annotation, field).

    One per ``run`` name of :class:`~gan_trainer.nets.GeneratorOptions` and
    :class:`~gan_trainer.nets.DiscriminatorOptions`, in their order, with
    their default, rule and help; every one changes the networks and is a
    preset's to set. A name both nets declare (an option they share) is
    one field.
    """
    fields = {}
    for declared_by in (GeneratorOptions, DiscriminatorOptions):
        for net_field in dataclasses.fields(declared_by):
            meta = net_field.metadata
            if meta['run'] is None or meta['run'] in fields:
                continue
            fields[meta['run']] = (net_field.type, option(
                net_field.default, kind=meta['kind'], group='networks', networks=True,
                preset=True, choices=meta['choices'], checks=meta['checks'],
                flags=meta['flags'], help=meta['help']))
    return fields


def _with_network_options(cls):
    """Puts :func:`_network_fields` into the class body, after ``ksize``.

    Applied before ``dataclass``, so they are fields like the others, in
    the place the help and ``config.json`` list them.
    """
    annotations = {}
    for name, annotation in inspect.get_annotations(cls).items():
        annotations[name] = annotation
        if name == 'ksize':
            for field_name, (field_annotation, field) in _network_fields().items():
                annotations[field_name] = field_annotation
                setattr(cls, field_name, field)
    cls.__annotations__ = annotations
    return cls


@dataclasses.dataclass(frozen=True)
@_with_network_options
class RunConfig:
    """The options of one training run (see the module docstring).

    Every field is documented by its ``help`` (``gan-trainer train --help``
    prints them by group). Options a preset sets are marked in
    :func:`preset_options`; options that change the networks or the data
    in :func:`network_options`.

    The defaults are the ``default`` preset's, G's learning rate included:
    ``gen_lr`` is 1.6e-3 (:data:`DEFAULT_GEN_LR`) unless given, so
    ``RunConfig(lr=1e-3)`` changes D's rate only; ``gen_lr=None`` makes G
    follow ``lr`` (as every other preset does, and as ``--lr`` without
    ``--gen_lr`` does on the command line).
    """

    # ------------------------------------------------------------ data
    dataset: str = option(
        'digits', kind='str', group='data', networks=True, checks=[nonempty],
        help="'digits' (built in), 'mnist', 'cifar10' (downloads) or a folder of images")
    size: int | None = option(
        None, kind='int', group='data', networks=True, checks=[at_least(1)],
        help='image side (default: 28 for digits, 64 for folders)')
    gray: bool = option(False, kind='bool', group='data', networks=True,
                        help='convert folder images to one channel')
    loaderjob: int | None = option(
        None, kind='int', group='data', resume='free', checks=[at_least(0)],
        flags=('--loaderjob', '-j'),
        help='processes that decode folder images ahead of training, every epoch; by '
             f'default a folder whose pixels fit in {CACHE_BYTES >> 30} GiB is decoded once '
             'and read from memory, and a larger one gets 2 (at most the CPU count); 0 '
             'decodes in the training process')

    # -------------------------------------------------------- networks
    arch: str = option('dcgan', kind='str', group='networks', preset=True, networks=True,
                       choices=('dcgan', 'resnet', 'began'),
                       help="the networks: 'dcgan' (Radford et al.), 'resnet' (the SNGAN "
                            'ResNet of Miyato et al., for 28 to 128 pixels; use it with --sn '
                            "or --preset sngan, as the paper) or 'began' (the BEGAN paper's "
                            "G and autoencoder D, for --loss began; --base_width is its n)")
    n_hidden: int = option(100, kind='int', group='networks', preset=True, networks=True,
                           checks=[at_least(1)], flags=('--n_hidden', '-n'),
                           help='dimension of z')
    widths: tuple[int, ...] | None = option(
        None, kind='ints', group='networks', preset=True, networks=True,
        help='D conv widths, e.g. 64,128,256 (G mirrors them)')
    base_width: int = option(32, kind='int', group='networks', preset=True, networks=True,
                             checks=[at_least(1)],
                             help='width of the first D layer when --widths is not given '
                                  '(doubling per layer)')
    ksize: int | None = option(
        None, kind='int', group='networks', networks=True, preset=True, choices=(3, 4, 5, 7),
        help='convolution kernel size (default 4 for strided stages, 3 around up- or '
             'downsampling)')
    # Here follow G's and D's own options (gen_upsample, ..., dis_norm,
    # spectral_norm): one field per declaration of gan_trainer.nets.options,
    # added by _with_network_options. Then the options a run turns into
    # several of theirs (build_networks).
    dis_out_dim: int | None = option(
        None, kind='int', group='networks', networks=True, preset=True, checks=[at_least(1)],
        help="D's outputs per image: 1 (a logit), or a vector for --loss cramer (default 256, "
             "chainer-gan-lib's --output_dim)")
    minibatch_discrimination: bool = option(
        False, kind='bool', group='networks', networks=True, preset=True,
        help='minibatch discrimination in D (Salimans et al. 2016): 100 kernels of 5 '
             "dimensions, as chainer-gan-lib's")
    conditional: bool = option(False, kind='bool', group='networks', networks=True,
                               help="class-conditional GAN on the dataset's labels")
    gen_cond: str = option('cbn', kind='str', group='networks', networks=True,
                           choices=('cbn', 'concat'),
                           help='how G takes the label: conditional BatchNorm or an '
                                'embedding joined to z')
    dis_cond: str = option('projection', kind='str', group='networks', networks=True,
                           choices=('projection', 'concat'),
                           help='how D takes the label: projection (Miyato & Koyama) or '
                                'one-hot channels')

    # ------------------------------------------------------------ loop
    loss: str = option('lsgan', kind='str', group='loop', resume='ask', preset=True,
                       choices=lambda: loss_names(), help='GAN loss')
    penalty: str = option('none', kind='str', group='loop', resume='ask', preset=True,
                          checks=[_penalty_names],
                          help="gradient penalty on D: 'none', "
                               f"{', '.join(sorted(PENALTIES))}, or several joined by commas "
                               '(r1,r2: R3GAN)')
    penalty_weight: float | None = option(
        None, kind='float', group='loop', resume='ask', preset=True, checks=[at_least(0), finite],
        help='lambda of wgan-gp and dragan, or gamma of r1 and r2 (default 10)')
    penalty_weight_end: float | None = option(
        None, kind='float', group='loop', resume='ask', preset=True, checks=[at_least(0), finite],
        help='the penalty weight at the last iteration, reached along a cosine from '
             '--penalty_weight (R3GAN)')
    penalty_every: int = option(1, kind='int', group='loop', resume='ask', preset=True,
                                checks=[at_least(1), _not_absurd],
                                help='compute the penalty every k-th D step only, times k '
                                     '(lazy regularization, StyleGAN2: 16)')
    lecam: float = option(0.0, kind='float', group='loop', resume='ask', preset=True,
                          checks=[at_least(0), finite],
                          help="weight of LeCam regularization of D's outputs (Tseng et al. "
                               '2021; 0.01 to 0.3); 0 is off')
    bcr: float = option(0.0, kind='float', group='loop', resume='ask', preset=True,
                        checks=[at_least(0), finite],
                        help='weight of balanced consistency regularization of D under '
                             'translations (Zhao et al. 2021: 10); 0 is off')
    began_gamma: float | None = option(
        None, kind='float', group='loop', resume='ask', preset=True,
        checks=[between(0, 1, high_open=False, low_open=True)],
        help="--loss began's diversity ratio gamma (default 0.5, chainer-gan-lib's)")
    began_k0: float | None = option(
        None, kind='float', group='loop', resume='ask', preset=True,
        checks=[between(0, 1, high_open=False)],
        help="--loss began's starting k_t (default 0, the paper's); a resumed run continues "
             'from its saved k_t')
    began_lambda_k: float | None = option(
        None, kind='float', group='loop', resume='ask', preset=True, checks=[at_least(0), finite],
        help="--loss began's k_t rate lambda_k (default 0.001, the paper's)")
    cramer_penalty: str | None = option(
        None, kind='str', group='loop', resume='ask', preset=True,
        choices=lambda: tuple(_cramer_penalties()),
        help="how --loss cramer's gradient penalty is differentiated: as chainer-gan-lib, "
             'df/dh held constant (the default), or exactly by double backprop (diverges on '
             'the digits)')
    dfm: bool = option(False, kind='bool', group='loop', networks=True, preset=True,
                       help='denoising feature matching (Warde-Farley & Bengio 2017): a '
                            "denoiser of D's features, trained beside D, guides G")
    dfm_weight: float | None = option(
        None, kind='float', group='loop', resume='ask', preset=True, checks=[at_least(0), finite],
        help="the weight of DFM's term in G's loss (default 0.03, chainer-gan-lib's)")
    dfm_width: int | None = option(
        None, kind='int', group='loop', networks=True, preset=True, checks=[at_least(1)],
        help="units per hidden layer of DFM's 10-layer denoiser (default 512; chainer-gan-lib: "
             "2048, its D's feature count)")
    n_dis: int = option(1, kind='int', group='loop', resume='ask', preset=True,
                        checks=[at_least(1)], help='D steps per G step')
    order: str = option('dis_first', kind='str', group='loop', resume='ask', preset=True,
                        choices=('dis_first', 'gen_first', 'simultaneous'),
                        help="which step comes first; 'simultaneous': G's and D's losses on "
                             "one forward pass, G updated then D (chainer-gan-lib's step)")
    eval_fakes: bool = option(False, kind='bool', group='loop', resume='ask', preset=True,
                              help="make the D step's fakes with G in evaluation mode "
                                   "(BatchNorm's running averages), as Keras' g.predict in "
                                   'keras-dcgan')
    reuse_fakes: bool = option(True, kind='bool', group='loop', resume='ask', preset=True,
                               help="train G on the last D step's fakes (PyTorch's DCGAN "
                                    'loop: one G forward per iteration)')
    z_dist: str = option('normal', kind='str', group='loop', resume='ask', preset=True,
                         choices=lambda: sorted(SAMPLERS), help='distribution of z')
    z_threshold: float | None = option(
        None, kind='float', group='loop', resume='ask', preset=True, checks=[above(0)],
        help="with --z_dist truncated_normal: the bound in standard deviations (default 2)")
    real_label: tuple[float, ...] | None = option(
        None, kind='floats', group='loop', resume='ask', preset=True,
        help="D's target for real images: a number (one-sided label smoothing, e.g. 0.9) or "
             'lo,hi drawn per image (noisy labels); for nonsaturating, minimax, lsgan')
    separate_batches: bool = option(
        True, kind='bool', group='loop', resume='ask', preset=True, negate='--concat_batches',
        help='feed real and fake to D in one batch (breaks BatchNorm; for comparison)')
    ema: float | None = option(None, kind='float', group='loop', resume='ask',
                               checks=[between(0, 1, low_open=True)],
                               help='keep a moving average of G with this decay, e.g. 0.999')
    ema_start: int = option(0, kind='int', group='loop', resume='ask', checks=[at_least(0)],
                            help='iteration from which the average starts')
    ema_rampup: float | None = option(
        None, kind='float', group='loop', resume='ask', checks=[above(0), _not_absurd],
        help="grow the average's half-life with the run: at most this fraction of the "
             'iterations so far (StyleGAN2: 0.05)')
    augment: str = option('none', kind='str', group='loop', networks=True,
                          checks=[_augment_policy],
                          help="differentiable augmentation of everything D sees (Zhao et al. "
                               "2020): 'none', a comma-separated mix of color, translation and "
                               "cutout, or 'ada': all three, with ADA's adaptive probability")
    ada_target: float | None = option(
        None, kind='float', group='loop', networks=True, checks=[between(0, 1, low_open=True)],
        help="ADA's target for E[sign(D(real))] (default 0.6 with --augment ada; with a "
             'policy it makes that policy adaptive)')
    ada_speed: float = option(25_000.0, kind='float', group='loop', resume='ask', checks=[above(0)],
                              help="ADA's speed: real images over which the probability can go "
                                   'from 0 to 1')

    # ------------------------------------------------------- optimizer
    optimizer: str = option('adam', kind='str', group='optimizer', resume='ask', preset=True,
                            choices=('adam', 'sgd', 'rmsprop'),
                            help='the optimizer of both networks (see gan_trainer.optimizers)')
    lr: float | None = option(None, kind='float', group='optimizer', resume='ask', preset=True,
                              checks=[above(0)],
                              help='learning rate (adam 2e-4, sgd and rmsprop 0.01)')
    beta1: float | None = option(None, kind='float', group='optimizer', resume='ask', preset=True,
                                 checks=[between(0, 1)], help='Adam beta1 (0.5)')
    beta2: float | None = option(None, kind='float', group='optimizer', resume='ask', preset=True,
                                 checks=[between(0, 1)], help='Adam beta2 (0.999)')
    eps: float | None = option(None, kind='float', group='optimizer', resume='ask', preset=True,
                               checks=[above(0)], help='Adam and RMSprop epsilon (1e-8)')
    momentum: float | None = option(None, kind='float', group='optimizer', resume='ask',
                                    preset=True,
                                    checks=[between(0, 1)], help='SGD momentum (0)')
    nesterov: bool | None = option(None, kind='bool', group='optimizer', resume='ask', preset=True,
                                   help='SGD with Nesterov momentum (Keras and PyTorch)')
    rho: float | None = option(None, kind='float', group='optimizer', resume='ask', preset=True,
                               checks=[between(0, 1)], help='RMSprop decay (0.99)')
    weight_decay: float | None = option(None, kind='float', group='optimizer', resume='ask',
                                        preset=True,
                                        checks=[at_least(0), finite],
                                        help='L2 weight decay of every parameter (0)')
    gen_optimizer: str | None = option(None, kind='str', group='optimizer', resume='ask',
                                       preset=True,
                                       choices=('adam', 'sgd', 'rmsprop'),
                                       flags=('--gen_optimizer', '--optimizer_gen'),
                                       help="G's optimizer, when it differs")
    gen_lr: float | None = _override(
        'gen', 'lr', [above(0)], default=DEFAULT_GEN_LR,
        note=f' (the default recipe: {DEFAULT_GEN_LR:g}; other presets: --lr; --lr without '
             '--gen_lr sets both)')
    gen_beta1: float | None = _override('gen', 'beta1', [between(0, 1)])
    gen_beta2: float | None = _override('gen', 'beta2', [between(0, 1)])
    gen_eps: float | None = _override('gen', 'eps', [above(0)])
    gen_momentum: float | None = _override('gen', 'momentum', [between(0, 1)])
    gen_nesterov: bool | None = _override('gen', 'nesterov', [], kind='bool')
    gen_rho: float | None = _override('gen', 'rho', [between(0, 1)])
    gen_weight_decay: float | None = _override('gen', 'weight_decay', [at_least(0), finite])
    dis_optimizer: str | None = option(None, kind='str', group='optimizer', resume='ask',
                                       preset=True,
                                       choices=('adam', 'sgd', 'rmsprop'),
                                       flags=('--dis_optimizer', '--optimizer_dis'),
                                       help="D's optimizer, when it differs")
    dis_lr: float | None = _override('dis', 'lr', [above(0)])
    dis_beta1: float | None = _override('dis', 'beta1', [between(0, 1)])
    dis_beta2: float | None = _override('dis', 'beta2', [between(0, 1)])
    dis_eps: float | None = _override('dis', 'eps', [above(0)])
    dis_momentum: float | None = _override('dis', 'momentum', [between(0, 1)])
    dis_nesterov: bool | None = _override('dis', 'nesterov', [], kind='bool')
    dis_rho: float | None = _override('dis', 'rho', [between(0, 1)])
    dis_weight_decay: float | None = _override('dis', 'weight_decay', [at_least(0), finite])

    lr_schedule: str = option('none', kind='str', group='optimizer', resume='ask', preset=True,
                              choices=('none', 'linear', 'cosine'),
                              help='decay of both learning rates to --lr_floor at the last '
                                   'iteration')
    lr_floor: float = option(0.0, kind='float', group='optimizer', resume='ask', preset=True,
                             checks=[between(0, 1, high_open=False)],
                             help='the learning rate at the end of the decay, as a fraction '
                                  'of its start')
    lr_decay_start: float = option(0.0, kind='float', group='optimizer', resume='ask', preset=True,
                                   checks=[between(0, 1)],
                                   help='the fraction of the run after which the decay begins')
    lr_warmup: int = option(0, kind='int', group='optimizer', resume='ask', preset=True,
                            checks=[at_least(0), _not_absurd],
                            help='iterations of linear learning-rate warm-up from 0')
    beta2_start: float | None = option(
        None, kind='float', group='optimizer', resume='ask', preset=True, checks=[between(0, 1)],
        help="Adam's beta2 at the first iteration, reached --beta2 along a cosine (R3GAN: "
             '0.9 to 0.99)')

    # -------------------------------------------------------- schedule
    batchsize: int = option(64, kind='int', group='schedule', resume='ask', preset=True,
                            checks=[at_least(1)],
                            flags=('--batchsize', '-b'), help='images per batch')
    iteration: int = option(3000, kind='int', group='schedule', resume='free', checks=[at_least(1)],
                            help='G updates to train')
    epoch: int | None = option(None, kind='int', group='schedule', resume='free',
                               checks=[at_least(1)],
                               flags=('--epoch', '-e'),
                               help='train this many passes over the data instead')
    seed: int = option(0, kind='int', group='schedule', resume='ask', checks=[_SEED],
                       help='seed of the weights, z and the data order')
    snapshot_interval: int = option(500, kind='int', group='schedule', resume='free',
                                    checks=[at_least(1)],
                                    help='iterations between snapshots')
    display_interval: int = option(50, kind='int', group='schedule', resume='free',
                                   checks=[at_least(1)],
                                   help='iterations between log lines')
    preview_interval: int = option(100, kind='int', group='schedule', resume='free',
                                   checks=[at_least(1)],
                                   help='iterations between preview grids')
    eval_interval: int = option(500, kind='int', group='schedule', resume='free',
                                checks=[at_least(1)],
                                help='iterations between validations on held-out images')
    keep: int = option(3, kind='int', group='schedule', resume='free', checks=[at_least(1)],
                       help='snapshots of each kind to keep')

    # --------------------------------------------------------- quality
    fid_interval: int = option(0, kind='int', group='quality', resume='free', checks=[at_least(0)],
                               help='iterations between FID/KID/precision/recall '
                                    'measurements; 0 is off')
    fid_samples: int = option(1000, kind='int', group='quality', resume='ask', checks=[at_least(4)],
                              help='images generated per measurement')
    fid_weights: str | None = option(None, kind='str', group='quality', resume='ask',
                                     help='Inception-v3 as an ONNX file, for datasets other '
                                          'than digits')

    # ---------------------------------------------------------- output
    out: str = option('result', kind='str', group='output', resume='free', checks=[nonempty],
                      flags=('--out', '-o'),
                      saved=False, help='output folder')
    resume: str | None = option(None, kind='str', group='output', resume='free',
                                flags=('--resume', '-r'),
                                saved=False,
                                help="trainer snapshot to continue from, or 'auto': the "
                                     'newest complete one in --out')
    allow_change: tuple[str, ...] = option(
        (), kind='names', group='output', resume='free', saved=False, checks=[_changeable],
        help="with --resume: options the resumed run may change from its iteration on (a "
             "resume is the same run, and refuses other values otherwise), comma-separated, "
             "e.g. lr,n_dis; config.json records each change with its iteration")
    gpu: int = option(-1, kind='int', group='output', resume='free', checks=[at_least(-1)],
                      flags=('--gpu', '-g'), saved=False, help='GPU id; -1 is the CPU')
    dtype: str = option('float32', kind='str', group='output', networks=True,
                        choices=('float32', 'mixed16'),
                        help='numbers: float32, or mixed16 (float16 weights and arithmetic, '
                             'BatchNorm in float32, dynamic loss scaling; for GPUs with tensor '
                             'cores, slow on a CPU)')
    tf32: bool = option(True, kind='bool', group='output', resume='free', saved=False,
                        help='TF32 tensor-core float32 products on GPUs of compute capability '
                             '8.0+ (about 1e-3 relative difference; --no-tf32 or '
                             'GAN_TRAINER_TF32=0 turns it off)')
    preset: str = option(DEFAULT_PRESET, kind='str', group='output', resume='ask',
                         choices=PRESET_NAMES,
                         help="the settings of a paper (see gan_trainer.run.presets); "
                              'options given explicitly override it')
    progress: bool = option(True, kind='bool', group='output', resume='free',
                            negate='--no_progress',
                            saved=False, help='no progress bar (for logs and CI)')
    tensorboard: bool = option(False, kind='bool', group='output', resume='free',
                               help='also write TensorBoard events to OUT/tensorboard')

    # -------------------------------------------------------- parallel
    communicator: str | None = option(
        None, kind='str', group='parallel', resume='keep',
        help="data-parallel training under mpiexec: 'naive' (CPU) or 'pure_nccl' (GPUs)")
    mnbn: bool = option(False, kind='bool', group='parallel', resume='ask',
                        help='with --communicator: BatchNorm over the global batch')

    def __post_init__(self) -> None:
        for name, field in declared(type(self)).items():
            object.__setattr__(self, name, check_value(field, getattr(self, name)))
        check_combinations(self)

    def optimizer_spec(self, net: str):
        """The :class:`~gan_trainer.optimizers.OptimizerSpec` of ``'gen'`` or ``'dis'``.

        The shared settings, then the network's own overrides over them.
        """
        return optimizer_spec(self, net)

    # ------------------------------------------------------------ use

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with ``changes`` (checked again); ``None`` values are ignored.

        Ignoring ``None`` is what lets a command line pass "not given" for
        every flag the user left out.
        """
        changes = {k: v for k, v in changes.items() if v is not None}
        unknown = set(changes) - set(declared(RunConfig))
        if unknown:
            raise ConfigError(min(unknown), 'is not an option of a run')
        return dataclasses.replace(self, **with_optimizer_settings(self, changes))

    def to_dict(self, *, saved_only: bool = True) -> dict[str, Any]:
        """The options as JSON-able values (``saved_only``: those ``config.json`` keeps)."""
        result = {}
        for name, field in declared(type(self)).items():
            if saved_only and not field.metadata['saved']:
                continue
            value = getattr(self, name)
            result[name] = list(value) if isinstance(value, tuple) else value
        return result

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, where: str = 'config') -> RunConfig:
        """A config from :meth:`to_dict`'s output; unknown keys are errors.

        Args:
            values: Option name -> value.
            where: What to name in an error (a file, say).
        """
        known = declared(cls)
        for key in values:
            if key not in known:
                raise ConfigError(key, f'is not an option of a run ({where})')
        return cls(**values)


def preset_options() -> tuple[str, ...]:
    """The names of the options a ``--preset`` sets."""
    return tuple(n for n, f in declared(RunConfig).items() if f.metadata['preset'])


def network_options() -> tuple[str, ...]:
    """The names of the options that change the networks or the data."""
    return tuple(n for n, f in declared(RunConfig).items() if f.metadata['networks'])

