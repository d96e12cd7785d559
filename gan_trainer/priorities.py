"""The order a run's extensions run in: one table, with the reason for each place.

Chainer runs a trainer's extensions after every update, highest priority
first. The order matters: the NaN guard must look before anything writes,
BatchNorm statistics must be averaged over processes before they are
evaluated or saved, and the trainer snapshot must come after every other
extension's trigger has been checked, or a resumed run would fire one
twice. The package's extension classes take their default ``priority``
from :data:`PRIORITIES` (:func:`priority_of`), and
:func:`gan_trainer.run.extensions.add_extensions` passes the same values
for Chainer's own extensions, so a run built by hand from the classes runs
them in the command's order.

This module imports nothing of the package: every layer can read it.
"""

from __future__ import annotations

from chainer.training.extension import PRIORITY_READER, PRIORITY_WRITER

#: Extension name -> (priority, why it runs there). Higher runs first. The names
#: are those of earlier versions (Chainer's defaults for its own extensions),
#: because trainer snapshots store each extension's state under its name.
PRIORITIES: dict[str, tuple[int, str]] = {
    'mean_over_ranks': (
        PRIORITY_WRITER + 3,
        (
            'data-parallel: the reported values are '
            'averaged over the processes before anything reads them'
        ),
    ),
    'nan_guard': (
        PRIORITY_WRITER + 2,
        (
            'before every writer, so nothing of a state holding '
            'a NaN or infinity is evaluated, drawn, logged or saved'
        ),
    ),
    'average_persistents': (
        PRIORITY_WRITER + 1,
        (
            "data-parallel: every process's "
            'BatchNorm statistics averaged before they are evaluated, drawn '
            'or saved'
        ),
    ),
    'validation': (PRIORITY_WRITER, 'reports validation/* into the observation the log reads'),
    'quality': (PRIORITY_WRITER, 'reports validation/fid and friends, likewise'),
    'image_grid': (PRIORITY_WRITER, 'a writer of its own; after the averaged statistics'),
    'divergence_monitor': (
        PRIORITY_WRITER - 1,
        ('adds warning/divergence before the log reads the observation'),
    ),
    'schedule': (
        PRIORITY_WRITER - 2,
        ("reports the scheduled values of this update before the log reads the "
         "observation, then sets the next update's"),
    ),
    'LogReport': (PRIORITY_READER, "Chainer's reader: summarises the observation"),
    'PrintReport': (PRIORITY_READER - 1, 'prints the entry the log has just made'),
    'PlotReport': (PRIORITY_READER - 1, 'draws the log (LossPlot)'),
    'tensorboard': (PRIORITY_READER - 2, 'reads the entry the log has just made'),
    'ProgressBar': (PRIORITY_READER - 3, 'redraws below what was printed'),
    'training_gif': (PRIORITY_READER - 4, 'does its work when training ends'),
    'team_tuner': (
        PRIORITY_READER - 5,
        ("times the iteration and sets oneDNN's thread count; it changes no number, so "
         'its place among the others does not matter'),
    ),
    'snapshots': (
        -100,
        (
            "after every other extension's trigger: the trainer snapshot "
            'holds their state after this iteration, so a resumed run fires none twice'
        ),
    ),
    'graceful_stop': (
        -200,
        (
            'last: at a signal, saves the iteration (after its regular '
            'snapshot, if there was one) and stops'
        ),
    ),
}


def priority_of(name: str) -> int:
    """The priority of the extension ``name`` in :data:`PRIORITIES`."""
    return PRIORITIES[name][0]


__all__ = ['PRIORITIES', 'priority_of']
