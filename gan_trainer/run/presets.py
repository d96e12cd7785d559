"""Presets: the settings each GAN paper trained with, as RunConfig values.

``PRESETS[name]`` is a complete :class:`~gan_trainer.run.RunConfig`; a run
starts from one (``--preset NAME``, ``dcgan`` by default) and any option
given explicitly overrides it (:func:`apply_preset`). Every preset trains
with the same :class:`~gan_trainer.GANUpdater` loop; only these options
differ.

=========== ============= ========== ==== ===== ====== ===== ===== =======
preset      loss          penalty    SN   D BN  n_dis  lr    beta1 beta2
=========== ============= ========== ==== ===== ====== ===== ===== =======
dcgan       nonsaturating none       no   yes   1      2e-4  0.5   0.999
wgan-gp     wasserstein   wgan-gp 10 no   no    5      1e-4  0.0   0.9
sngan       hinge         none       yes  no    1      2e-4  0.5   0.999
lsgan       lsgan         none       no   yes   1      2e-4  0.5   0.999
=========== ============= ========== ==== ===== ====== ===== ===== =======

Sources: DCGAN, Radford et al. 2016 (Adam 2e-4, beta1 0.5); WGAN-GP,
Gulrajani et al. 2017, Algorithm 1 (lambda 10, n_critic 5, Adam 1e-4,
betas 0/0.9, and no BatchNorm in the critic because the penalty is per
example); SN-GAN, Miyato et al. 2018 with the hinge loss and their
optimizer setting "C" (2e-4, 0.5, 0.999, n_dis 1), which suits a DCGAN-size
D on a CPU budget; LSGAN, Mao et al. 2017 (Adam 2e-4, beta1 0.5).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from gan_trainer.run.config import ConfigError, RunConfig, preset_options

#: The preset names, in the order of the table (checked against PRESETS by a test).
NAMES = ('dcgan', 'wgan-gp', 'sngan', 'lsgan')

_DCGAN = RunConfig()

#: Preset name -> the run it describes (see the module docstring's table).
PRESETS: dict[str, RunConfig] = {
    'dcgan': _DCGAN,
    'wgan-gp': _DCGAN.replace(preset='wgan-gp', loss='wasserstein', penalty='wgan-gp',
                              penalty_weight=10.0, dis_norm='none', n_dis=5, lr=1e-4,
                              beta1=0.0, beta2=0.9),
    'sngan': _DCGAN.replace(preset='sngan', loss='hinge', spectral_norm=True, dis_norm='none'),
    'lsgan': _DCGAN.replace(preset='lsgan', loss='lsgan'),
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

    ``explicit`` values that are ``None`` count as not given.
    """
    settings = preset_settings(name)
    merged = dataclasses.replace(config, **settings)
    return merged.replace(**explicit)
