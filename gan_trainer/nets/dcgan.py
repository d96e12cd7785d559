"""DCGAN generator and discriminator (Radford, Metz and Chintala, 2016).

Both nets follow the paper's architecture guidelines: strided convolutions
(D) and stride-2 transposed convolutions (G) instead of pooling, batch
normalization in both nets except D's input layer and G's output layer, ReLU
in G with a tanh output, LeakyReLU(0.2) in D, and no hidden fully connected
layers (G's first layer is a linear projection of ``z`` reshaped to a small
feature map; D's last layer is a linear read-out of its last feature map).
All conv, deconv and linear weights are drawn from N(0, 0.02) as in the
paper, biases start at 0, and batch-norm scales (gamma) are drawn from
N(1, 0.02) as in the authors' reference code rather than set to exactly 1.

The depth comes from the image side: every stage halves (D) or doubles (G)
the side, so ``size`` must be ``s0 * 2**n`` for a start side ``s0`` and ``n``
stages. ``widths`` lists D's conv channels from the input side, e.g.
``[64, 128, 256]`` for 32x32 images; G uses the same list reversed, so the
two nets mirror each other. Tests pass tiny widths such as ``[4, 8]``.

Example::

    gen = Generator(size=28, channels=1)         # 7x7 -> 14x14 -> 28x28
    dis = Discriminator(size=28, channels=1)     # 28x28 -> 14x14 -> 7x7
    same = Generator(**gen.config())             # rebuilds the architecture
"""

from collections.abc import Sequence

import chainer
import chainer.functions as F
import chainer.links as L
from chainer import initializers

# The paper: "All weights were initialized from a zero-centered Normal
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


class _NormalAroundOne(chainer.initializer.Initializer):
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
        raise ValueError(f"size must be a positive integer, got {size!r}")
    if widths is None:
        if base_width < 1 or int(base_width) != base_width:
            raise ValueError(
                f"base_width must be a positive integer, got {base_width!r}"
            )
        n = default_n_stages(size)
        if n == 0:
            raise ValueError(
                f"size {size} cannot be built with the default widths: they "
                f"need an even size of at least {2 * _MIN_START_SIDE}"
            )
        return tuple(base_width * 2**i for i in range(n))

    widths = tuple(widths)
    if not widths or any(w < 1 or int(w) != w for w in widths):
        raise ValueError(
            f"widths must be a non-empty list of positive integers, "
            f"got {list(widths)!r}"
        )
    n = len(widths)
    if size % 2**n or size // 2**n < _MIN_START_SIDE_EXPLICIT:
        raise ValueError(
            f"size {size} cannot be built with {n} stride-2 stages "
            f"(widths {list(widths)}): use a multiple of {2**n} that is at "
            f"least {2**n * _MIN_START_SIDE_EXPLICIT}, or fewer widths"
        )
    return tuple(int(w) for w in widths)


def _pad(ksize: int) -> int:
    if ksize not in _PADS:
        raise ValueError(
            f"ksize must be one of {sorted(_PADS)} so that each stride-2 "
            f"stage exactly halves/doubles the side, got {ksize!r}"
        )
    return _PADS[ksize]


class Generator(chainer.Chain):
    """DCGAN generator: ``z`` -> image in [-1, 1].

    ``z`` is projected by a linear layer to a ``widths[-1]`` x ``s0`` x
    ``s0`` feature map (``s0 = size // 2**len(widths)``); each following
    stride-2 deconvolution doubles the side and steps down the reversed
    widths; the last one maps to ``channels`` and a tanh bounds the output.
    Every hidden layer is followed by batch normalization and ReLU.

    The generator has no ``make_hidden`` method on purpose: the updater
    draws ``z`` itself (from N(0, 1) of shape ``(B, n_hidden)``), and a
    ``make_hidden`` here would override that by contract.

    Args:
        size (int): Output side in pixels.
        channels (int): Output channels (1 for grey, 3 for RGB).
        n_hidden (int): Dimension of ``z``; 100 as in the paper.
        widths (sequence of int or None): D-order conv widths, see
            :func:`resolve_widths`; G uses them reversed.
        base_width (int): First width of the default ``widths``; 64 as
            the PyTorch and Chainer DCGAN examples use. The paper's 64x64
            generator (1024 channels at 4x4) is ``base_width=128``.
        ksize (int): Kernel side, 4 (pad 1) or 5 (pad 2, the paper's).

    Raises:
        ValueError: If ``size``, ``widths`` or ``ksize`` cannot work together.
    """

    def __init__(
        self,
        *,
        size: int = 28,
        channels: int = 1,
        n_hidden: int = 100,
        widths: Sequence[int] | None = None,
        base_width: int = 64,
        ksize: int = 4,
    ):
        super().__init__()
        pad = _pad(ksize)
        self.widths = resolve_widths(size, widths, base_width=base_width)
        self.size = size
        self.channels = channels
        self.n_hidden = n_hidden
        self.ksize = ksize
        n = len(self.widths)
        self.start_side = size // 2**n
        w = initializers.Normal(WEIGHT_STD)
        g = _NormalAroundOne(WEIGHT_STD)
        # G-order widths: deepest (smallest map) first, then `channels`.
        g_widths = self.widths[::-1] + (channels,)
        with self.init_scope():
            self.project = L.Linear(
                n_hidden, g_widths[0] * self.start_side**2, initialW=w
            )
            self.bn0 = L.BatchNormalization(g_widths[0], initial_gamma=g)
            deconvs, bns = [], []
            side = self.start_side
            for i in range(n):
                side *= 2
                deconvs.append(
                    L.Deconvolution2D(
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
                if i < n - 1:  # no BN on the output layer (the paper)
                    bns.append(L.BatchNormalization(g_widths[i + 1], initial_gamma=g))
            self.deconvs = chainer.ChainList(*deconvs)
            self.bns = chainer.ChainList(*bns)

    def config(self) -> dict:
        """Returns the JSON-able constructor kwargs of this architecture.

        ``Generator(**gen.config())`` builds a net with the same parameter
        shapes (fresh weights); snapshots store this next to the weights.
        """
        return {
            "size": self.size,
            "channels": self.channels,
            "n_hidden": self.n_hidden,
            "widths": list(self.widths),
            "ksize": self.ksize,
        }

    def forward(self, z):
        """Generates images.

        Args:
            z (chainer.Variable or array): Latent codes of shape
                ``(B, n_hidden)`` or ``(B, n_hidden, 1, 1)``.

        Returns:
            chainer.Variable: Images of shape ``(B, channels, size, size)``
            with values in [-1, 1].
        """
        if z.shape[1:] not in ((self.n_hidden,), (self.n_hidden, 1, 1)):
            raise ValueError(
                f"z must have shape (B, {self.n_hidden}) or "
                f"(B, {self.n_hidden}, 1, 1), got {tuple(z.shape)}"
            )
        z = F.reshape(z, (z.shape[0], self.n_hidden))
        s0 = self.start_side
        # (B, n_hidden) -> (B, widths[-1] * s0 * s0) -> (B, widths[-1], s0, s0).
        # BN runs after the reshape, per channel as in the conv layers (and
        # the TensorFlow DCGAN), not per each of the s0 * s0 positions.
        h = F.reshape(self.project(z), (z.shape[0], -1, s0, s0))
        h = F.relu(self.bn0(h))
        for deconv, bn in zip(self.deconvs[:-1], self.bns):
            h = F.relu(bn(deconv(h)))  # (B, C, s, s) -> (B, C', 2s, 2s)
        return F.tanh(self.deconvs[-1](h))


class Discriminator(chainer.Chain):
    """DCGAN discriminator: image -> one real/fake logit per image.

    Each stride-2 convolution halves the side and steps up ``widths``; all
    but the first are followed by batch normalization (the paper leaves BN
    off D's input layer), all by LeakyReLU(0.2). A linear layer reads the
    last ``widths[-1]`` x ``s0`` x ``s0`` map out to one logit. There is no
    sigmoid: the losses take logits, which is numerically safer.

    Args:
        size (int): Input side in pixels.
        channels (int): Input channels (1 for grey, 3 for RGB).
        widths (sequence of int or None): Conv widths from the input side,
            see :func:`resolve_widths`.
        base_width (int): First width of the default ``widths``.
        ksize (int): Kernel side, 4 (pad 1) or 5 (pad 2, the paper's).

    Raises:
        ValueError: If ``size``, ``widths`` or ``ksize`` cannot work together.
    """

    def __init__(
        self,
        *,
        size: int = 28,
        channels: int = 1,
        widths: Sequence[int] | None = None,
        base_width: int = 64,
        ksize: int = 4,
    ):
        super().__init__()
        pad = _pad(ksize)
        self.widths = resolve_widths(size, widths, base_width=base_width)
        self.size = size
        self.channels = channels
        self.ksize = ksize
        n = len(self.widths)
        self.start_side = size // 2**n
        w = initializers.Normal(WEIGHT_STD)
        g = _NormalAroundOne(WEIGHT_STD)
        ins = (channels,) + self.widths[:-1]
        with self.init_scope():
            self.convs = chainer.ChainList(
                *[
                    L.Convolution2D(c_in, c_out, ksize, stride=2, pad=pad, initialW=w)
                    for c_in, c_out in zip(ins, self.widths)
                ]
            )
            self.bns = chainer.ChainList(
                *[L.BatchNormalization(c, initial_gamma=g) for c in self.widths[1:]]
            )
            self.out = L.Linear(self.widths[-1] * self.start_side**2, 1, initialW=w)

    def config(self) -> dict:
        """Returns the JSON-able constructor kwargs of this architecture.

        ``Discriminator(**dis.config())`` builds a net with the same
        parameter shapes (fresh weights).
        """
        return {
            "size": self.size,
            "channels": self.channels,
            "widths": list(self.widths),
            "ksize": self.ksize,
        }

    def forward(self, x):
        """Scores images.

        Args:
            x (chainer.Variable or array): Images of shape
                ``(B, channels, size, size)``, values in [-1, 1].

        Returns:
            chainer.Variable: Logits of shape ``(B,)``; positive means
            "looks real".
        """
        expected = (self.channels, self.size, self.size)
        if x.shape[1:] != expected:
            raise ValueError(
                f"x must have shape (B, {', '.join(map(str, expected))}), "
                f"got {tuple(x.shape)}"
            )
        # (B, C, size, size) -> (B, widths[0], size/2, size/2); no BN here.
        h = F.leaky_relu(self.convs[0](x), slope=0.2)
        for conv, bn in zip(self.convs[1:], self.bns):
            h = F.leaky_relu(bn(conv(h)), slope=0.2)
        # (B, widths[-1], s0, s0) -> (B, 1) -> (B,)
        return F.flatten(self.out(h))
