"""The numeric type of training: float32, or Chainer's ``mixed16`` for GPUs.

``dtype='mixed16'`` (Chainer's mixed precision mode) builds the networks
with float16 weights and computes in float16, except batch normalization,
whose ``gamma``, ``beta`` and running statistics Chainer keeps in float32;
the networks cast float32 input (z, images) at their entrance. The
optimizers then keep a float32 master copy of every float16 parameter
(``use_fp32_update``), so that small updates are not rounded away, and use
*dynamic loss scaling*: the loss is multiplied by a scale before the
backward pass, so that small float16 gradients do not flush to zero, and
the gradients are divided by it again before the update. Chainer starts at
scale 1 and doubles it after every update until the scaled gradients
overflow; an update whose gradients hold an infinity or a NaN is *skipped*
(the weights are left as they were) and the scale halved; after the first
overflow the scale grows by 2 per ``interval`` updates.

On a GPU with tensor cores float16 products run several times faster than
float32 ones; on the CPU NumPy computes float16 slowly (it works, and the
tests run it, but it is no speed-up there). Speed on a GPU: see
docs/performance.md, "GPU".

Two things are changed from Chainer's loss scaling, both in
:func:`configure_optimizers`. Chainer checks the gradients array by array,
each check a host synchronisation on a GPU and a warning per array on
overflow; here one reduction and one transfer check all of an optimizer's
gradients (:mod:`gan_trainer.finite`) and nothing is printed. And each
update reports ``NAME/loss_scale`` and ``NAME/skipped`` (1.0 when the
update was skipped), which land in the log and which
:class:`~gan_trainer.extensions.NaNGuard` and
:class:`~gan_trainer.extensions.DivergenceMonitor` read to tell a skipped
update from a diverging run. :class:`~gan_trainer.GANUpdater` passes each
optimizer's current scale to ``backward``.
"""

from __future__ import annotations

import types

import chainer
import numpy

from gan_trainer import finite

#: Names accepted for ``dtype`` (the run option ``--dtype``).
DTYPES = ('float32', 'mixed16')
#: Observation keys (under each optimizer's name) reported per update in mixed16.
LOSS_SCALE_KEY = 'loss_scale'
SKIPPED_KEY = 'skipped'


def resolve_dtype(dtype: str):
    """``'float32'`` -> ``numpy.float32``, ``'mixed16'`` -> ``chainer.mixed16``.

    Raises:
        ValueError: naming the value and the valid ones.
    """
    if dtype == 'float32':
        return numpy.dtype(numpy.float32)
    if dtype == 'mixed16':
        return chainer.mixed16
    raise ValueError(f'dtype must be one of {", ".join(DTYPES)}, got {dtype!r}')


def use_dtype(dtype: str) -> None:
    """Makes ``dtype`` Chainer's default for links built from now on.

    Call it before the networks are built (their weights take the dtype at
    construction); ``chainer.using_config('dtype', ...)`` does the same for a
    ``with`` block.
    """
    chainer.global_config.dtype = resolve_dtype(dtype)


def configure_optimizers(optimizers: dict[str, chainer.Optimizer], dtype: str, *,
                         interval: int = 1000) -> None:
    """Sets the optimizers up for ``dtype`` (after ``optimizer.setup(net)``).

    float32: nothing changes. mixed16: float32 master copies of float16
    parameters and dynamic loss scaling (see the module docstring), with the
    scale doubled every ``interval`` updates without overflow (Chainer's
    default, 1000).
    """
    resolve_dtype(dtype)
    if dtype != 'mixed16':
        return
    for optimizer in optimizers.values():
        optimizer.use_fp32_update()
        optimizer.loss_scaling(interval=interval)
        # Instance attributes, read by GradientMethod.update.
        optimizer.check_nan_in_grads = types.MethodType(_check_grads, optimizer)
        optimizer.update_loss_scale = types.MethodType(_update_and_report, optimizer)


def loss_scale(optimizer: chainer.Optimizer) -> float | None:
    """The scale ``backward`` must use for ``optimizer``'s loss now (None: none)."""
    return getattr(optimizer, '_loss_scale', None)


def _check_grads(optimizer: chainer.Optimizer) -> None:
    """Chainer's ``check_nan_in_grads`` with one transfer and no warnings."""
    optimizer._loss_scaling_isnan = False
    if not optimizer._loss_scaling_is_dynamic:
        return
    grads = [p.grad for p in optimizer.target.params() if p.grad is not None]
    _, (ok,) = finite.reduce_to_host([], [grads])
    if not ok:
        optimizer._loss_scaling_isnan = True
        optimizer._loss_scaling_isnan_ever = True


def _update_and_report(optimizer: chainer.Optimizer) -> None:
    skipped = bool(getattr(optimizer, '_loss_scaling_isnan', False))
    scale = optimizer._loss_scale  # the scale this update was computed with
    chainer.optimizer.GradientMethod.update_loss_scale(optimizer)
    chainer.report({LOSS_SCALE_KEY: float(scale), SKIPPED_KEY: float(skipped)},
                   optimizer.target)
