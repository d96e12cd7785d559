"""Resuming a run: which snapshot, and whether these options may continue it.

``resume='auto'`` takes the newest complete snapshot of the folder (the
newest every process has, in a data-parallel run); an explicit snapshot is
checked to be this process's file. Either way the folder must not hold
snapshots the resumed run would overwrite, or (for a new run) any snapshot
at all. :func:`check_same_networks` compares the options with the
``config.json`` of the run being resumed: those that shape the networks or
the data must be the same, or the snapshot could not be loaded (or, worse,
would load into different networks).
"""

from __future__ import annotations

from collections.abc import Callable

from gan_trainer.checkpoint import SnapshotError
from gan_trainer.nets import resolve_widths
from gan_trainer.run.config import ConfigError, RunConfig, network_options, preset_options
from gan_trainer.run.folder import RunFolder
from gan_trainer.run.group import Group
from gan_trainer.run.record import RunRecord, record_beside


def resume_point(config: RunConfig, folder: RunFolder, group: Group, say: Callable[[str], None]
                  ) -> tuple[str | None, list[str]]:
    """The trainer snapshot to resume (this process's file), checked against the folder.

    Returns:
        ``(snapshot or None, later)``: with ``resume='auto'``, ``later``
        are this process's snapshots newer than the one resumed (damaged,
        or not finished by every process), to be moved aside once the run
        has passed its checks.
    """
    resume, later = config.resume, []
    if resume == 'auto':
        if group.parallel:
            resume = folder.latest_common(group.comm)
        else:
            with group.agreeing():
                resume = folder.latest()
        later = folder.after(resume)
        say(f'resuming from {resume}' if resume else
            f"no snapshot to resume in '{folder.path}'; starting a new run")
    elif resume and group.parallel:
        with group.agreeing():
            resume = folder.rank_file(resume, group.comm)
    with group.agreeing():
        # A run never overwrites, or lets --keep delete, the snapshots of
        # another run.
        if resume:
            folder.check_resume(resume, advice='pass another --out', ignore=later)
        else:
            folder.check_fresh(advice='none of them can be resumed; pass another --out'
                               if config.resume else
                               'pass --resume auto to continue it, or another --out')
    return resume, later


def previous_record(resume: str | None) -> RunRecord | None:
    """The record of the run a snapshot belongs to, when its folder has a readable one."""
    if not resume:
        return None
    try:
        return record_beside(resume)
    except SnapshotError:
        return None  # an older or copied snapshot: the load itself will check the shapes


def check_same_networks(config: RunConfig, previous: RunConfig | None, snapshot: str,
                        side: int | None = None) -> None:
    """Refuses to resume with options that would change the networks or the data.

    Args:
        config: The options of this run.
        previous: Those of the run being resumed (from its ``config.json``).
        snapshot: The snapshot being resumed, for the message.
        side: The image side of the run being resumed, to compare the
            widths that ``widths`` or ``base_width`` give.

    Raises:
        ConfigError: Naming the first option that differs, with both values.
    """
    if previous is None:
        return

    def refuse(name, new, old, verb='is'):
        preset = (f' (from preset {config.preset})' if config.preset != previous.preset
                  and name in preset_options() else '')
        raise ConfigError(name, f'{verb} {_shown(new)}{preset}, but the run being resumed '
                                f'({snapshot}) has {_shown(old)}: resume with its value, or '
                                'start a new run in another --out')

    # The DCGAN rule resolves widths from base_width: compare what they give.
    resolved = side is not None and config.arch == previous.arch == 'dcgan'
    for name in network_options():
        if resolved and name in ('widths', 'base_width'):
            continue
        new, old = getattr(config, name), getattr(previous, name)
        if new != old:
            refuse(name, new, old)
    if resolved:
        try:
            new = resolve_widths(side, config.widths, base_width=config.base_width)
            old = resolve_widths(side, previous.widths, base_width=previous.base_width)
        except ValueError:
            new = old = None  # the networks' own check says why
        if new != old:
            refuse('widths' if config.widths is not None else 'base_width', new, old,
                   'gives D the widths')
    if (config.ema is None) != (previous.ema is None):
        raise ConfigError('ema', f'is {_shown(config.ema)}, but the run being resumed '
                                 f'({snapshot}) has {_shown(previous.ema)}: a moving average '
                                 'cannot be added to or dropped from a run')


def _shown(value) -> str:
    if isinstance(value, tuple):
        return ','.join(map(str, value))
    return 'none' if value is None else str(value)
