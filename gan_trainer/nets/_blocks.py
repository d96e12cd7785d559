"""The DCGAN layer stacks, shared by :mod:`.dcgan` and :mod:`.conditional`.

:class:`GeneratorBase` holds G's linear projection of the (possibly
label-augmented) latent code and its stride-2 deconvolutions;
:class:`DiscriminatorBase` holds D's stride-2 convolutions and linear
read-out. The public nets subclass them and only add what they feed in
(``z``, ``z`` + a label embedding, one-hot label maps) and what they read
out (a logit, a logit plus a projection). Keeping the stacks here, with
their parameter names (``project``, ``bn0``, ``deconvs/i``, ``bns/i``,
``convs/i``, ``out``), is what lets every variant load snapshots of the
same layout. See :mod:`.dcgan` for the architecture and its references.
"""

from collections.abc import Callable, Sequence

import chainer
import chainer.functions as F
import chainer.links as L
from chainer import initializers
from chainer.link_hooks import SpectralNormalization

from gan_trainer import ops

# The DCGAN paper: "All weights were initialized from a zero-centered Normal
# distribution with standard deviation 0.02."
WEIGHT_STD = 0.02

# ksize -> padding that makes a stride-2 conv halve an even side exactly
# (and, with ``outsize`` for ksize 5, a stride-2 deconv double it exactly).
# ksize 4 is the Chainer/PyTorch DCGAN choice, 5 the paper's and TensorFlow's.
_PADS = {4: 1, 5: 2}

# Smallest start side the default rule aims for; 4x4 matches the paper's
# 64x64 generator (4x4x1024 first map). Explicit widths may go down to 2x2.
_MIN_START_SIDE = 4
_MIN_START_SIDE_EXPLICIT = 2

#: Normalizations D's hidden convs accept: batch norm (the DCGAN paper) or
#: none (WGAN-GP critics, whose gradient penalty is per example, and the
#: SNGAN discriminators, which rely on spectral normalization alone).
NORMS = ('batch', 'none')

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


def batch_norm(width: int) -> L.BatchNormalization:
    """Returns DCGAN's batch normalization for ``width`` channels."""
    return ops.BatchNormalization(width, initial_gamma=NormalAroundOne(WEIGHT_STD))


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


def pad_for(ksize: int) -> int:
    """Returns the padding of a stride-2 stage with kernel side ``ksize``.

    Raises:
        ValueError: If ``ksize`` is not 4 or 5.
    """
    if ksize not in _PADS:
        raise ValueError(
            f'ksize must be one of {sorted(_PADS)} so that each stride-2 '
            f'stage exactly halves/doubles the side, got {ksize!r}'
        )
    return _PADS[ksize]


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


def _norm_then(norm: chainer.Link, h, norm_args, activation: str):
    """``activation(norm(h, *norm_args))``, in one node for the package's batch norm."""
    if isinstance(norm, ops.BatchNormalization):
        return norm(h, *norm_args, activation=activation, slope=0.2)
    h = norm(h, *norm_args)
    return F.relu(h) if activation == 'relu' else ops.leaky_relu(h, slope=0.2)


class GeneratorBase(chainer.Chain):
    """G's layers: a linear projection, then stride-2 deconvolutions.

    The projection maps an ``n_in``-vector to a ``widths[-1]`` x ``s0`` x
    ``s0`` map (``s0 = size // 2**len(widths)``); each deconvolution
    doubles the side and steps down the reversed widths; the last maps to
    ``channels``. Every hidden layer is followed by a normalization link
    built by ``make_norm(width)`` (``bn0`` after the projection, ``bns/i``
    after deconvolution ``i``) and ReLU; the output goes through tanh.

    Args:
        size, channels, n_hidden, widths, base_width, ksize: As in
            :class:`~gan_trainer.nets.Generator`.
        n_in (int): Input size of the projection: ``n_hidden`` plus
            whatever the subclass concatenates to ``z``.
        make_norm (callable): ``width -> link``; the link is called as
            ``norm(h, *norm_args)`` with the ``norm_args`` given to
            :meth:`generate`.
    """

    def __init__(
        self,
        *,
        size: int,
        channels: int,
        n_hidden: int,
        widths: Sequence[int] | None,
        base_width: int,
        ksize: int,
        n_in: int,
        make_norm: Callable[[int], chainer.Link] = batch_norm,
    ):
        super().__init__()
        pad = pad_for(ksize)
        self.widths = resolve_widths(size, widths, base_width=base_width)
        self.size = size
        self.channels = channels
        self.n_hidden = n_hidden
        self.ksize = ksize
        n = len(self.widths)
        self.start_side = size // 2**n
        w = initializers.Normal(WEIGHT_STD)
        # G-order widths: deepest (smallest map) first, then `channels`.
        g_widths = self.widths[::-1] + (channels,)
        # The creation order fixes which random draws each weight gets, so
        # seeded nets stay the same across refactors: keep it.
        with self.init_scope():
            self.project = L.Linear(n_in, g_widths[0] * self.start_side**2, initialW=w)
            self.bn0 = make_norm(g_widths[0])
            deconvs, bns = [], []
            side = self.start_side
            for i in range(n):
                side *= 2
                deconvs.append(
                    ops.Deconvolution2D(
                        g_widths[i],
                        g_widths[i + 1],
                        ksize,
                        stride=2,
                        pad=pad,
                        # ksize 5 / pad 2 would give 2 * side - 1 without it.
                        outsize=(side, side),
                        initialW=w,
                    )
                )
                if i < n - 1:  # no normalization on the output layer (the paper)
                    bns.append(make_norm(g_widths[i + 1]))
            self.deconvs = chainer.ChainList(*deconvs)
            self.bns = chainer.ChainList(*bns)

    def config(self) -> dict:
        """Returns the JSON-able constructor kwargs of the layer stack."""
        return {
            'size': self.size,
            'channels': self.channels,
            'n_hidden': self.n_hidden,
            'widths': list(self.widths),
            'ksize': self.ksize,
        }

    def check_z(self, z) -> chainer.Variable:
        """Returns ``z`` as ``(B, n_hidden)``, accepting ``(B, n_hidden, 1, 1)``.

        Raises:
            ValueError: If ``z`` has another shape.
        """
        if z.shape[1:] not in ((self.n_hidden,), (self.n_hidden, 1, 1)):
            raise ValueError(
                f'z must have shape (B, {self.n_hidden}) or '
                f'(B, {self.n_hidden}, 1, 1), got {tuple(z.shape)}'
            )
        return F.reshape(z, (z.shape[0], self.n_hidden))

    def generate(self, h, *norm_args) -> chainer.Variable:
        """Runs the stack on ``h`` of shape ``(B, n_in)``.

        Returns:
            chainer.Variable: Images ``(B, channels, size, size)`` in [-1, 1].
        """
        s0 = self.start_side
        # (B, n_in) -> (B, widths[-1] * s0 * s0) -> (B, widths[-1], s0, s0).
        # The normalization runs after the reshape, per channel as in the
        # conv layers (and the TensorFlow DCGAN), not per each of the
        # s0 * s0 positions.
        h = F.reshape(self.project(h), (h.shape[0], -1, s0, s0))
        h = _norm_then(self.bn0, h, norm_args, 'relu')
        for deconv, norm in zip(self.deconvs[:-1], self.bns):
            h = _norm_then(norm, deconv(h), norm_args, 'relu')  # (B, C, s, s) -> (B, C', 2s, 2s)
        return self.deconvs[-1](h, activation='tanh')  # tanh fused where oneDNN runs


class DiscriminatorBase(chainer.Chain):
    """D's layers: stride-2 convolutions, then a linear read-out ``out``.

    Each convolution halves the side and steps up ``widths``; all but the
    first are followed by batch normalization when ``norm == 'batch'``
    (the paper leaves it off D's input layer), all by LeakyReLU(0.2).
    :meth:`features` runs the convolutions; ``out`` maps their flattened
    ``widths[-1]`` x ``s0`` x ``s0`` output to one logit. Subclasses call
    :func:`add_spectral_norm` once all their links exist, when
    ``self.spectral_norm`` is set.

    Args:
        size, channels, widths, base_width, ksize, norm, spectral_norm: As
            in :class:`~gan_trainer.nets.Discriminator`.
        in_channels (int): Channels of the first conv's input: ``channels``
            plus whatever the subclass concatenates to the images.

    Raises:
        ValueError: If ``norm`` is not in :data:`NORMS`, or ``size``,
            ``widths`` or ``ksize`` cannot work together.
    """

    def __init__(
        self,
        *,
        size: int,
        channels: int,
        widths: Sequence[int] | None,
        base_width: int,
        ksize: int,
        norm: str,
        spectral_norm: bool,
        in_channels: int,
    ):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f'unknown norm {norm!r}; valid ones are {", ".join(NORMS)}')
        pad = pad_for(ksize)
        self.widths = resolve_widths(size, widths, base_width=base_width)
        self.size = size
        self.channels = channels
        self.ksize = ksize
        self.norm = norm
        self.spectral_norm = bool(spectral_norm)
        n = len(self.widths)
        self.start_side = size // 2**n
        w = initializers.Normal(WEIGHT_STD)
        ins = (in_channels,) + self.widths[:-1]
        with self.init_scope():
            self.convs = chainer.ChainList(
                *[
                    ops.Convolution2D(c_in, c_out, ksize, stride=2, pad=pad, initialW=w)
                    for c_in, c_out in zip(ins, self.widths)
                ]
            )
            # Empty without batch norm, so ``dis.bns`` always exists.
            self.bns = chainer.ChainList(
                *[batch_norm(c) for c in self.widths[1:] if norm == 'batch']
            )
            self.out = L.Linear(self.widths[-1] * self.start_side**2, 1, initialW=w)

    def config(self) -> dict:
        """Returns the JSON-able constructor kwargs of the layer stack."""
        return {
            'size': self.size,
            'channels': self.channels,
            'widths': list(self.widths),
            'ksize': self.ksize,
            'norm': self.norm,
            'spectral_norm': self.spectral_norm,
        }

    def check_x(self, x):
        """Returns ``x`` if its shape is ``(B, channels, size, size)``.

        Raises:
            ValueError: If it is not.
        """
        expected = (self.channels, self.size, self.size)
        if x.shape[1:] != expected:
            raise ValueError(
                f'x must have shape (B, {", ".join(map(str, expected))}), got {tuple(x.shape)}'
            )
        return x

    def features(self, x) -> chainer.Variable:
        """Runs the convolutions on ``x`` of shape ``(B, in_channels, size, size)``.

        Returns:
            chainer.Variable: The last feature map, ``(B, widths[-1], s0,
            s0)``, after its LeakyReLU: what ``out`` reads.
        """
        # (B, C, size, size) -> (B, widths[0], size/2, size/2); no BN here.
        # LeakyReLU is fused into the convolution where no BN comes between.
        h = self.convs[0](x, activation='leaky_relu', slope=0.2)
        for i, conv in enumerate(self.convs[1:]):
            if self.norm == 'batch':
                h = _norm_then(self.bns[i], conv(h), (), 'leaky_relu')
            else:
                h = conv(h, activation='leaky_relu', slope=0.2)
        return h
