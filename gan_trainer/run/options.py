"""How a run option is declared: one dataclass field with its rule, help and flag.

:class:`~gan_trainer.run.RunConfig` declares every option once, with
:func:`option`: its default, what values it accepts (checked when a config
is made, with a :class:`ConfigError` that names the option), its help text,
its command-line flag, and whether changing it changes the networks or the
data (which a resumed run must not do). The ``gan-trainer train`` command
builds its flags from these declarations, so a new option is one field, not
a field plus a flag plus a check in three files.

Every option also declares what a resumed run may do with it
(``resume=``, one of :data:`RESUME_RULES`): a resume is the same run, so
only what cannot change the trained numbers may differ freely; a test
checks that every option says.

The checks are small functions ``value -> message or None``
(:func:`~gan_trainer.rules.at_least`, :func:`~gan_trainer.rules.between`,
...), combined by listing several; they and the kinds of values live in
:mod:`gan_trainer.rules`, which the networks' options read too.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

# The kinds of values and the checks are shared with the networks' options.
from gan_trainer.rules import KIND_WORDS, Check, convert

#: What an option belongs to, for help sections: in the order the help lists them.
GROUPS = ('data', 'networks', 'loop', 'optimizer', 'schedule', 'quality', 'output', 'parallel')


#: What a resumed run may do with an option: its ``resume=`` declaration.
RESUME_RULES = {
    'free': 'may change when a run is resumed: the end, the intervals, --keep, progress and '
            'logging, the device and the loader processes (none changes the trained numbers)',
    'ask': "changes the run's course (the loss, the optimizer, the batch, the seed, ...): a "
           'resume with another value is refused unless --allow_change names it, and the '
           'change is recorded in config.json with its iteration',
    'keep': 'shapes the networks, the data or the snapshots: a resumed run keeps it, always',
}


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
    resume: str | None = None,
    nullable: bool = False,
):
    """A ``dataclasses.field`` of :class:`~gan_trainer.run.RunConfig` with its declaration.

    Args:
        default: The value when the option is not given (``None`` means
            "not set": the option is optional or derived).
        help: One line for ``--help`` and the docs.
        kind: ``'int'``, ``'float'``, ``'str'``, ``'bool'``, ``'ints'``
            (comma-separated positive integers), ``'floats'`` (one or two
            comma-separated numbers) or ``'names'`` (comma-separated words);
            how a flag's text is read.
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
        resume: What a resumed run may do with it: ``'free'``, ``'ask'``
            or ``'keep'`` (:data:`RESUME_RULES`); ``networks`` options are
            ``'keep'`` without saying so. Every option must declare it (a
            test checks); an undeclared one is treated as ``'ask'``.
        nullable: ``None`` is a value it may take although its default is
            not ``None`` (G's learning rate: ``None`` follows ``lr``).
    """
    if group not in GROUPS:
        raise ValueError(f'unknown option group {group!r}')
    if networks:
        if resume not in (None, 'keep'):
            raise ValueError(f"an option that changes the networks is resume='keep', not "
                             f'{resume!r}')
        resume = 'keep'
    if resume is not None and resume not in RESUME_RULES:
        raise ValueError(f'unknown resume rule {resume!r}; one of {", ".join(RESUME_RULES)}')
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
        'resume': resume,
        'nullable': nullable,
    }
    if isinstance(default, (list, dict, set)):
        raise TypeError('option defaults must be immutable (use a tuple)')
    return dataclasses.field(default=default, metadata=meta)


def declared(cls) -> dict[str, dataclasses.Field]:
    """The options of a config class, by name, in declaration order."""
    return {f.name: f for f in dataclasses.fields(cls)}


def resume_rule(field: dataclasses.Field) -> str:
    """The field's :data:`RESUME_RULES` key; ``'ask'`` for one that declares none."""
    return field.metadata.get('resume') or 'ask'


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
        if field.default is not None and not meta.get('nullable'):
            # None is "not set" only where the default is; elsewhere it would
            # reach the networks or the loop as a TypeError.
            raise ConfigError(name, f'needs a value (leave it out for the default, '
                                    f'{_shown(field.default)}), got None')
        return None
    kind = meta['kind']
    try:
        value = convert(kind, value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(name, f'expected {KIND_WORDS[kind]}, got {value!r}') from None
    choices = allowed(field)
    if choices is not None and value not in choices:
        raise ConfigError(name, f'must be one of {", ".join(map(str, choices))}; got {value!r}')
    for check in meta['checks'] + _KIND_CHECKS.get(kind, ()):
        message = check(value)
        if message:
            raise ConfigError(name, f'{message}, got {_shown(value)}')
    return value


def _fits_int64(value: int) -> str | None:
    # Iterations, seeds and counts are saved as 64-bit integers in snapshots.
    return None if -2**63 <= value < 2**63 else 'must fit a 64-bit integer'


def _all_finite(value) -> str | None:
    values = value if isinstance(value, tuple) else (value,)
    return None if all(math.isfinite(v) for v in values) else 'must be a finite number'


def _no_nul(value: str) -> str | None:
    return None if '\x00' not in value else 'must not hold a NUL character'


#: Rules every option of a kind obeys, after its own checks (whose messages
#: are the more specific ones).
_KIND_CHECKS: dict[str, tuple[Check, ...]] = {
    'int': (_fits_int64,), 'float': (_all_finite,), 'floats': (_all_finite,),
    'str': (_no_nul,),
}


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return ','.join(map(str, value))
    return repr(value) if isinstance(value, str) else str(value)

