"""``gan-trainer train`` (and ``examples/train_dcgan.py``): flags -> RunConfig -> run.

The flags are made from :class:`~gan_trainer.run.RunConfig`'s declarations,
one per option, so the two cannot drift apart. A run starts from
``--config OUT/config.json`` (to repeat an earlier run) or from
``--preset`` (``default`` when none is named); every flag given explicitly overrides
that. Then :func:`gan_trainer.run.build_trainer` builds the run and
``run()`` trains it. Every way it can end is one line and an exit status::

    0    done (or nothing left to do)
    2    bad input: an option, the data, a snapshot, the output folder
    3    training diverged (NaN or infinity)
    4    no room: a full disk, a failed write, not enough memory
    130  stopped by Ctrl-C (SIGINT), after saving the iteration
    143  stopped by SIGTERM, likewise
"""

from __future__ import annotations

import argparse
import signal
import sys

from gan_trainer.cli._args import (
    Parser,
    describe,
    fail,
    int_list,
    integer,
    number,
    one_line_warnings,
)
from gan_trainer.run.config import RunConfig
from gan_trainer.run.options import GROUPS, ConfigError, allowed, declared

_TYPES = {'int': integer, 'float': number, 'str': str, 'ints': int_list, 'floats': str,
          'names': str}


def flags_of_options() -> dict[str, str]:
    """Option name -> the flag that sets it (its first spelling)."""
    result = {}
    for name, field in declared(RunConfig).items():
        meta = field.metadata
        result[name] = meta['negate'] or (meta['flags'] or (f'--{name}',))[0]
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds one flag per run option (by group), plus ``--config``."""
    parser.add_argument('--config', metavar='CONFIG_JSON',
                        help='start from the options of an earlier run (its OUT/config.json); '
                             'flags given explicitly override them')
    groups = {name: parser.add_argument_group(name) for name in GROUPS}
    defaults = RunConfig()
    for name, field in declared(RunConfig).items():
        meta = field.metadata
        if not meta['cli']:
            continue
        group = groups[meta['group']]
        default = getattr(defaults, name)
        shown = '' if default in (None, ()) else f' (default {_shown(default)})'
        help_text = meta['help'] + ('' if meta['kind'] == 'bool' else shown)
        if meta['preset']:
            help_text += '; set by --preset'
        if meta['negate']:
            group.add_argument(meta['negate'], dest=name, action='store_false',
                               default=argparse.SUPPRESS, help=help_text)
            continue
        spellings = meta['flags'] or (f'--{name}',)
        if meta['kind'] == 'bool':
            group.add_argument(*spellings, dest=name, action=argparse.BooleanOptionalAction,
                               default=argparse.SUPPRESS, help=help_text)
            continue
        choices = allowed(field)
        # A list of names may also be given a flag at a time.
        repeated = {'action': 'append'} if meta['kind'] == 'names' else {}
        group.add_argument(*spellings, dest=name, type=_TYPES[meta['kind']],
                           choices=choices, default=argparse.SUPPRESS, help=help_text,
                           metavar=None if choices else name.upper(), **repeated)


def _shown(value) -> str:
    return ','.join(map(str, value)) if isinstance(value, tuple) else str(value)


#: The heading of each option group in the flag reference.
GROUP_TITLES = {
    'data': 'Data', 'networks': 'Networks', 'loop': 'The training loop',
    'optimizer': 'Optimizers', 'schedule': 'Schedule and snapshots',
    'quality': 'Measuring quality', 'output': 'Output, device and preset',
    'parallel': 'Data-parallel training',
}


def flag_reference() -> str:
    """The flags as Markdown tables by group (docs/command.md), made from the declarations.

    The default column is what a run without that flag gets: the option's
    default, or, for an option a preset sets, the default preset's value
    (marked "preset").
    """
    from gan_trainer.run.presets import get_preset

    dcgan = get_preset(RunConfig().preset)
    lines = []
    fields = declared(RunConfig)
    for group in GROUPS:
        rows = []
        for name, field in fields.items():
            meta = field.metadata
            if meta['group'] != group or not meta['cli']:
                continue
            flags = [meta['negate']] if meta['negate'] else list(meta['flags'] or (f'--{name}',))
            if meta['kind'] == 'bool' and not meta['negate']:
                flags += [f'--no-{flag[2:]}' for flag in flags]
            value = getattr(dcgan, name)
            default = ('' if value in (None, ()) or meta['kind'] == 'bool'
                       else f'`{_shown(value)}`')
            if default and meta['preset']:
                default += ' (preset)'
            choices = allowed(field)
            extra = f' ({", ".join(f"`{c}`" for c in choices)})' if choices and (
                meta['kind'] == 'str') else ''
            rows.append(f'| {", ".join(f"`{f}`" for f in flags)} | {default} | '
                        f'{meta["help"]}{extra} |')
        if rows:
            lines += [f'**{GROUP_TITLES[group]}**', '', '| flag | default | meaning |',
                      '|---|---|---|', *rows, '']
    return '\n'.join(lines).rstrip() + '\n'


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The RunConfig of parsed flags: a base, then the flags given over it.

    The base is ``--config``'s run; else, with ``--resume``, the run being
    resumed (its ``config.json``: a resume is the same run, and the flags
    given may only change what it allows, see
    :func:`gan_trainer.run.resume.check_resumed_options`); else
    ``--preset`` (``default`` when none is named).

    Raises:
        ConfigError: For a value an option cannot take.
        SnapshotError: For a ``--config`` file that cannot be read.
    """
    from gan_trainer.checkpoint import SnapshotError
    from gan_trainer.run.checks import normalizations_without_effect
    from gan_trainer.run.presets import apply_preset
    from gan_trainer.run.record import read_record

    explicit = {k: v for k, v in vars(args).items() if k != 'config'}
    base, path = RunConfig(), args.config
    if path is None and explicit.get('resume'):
        path = _resumed_config(explicit['resume'], explicit.get('out', base.out))
    if path is not None:
        record = read_record(path)
        if record.config is None and args.config is None:
            path = None  # an older run's record: the flags say what the run was
        elif record.config is None:
            raise SnapshotError(
                f"'{path}' was written by an older gan_trainer (config version "
                f'{record.version}): it holds the networks but not the run\'s options, so it '
                'cannot be repeated; pass the flags of that run instead')
        else:
            base = record.config
    preset = explicit.pop('preset', None)
    if path is None:
        config = apply_preset(base, preset or base.preset, **explicit)
    elif preset is not None and preset != base.preset:
        # Its settings over the run's: a resume then names the first one that differs.
        config = apply_preset(base, preset, **explicit)
    else:
        config = base.replace(**explicit)
    for name, why in normalizations_without_effect(config).items():
        if explicit.get(name, 'none') != 'none':
            raise ConfigError(name, f'{explicit[name]!r} would have no effect: {why} '
                                    f'(leave --{name} out, or give it as none)')
    return config


def _resumed_config(resume: str, out: str) -> str | None:
    """The ``config.json`` of the run ``--resume`` continues, when there is one."""
    import os

    from gan_trainer import files

    folder = out if resume == 'auto' else os.path.dirname(os.path.abspath(resume))
    path = os.path.join(folder, files.CONFIG)
    return path if os.path.isfile(path) else None


def continue_command(config: RunConfig, prog: str, *, processes: int = 1) -> str:
    """The command line that continues a stopped run exactly: ``PROG --resume auto --out OUT``.

    Every option the run's ``config.json`` keeps comes from there; the few
    it does not keep (the device, TF32, the progress bar) are added when
    they differ from their defaults. A data-parallel run is continued under
    ``mpiexec -n PROCESSES``.
    """
    import shlex

    words = [*shlex.split(prog), '--resume', 'auto', '--out', config.out]
    defaults = RunConfig()
    for name, field in declared(RunConfig).items():
        meta = field.metadata
        if meta['saved'] or not meta['cli'] or name in ('out', 'resume', 'allow_change'):
            continue
        value = getattr(config, name)
        if value == getattr(defaults, name):
            continue
        flag = meta['negate'] or (meta['flags'] or (f'--{name}',))[0]
        if meta['kind'] == 'bool':
            words.append(flag if meta['negate'] or value else f'--no-{flag[2:]}')
        else:
            words += [flag, _shown(value)]
    if processes > 1:
        words = ['mpiexec', '-n', str(processes), *words]
    return shlex.join(words)


def build_parser(prog: str) -> Parser:
    """The parser of the training command, named ``prog`` in its messages."""
    parser = Parser(prog=prog, description='Train a GAN with gan_trainer (DCGAN by default).',
                    argument_default=argparse.SUPPRESS)
    add_arguments(parser)
    return parser


def parse_config(argv=None, *, prog: str = 'gan-trainer train') -> RunConfig:
    """Flags -> RunConfig; a bad flag or value exits with one line and status 2."""
    one_line_warnings(prog)
    args = build_parser(prog).parse_args(argv)
    if not hasattr(args, 'config'):
        args.config = None
    try:
        return config_from_args(args)
    except ValueError as e:
        sys.exit(fail(prog, e, flags_of_options()))


def run_config(config: RunConfig, *, prog: str = 'gan-trainer train', gen=None, dis=None,
               data=None, command: str | None = None) -> int:
    """Builds and runs ``config``; returns the exit status (see the module docstring).

    Args:
        config: The run.
        prog: The command's name in its messages.
        gen, dis, data: As for :func:`gan_trainer.run.build_trainer`.
        command: How to start the command again, for the line that says how
            to continue a stopped run (default ``prog``).
    """
    from gan_trainer.distributed import world_rank
    from gan_trainer.run import ResourceError, Stopped, TrainingDiverged, build_trainer

    one_line_warnings(prog)
    # In a data-parallel run every process finds the same bad input; rank 0 says it.
    lead = config.communicator is None or world_rank() == 0
    flags = flags_of_options()

    def say(line: str) -> None:
        print(f'{prog}: {line}', flush=True)

    def error(e: BaseException, status: int) -> int:
        if lead:
            print(f'{prog}: error: {describe(e, flags)}', file=sys.stderr, flush=True)
        return status

    trainer = None
    try:
        trainer = build_trainer(config, gen=gen, dis=dis, data=data, log=say)
        trainer.run()
    except Stopped as e:
        if lead:
            size = trainer.group.size if trainer is not None else 1
            again = continue_command(config, command or prog, processes=size)
            tail = f'; continue with: {again}' if e.snapshot else ''
            print(f'{prog}: {e}{tail}', file=sys.stderr, flush=True)
        return e.exit_status
    except KeyboardInterrupt:  # before training started: nothing was written
        if lead:
            print(f'{prog}: stopped by SIGINT before training started', file=sys.stderr)
        return 128 + signal.SIGINT
    except TrainingDiverged as e:
        return error(e, 3)
    except ResourceError as e:
        return error(e, 4)
    except ValueError as e:  # ConfigError, DatasetError, SnapshotError, DeviceError, ...
        status = error(e, 2)
        group = getattr(trainer, 'group', None)
        if trainer is not None and group is not None and group.parallel:
            # Failed during training on this process only (an image vanished):
            # the others must not wait for it.
            group.comm.mpi_comm.Abort(status)
        return status
    return 0


def main(argv=None, *, prog: str = 'gan-trainer train') -> int:
    """``gan-trainer train [flags]``: parse, build, run; returns the exit status."""
    return run_config(parse_config(argv, prog=prog), prog=prog)


__all__ = ['add_arguments', 'build_parser', 'config_from_args', 'continue_command',
           'flags_of_options', 'main', 'parse_config', 'run_config']
