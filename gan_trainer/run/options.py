"""How a run option is declared: one dataclass field with its rule, help and flag.

:class:`~gan_trainer.run.RunConfig` declares every option once, with
:func:`option`: its default, what values it accepts (checked when a config
is made, with a :class:`ConfigError` that names the option), its help text,
its command-line flag, and whether changing it changes the networks or the
data (which a resumed run must not do). The ``gan-trainer train`` command
builds its flags from these declarations, so a new option is one field, not
a field plus a flag plus a check in three files.

The checks are small functions ``value -> message or None``
(:func:`~gan_trainer.rules.at_least`, :func:`~gan_trainer.rules.between`,
...), combined by listing several; they and the kinds of values live in
:mod:`gan_trainer.rules`, which the networks' options read too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

# The kinds of values and the checks are shared with the networks' options.
from gan_trainer.rules import KIND_WORDS, Check, convert

#: What an option belongs to, for help sections: in the order the help lists them.
GROUPS = ('data', 'networks', 'loop', 'optimizer', 'schedule', 'quality', 'output', 'parallel')


class ConfigError(ValueError):
    """A run option has a value it cannot take; ``option`` names it.

    ``str(error)`` is ``'OPTION: what is wrong'``; the command line reports
    it under the option's flag instead (:func:`gan_trainer.cli`).
    """

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f'{option}: {message}')
        self.option = option
        self.reason = message


def option(
    default: Any = None,
    *,
    help: str,
    kind: str,
    group: str,
    checks: Sequence[Check] = (),
    flags: Sequence[str] = (),
    choices: Sequence[Any] | Callable[[], Sequence[Any]] | None = None,
    networks: bool = False,
    preset: bool = False,
    cli: bool = True,
    saved: bool = True,
    negate: str | None = None,
):
    """A ``dataclasses.field`` of :class:`~gan_trainer.run.RunConfig` with its declaration.

    Args:
        default: The value when the option is not given (``None`` means
            "not set": the option is optional or derived).
        help: One line for ``--help`` and the docs.
        kind: ``'int'``, ``'float'``, ``'str'``, ``'bool'``, ``'ints'``
            (comma-separated positive integers) or ``'floats'`` (one or two
            comma-separated numbers); how a flag's text is read.
        group: One of :data:`GROUPS`.
        checks: Rules the value must pass (skipped for ``None``).
        flags: Command-line spellings; ``('--NAME',)`` by default. Short
            aliases (``'-b'``) and old names (``'--sn'``) go here too.
        choices: The allowed values (or a function returning them, for
            registries filled at import time).
        networks: Changing it changes the networks or the data, so a run
            cannot be resumed with another value.
        preset: A ``--preset`` sets it (see :mod:`gan_trainer.run.presets`).
        cli: Whether it has a flag at all.
        saved: Whether ``config.json`` records it (not for actions such
            as ``resume``).
        negate: For a bool whose flag turns it *off* (``--no_progress``
            sets ``progress`` to False): that flag; ``help`` then says what
            the flag does.
    """
    if group not in GROUPS:
        raise ValueError(f'unknown option group {group!r}')
    meta = {
        'help': help,
        'kind': kind,
        'group': group,
        'checks': tuple(checks),
        'flags': tuple(flags),
        'choices': choices,
        'networks': networks,
        'preset': preset,
        'cli': cli,
        'saved': saved,
        'negate': negate,
    }
    if isinstance(default, (list, dict, set)):
        raise TypeError('option defaults must be immutable (use a tuple)')
    return dataclasses.field(default=default, metadata=meta)


def declared(cls) -> dict[str, dataclasses.Field]:
    """The options of a config class, by name, in declaration order."""
    return {f.name: f for f in dataclasses.fields(cls)}


def allowed(field: dataclasses.Field) -> tuple | None:
    """The field's choices as a tuple (calling a choices function), or None."""
    choices = field.metadata['choices']
    if choices is None:
        return None
    return tuple(choices() if callable(choices) else choices)


def check_value(field: dataclasses.Field, value: Any) -> Any:
    """Validates (and normalises) one option's value.

    Returns:
        The value, converted where the kind says so (a list of widths
        becomes a tuple, an int for a float option becomes a float).

    Raises:
        ConfigError: Naming the option and what is wrong.
    """
    name, meta = field.name, field.metadata
    if value is None:
        return None
    kind = meta['kind']
    try:
        value = convert(kind, value)
    except (TypeError, ValueError):
        raise ConfigError(name, f'expected {KIND_WORDS[kind]}, got {value!r}') from None
    choices = allowed(field)
    if choices is not None and value not in choices:
        raise ConfigError(name, f'must be one of {", ".join(map(str, choices))}; got {value!r}')
    for check in meta['checks']:
        message = check(value)
        if message:
            raise ConfigError(name, f'{message}, got {_shown(value)}')
    return value


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return ','.join(map(str, value))
    return repr(value) if isinstance(value, str) else str(value)

