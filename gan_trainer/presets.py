"""Presets: the settings each GAN paper trained with, by name.

A preset is a plain dict of training options; :func:`get_preset` returns a
copy. ``examples/train_dcgan.py --preset NAME`` starts from it, and any flag
given explicitly overrides the preset's value. Every preset trains with the
same :class:`~gan_trainer.GANUpdater` loop; only these options differ.

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

import copy

_BASE = {
    'loss': 'nonsaturating',
    'penalty': 'none',
    'penalty_weight': None,  # the penalty's own default (WGAN-GP 10, R1 gamma 10)
    'sn': False,
    'dis_norm': 'batch',
    'n_dis': 1,
    'lr': 2e-4,
    'beta1': 0.5,
    'beta2': 0.999,
}

#: Preset name -> training options (see the module docstring's table).
PRESETS: dict[str, dict] = {
    'dcgan': dict(_BASE),
    'wgan-gp': dict(_BASE, loss='wasserstein', penalty='wgan-gp', penalty_weight=10.0,
                    dis_norm='none', n_dis=5, lr=1e-4, beta1=0.0, beta2=0.9),
    'sngan': dict(_BASE, loss='hinge', sn=True, dis_norm='none'),
    'lsgan': dict(_BASE, loss='lsgan'),
}


def get_preset(name: str) -> dict:
    """Returns a copy of the options of preset ``name``.

    Raises:
        ValueError: for an unknown name; the message lists the valid ones.
    """
    try:
        return copy.deepcopy(PRESETS[name])
    except KeyError:
        raise ValueError(
            f'unknown preset {name!r}; valid presets: {", ".join(PRESETS)}') from None


def apply_preset(name: str, explicit: dict) -> dict:
    """The preset's options, overridden by every ``explicit`` value not ``None``.

    Args:
        name: Preset name.
        explicit: Options the user set (``None`` means "not given").

    Returns:
        The merged options (the preset's keys plus any extra explicit ones).
    """
    options = get_preset(name)
    options.update({k: v for k, v in explicit.items() if v is not None})
    return options
