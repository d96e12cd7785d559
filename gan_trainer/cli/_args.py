"""What every subcommand shares: one-line errors, argument types, printing.

Errors in user input end in one line on stderr and exit status 2, never a
traceback: argparse's own errors through :class:`Parser`, the package's
input errors through :func:`fail`. Warnings (the list of skipped image
files, a batch size lowered to the data) print as one line under the
command's name too.
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings

from gan_trainer.run.options import ConfigError


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit status 2, no usage dump)."""

    def error(self, message):
        self.exit(2, f'{self.prog}: error: {message}\n')


def one_line_warnings(prog: str) -> None:
    """Makes warnings print as ``PROG: warning: message`` (no source location)."""

    def show(message, category, filename, lineno, file=None, line=None):
        print(f'{prog}: warning: {message}', file=sys.stderr if file is None else file)

    warnings.showwarning = show


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        pass
    try:  # 1e6, 2.5e3: a whole number in exponent notation
        value = float(text)
    except ValueError:
        value = math.nan
    if not value.is_integer():
        raise argparse.ArgumentTypeError(f'expected an integer, got {text!r}')
    return int(value)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be at least 1, got {value}')
    return value


def nonnegative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f'must be 0 or more, got {value}')
    return value


def integer(text: str) -> int:
    """argparse type: any integer, with a one-line error."""
    return _int(text)


def number(text: str) -> float:
    """argparse type: a float, with a one-line error."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected a number, got {text!r}') from None


def int_list(text: str) -> tuple[int, ...]:
    """argparse type: comma-separated integers >= 1, e.g. ``64,128,256``."""
    try:
        values = [int(v) for v in text.split(',') if v.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(
            f'expected comma-separated positive integers, got {text!r}')
    return tuple(values)


def fail(prog: str, error: BaseException, flags: dict[str, str] | None = None) -> int:
    """Prints ``error`` as one line under the command's name; returns its exit status.

    Args:
        prog: The command's name.
        error: The exception; a :class:`ConfigError` is shown under its
            option's flag (``flags`` maps option names to flags).
        flags: Option name -> the flag that sets it.

    Returns:
        4 when the machine lacks a resource (a
        :class:`~gan_trainer.run.ResourceError`, or a write that failed for
        want of disk space or memory), else 2 (bad input).
    """
    print(f'{prog}: error: {describe(error, flags)}', file=sys.stderr)
    return exit_status(error)


def exit_status(error: BaseException) -> int:
    """4 for a lack of disk space or memory, 2 for anything else (see :func:`fail`)."""
    from gan_trainer.run.errors import EXIT_INPUT, EXIT_RESOURCE, NO_ROOM, ResourceError

    if isinstance(error, (ResourceError, MemoryError)) or (
            isinstance(error, OSError) and error.errno in NO_ROOM):
        return EXIT_RESOURCE
    return EXIT_INPUT


def describe(error: BaseException, flags: dict[str, str] | None = None) -> str:
    """The one line that says what an error is (under its flag for a ConfigError)."""
    if isinstance(error, ConfigError) and flags is not None:
        return f'{flags.get(error.option, "--" + error.option)}: {error.reason}'
    return ' '.join(str(error).split()) or type(error).__name__


def run_command(argv, *, prog: str, description: str, add_arguments, run) -> int:
    """Parses ``argv`` for one tool and runs it; a resource error is exit status 4.

    Args:
        argv: The tool's arguments (None: ``sys.argv[1:]``).
        prog: Its name in messages.
        description: One line for ``--help``.
        add_arguments: ``parser -> None``, the tool's flags.
        run: ``(args, prog) -> exit status``.
    """
    from gan_trainer.run.errors import NO_ROOM, ResourceError

    one_line_warnings(prog)
    parser = Parser(prog=prog, description=description)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args, prog)
    except (ResourceError, MemoryError) as e:
        return fail(prog, e)
    except OSError as e:  # a tool's own write, outside its except clauses
        if e.errno not in NO_ROOM:
            raise
        return fail(prog, e)
