"""Command-line pieces shared by the example scripts (not part of the package).

Errors in user input end in one line on stderr and exit status 2, never a
traceback: argparse's own errors through :class:`Parser`, the package's
input errors (bad dataset, device, snapshot) through :func:`fail`. The
scripts that read a generator snapshot (``generate.py``, ``interpolate.py``,
``export_onnx.py``) pick it, and its labels, with :func:`load_cli_generator`
and :func:`labels_for`.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

import numpy

from gan_trainer.checkpoint import SnapshotError, load_generator


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


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected an integer, got {text!r}') from None


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


def add_generator_args(parser: argparse.ArgumentParser) -> None:
    """The snapshot flags every generator script has: GEN_SNAPSHOT, --config, --no_ema."""
    a = parser.add_argument
    a('gen', metavar='GEN_SNAPSHOT', help='generator snapshot, e.g. result/gen_iter_2500.npz')
    a('--config', help='config.json of the run (default: beside the snapshot)')
    a('--no_ema', action='store_true',
      help='use G itself even when the run kept an EMA of it (gen_ema_iter_N.npz)')


def twin(gen_path: str, prefix: str) -> str:
    """``result/gen_iter_9.npz`` -> ``result/<prefix>iter_9.npz``."""
    folder, name = os.path.split(gen_path)
    return os.path.join(folder, name.replace('gen_', prefix, 1))


def load_cli_generator(args: argparse.Namespace, prog: str):
    """Loads ``args.gen``, or its EMA twin when the run kept one.

    A run with ``--ema`` writes ``gen_ema_iter_N.npz`` beside
    ``gen_iter_N.npz``; the average usually looks cleaner, so it is used
    (and said so) unless ``--no_ema`` is given.

    Returns:
        ``(gen, config)`` as :func:`gan_trainer.checkpoint.load_generator`.
    """
    gen_path = args.gen
    ema_path = twin(gen_path, 'gen_ema_')
    if (not args.no_ema and os.path.basename(gen_path).startswith('gen_iter_')
            and os.path.isfile(ema_path)):
        gen_path = ema_path
        print(f'{prog}: using the EMA generator {gen_path} (--no_ema for G itself)')
    return load_generator(gen_path, args.config)


def labels_for(args: argparse.Namespace, config: dict, n: int):
    """The class labels ``(n,)`` of ``n`` images, or ``None`` for an unconditional G.

    ``n`` copies of ``--label``; without it, a conditional snapshot draws its
    classes in turn (image ``i`` is of class ``i % n_classes``).
    """
    if args.label is None:
        if config.get('conditional'):
            return numpy.arange(n, dtype=numpy.int32) % numpy.int32(config['gen']['n_classes'])
        return None
    if not config.get('conditional'):
        raise SnapshotError(
            f"--label needs a conditional snapshot; '{args.gen}' was trained without "
            '--conditional')
    n_classes = config['gen']['n_classes']
    if not 0 <= args.label < n_classes:
        raise SnapshotError(
            f'--label {args.label} is outside the trained classes 0..{n_classes - 1}')
    return numpy.full(n, args.label, numpy.int32)
