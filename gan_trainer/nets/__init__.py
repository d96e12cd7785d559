"""Generator/discriminator architectures, chosen by name from a config dict.

Each architecture is a ``(Generator, Discriminator)`` pair in :data:`NETS`.
A net's ``config()`` gives the JSON-able constructor kwargs, so a snapshot or
a CLI can rebuild it with :func:`build_generator` /
:func:`build_discriminator`; the optional ``'arch'`` key picks the pair
(``'dcgan'`` when absent, which is how DCGAN configs are written;
conditional configs carry ``'arch': 'conditional'``). Adding an
architecture is one more dict entry.
"""

import chainer

from gan_trainer.nets._blocks import default_n_stages, resolve_widths
from gan_trainer.nets._layers import ACTIVATIONS, DOWNSAMPLES, UPSAMPLES
from gan_trainer.nets.conditional import ConditionalDiscriminator, ConditionalGenerator
from gan_trainer.nets.dcgan import Discriminator, Generator
from gan_trainer.nets.resnet import ResNetDiscriminator, ResNetGenerator

#: Architecture name -> (generator class, discriminator class).
NETS = {
    'dcgan': (Generator, Discriminator),
    'conditional': (ConditionalGenerator, ConditionalDiscriminator),
    'resnet': (ResNetGenerator, ResNetDiscriminator),
}


def call_net(net: chainer.Link, x, t=None):
    """``net(x)``, or ``net(x, t)`` for a conditional net given labels ``t``."""
    return net(x) if t is None else net(x, t)


def dis_logits(dis: chainer.Link, x, t=None) -> chainer.Variable:
    """D's logits ``(B,)`` for ``B`` images ``x``: ``D(x)`` (or ``D(x, t)``), checked.

    A discriminator returns one logit per image, ``(B,)`` or ``(B, 1)``.
    Anything else (``(B, 2)``, a map ``(B, 1, 4, 4)``) would otherwise be
    flattened into more logits than images and trained on silently, against
    the wrong targets.

    Raises:
        ValueError: Naming D's class and the shape it returned.
    """
    y = call_net(dis, x, t)
    n = len(x)
    if y.shape not in ((n,), (n, 1)):
        raise ValueError(f'the discriminator ({type(dis).__name__}) returned logits of shape '
                         f'{tuple(y.shape)} for {n} images: it must return one logit per image, '
                         f'({n},) or ({n}, 1)')
    return chainer.functions.flatten(y)


def _lookup(config: dict) -> tuple[type, type, dict]:
    kwargs = dict(config)  # never mutate the caller's dict
    arch = kwargs.pop('arch', 'dcgan')
    if arch not in NETS:
        raise ValueError(f'unknown arch {arch!r}; valid ones are {sorted(NETS)}')
    gen_cls, dis_cls = NETS[arch]
    return gen_cls, dis_cls, kwargs


def build_generator(config: dict) -> chainer.Chain:
    """Builds a generator from a config dict.

    Args:
        config (dict): Constructor kwargs, e.g. ``gen.config()``, plus an
            optional ``'arch'`` key naming an entry of :data:`NETS`
            (default ``'dcgan'``). The dict is not modified.

    Returns:
        chainer.Chain: A freshly initialized generator.

    Raises:
        ValueError: If ``config['arch']`` is not in :data:`NETS`.
    """
    gen_cls, _, kwargs = _lookup(config)
    return gen_cls(**kwargs)


def build_discriminator(config: dict) -> chainer.Chain:
    """Builds a discriminator from a config dict.

    Args:
        config (dict): Constructor kwargs, e.g. ``dis.config()``, plus an
            optional ``'arch'`` key naming an entry of :data:`NETS`
            (default ``'dcgan'``). The dict is not modified.

    Returns:
        chainer.Chain: A freshly initialized discriminator.

    Raises:
        ValueError: If ``config['arch']`` is not in :data:`NETS`.
    """
    _, dis_cls, kwargs = _lookup(config)
    return dis_cls(**kwargs)


__all__ = [
    'ACTIVATIONS',
    'DOWNSAMPLES',
    'NETS',
    'UPSAMPLES',
    'ConditionalDiscriminator',
    'ConditionalGenerator',
    'Discriminator',
    'Generator',
    'ResNetDiscriminator',
    'ResNetGenerator',
    'build_discriminator',
    'build_generator',
    'default_n_stages',
    'resolve_widths',
]
