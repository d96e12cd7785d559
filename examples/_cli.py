"""Command-line pieces shared by the example scripts (not part of the package).

Errors in user input end in one line on stderr and exit status 2, never a
traceback: argparse's own errors through :class:`Parser`, the package's
input errors (bad dataset, device, snapshot) through :func:`fail`.
"""

from __future__ import annotations

import argparse
import sys
import warnings


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit status 2, no usage dump).

    It also makes warnings (such as the list of skipped image files) print
    as one line under the script's name instead of a source location.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        warnings.formatwarning = self._format_warning

    def _format_warning(self, message, category, filename, lineno, line=None):
        return f'{self.prog}: warning: {message}\n'

    def error(self, message):
        self.exit(2, f'{self.prog}: error: {message}\n')


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected an integer, got {text!r}') from None
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be at least 1, got {value}')
    return value


def int_list(text: str) -> list[int]:
    """argparse type: comma-separated integers >= 1, e.g. ``64,128,256``."""
    try:
        values = [int(v) for v in text.split(',') if v.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(
            f'expected comma-separated positive integers, got {text!r}')
    return values


def fail(prog: str, error: Exception) -> int:
    """Prints ``error`` as one line under the script's name; returns exit status 2."""
    print(f'{prog}: error: {error}', file=sys.stderr)
    return 2
