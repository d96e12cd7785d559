"""Finiteness checks that cost one device-to-host transfer, not one per array.

On a GPU every ``float(x)``, ``bool(x)`` or ``x.item()`` of a CuPy array
waits for the device to finish its queued work and copies the result back:
a host synchronisation, which stalls the Python that should be queueing the
next kernels. Checking every reported value and every array of a network
that way costs tens of synchronisations per iteration. Here each *group* of
arrays (one network's parameters, persistent values and optimizer state) is
reduced on its device to one flag: ``isfinite(a).all()`` of each array,
kept on the device and stacked, then ``all()`` of those; the flags and the
scalar values are stacked into one small float64 vector, and that vector
alone crosses to the host (:func:`to_host`, once per device, normally once
per call).

``isfinite(...).all()`` rather than a float64 sum (which a NaN or an
infinity would also spoil): it needs no conversion and cannot overflow.
Array by array rather than over one concatenation of the group: the
concatenation copied every number once more, which shows most on large
networks (``benchmarks/nan_guard_cost.py --preset keras-dcgan-notes``, a
Dense 2048 in D; the figures are in ``benchmarks/RESULTS.md``).
Only when a flag is down are the arrays of that group searched one by one
(one synchronisation each, once, on the way out).

Views that tile one buffer are checked as that buffer: the fused Adam
(:class:`gan_trainer.ops.Adam`) keeps a network's parameters, and Adam's
``m`` and ``v``, as views into three flat buffers, so the guard's sixty-odd
small reductions on the default network become three large ones
(:func:`_tiled`; ``benchmarks/nan_guard_cost.py`` times the guard). The
buffer holds exactly the views' numbers, so the flag is the same.
"""

from __future__ import annotations

from collections.abc import Sequence

import chainer
import numpy


def to_host(array) -> numpy.ndarray:
    """The one device-to-host transfer of this module (a no-op for NumPy)."""
    return chainer.backend.CpuDevice().send(array)


def _device_key(array):
    return type(array), getattr(array, 'device', None)


def _raw(value):
    return value.array if isinstance(value, chainer.Variable) else value


def reduce_to_host(scalars: Sequence, groups: Sequence[Sequence]) -> tuple[list, list[bool]]:
    """Scalars' values and each group's "all finite" flag, on the host.

    Args:
        scalars: Reported values: Python or NumPy numbers, Variables or
            arrays of one element (0-d, or e.g. ``(1, 1)``), on any device.
        groups: Lists of arrays of any shape, dtype and device; an empty
            group counts as finite.

    Returns:
        ``(values, flags)``: one Python float per scalar, one bool per
        group (True when every number in it is finite). Device arrays are
        reduced and stacked where they live and moved in one transfer per
        device.
    """
    values: list = [None] * len(scalars)
    flags = [True] * len(groups)
    # device -> (xp, [(is_flag, index, float64 array of shape (1,) on that device)])
    pending: dict = {}
    for i, value in enumerate(scalars):
        value = _raw(value)
        if isinstance(value, (float, int, numpy.number)):
            values[i] = float(value)
            continue
        xp = chainer.backend.get_array_module(value)
        pending.setdefault(_device_key(value), (xp, []))[1].append(
            (False, i, value.reshape((1,)).astype(numpy.float64)))
    for i, arrays in enumerate(groups):
        by_device: dict = {}
        for array in _tiled(arrays):
            by_device.setdefault(_device_key(array), []).append(array)
        for key, same in by_device.items():
            xp = chainer.backend.get_array_module(same[0])
            # One reduction per array, stacked on the device into a (1,)
            # flag (keepdims: never a host scalar); no copy of the arrays.
            each = [xp.isfinite(a).all(keepdims=True).reshape((1,)) for a in same]
            flag = (each[0] if len(each) == 1 else xp.concatenate(each).all(
                keepdims=True)).astype(numpy.float64)
            pending.setdefault(key, (xp, []))[1].append((True, i, flag))
    for xp, entries in pending.values():
        host = to_host(xp.concatenate([entry for _, _, entry in entries]))
        for (is_flag, i, _), value in zip(entries, host.tolist()):
            if is_flag:
                flags[i] = flags[i] and value == 1.0
            else:
                values[i] = value
    return values, flags


_TILINGS: dict = {}  # (id of each array) -> (the arrays, what to reduce instead)


def _tiled(arrays: Sequence) -> Sequence:
    """``arrays`` with every set of NumPy views that exactly covers its owner's
    memory (each contiguous, end to end, nothing else) replaced by the owner.

    The plan is kept per list of arrays (checked by identity, so replaced
    arrays make a new plan): the search costs more than it saves when run on
    every call.
    """
    key = tuple(map(id, arrays))
    known = _TILINGS.get(key)
    if known is not None and all(a is b for a, b in zip(known[0], arrays)):
        return known[1]
    by_owner: dict = {}
    for a in arrays:
        base = a.base if type(a) is numpy.ndarray else None
        if (base is not None and type(base) is numpy.ndarray and a.flags.c_contiguous
                and base.flags.c_contiguous and base.dtype == a.dtype):
            by_owner.setdefault(id(base), (base, []))[1].append(a)
    whole = {}
    for base, views in by_owner.values():
        spans = sorted((v.__array_interface__['data'][0], v.nbytes) for v in views)
        start = base.__array_interface__['data'][0]
        end = start
        for address, nbytes in spans:
            if address != end:
                break
            end += nbytes
        else:
            if end == start + base.nbytes:
                whole.update({id(v): base for v in views})
    plan, seen = [], set()
    for a in arrays:
        base = whole.get(id(a))
        if base is None:
            plan.append(a)
        elif id(base) not in seen:
            seen.add(id(base))
            plan.append(base)
    if len(_TILINGS) > 16:
        _TILINGS.clear()
    _TILINGS[key] = (tuple(arrays), plan)
    return plan


def first_nonfinite(named_arrays) -> tuple[str, str] | None:
    """``(name, 'nan' | 'inf')`` of the first array holding a non-finite number.

    One synchronisation per array: call it only once a group's flag is down.
    """
    for name, array in named_arrays:
        xp = chainer.backend.get_array_module(array)
        if not bool(xp.isfinite(array).all()):
            return name, 'nan' if bool(xp.isnan(array).any()) else 'inf'
    return None
