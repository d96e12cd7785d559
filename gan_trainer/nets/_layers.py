"""The optional layers of the DCGAN write-ups' recipes, shared by :mod:`._blocks`.

The DCGAN paper's nets use stride-2 (transposed) convolutions, ReLU in G and
LeakyReLU(0.2) in D. The recipes the Japanese write-ups follow differ
(see :mod:`.dcgan`): keras-dcgan and the Keras DCGAN notes upsample and then
convolve in G, pool in D, use tanh or ELU, add a hidden fully connected
layer, and Chainer's own DCGAN example adds Gaussian noise to D's input and
hidden layers. This module holds those pieces, each chosen by name:

* :data:`ACTIVATIONS`: hidden-layer nonlinearities by name.
* :data:`UPSAMPLES` and :func:`upsample`: how G doubles the side, and
  :func:`upsample_conv`, which on the CPU runs nearest-neighbour upsampling
  and the convolution after it as one transposed convolution.
* :data:`DOWNSAMPLES` and :func:`downsample`: how D halves it.
* :func:`stage_pad`: the padding that keeps those stages exact.
* :class:`Stochastic`: D's training-only Gaussian noise and dropout, drawn
  from the net's own saved random state.
"""

from __future__ import annotations

import chainer
import chainer.functions as F
import numpy

from gan_trainer import ops
from gan_trainer.ops.activation import ACTIVATIONS as FUSABLE
from gan_trainer.ops.activation import activated, shifted_activation

#: Hidden-layer nonlinearity by name. LeakyReLU's slope is the DCGAN
#: paper's 0.2 (Keras' default is 0.3; the difference is small).
LEAKY_SLOPE = 0.2
ACTIVATIONS = {
    'relu': F.relu,
    'leaky_relu': lambda x: ops.leaky_relu(x, slope=LEAKY_SLOPE),
    'elu': ops.elu,
    'tanh': F.tanh,
}

#: How G doubles the side: a stride-2 transposed convolution (the DCGAN
#: paper), or nearest-neighbour / bilinear upsampling followed by a stride-1
#: convolution (keras-dcgan's ``UpSampling2D`` + ``Conv2D``; Odena et al.
#: 2016's remedy for the checkerboard artefacts of transposed convolutions).
UPSAMPLES = ('deconv', 'nearest', 'bilinear')

#: How D halves the side: a stride-2 convolution (the DCGAN paper), or a
#: stride-1 convolution followed by 2x2 max- or average-pooling (keras-dcgan).
DOWNSAMPLES = ('stride', 'max_pool', 'avg_pool')

#: The padding of D's stride-1 convolutions before pooling: ``'same'`` keeps
#: every side (2x2 pooling then halves it exactly); ``'valid'`` leaves the
#: convolutions after the first unpadded (Keras' default padding, which
#: keras-dcgan's second convolution keeps: 14 -> 10 -> pooled 5 for 5x5
#: kernels on 28x28 digits, about half the positions of 'same' before D's
#: hidden dense layer).
PADDINGS = ('same', 'valid')

# ksize -> padding of a stride-2 stage that exactly halves an even side (and,
# with ``outsize``, makes a stride-2 deconvolution exactly double it). 4 is
# the Chainer/PyTorch DCGAN choice, 5 the paper's and TensorFlow's, 3 the
# Keras DCGAN notes'.
_STRIDE_PADS = {3: 1, 4: 1, 5: 2}
# Odd kernels of the stride-1 'same' convolutions around up-/downsampling.
_SAME_KSIZES = (3, 5, 7)
# The default kernel: 4 for strided stages, 3 for resampled ones.
_DEFAULT_KSIZE = {True: 4, False: 3}


def resolve_ksize(ksize: int | None, *, strided: bool, option: str) -> int:
    """Returns the kernel side of a stage, checked against how it resamples.

    Args:
        ksize: The kernel side, or ``None`` for the default: 4 for strided
            stages (stride-2 convolutions and transposed convolutions), 3
            for the stride-1 convolutions around up-/downsampling.
        strided: Whether the stage is a stride-2 (transposed) convolution.
        option: The option that chose the resampling, as ``name=value``,
            for the error message.

    Raises:
        ValueError: If ``ksize`` cannot keep the sides exact.
    """
    if ksize is None:
        return _DEFAULT_KSIZE[strided]
    valid = tuple(_STRIDE_PADS) if strided else _SAME_KSIZES
    if isinstance(ksize, bool) or ksize not in valid:
        why = ('each stride-2 stage exactly halves/doubles the side' if strided else
               "a stride-1 convolution keeps the side only with an odd ksize ('same' padding)")
        raise ValueError(
            f'ksize {ksize!r} does not fit {option}: valid ones are '
            f'{", ".join(map(str, valid))}, so that {why}')
    return int(ksize)


def stage_pad(ksize: int, *, strided: bool) -> int:
    """Returns the padding of a stage whose kernel :func:`resolve_ksize` accepted."""
    return _STRIDE_PADS[ksize] if strided else ksize // 2


def check_width(name: str, value) -> int | None:
    """Returns ``value`` as an int if it is ``None`` or a positive integer.

    For a constructor argument that is not one of the declared options of
    :mod:`gan_trainer.nets.options` (the autoencoder D's ``code_dim``).
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, numpy.integer)) or value < 1:
        raise ValueError(f'{name} must be a positive integer or None, got {value!r}')
    return int(value)


def _double(x, axis: int) -> chainer.Variable:
    """Bilinear 2x along ``axis`` (half-pixel centres, edges clamped).

    Output ``2i`` is ``x[i-1] / 4 + 3 x[i] / 4`` and ``2i + 1`` is ``3 x[i]
    / 4 + x[i+1] / 4``, with ``x[-1] = x[0]`` and ``x[n] = x[n-1]``: the
    weights of bilinear resizing by 2 with ``align_corners=False`` (Keras'
    ``UpSampling2D(interpolation='bilinear')``, ONNX's default ``Resize``).
    """
    n = x.shape[axis]

    def part(start, stop):
        index = [slice(None)] * x.ndim
        index[axis] = slice(start, stop)
        return x[tuple(index)]

    before = F.concat((part(0, 1), part(0, n - 1)), axis=axis)  # x[i-1]
    after = F.concat((part(1, n), part(n - 1, n)), axis=axis)   # x[i+1]
    even = 0.25 * before + 0.75 * x
    odd = 0.75 * x + 0.25 * after
    shape = list(x.shape)
    shape[axis] = 2 * n
    # (..., n, 2, ...) -> (..., 2n, ...): even and odd outputs interleaved.
    return F.reshape(F.stack((even, odd), axis=axis + 1), tuple(shape))


def upsample(x, mode: str) -> chainer.Variable:
    """Doubles the side of ``x`` ``(B, C, H, W)`` -> ``(B, C, 2H, 2W)``.

    ``'nearest'`` repeats each pixel 2x2 (Keras' ``UpSampling2D``), by a
    broadcast and a reshape in channel-last order: the result keeps the
    channel-last memory layout of the fast convolutions
    (:mod:`gan_trainer.ops`), and its backward pass is a sum over each 2x2
    block. ``'bilinear'`` interpolates with half-pixel centres (see
    :func:`_double`), what :func:`chainer.functions.resize_images` computes
    with ``align_corners=False``, but for every float dtype (Chainer's
    takes float32 only) and with its backward pass made of slices and sums.
    Both export to ONNX as plain array operations.
    """
    if mode == 'bilinear':
        return _double(_double(x, 2), 3)
    b, c, h, w = x.shape
    # (B, C, H, W) -> (B, H, 1, W, 1, C) -> (B, H, 2, W, 2, C) -> (B, 2H, 2W, C)
    h6 = F.reshape(F.transpose(x, (0, 2, 3, 1)), (b, h, 1, w, 1, c))
    h6 = F.broadcast_to(h6, (b, h, 2, w, 2, c))
    return F.transpose(F.reshape(h6, (b, 2 * h, 2 * w, c)), (0, 3, 1, 2))


def _nearest_kernel(k: int, dtype) -> numpy.ndarray:
    """``(k + 1, k)`` 0/1 matrix taking a conv kernel row to its transposed-conv row.

    Row ``j`` of the result sums the taps ``k - j`` and ``k - 1 - j`` of a
    kernel row ``w``: ``[w[k-1], w[k-2] + w[k-1], ..., w[0] + w[1], w[0]]``.
    """
    m = numpy.zeros((k + 1, k), dtype)
    for j in range(k + 1):
        for t in (k - j, k - 1 - j):
            if 0 <= t < k:
                m[j, t] = 1
    return m


def upsample_conv(conv: chainer.Link, x, mode: str, *,
                  activation: str | None = None) -> chainer.Variable:
    """``conv(upsample(x, mode))``: a G stage with upsampling, ``(B, C, s, s) -> (B, C', 2s, 2s)``.

    Nearest-neighbour upsampling followed by a stride-1 convolution with an
    odd ``k x k`` kernel and 'same' padding is itself a stride-2 transposed
    convolution of ``x``: output pixel ``2i + r`` sees input pixels ``i - 1,
    i, i + 1`` (for ``k = 5``), each through the sum of the taps that fall on
    its two copies along each axis. With the kernel folded that way (``k +
    1`` taps a side, padding ``(k - 1) / 2``; 4 and 1 for ``k = 3``, the
    DCGAN deconv's shape) the stage costs ``(k + 1)**2`` instead of ``4
    k**2`` multiply-adds per input pixel and channel pair (2.8x fewer for
    ``k = 5``, 2.25x for ``k = 3``) and never builds the upsampled map.
    ``benchmarks/recipe_steps.py --stages`` times each preset's stages both
    ways (figures in ``benchmarks/RESULTS.md``): the fold wins most on the
    output stage of keras-dcgan (64 -> 1), which becomes the cheap scatter
    routine of :mod:`gan_trainer.ops.conv`, and at tiny batches folding the
    kernel can cost more than it saves. The folding is linear in ``conv.W``, so
    the gradients reach the same parameters, and the results equal the
    unfused ones up to float rounding (tested). It is taken where
    :mod:`gan_trainer.ops`' fast path applies (NumPy float32 and float64);
    elsewhere (CuPy, ONNX export, ``gan_trainer_fast`` off) and for
    bilinear upsampling the stage runs as written. ``activation`` (``None``,
    ``'relu'``, ``'leaky_relu'`` with slope 0.2, ``'tanh'``) is applied by
    the convolution node itself (:mod:`gan_trainer.ops`).
    """
    if mode != 'nearest' or not ops.use_fast(x, conv.W):
        y = conv(upsample(x, mode))  # any convolution link, Chainer's own too
        return y if activation is None else activated(y, activation, 0.2)
    k = conv.W.shape[2]
    m = _nearest_kernel(k, conv.W.dtype)
    # (out, in, kh, kw) -> (out, in, kw, kh') -> (out, in, kh', kw') -> (in, out, kh', kw')
    w = F.tensordot(F.tensordot(conv.W, m, axes=([2], [1])), m, axes=([2], [1]))
    return ops.deconvolution_2d(x, F.transpose(w, (1, 0, 2, 3)), conv.b, stride=2,
                                pad=(k - 1) // 2, activation=activation, slope=0.2)


def downsample(x, mode: str) -> chainer.Variable:
    """Halves the side of ``x`` (even ``H``, ``W``) by 2x2 pooling.

    ``mode`` is ``'max_pool'`` or ``'avg_pool'`` (Keras' ``MaxPooling2D`` /
    ``AveragePooling2D`` with their default 2x2 window and stride 2).
    """
    if mode == 'max_pool':
        return ops.max_pooling_2x2(x)
    return ops.average_pooling_2x2(x)


def gaussian(rng: numpy.random.Generator, shape, dtype, scale: float = 1.0, *,
             like: numpy.ndarray | None = None) -> numpy.ndarray:
    """``scale * N(0, 1)`` draws of ``shape`` in ``dtype`` (float32 or float64), by Box-Muller.

    Chainer's DCGAN example adds fresh noise to D's input and to every hidden
    map of every D pass: about a million draws per pass at its batch of 50,
    three passes per iteration. NumPy's ``standard_normal`` (a ziggurat, one
    draw at a time in C) took about a third of that preset's iteration on the
    CPU. The Box-Muller transform turns pairs of uniforms ``u1, u2`` into
    ``sqrt(-2 ln(1 - u1)) * (cos, sin)(2 pi u2)``: one call for the uniforms,
    then whole-array ufuncs that NumPy runs with SIMD, two to three times as
    fast (``benchmarks/recipe_steps.py --only chainer-example``; figures in
    benchmarks/RESULTS.md). The draws are exactly normal up to the uniforms'
    resolution: float32 uniforms are multiples of ``2**-24``, so no draw
    lies beyond ``sqrt(48 ln 2) = 5.77`` standard deviations (a normal does
    with probability 8e-9). The same generator state and the same layout
    (``like``) give the same draws on the same machine (a resumed run's
    noise is an uninterrupted one's); the last bits of ``log``/``cos``/``sin``
    may differ between CPUs. Before 2026-12-07 the noise came from
    ``standard_normal``: a snapshot of that time resumes with other draws
    (the same distribution).

    Args:
        rng: The generator the uniforms come from.
        shape: The draws' shape.
        dtype: ``numpy.float32`` or ``numpy.float64``: the arithmetic's and
            the result's type.
        scale: The standard deviation.
        like: An array of ``shape`` whose memory layout the result takes
            (channel-last maps: adding the noise to them then runs in memory
            order and keeps their layout for the next layer). The draws are
            i.i.d., so the layout only decides which element gets which draw.

    Raises:
        ValueError: If ``like``'s shape is not ``shape``.
    """
    dtype = numpy.dtype(dtype)
    out, flat = _laid_out(shape, dtype, like)
    n = flat.size
    half = (n + 1) // 2
    u = rng.random(2 * half, dtype=dtype)
    radius, angle = u[:half], u[half:]
    numpy.log1p(-radius, out=radius)  # ln(1 - u1): u1 < 1, so finite
    radius *= dtype.type(-2 * scale * scale)
    numpy.sqrt(radius, out=radius)
    angle *= dtype.type(2 * numpy.pi)
    first, second = flat[:half], flat[half:]
    numpy.cos(angle, out=first)
    first *= radius
    if n % 2:  # the last draw's pair has no element to go to
        angle, radius = angle[:-1], radius[:-1]
    numpy.sin(angle, out=second)
    second *= radius
    return out


def _laid_out(shape, dtype, like: numpy.ndarray | None) -> tuple[numpy.ndarray, numpy.ndarray]:
    """A new dense array of ``shape`` (``like``'s layout, else C order) and a
    1-D view of its elements in memory order, to be filled with i.i.d. draws."""
    if like is not None and like.shape != tuple(shape):
        raise ValueError(f'like has shape {like.shape}, the draws {tuple(shape)}')
    out = numpy.empty(shape, dtype) if like is None else numpy.empty_like(like, dtype)
    # empty_like makes a dense array: its axes sorted by stride are C-contiguous.
    order = sorted(range(out.ndim), key=lambda axis: -out.strides[axis])
    flat = out.transpose(order).reshape(-1)
    assert numpy.may_share_memory(flat, out), 'a dense array reshaped to 1-D is a view'
    return out, flat


class Stochastic:
    """Training-only Gaussian noise and dropout for a discriminator.

    Chainer's DCGAN example adds N(0, 0.2^2) noise to D's input and to every
    hidden layer while training (an instance-noise regularizer: real and
    fake distributions overlap, so D cannot become perfectly confident);
    TensorFlow's DCGAN tutorial applies dropout 0.3 after each of D's
    hidden layers. Both are off in evaluation mode
    (``chainer.config.train`` false), as in those examples.

    The draws come from the net's own :class:`numpy.random.Generator`
    (PCG64, seeded from NumPy's global RNG when the net is built, after its
    weights, so seeded nets stay reproducible), not from the global RNG as
    in Chainer's example: :meth:`serialize_state` saves it with the net, so
    a resumed run draws the same noise as an uninterrupted one. Draws are
    made on the CPU and sent to the array's device.

    Args:
        noise_sigma: Standard deviation of the noise; 0 for none (checked by
            :class:`~gan_trainer.nets.options.DiscriminatorOptions`, as the dropout).
        dropout: Fraction of units dropped (the rest scaled by
            ``1 / (1 - dropout)``); 0 for none.
    """

    def __init__(self, *, noise_sigma: float, dropout: float):
        self.noise_sigma = float(noise_sigma)
        self.dropout = float(dropout)
        self.rng = None
        if self.enabled:
            seed = numpy.random.randint(0, 2**31)
            self.rng = numpy.random.Generator(numpy.random.PCG64(seed))

    @property
    def enabled(self) -> bool:
        """Whether there is anything to draw (and a random state to save)."""
        return self.noise_sigma > 0 or self.dropout > 0

    def _draw(self, h, draw):
        # Generator draws float32/float64 only; other floats are cast.
        array = h.array if isinstance(h, chainer.Variable) else h
        dtype = array.dtype if array.dtype in (numpy.float32, numpy.float64) else numpy.float32
        device = chainer.backend.get_device_from_array(array)
        like = array if device.xp is numpy and array.dtype == dtype else None
        drawn = draw(array.shape, numpy.dtype(dtype), like).astype(array.dtype, copy=False)
        return drawn if device.xp is numpy else device.send(drawn)

    def _gaussian(self, h):
        return self._draw(h, lambda shape, dtype, like: gaussian(
            self.rng, shape, dtype, self.noise_sigma, like=like))

    def noise(self, h):
        """``h + noise_sigma * N(0, 1)`` in training, ``h`` otherwise (see :func:`gaussian`)."""
        if self.noise_sigma == 0 or not chainer.config.train:
            return h
        return h + self._gaussian(h)

    def noisy_activation(self, h, activation: str):
        """``ACTIVATIONS[activation](self.noise(h))``, one node where the fast functions can."""
        if self.noise_sigma == 0 or not chainer.config.train or (
                activation not in FUSABLE):
            return ACTIVATIONS[activation](self.noise(h))
        return shifted_activation(h, self._gaussian(h), activation, LEAKY_SLOPE)

    def drop(self, h):
        """Inverted dropout of ``h`` in training, ``h`` otherwise."""
        if self.dropout == 0 or not chainer.config.train:
            return h
        keep = 1 - self.dropout

        def mask(shape, dtype, like):
            # In h's memory order, as the noise: h * mask then keeps h's layout
            # (channel-last maps stay so for the next convolution).
            out, flat = _laid_out(shape, dtype, like)
            numpy.less(self.rng.random(flat.size, dtype=dtype), keep, out=flat, casting='unsafe')
            flat *= dtype.type(1 / keep)
            return out

        return h * self._draw(h, mask)

    def serialize_state(self, serializer) -> None:
        """Saves/restores the random state as one persistent array ``noise_rng``.

        Nothing is saved when there is nothing to draw, so the default nets'
        snapshots are unchanged.
        """
        if not self.enabled:
            return
        state = self.rng.bit_generator.state
        mask = (1 << 64) - 1
        words = [state['state']['state'] >> 64, state['state']['state'] & mask,
                 state['state']['inc'] >> 64, state['state']['inc'] & mask,
                 state['has_uint32'], state['uinteger']]
        array = serializer('noise_rng', numpy.array(words, numpy.uint64))
        if isinstance(serializer, chainer.serializer.Deserializer):
            w = [int(v) for v in numpy.asarray(array, numpy.uint64)]
            self.rng.bit_generator.state = {
                'bit_generator': 'PCG64',
                'state': {'state': (w[0] << 64) | w[1], 'inc': (w[2] << 64) | w[3]},
                'has_uint32': w[4], 'uinteger': w[5],
            }
