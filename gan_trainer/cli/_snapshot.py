"""The snapshot flags of the generator tools, and how they pick G and its labels."""

from __future__ import annotations

import argparse
import os

import numpy

from gan_trainer import files
from gan_trainer.checkpoint import SnapshotError
from gan_trainer.run.loading import load_generator
from gan_trainer.run.record import RunRecord


def add_generator_args(parser: argparse.ArgumentParser, *, labels: bool = True) -> None:
    """The flags every generator tool has: GEN_SNAPSHOT, --config, --no_ema (, --label)."""
    a = parser.add_argument
    a('gen', metavar='GEN_SNAPSHOT', help='generator snapshot, e.g. result/gen_iter_2500.npz')
    a('--config', help='config.json of the run (default: beside the snapshot)')
    a('--no_ema', action='store_true',
      help='use G itself even when the run kept an EMA of it (gen_ema_iter_N.npz)')
    if labels:
        a('--label', help='class to generate, by number or name (conditional snapshots only; '
                          '--list_labels shows them)')
        a('--list_labels', action='store_true',
          help="print the run's classes with their label numbers and exit")


def load_cli_generator(args: argparse.Namespace, say):
    """Loads ``args.gen``, or its EMA twin when the run kept one.

    A run with an EMA writes ``gen_ema_iter_N.npz`` beside ``gen_iter_N.npz``;
    the average usually looks cleaner, so it is used (and said so) unless
    ``--no_ema`` is given.

    Returns:
        ``(gen, record)`` as :func:`gan_trainer.run.load_generator`.
    """
    gen_path = args.gen
    ema_path = files.twin(gen_path, 'gen_ema')
    named = files.NET_SNAPSHOT.match(os.path.basename(gen_path))
    if (not args.no_ema and named and named.group(1) == 'gen'
            and os.path.isfile(ema_path)):
        gen_path = ema_path
        say(f'using the EMA generator {gen_path} (--no_ema for G itself)')
    return load_generator(gen_path, args.config)


def label_listing(record: RunRecord) -> list[str]:
    """``label  name`` lines of a run's classes (or one line saying it has none)."""
    if not record.conditional:
        return ['this run was trained without --conditional: it takes no labels']
    names = record.classes or tuple(str(k) for k in range(record.n_classes))
    return [f'{k:5d}  {name}' for k, name in enumerate(names)]


def label_number(text: str, record: RunRecord) -> int:
    """A ``--label`` value (a number or a class name) as a label number.

    Raises:
        SnapshotError: For an unconditional run, or a label it was not trained on.
    """
    if not record.conditional:
        raise SnapshotError('--label needs a conditional snapshot; this one was trained '
                            'without --conditional')
    n_classes = record.n_classes
    if text in record.classes:
        return record.classes.index(text)
    try:
        label = int(text)
    except ValueError:
        raise SnapshotError(f'--label {text!r} is not a class of this run (--list_labels '
                            'shows them)') from None
    if not 0 <= label < n_classes:
        raise SnapshotError(f'--label {label} is outside the trained classes 0..{n_classes - 1}')
    return label


def labels_for(args: argparse.Namespace, record: RunRecord, n: int):
    """The class labels ``(n,)`` of ``n`` images, or ``None`` for an unconditional G.

    ``n`` copies of ``--label``; without it, a conditional snapshot draws its
    classes in turn (image ``i`` is of class ``i % n_classes``).
    """
    if args.label is None:
        if record.conditional:
            return numpy.arange(n, dtype=numpy.int32) % numpy.int32(record.n_classes)
        return None
    return numpy.full(n, label_number(args.label, record), numpy.int32)
