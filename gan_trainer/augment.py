"""Differentiable augmentation of D's inputs: DiffAugment and its adaptive (ADA) mode.

A GAN trained on a few thousand images overfits: D memorises the training
set, its outputs on reals and fakes drift apart, and G's samples get worse.
Augmenting the images D sees helps only if *every* image D sees is
augmented the same way, reals and fakes, in D's step and in G's step, and if
G's gradient flows through the augmentation (Zhao et al. 2020,
"Differentiable Augmentation for Data-Efficient GAN Training"); otherwise G
learns to produce augmented-looking images. :class:`DiffAugment` does that
with DiffAugment's three policies, written as Chainer operations that run on
NumPy and CuPy and are differentiable twice (for R1 or WGAN-GP through the
augmentation):

* ``'color'``: brightness ``x + (u - 0.5)``, saturation ``(x - mean_c) * 2u +
  mean_c``, contrast ``(x - mean) * (u + 0.5) + mean``, one ``u ~ U[0, 1)`` per
  image and operation (the channel mean; the image mean);
* ``'translation'``: an integer shift of each image by up to 1/8 of its
  side in each direction, filled with 0;
* ``'cutout'``: a square of half the side, centred anywhere in the image,
  set to 0.

These are the reference implementation's parameters (``DiffAugment_pytorch.py``
in mit-han-lab/data-efficient-gans, the 0.125 and 0.5 ratios, the 0 fill,
the per-image draws). Policies combine with commas and apply in the order
given: ``'color,translation,cutout'`` (:data:`DEFAULT_POLICY`) is the
paper's choice for small datasets. The images are expected in [-1, 1], so
0 is mid-grey, as in the reference.

**Adaptive mode** (``target=...``): Karras et al. 2020 (ADA) apply each
operation to each image with a probability ``p`` and adjust ``p`` from an
overfitting signal, ``r_t = E[sign(D(x_real))]`` over D's augmented reals:
every ``interval`` D steps (4, ADA's), ``p`` moves by ``sign(r_t - target) *
n / speed``, ``n`` being the reals of those steps, and is kept in [0, 1].
An image an operation skips gets its identity parameters (no shift, factor
1), so ``p = 1`` is plain DiffAugment and ``p = 0`` no augmentation. ADA lets
``p`` go 0 -> 1 in 500k images, about 2% of its runs; here the default run
sees 160k reals (2,500 iterations of 64), where 500k would never reach
``p = 1`` and 2% of the run would be steps of 0.08 per adjustment.
:data:`ADA_SPEED` (25,000 images: steps of 0.01 at batch 64, ``p`` 0 -> 1 in
about 390 iterations, a sixth of the default run) keeps the steps as fine as
that and still lets ``p`` rise within the first few hundred iterations,
when D starts memorising the digits. ``target`` 0.6 is ADA's default.

All random numbers come from the ``RandomState`` the caller passes (the
updater's own, saved in snapshots), drawn on the CPU and sent to the images'
device, so NumPy and CuPy runs, and resumed runs, draw the same ones. The
adaptive state (``p`` and the signs gathered since the last adjustment) is
saved by :meth:`DiffAugment.serialize`.

The object is what :class:`~gan_trainer.updater.GANUpdater` takes as
``augment``; any callable ``augment(x, rng) -> Variable`` works there, and
``observe``, ``stats`` and ``serialize`` are optional (see
:class:`DiffAugment`).
"""

from __future__ import annotations

import chainer
import chainer.functions as F
import numpy

#: DiffAugment's policy for small datasets (Zhao et al. 2020).
DEFAULT_POLICY = 'color,translation,cutout'
#: ADA's target for ``r_t = E[sign(D(real))]`` (Karras et al. 2020).
ADA_TARGET = 0.6
#: ADA adjusts ``p`` every this many D steps (its ``ada_interval``).
ADA_INTERVAL = 4
#: Reals over which ``p`` can go from 0 to 1 (ADA: 500k; see the module docstring).
ADA_SPEED = 25_000

# The reference implementation's ratios (of the image side).
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def _constant(values, x) -> numpy.ndarray:
    """``values`` (NumPy, drawn on the CPU) as ``x``'s dtype on ``x``'s device."""
    device = chainer.backend.get_device_from_array(x.array)
    return device.send(numpy.asarray(values, dtype=x.dtype))


def _per_image(x):
    """Shape ``(B, 1, 1, 1)`` for one value per image of ``x`` ``(B, C, H, W)``."""
    return (x.shape[0],) + (1,) * (x.ndim - 1)


def brightness(x, rng, apply):
    """``x + (u - 0.5)``, ``u ~ U[0, 1)`` per image (0 where ``apply`` is false)."""
    x = chainer.as_variable(x)
    shift = rng.uniform(0.0, 1.0, _per_image(x)) - 0.5
    shift[~apply] = 0
    return x + _constant(shift, x)


def saturation(x, rng, apply):
    """``(x - mean over channels) * 2u + mean``, ``u ~ U[0, 1)`` per image."""
    x = chainer.as_variable(x)
    factor = rng.uniform(0.0, 1.0, _per_image(x)) * 2
    factor[~apply] = 1
    # (x - mean) * f + mean, written so that f = 1 gives x exactly.
    return x + (x - F.mean(x, axis=1, keepdims=True)) * _constant(factor - 1, x)


def contrast(x, rng, apply):
    """``(x - image mean) * (u + 0.5) + mean``, ``u ~ U[0, 1)`` per image."""
    x = chainer.as_variable(x)
    factor = rng.uniform(0.0, 1.0, _per_image(x)) + 0.5
    factor[~apply] = 1
    return x + (x - F.mean(x, axis=(1, 2, 3), keepdims=True)) * _constant(factor - 1, x)


def _shifted(x, dy, dx):
    """``out[b, :, i, j] = x[b, :, i + dy[b], j + dx[b]]``, 0 outside the image.

    The reference's gather: a 1-pixel zero border, then every index clipped
    into it (shifts never exceed the side, so clipping lands on the border).
    """
    xp = chainer.backend.get_array_module(x)
    b, c, h, w = x.shape
    padded = xp.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    rows = xp.clip(xp.arange(h)[None, :] + dy[:, None] + 1, 0, h + 1)  # (B, H)
    cols = xp.clip(xp.arange(w)[None, :] + dx[:, None] + 1, 0, w + 1)  # (B, W)
    return padded[xp.arange(b)[:, None, None, None], xp.arange(c)[None, :, None, None],
                  rows[:, None, :, None], cols[:, None, None, :]]


class Translate(chainer.FunctionNode):
    """Shifts each image by its own integer offset, filling with 0.

    The operation is linear and its adjoint is the opposite shift (a pixel
    moved from ``k`` to ``k - d`` sends its gradient back from ``k - d`` to
    ``k``), so the backward pass is this node again with negated offsets,
    which makes it differentiable to any order.

    Args:
        dy, dx: Integer arrays ``(B,)`` on the images' device; image ``b``'s
            pixel ``(i, j)`` becomes ``x[b, :, i + dy[b], j + dx[b]]``.
    """

    def __init__(self, dy, dx):
        self.dy, self.dx = dy, dx

    def forward(self, inputs):
        return _shifted(inputs[0], self.dy, self.dx),

    def backward(self, indexes, grad_outputs):
        return Translate(-self.dy, -self.dx).apply(grad_outputs)


def translation(x, rng, apply, ratio: float = TRANSLATION_RATIO):
    """Shifts each image by up to ``ratio`` of its side, per axis, filled with 0."""
    x = chainer.as_variable(x)
    b, _, h, w = x.shape
    # int(side * ratio + 0.5) and the inclusive range [-s, s], as the reference.
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = rng.randint(-sy, sy + 1, size=b)
    dx = rng.randint(-sx, sx + 1, size=b)
    dy[~apply] = 0
    dx[~apply] = 0
    device = chainer.backend.get_device_from_array(x.array)
    return Translate(device.send(dy), device.send(dx)).apply((x,))[0]


def cutout(x, rng, apply, ratio: float = CUTOUT_RATIO):
    """Sets a square of ``ratio`` of the side to 0, one random centre per image."""
    x = chainer.as_variable(x)
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    # The reference's centre range; the square always overlaps the image, so
    # its clipped index grid is the intersection computed here.
    cy = rng.randint(0, h + (1 - ch % 2), size=b)
    cx = rng.randint(0, w + (1 - cw % 2), size=b)
    top, left = cy - ch // 2, cx - cw // 2
    rows, cols = numpy.arange(h), numpy.arange(w)
    in_rows = (rows[None] >= top[:, None]) & (rows[None] < top[:, None] + ch)  # (B, H)
    in_cols = (cols[None] >= left[:, None]) & (cols[None] < left[:, None] + cw)  # (B, W)
    cut = in_rows[:, :, None] & in_cols[:, None, :] & apply[:, None, None]
    mask = (~cut)[:, None].astype(numpy.float32)  # (B, 1, H, W)
    return x * _constant(mask, x)


#: Policy name -> its operations, in the order they apply.
POLICIES = {
    'color': (brightness, saturation, contrast),
    'translation': (translation,),
    'cutout': (cutout,),
}


def parse_policy(policy: str) -> tuple[str, ...]:
    """Splits ``'color,translation'`` into names and checks each.

    Raises:
        ValueError: For an empty policy or an unknown name (one line that
            names it and lists the valid ones).
    """
    names = tuple(name.strip() for name in str(policy).split(','))
    for name in names:
        if name not in POLICIES:
            raise ValueError(
                f'unknown augmentation {name!r} in policy {policy!r}; valid: '
                f'{", ".join(sorted(POLICIES))} (combined with commas) or ada')
    return names


class DiffAugment:
    """DiffAugment's policies, applied with probability ``p``, optionally adaptive.

    Call it on a batch to get the augmented batch; the updater does that for
    every image D sees. With ``target`` set, call :meth:`observe` with D's
    logits on every augmented real batch and ``p`` follows ADA's rule (see
    the module docstring).

    Args:
        policy: Comma-separated names from :data:`POLICIES`.
        p: Probability that an operation applies to an image: 1 (every
            image, DiffAugment) by default, 0 to start with in adaptive
            mode (as ADA).
        target: ADA's target for ``r_t = E[sign(D(real))]``, in (0, 1); ``None``
            (default) keeps ``p`` fixed. 0.6 is ADA's (:data:`ADA_TARGET`).
        interval: D steps between adjustments of ``p``.
        speed: Reals over which ``p`` can go from 0 to 1.

    Raises:
        ValueError: For an unknown policy or an out-of-range number.
    """

    def __init__(
        self,
        policy: str = DEFAULT_POLICY,
        *,
        p: float | None = None,
        target: float | None = None,
        interval: int = ADA_INTERVAL,
        speed: float = ADA_SPEED,
    ) -> None:
        self.policy = ','.join(parse_policy(policy))
        self.operations = [op for name in self.policy.split(',') for op in POLICIES[name]]
        if target is not None and not 0 < target < 1:
            raise ValueError(f'the ADA target must be in (0, 1), got {target}')
        p = (0.0 if target is not None else 1.0) if p is None else p
        if not 0 <= p <= 1:
            raise ValueError(f'the augmentation probability p must be in [0, 1], got {p}')
        if int(interval) != interval or interval < 1:
            raise ValueError(f'the ADA interval must be a positive integer, got {interval}')
        if not speed > 0:
            raise ValueError(f'the ADA speed must be a positive number of images, got {speed}')
        self.p = float(p)
        self.target = None if target is None else float(target)
        self.interval, self.speed = int(interval), float(speed)
        # Since the last adjustment: sum of sign(D(real)) (an array on D's
        # device, so no step waits for the GPU), reals counted, D steps.
        self._signs = 0.0
        self._count = 0
        self._steps = 0

    @property
    def adaptive(self) -> bool:
        """Whether ``p`` is adjusted (ADA), i.e. ``target`` is set."""
        return self.target is not None

    def __call__(self, x, rng: numpy.random.RandomState) -> chainer.Variable:
        """Augments a batch.

        Args:
            x: Images ``(B, C, H, W)``, an array or a Variable (the gradient
                flows back into it).
            rng: Draws every random number (on the CPU).

        Returns:
            The augmented images, same shape and dtype, with a graph into ``x``.
        """
        x = chainer.as_variable(x)
        if self.p <= 0:
            return x
        for op in self.operations:
            if self.p >= 1:
                apply = numpy.ones(len(x), bool)
            else:
                apply = rng.uniform(0.0, 1.0, len(x)) < self.p
                if not apply.any():
                    continue
            x = op(x, rng, apply)
        return x

    def observe(self, logits_real) -> None:
        """Takes D's logits ``(B,)`` on an augmented real batch; adjusts ``p``.

        Does nothing unless adaptive. Every :attr:`interval` calls, ``p``
        moves by ``sign(r_t - target) * n / speed`` (``n`` the reals since
        the last move) and is clipped to [0, 1].
        """
        if not self.adaptive:
            return
        xp = chainer.backend.get_array_module(logits_real)
        self._signs = self._signs + xp.sign(logits_real).sum()
        self._count += int(logits_real.size)
        self._steps += 1
        if self._steps < self.interval:
            return
        r_t = float(self._signs) / self._count
        step = numpy.sign(r_t - self.target) * self._count / self.speed
        self.p = float(numpy.clip(self.p + step, 0.0, 1.0))
        self._signs, self._count, self._steps = 0.0, 0, 0

    def stats(self) -> dict[str, float]:
        """``{'augment_p': p}`` in adaptive mode (reported as ``dis/augment_p``), else ``{}``."""
        return {'augment_p': self.p} if self.adaptive else {}

    def serialize(self, serializer) -> None:
        """Saves/restores ``p`` and the signs gathered since the last adjustment."""
        state = numpy.array([self.p, float(self._signs), self._count, self._steps], numpy.float64)
        state = serializer('ada_state', state)
        if isinstance(serializer, chainer.serializer.Deserializer):
            p, signs, count, steps = (float(v) for v in numpy.asarray(state))
            self.p, self._signs, self._count, self._steps = p, signs, int(count), int(steps)

    def __repr__(self) -> str:
        if self.adaptive:
            return f'DiffAugment({self.policy!r}, p={self.p:g}, target={self.target:g})'
        return f'DiffAugment({self.policy!r}, p={self.p:g})'


def get_augment(name: str | None, *, target: float | None = None) -> DiffAugment | None:
    """Builds the augmentation a run option names.

    Args:
        name: ``None`` or ``'none'``: no augmentation; a policy such as
            ``'translation,cutout'``: DiffAugment (adaptive if ``target`` is
            given); ``'ada'``: :data:`DEFAULT_POLICY`, adaptive, with
            ``target`` or :data:`ADA_TARGET`.
        target: ADA's target (see :class:`DiffAugment`).

    Returns:
        A :class:`DiffAugment`, or ``None``.

    Raises:
        ValueError: For an unknown policy name or a ``target`` without one.
    """
    if name is None or name == 'none':
        if target is not None:
            raise ValueError(f'an ADA target ({target}) needs an augmentation policy or ada')
        return None
    if name == 'ada':
        return DiffAugment(DEFAULT_POLICY, target=ADA_TARGET if target is None else target)
    return DiffAugment(name, target=target)
