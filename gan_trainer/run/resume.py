"""Resuming a run: which snapshot, and whether these options may continue it.

``resume='auto'`` takes the newest complete snapshot of the folder (the
newest every process has, in a data-parallel run); an explicit snapshot is
checked to be this process's file. Either way the folder must not hold
snapshots the resumed run would overwrite, or (for a new run) any snapshot
at all. :func:`check_resumed_options` compares the options with the
``config.json`` of the run being resumed: a resume is the same run, so
only what cannot change the trained numbers may differ (the end, the
intervals, logging); a change of course (the learning rate, the loss) must
be asked for by name, and what shapes the networks or the data can never
change (the snapshot could not be loaded, or, worse, would load into
different networks).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

from gan_trainer.checkpoint import SnapshotError
from gan_trainer.nets import resolve_widths
from gan_trainer.run.config import ConfigError, RunConfig, preset_options
from gan_trainer.run.errors import RunWarning
from gan_trainer.run.folder import RunFolder
from gan_trainer.run.group import Group
from gan_trainer.run.options import declared, resume_rule
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


def check_resumed_options(config: RunConfig, previous: RunConfig | None, snapshot: str, *,
                          side: int | None = None, iteration: int = 0) -> tuple[dict, ...]:
    """Whether ``config`` may continue the run of ``previous``; the changes it makes.

    A resume is the same run. Each option declares what a resume may do
    with it (:data:`~gan_trainer.run.options.RESUME_RULES`): ``'free'``
    options (the end, intervals, ``keep``, logging) may differ; ``'ask'``
    options (the loss, the optimizer, the batch, the seed, ...) only when
    ``config.allow_change`` names them; ``'keep'`` options (the networks,
    the data, the processes) never.

    Args:
        config: The options of this run.
        previous: Those of the run being resumed (from its ``config.json``);
            None when it has none (nothing can be compared).
        snapshot: The snapshot being resumed, for the message.
        side: The image side of the run being resumed, to compare the
            widths that ``widths`` or ``base_width`` give.
        iteration: The iteration of ``snapshot``: where the changes start.

    Returns:
        One ``{'iteration', 'option', 'from', 'to'}`` per allowed change,
        as ``config.json`` records them.

    Raises:
        ConfigError: Naming the first option that differs and may not,
            with both values.
    """
    if previous is None:
        return ()
    _check_kept(config, previous, snapshot, side)
    changes = []
    for name, field in declared(RunConfig).items():
        if not field.metadata['saved'] or resume_rule(field) != 'ask':
            continue
        new, old = getattr(config, name), getattr(previous, name)
        if new == old:
            continue
        if name not in config.allow_change:
            raise ConfigError(name, f'is {_shown(new)}{_from_preset(config, previous, name)}, '
                                    f'but the run being resumed ({snapshot}) has {_shown(old)}: '
                                    'a resume continues the same run; resume with its value, '
                                    f'pass --allow_change {name} to change it from iteration '
                                    f'{iteration} on, or start a new run in another --out')
        changes.append({'iteration': iteration, 'option': name, 'from': _json(old),
                        'to': _json(new)})
    _warn_if_the_end_moves_a_schedule(config, previous, iteration)
    return tuple(changes)


#: Options whose values follow a curve to the run's last iteration, so that
#: a new end reshapes them from the resumed iteration on.
_TO_THE_END = {'lr_schedule': 'none', 'penalty_weight_end': None, 'beta2_start': None}


def _warn_if_the_end_moves_a_schedule(config: RunConfig, previous: RunConfig,
                                      iteration: int) -> None:
    if (config.iteration, config.epoch) == (previous.iteration, previous.epoch):
        return
    scheduled = [name for name, off in _TO_THE_END.items()
                 if getattr(config, name, off) != off]
    if scheduled:
        warnings.warn(f'the run ends elsewhere now, so {", ".join(scheduled)} follow a curve to '
                      f'the new end from iteration {iteration} on (an uninterrupted run to that '
                      'end would have followed it from the start)', RunWarning, stacklevel=3)


def _check_kept(config: RunConfig, previous: RunConfig, snapshot: str,
                side: int | None) -> None:
    """Refuses to resume with options that would change the networks, the data or the processes."""

    def refuse(name, new, old, verb='is'):
        raise ConfigError(name, f'{verb} {_shown(new)}{_from_preset(config, previous, name)}, '
                                f'but the run being resumed ({snapshot}) has {_shown(old)}: '
                                'resume with its value, or start a new run in another --out')

    # The DCGAN rule resolves widths from base_width: compare what they give.
    resolved = side is not None and config.arch == previous.arch == 'dcgan'
    for name, field in declared(RunConfig).items():
        if resume_rule(field) != 'keep' or not field.metadata['saved']:
            continue
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


def _from_preset(config: RunConfig, previous: RunConfig, name: str) -> str:
    return (f' (from preset {config.preset})' if config.preset != previous.preset
            and name in preset_options() else '')


def _json(value):
    return list(value) if isinstance(value, tuple) else value


def _shown(value) -> str:
    if isinstance(value, tuple):
        return ','.join(map(str, value))
    return 'none' if value is None else str(value)
