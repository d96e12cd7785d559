"""Generator/discriminator architectures, chosen by name from a config dict.

Each architecture is a ``(Generator, Discriminator)`` pair in :data:`NETS`.
A net's ``config()`` gives the JSON-able constructor kwargs, so a snapshot or
a CLI can rebuild it with :func:`build_generator` /
:func:`build_discriminator`; the optional ``'arch'`` key picks the pair
(``'dcgan'`` when absent, which is how DCGAN configs are written;
conditional configs carry ``'arch': 'conditional'``). Adding an
architecture is one more dict entry; the options of the DCGAN nets are
declared once, in :mod:`gan_trainer.nets.options`.
"""

import chainer
import chainer.functions as F

from gan_trainer.nets._blocks import default_n_stages, resolve_widths
from gan_trainer.nets._layers import ACTIVATIONS, DOWNSAMPLES, UPSAMPLES
from gan_trainer.nets.autoencoder import AutoencoderDiscriminator
from gan_trainer.nets.began import BEGANDiscriminator, BEGANGenerator
from gan_trainer.nets.conditional import ConditionalDiscriminator, ConditionalGenerator
from gan_trainer.nets.dcgan import Discriminator, Generator
from gan_trainer.nets.options import DiscriminatorOptions, GeneratorOptions
from gan_trainer.nets.resnet import ResNetDiscriminator, ResNetGenerator

#: Architecture name -> (generator class, discriminator class).
NETS = {
    'dcgan': (Generator, Discriminator),
    'conditional': (ConditionalGenerator, ConditionalDiscriminator),
    'resnet': (ResNetGenerator, ResNetDiscriminator),
    # BEGAN: the DCGAN G (usually with norm='none') and an autoencoder D.
    'autoencoder': (Generator, AutoencoderDiscriminator),
    # BEGAN's own nets (the paper's Fig. 1): ELU, repeated 3x3 convs, nearest upsampling.
    'began': (BEGANGenerator, BEGANDiscriminator),
}


def call_net(net: chainer.Link, x, t=None):
    """``net(x)``, or ``net(x, t)`` for a conditional net given labels ``t``."""
    return net(x) if t is None else net(x, t)


def read_outputs(y):
    """D's outputs as the losses read them: ``(B,)`` for one number per image, else ``(B, K)``.

    A D's ``(B, 1)`` (or ``(B,)``) logits become ``(B,)``; a Cramér GAN
    critic's ``(B, K)`` vectors stay as they are.
    """
    return y if y.ndim == 2 and y.shape[1] > 1 else F.flatten(y)


def dis_outputs(dis: chainer.Link, x, t=None, *, vectors: bool = False):
    """``D(x)`` (or ``D(x, t)``) for ``B`` images, checked, as the losses read them.

    A discriminator returns one number per image, ``(B,)`` or ``(B, 1)``
    (a logit, or BEGAN's reconstruction error), or, for a loss that
    compares vectors (``vectors``: Cramér's critic), ``(B, K)``. Anything
    else (``(B, 2)`` logits, a map ``(B, 1, 4, 4)``) would be flattened into
    more numbers than images and trained on silently, against the wrong
    targets. :func:`read_outputs` then reads them.

    Raises:
        ValueError: Naming D's class and the shape it returned.
    """
    return checked_outputs(call_net(dis, x, t), len(x), dis, vectors=vectors)


def checked_outputs(y, n: int, dis: chainer.Link, *, vectors: bool = False):
    """:func:`read_outputs` of ``y``, D's outputs for ``n`` images, after :func:`dis_outputs`' check."""
    if not (y.shape in ((n,), (n, 1)) or (vectors and y.ndim == 2 and y.shape[0] == n)):
        expected = f'({n},) or ({n}, 1)' + (f', or a vector per image ({n}, K)' if vectors else '')
        raise ValueError(f'the discriminator ({type(dis).__name__}) returned outputs of shape '
                         f'{tuple(y.shape)} for {n} images: it must return one number per '
                         f'image, {expected}')
    return read_outputs(y)


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
    'AutoencoderDiscriminator',
    'BEGANDiscriminator',
    'BEGANGenerator',
    'ConditionalDiscriminator',
    'ConditionalGenerator',
    'Discriminator',
    'DiscriminatorOptions',
    'Generator',
    'GeneratorOptions',
    'ResNetDiscriminator',
    'ResNetGenerator',
    'build_discriminator',
    'build_generator',
    'call_net',
    'checked_outputs',
    'default_n_stages',
    'dis_outputs',
    'read_outputs',
    'resolve_widths',
]
