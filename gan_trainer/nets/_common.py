"""Widths, initialization, batch and spectral normalization of the DCGAN nets.

The pieces every layer stack of :mod:`._blocks` shares: how an image side
becomes a list of stage widths (:func:`resolve_widths`), the paper's weight
and batch-norm initialization, and spectral normalization of a whole net.
"""

from __future__ import annotations

from collections.abc import Sequence

import chainer
import chainer.links as L
from chainer import initializers
from chainer.link_hooks import SpectralNormalization

from gan_trainer import ops

# The DCGAN paper: "All weights were initialized from a zero-centered Normal
# distribution with standard deviation 0.02."
WEIGHT_STD = 0.02

# Smallest start side the default rule aims for; 4x4 matches the paper's
# 64x64 generator (4x4x1024 first map). Explicit widths may go down to 2x2.
_MIN_START_SIDE = 4
_MIN_START_SIDE_EXPLICIT = 2

#: Normalizations D's hidden convs accept: batch norm (the DCGAN paper) or
#: none (WGAN-GP critics, whose gradient penalty is per example, and the
#: SNGAN discriminators, which rely on spectral normalization alone).
NORMS = ('batch', 'none')

#: How G's first normalization (``bn0``, after the linear projection) pools
#: its statistics: per channel of the reshaped map, over the batch and the
#: ``s0 x s0`` positions (the DCGAN paper's reference code, PyTorch's and
#: Chainer's examples), or per unit of the projection, over the batch alone
#: (Keras' ``BatchNormalization`` after a ``Dense`` layer: keras-dcgan and
#: TensorFlow's DCGAN tutorial).
PROJECT_NORMS = ('channel', 'unit')

# Links whose weight matrix spectral normalization rescales.
_SN_LINKS = (L.Convolution2D, L.Linear, L.EmbedID)


class NormalAroundOne(chainer.initializer.Initializer):
    """N(1, scale) initializer for batch-norm scales.

    Chainer's :class:`~chainer.initializers.Normal` has no mean argument.
    Radford et al.'s reference code draws BN gains from N(1, 0.02) rather
    than setting them to exactly 1, and we follow it: the small jitter is
    harmless and keeps our nets comparable with the published ones.
    """

    def __init__(self, scale: float = WEIGHT_STD, dtype=None):
        super().__init__(dtype)
        self._normal = initializers.Normal(scale, dtype)

    def __call__(self, array):
        self._normal(array)
        array += 1


#: How the nets' weights start: ``'normal'``, the DCGAN paper's N(0, 0.02)
#: for every conv, deconv and linear weight and N(1, 0.02) for batch-norm
#: scales; or ``'glorot'``, Keras' defaults (Glorot-uniform kernels, batch-norm
#: scales 1), which the Keras and TensorFlow write-ups train with. Biases start
#: at 0 either way.
INITS = ('normal', 'glorot')


def weight_initializer(init: str) -> chainer.initializer.Initializer:
    """The initializer of conv, deconv and linear weights for ``init`` (:data:`INITS`).

    Glorot-uniform draws from ``U(-a, a)``, ``a = sqrt(6 / (fan_in + fan_out))``
    with the fans of Keras (a kernel's receptive field times its input or
    output channels), so a layer starts with the spread it has in Keras: a
    standard deviation ``a / sqrt(3)`` near the DCGAN's 0.02 for the wide
    layers of the write-ups' nets (0.020 for a 5x5 conv from 64 to 128
    channels, 0.017 for keras-dcgan's Dense 1024 -> 6,272) and about twice
    it for the narrow ones (0.042 for its Dense 100 -> 1024, 0.035 for a
    5x5 conv to or from one channel, 0.044 for the logit's Dense 1024 -> 1).
    """
    if init == 'glorot':
        return initializers.GlorotUniform()
    return initializers.Normal(WEIGHT_STD)


#: Chainer's batch-norm defaults: the running averages' decay and the
#: variance's epsilon (Keras': momentum 0.99, epsilon 1e-3).
BN_DECAY, BN_EPS = 0.9, 2e-5


def batch_norm(width: int, *, use_gamma: bool = True, init: str = 'normal',
               decay: float = BN_DECAY, eps: float = BN_EPS) -> L.BatchNormalization:
    """Returns DCGAN's batch normalization for ``width`` channels.

    ``use_gamma=False`` leaves out the learned scale, as Chainer's DCGAN
    example does in D (its shift ``beta`` stays). The scale starts at
    N(1, 0.02) (``init='normal'``) or at exactly 1 (``'glorot'``, Keras).
    ``decay`` is the running averages' (Keras' ``momentum``), ``eps`` is
    added to the variance.
    """
    if not use_gamma:
        return ops.BatchNormalization(width, use_gamma=False, decay=decay, eps=eps)
    if init == 'glorot':
        return ops.BatchNormalization(width, decay=decay, eps=eps)
    return ops.BatchNormalization(width, initial_gamma=NormalAroundOne(WEIGHT_STD),
                                  decay=decay, eps=eps)


def default_n_stages(size: int) -> int:
    """Returns how many stride-2 stages the default widths use for ``size``.

    The rule is: the largest ``n`` such that ``size`` is divisible by
    ``2**n`` and the start side ``size // 2**n`` is still at least 4. Halving
    further would either leave a fractional side or go below 4x4, so the
    start side ends up in 4..7 (or is odd, e.g. 9 for 36): 28 -> 2 stages
    from 7x7 (the classic MNIST DCGAN), 32 -> 3 from 4x4, 64 -> 4 from 4x4
    (the paper's LSUN generator), 128 -> 5 from 4x4.

    Args:
        size (int): Image side in pixels.

    Returns:
        int: The number of stages, 0 when ``size`` is odd or below 8.
    """
    n = 0
    while size % 2 ** (n + 1) == 0 and size // 2 ** (n + 1) >= _MIN_START_SIDE:
        n += 1
    return n


def resolve_widths(
    size: int, widths: Sequence[int] | None = None, *, base_width: int = 64
) -> tuple[int, ...]:
    """Validates ``size`` against ``widths`` and returns D-order widths.

    Args:
        size (int): Image side in pixels.
        widths (sequence of int or None): D's conv widths from the input
            side; one stride-2 stage each. ``None`` picks
            :func:`default_n_stages` stages of widths
            ``base_width * 2**i``, doubling with depth as in the paper.
        base_width (int): Width of D's first conv (and G's last hidden
            deconv) when ``widths`` is ``None``.

    Returns:
        tuple of int: The widths, from D's input side.

    Raises:
        ValueError: If ``size`` cannot be halved ``len(widths)`` times into
            an integer side of at least 2 (4 for the default widths), or if
            a width is not a positive integer.
    """
    if size < 1 or int(size) != size:
        raise ValueError(f'size must be a positive integer, got {size!r}')
    if widths is None:
        if base_width < 1 or int(base_width) != base_width:
            raise ValueError(f'base_width must be a positive integer, got {base_width!r}')
        n = default_n_stages(size)
        if n == 0:
            raise ValueError(
                f'size {size} cannot be built with the default widths: they '
                f'need an even size of at least {2 * _MIN_START_SIDE}'
            )
        return tuple(base_width * 2**i for i in range(n))

    widths = tuple(widths)
    if not widths or any(w < 1 or int(w) != w for w in widths):
        raise ValueError(
            f'widths must be a non-empty list of positive integers, got {list(widths)!r}'
        )
    n = len(widths)
    if size % 2**n or size // 2**n < _MIN_START_SIDE_EXPLICIT:
        raise ValueError(
            f'size {size} cannot be built with {n} stride-2 stages '
            f'(widths {list(widths)}): use a multiple of {2**n} that is at '
            f'least {2**n * _MIN_START_SIDE_EXPLICIT}, or fewer widths'
        )
    return tuple(int(w) for w in widths)


def add_spectral_norm(chain: chainer.Chain) -> None:
    """Adds spectral normalization to every conv, linear and embed link.

    Each link gets its own :class:`chainer.link_hooks.SpectralNormalization`
    (one power iteration per forward pass in train mode, as in Miyato et
    al. 2018), which divides the weight by its largest singular value
    before every forward pass. The hook registers the power iteration's
    vector as the persistent ``W_u`` of the link, so it is saved with
    ``save_npz`` and loaded back: a D rebuilt from its ``config()`` must
    get the hook before ``load_npz`` (the constructors take care of it).
    ``W_u`` starts from NumPy's (or CuPy's) global RNG.
    """
    for link in chain.links(skipself=True):
        if isinstance(link, _SN_LINKS):
            link.add_hook(SpectralNormalization())
