"""Presets: the settings of each paper and tutorial, as RunConfig values.

``PRESETS[name]`` is a complete :class:`~gan_trainer.run.RunConfig`; a run
starts from one (``--preset NAME``, :data:`~gan_trainer.run.config.DEFAULT_PRESET`,
``default``, when none is named) and any option
given explicitly overrides it (:func:`apply_preset`). Every preset trains
with the same :class:`~gan_trainer.GANUpdater` loop; only these options
differ.

=========== ============= ========== ==== ===== ====== ============ ===== =======
preset      loss          penalty    SN   D BN  n_dis  lr           beta1 beta2
=========== ============= ========== ==== ===== ====== ============ ===== =======
default     lsgan         none       no   yes   1      1.6e-3/2e-4  0.5   0.999
dcgan       nonsaturating none       no   yes   1      2e-4         0.5   0.999
wgan-gp     wasserstein   wgan-gp 10 no   no    5      1e-4         0.0   0.9
sngan       hinge         none       yes  no    1      2e-4         0.5   0.999
lsgan       lsgan         none       no   yes   1      2e-4         0.5   0.999
dragan      nonsaturating dragan 10  no   no    2      1e-4         0.0   0.9
began       began         none       no   no    1      2e-4         0.0   0.9
cramer      cramer        wgan-gp 10 no   no    5      1e-4         0.5   0.9
dfm         nonsaturating none       no   yes   1      1e-4         0.5   0.9
=========== ============= ========== ==== ===== ====== ============ ===== =======

(``default``: G's rate / D's.) Sources: DCGAN, Radford et al. 2016 (Adam 2e-4, beta1 0.5); WGAN-GP,
Gulrajani et al. 2017, Algorithm 1 (lambda 10, n_critic 5, Adam 1e-4,
betas 0/0.9, and no BatchNorm in the critic because the penalty is per
example); SN-GAN, Miyato et al. 2018 with the hinge loss and their
optimizer setting "C" (2e-4, 0.5, 0.999, n_dis 1), which suits a DCGAN-size
D on a CPU budget; LSGAN, Mao et al. 2017 (Adam 2e-4, beta1 0.5).

The recipes of the write-ups the package's users come from (the Japanese
DCGAN tutorials follow them) are presets too, each as close to its
original as the built-in 28x28 digits allow, with the original's known
mistakes corrected; :data:`DESCRIPTIONS` says what each one is and what was
corrected:

* ``keras-dcgan``: jacobgil/keras-dcgan (Dense 1024 and 128x7x7 in G,
  nearest upsampling and 5x5 convolutions, tanh; D of 5x5 convolutions,
  max-pooling and a Dense 1024, no BatchNorm; SGD with Nesterov momentum).
  Its iteration is the Keras original's: ``benchmarks/peers/step_check.py``
  starts both from the same weights and feeds them the same batches and z,
  and every weight changes as in Keras to float32 rounding.
* ``keras-dcgan-notes``: the "Keras DCGAN notes" (3x3 convolutions, ELU
  and upsampling in G; strided 3x3 convolutions without BatchNorm and a
  Dense 2048 in D; Adam 2e-4/0.5 for G and 1e-5/0.1 for D).
* ``chainer-example``: Chainer's own examples/dcgan (Gaussian noise of
  sigma 0.2 in D, BatchNorm without gamma, weight decay 1e-4, batch 50,
  uniform z, G trained on the D step's fakes).
* ``dragan``, ``began``, ``cramer``, ``dfm``, ``minibatch-discrimination``:
  the lines of chainer-gan-lib's ``example.sh`` (pfnet-research, the Chainer
  GAN collection, one updater class per algorithm) with its hyper-parameters
  and its step order (``order='simultaneous'``: G's and D's losses on one
  forward pass, G updated, then D), a 128-d uniform z and batch 64, on the
  package's DCGAN nets (BEGAN: the autoencoder D; Cramér: 256 outputs;
  minibatch discrimination: its layer before the read-out). Each is checked
  against chainer-gan-lib's own updater by ``benchmarks/ganlib_check.py``.
* ``began-paper``: BEGAN with the paper's own nets and optimizer, the
  setting that learns the digits (the ``began`` line does not).
* ``tf-gan``: TensorFlow's DCGAN tutorial (5x5 kernels, LeakyReLU in G,
  dropout 0.3 and no BatchNorm in D, Adam 1e-4 with TensorFlow's default
  beta1 0.9, batch 256).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from gan_trainer.run.checks import OPTIMIZER_SETTINGS
from gan_trainer.run.config import (
    DEFAULT_GEN_LR,
    PRESET_NAMES,
    ConfigError,
    RunConfig,
    preset_options,
)

#: The preset names, in the order of the table (checked against PRESETS by a test).
NAMES = PRESET_NAMES

_DCGAN = RunConfig(preset='dcgan', loss='nonsaturating', reuse_fakes=False,
                   lr=2e-4, beta1=0.5, beta2=0.999, gen_lr=None)

#: The settings every chainer-gan-lib line shares (its train.py): Adam 2e-4/0/0.9, a 128-d
#: uniform z, batch 64, the cross-entropy loss, and its step (G's and D's losses on the
#: same forward pass, G updated, then D).
_GANLIB = _DCGAN.replace(preset='dcgan', n_hidden=128, z_dist='uniform', order='simultaneous',
                         beta1=0.0, beta2=0.9)

# init='glorot': with chainer-gan-lib's N(0, 0.02) weights the digits' narrow
# autoencoder D starts as a constant function of its input, and L1 drives the
# background (exactly -1) into tanh's flat tail before the input's signal grows:
# D never reconstructs the reals and G gets no signal (issue 28, RESULTS.md).
_BEGAN = _GANLIB.replace(preset='began', loss='began', began_gamma=0.5, gen_norm='none',
                         init='glorot')

#: Preset name -> the run it describes (see the module docstring's table).
PRESETS: dict[str, RunConfig] = {
    'default': _DCGAN.replace(preset='default', loss='lsgan', reuse_fakes=True,
                              gen_lr=DEFAULT_GEN_LR),
    'dcgan': _DCGAN,
    'wgan-gp': _DCGAN.replace(preset='wgan-gp', loss='wasserstein', penalty='wgan-gp',
                              penalty_weight=10.0, dis_norm='none', n_dis=5, lr=1e-4,
                              beta1=0.0, beta2=0.9),
    'sngan': _DCGAN.replace(preset='sngan', loss='hinge', spectral_norm=True, dis_norm='none'),
    'lsgan': _DCGAN.replace(preset='lsgan', loss='lsgan'),
    # The original as Keras builds it (benchmarks/peers/keras_dcgan.py; issue 27):
    # Glorot-uniform weights, one BatchNorm in G (after the Dense 6272, each
    # unit over the batch: per channel, G collapsed by iteration 600), Keras'
    # BatchNorm momentum 0.99 and epsilon 1e-3, D's second convolution
    # 'valid', the D step's fakes from G in inference mode (g.predict).
    # dis_lr: D's loss here is the sum of the real and the fake mean, twice
    # the original's one mean over the 256 images, and SGD's step is linear
    # in the gradient, so half the learning rate gives D the original's updates.
    'keras-dcgan': _DCGAN.replace(
        preset='keras-dcgan', batchsize=128, z_dist='uniform', widths=(64, 128), ksize=5,
        gen_upsample='nearest', gen_activation='tanh', gen_fc=1024, gen_project_norm='unit',
        gen_stage_norm=False, init='glorot', bn_decay=0.99, bn_eps=1e-3,
        dis_downsample='max_pool', dis_activation='tanh', dis_fc=1024, dis_norm='none',
        dis_padding='valid', eval_fakes=True,
        separate_batches=False, optimizer='sgd', lr=5e-4, dis_lr=2.5e-4, momentum=0.9,
        nesterov=True),
    'keras-dcgan-notes': _DCGAN.replace(
        preset='keras-dcgan-notes', batchsize=200, n_hidden=64, z_dist='uniform',
        widths=(64, 128), ksize=3, gen_upsample='nearest', gen_activation='elu',
        dis_norm='none', dis_fc=2048, order='gen_first',
        lr=2e-4, beta1=0.5, dis_lr=1e-5, dis_beta1=0.1),
    'chainer-example': _DCGAN.replace(
        preset='chainer-example', batchsize=50, z_dist='uniform', widths=(64, 128),
        dis_noise=0.2, dis_bn_gamma=False, weight_decay=1e-4, reuse_fakes=True),
    'tf-gan': _DCGAN.replace(
        preset='tf-gan', batchsize=256, widths=(64, 128), ksize=5,
        gen_activation='leaky_relu', dis_norm='none', dis_dropout=0.3,
        lr=1e-4, beta1=0.9, eps=1e-7, reuse_fakes=True),
    # chainer-gan-lib's example.sh lines, on its loop (order 'simultaneous').
    'dragan': _GANLIB.replace(preset='dragan', penalty='dragan', penalty_weight=10.0,
                              dis_norm='none', n_dis=2, lr=1e-4),
    'began': _BEGAN,
    # The paper's nets where chainer-gan-lib's line does not learn the digits: gamma 1
    # and k_0 0.3 from the bisection of issue 28 (RESULTS.md, "BEGAN's G on the digits").
    'began-paper': _BEGAN.replace(preset='began-paper', arch='began', base_width=16,
                                  batchsize=16, lr=1e-4, beta1=0.5, beta2=0.999,
                                  began_gamma=1.0, began_k0=0.3),
    'cramer': _GANLIB.replace(preset='cramer', loss='cramer', dis_out_dim=256,
                              penalty='wgan-gp', penalty_weight=10.0, cramer_penalty='ganlib',
                              dis_norm='none', n_dis=5, lr=1e-4, beta1=0.5),
    'dfm': _GANLIB.replace(preset='dfm', dfm=True, lr=1e-4, beta1=0.5),
    'minibatch-discrimination': _GANLIB.replace(
        preset='minibatch-discrimination', minibatch_discrimination=True, dis_bn_gamma=False,
        lr=1e-4),
}


#: Preset name -> what it is, and where it departs from its source (and why).
DESCRIPTIONS: dict[str, str] = {
    'default': "the default run: the DCGAN nets and optimizers with LSGAN's least-squares "
               "loss, G trained on the D step's fakes (one G forward per iteration, so more "
               "iterations in the same time) at eight times D's learning rate (1.6e-3); the "
               "best three-seed FID of benchmarks/recipes.py in the default run's time",
    'dcgan': 'Radford et al. 2016: Adam 2e-4/0.5, BatchNorm in G and D, transposed '
             'convolutions',
    'wgan-gp': 'Gulrajani et al. 2017, Algorithm 1: the critic without BatchNorm, a gradient '
               'penalty of 10, 5 critic steps per G step, Adam 1e-4/0/0.9',
    'sngan': 'Miyato et al. 2018: spectral norm in D (no BatchNorm), the hinge loss, their '
             'setting "C" (Adam 2e-4/0.5/0.999, one D step)',
    'lsgan': 'Mao et al. 2017: least-squares loss, otherwise the DCGAN recipe',
    'keras-dcgan': 'jacobgil/keras-dcgan: Dense 1024 + tanh and 128x7x7 in G, nearest '
                   'upsampling + 5x5 convs with tanh; D of 5x5 convs + tanh + 2x2 max-pooling '
                   'and a Dense 1024, one real+fake batch (no BatchNorm in D); SGD with '
                   'Nesterov momentum 0.9, lr 5e-4, batch 128, uniform z; as Keras builds '
                   "it: Glorot-uniform weights, G's one BatchNorm per unit after the Dense "
                   "6272 (momentum 0.99, epsilon 1e-3), D's second conv 'valid', the D "
                   "step's fakes from G in inference mode (predict()). Differs only where "
                   'the step is the same: D is frozen in the G step by ops.frozen (Keras '
                   'froze it through the order of two compile calls), the cross-entropy '
                   'takes logits (not clipped sigmoids)',
    'keras-dcgan-notes': 'the Keras DCGAN notes: 3x3 convs, ELU and nearest upsampling in G; '
                         'strided 3x3 convs without BatchNorm (the author dropped it after it '
                         'collapsed his runs) and a Dense 2048 in D; Adam 2e-4/0.5 for G and '
                         '1e-5/0.1 for D, G step first, batch 200, 64-d uniform z. Corrected: '
                         'data in [-1, 1] for the tanh G (not [0, 1]), BatchNorm + ELU after '
                         "G's first conv, 'same' padding, D's channels from the data, fresh "
                         'z in each step, LeakyReLU slope 0.2 (Keras: 0.3)',
    'chainer-example': "Chainer's examples/dcgan: Gaussian noise of sigma 0.2 on D's input and "
                       'hidden layers, BatchNorm in D without gamma, Adam 2e-4/0.5 with weight '
                       'decay 1e-4, batch 50, uniform z, G trained on the fakes of the D step. '
                       'Corrected: the G step runs D again after its update (the example '
                       "backpropagated through D's graph of before the update), D's step "
                       "builds no graph into G, the noise comes from D's saved random state "
                       '(so runs repeat and resume), tanh and data in [-1, 1]',
    'tf-gan': "TensorFlow's DCGAN tutorial: 5x5 kernels, LeakyReLU in G, dropout 0.3 and no "
              "BatchNorm in D, Adam 1e-4 with TensorFlow's defaults (beta1 0.9, eps 1e-7), "
              'batch 256, G trained on the D step\'s fakes. Kept: beta1 0.9 (the DCGAN paper '
              'found 0.5 steadier). Corrected: the two steps alternate instead of running '
              'at once, every batch is full (the last partial batch pitted 96 reals '
              'against 256 fakes), LeakyReLU slope 0.2 (Keras: 0.3)',
    'dragan': "chainer-gan-lib's dragan line (Kodali et al. 2017): the cross-entropy loss with "
              "DRAGAN's gradient penalty of 10 around perturbed real images, D without "
              'BatchNorm, 2 D steps per G step, Adam 1e-4/0/0.9; its step (G and D on one '
              'forward pass), 128-d uniform z',
    'began': "chainer-gan-lib's began line (Berthelot et al. 2017): an autoencoder D whose "
             'reconstruction error is its output, gamma 0.5 (k_t and the convergence measure '
             'in the log), G without BatchNorm, Adam 2e-4/0/0.9; its step, 128-d uniform z. '
             'Differs: Glorot-uniform weights (chainer-gan-lib: N(0, 0.02), with which the '
             "digits' narrow autoencoder never learns to reconstruct)",
    'began-paper': "BEGAN with the paper's own nets (Berthelot et al. 2017, Fig. 1: ELU, "
                   'repeated 3x3 convs, nearest upsampling, an autoencoder D; n = 16 for '
                   "the digits) and its Adam 1e-4/0.5/0.999 and batch 16, on chainer-gan-lib's "
                   'step and z; draws digits where the began line does not. Differs, measured '
                   'on the digits: gamma 1 (paper 0.3 to 1; with 0.5 k_t stays at 0 and '
                   "G's samples shrink to blobs) and a starting k_t of 0.3 (paper 0); no "
                   'learning-rate decay',
    'cramer': "chainer-gan-lib's cramer line (Bellemare et al. 2017): a critic of 256 outputs, "
              'the energy distance over two fake batches, the gradient penalty of 10 on the '
              'critic, differentiated as chainer-gan-lib does (df/dh held constant; the exact '
              'gradient diverges on the digits: --cramer_penalty exact), 5 D steps per G '
              'step, Adam 1e-4/0.5/0.9; its step, 128-d uniform z',
    'dfm': "chainer-gan-lib's dfm line (Warde-Farley & Bengio 2017): a 10-layer denoiser of D's "
           "features trained beside D guides G (weight 0.03, noise 1), Adam 1e-4/0.5/0.9; its "
           'step, 128-d uniform z. Differs: the denoiser is 512 wide (chainer-gan-lib: '
           "2048, its D's feature count) and reads the features D's read-out sees",
    'minibatch-discrimination': "chainer-gan-lib's minibatch_discrimination line (Salimans "
                                'et al. 2016): 100 kernels of 5 dimensions before D\'s '
                                'read-out, BatchNorm without gamma in D, Adam 1e-4/0/0.9; its '
                                'step, 128-d uniform z',
}


def get_preset(name: str) -> RunConfig:
    """Returns preset ``name``.

    Raises:
        ConfigError: For an unknown name; the message lists the valid ones.
    """
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError('preset', f'unknown preset {name!r}; valid presets: '
                                    f'{", ".join(PRESETS)}') from None


def preset_settings(name: str) -> dict[str, Any]:
    """The options preset ``name`` sets (:func:`~gan_trainer.run.config.preset_options`),
    with its name."""
    preset = get_preset(name)
    return {**{k: getattr(preset, k) for k in preset_options()}, 'preset': name}


def apply_preset(config: RunConfig, name: str, **explicit: Any) -> RunConfig:
    """``config`` with preset ``name``'s settings, then the ``explicit`` options over them.

    ``explicit`` values that are ``None`` count as not given. A shared
    optimizer setting given explicitly (``--lr 1e-3``) is both networks'
    unless a network's own is given too: the preset's own value for one
    network (the default recipe's ``gen_lr``) gives way to it, as it does to
    another optimizer (``--optimizer sgd``: SGD's defaults for both).
    """
    settings = preset_settings(name)
    new_optimizer = explicit.get('optimizer') not in (None, settings.get('optimizer'))
    for setting in OPTIMIZER_SETTINGS:
        if new_optimizer or explicit.get(setting) is not None:
            for net in ('gen', 'dis'):
                if explicit.get(f'{net}_{setting}') is None:
                    settings[f'{net}_{setting}'] = None
    merged = dataclasses.replace(config, **settings)
    return merged.replace(**explicit)


def preset_table() -> str:
    """The presets as a Markdown table (docs/command.md's), from :data:`DESCRIPTIONS`."""
    rows = ['| preset | what it is (and what was corrected) |', '|---|---|']
    rows += [f'| `{name}` | {DESCRIPTIONS[name]} |' for name in PRESETS]
    return '\n'.join(rows) + '\n'
