"""What values an option takes: its kind, and checks of the form ``value -> message or None``.

Both places that declare options read their rules from here: the networks'
options (:mod:`gan_trainer.nets.options`) and a run's
(:mod:`gan_trainer.run.options`), so that an option the two share (a run's
``dis_dropout`` is D's ``dropout``) is checked by one rule, which each side
reports in its own words (a ``ValueError`` naming the constructor argument,
a :class:`~gan_trainer.run.ConfigError` naming the run option). The module
sits below both, beside the other modules that need only the standard
library.

A check is a small function that returns what is wrong with a value, or
``None`` when it is fine (:func:`at_least`, :func:`between`, ...); an
option lists several to combine them.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

#: A check: the message saying what is wrong with a value, or None when it is fine.
Check = Callable[[Any], 'str | None']

#: What each kind of value is called in a message.
KIND_WORDS = {
    'int': 'an integer',
    'float': 'a number',
    'str': 'a string',
    'bool': 'true or false',
    'ints': 'a list of positive integers',
    'floats': 'one number or two, comma-separated',
    'names': 'option names, comma-separated',
}


def convert(kind: str, value: Any) -> Any:
    """``value`` as an option of ``kind`` (:data:`KIND_WORDS`) holds it.

    An int is a float where a float is expected, a list of widths becomes
    a tuple, a comma-separated string is read for ``'ints'`` and
    ``'floats'``; NumPy's scalars count as the numbers they are. Booleans
    are never numbers and numbers never booleans.

    Raises:
        TypeError or ValueError: If ``value`` is not of that kind.
    """
    if kind == 'bool':
        if not isinstance(value, bool):
            raise TypeError
        return value
    if kind == 'int':
        if isinstance(value, bool) or int(value) != value:
            raise TypeError
        return int(value)
    if kind == 'float':
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError
        return float(value)
    if kind == 'str':
        if not isinstance(value, str):
            raise TypeError
        return value
    if kind == 'floats':
        if isinstance(value, str):
            value = [float(v) for v in value.split(',') if v.strip()]
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]
        values = tuple(float(v) for v in value)
        if not values or any(isinstance(v, bool) for v in value):
            raise ValueError
        return values
    if kind == 'ints':
        if isinstance(value, str):
            value = [int(v) for v in value.split(',') if v.strip()]
        if not value or any(isinstance(v, bool) or int(v) != v or v < 1 for v in value):
            raise ValueError
        return tuple(int(v) for v in value)
    if kind == 'names':
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise TypeError
        return tuple(name.strip() for v in value for name in v.split(',') if name.strip())
    raise ValueError(f'unknown kind {kind!r}')


def at_least(low: float) -> Check:
    """``value >= low`` (and not NaN)."""

    def check(value):
        return None if value >= low else f'must be at least {low}'

    return check


def above(low: float) -> Check:
    """``value > low`` and finite."""

    def check(value):
        return None if value > low and math.isfinite(value) else f'must be a number above {low}'

    return check


def between(low: float, high: float, *, high_open: bool = True, low_open: bool = False) -> Check:
    """``low <= value < high`` (the ends open or closed as given)."""
    lo, hi = ('(' if low_open else '['), (')' if high_open else ']')

    def check(value):
        ok_low = value > low if low_open else value >= low
        ok_high = value < high if high_open else value <= high
        return None if ok_low and ok_high else f'must be in {lo}{low}, {high}{hi}'

    return check


def finite(value) -> str | None:
    """A finite number."""
    return None if math.isfinite(value) else 'must be a finite number'


def nonempty(value: str) -> str | None:
    """A string with something in it."""
    return None if value.strip() else 'must not be empty'
