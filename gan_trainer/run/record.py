"""RunRecord: what ``OUT/config.json`` says about a run, and its schema.

A run writes ``config.json`` once its checks have passed. It holds what
is needed to use the run's snapshots without the training command, and to
repeat the run:

.. code-block:: text

    {"format": "gan_trainer.run", "version": 2,
     "run": {...the RunConfig, as RunConfig.to_dict()...},
     "gen": {...G's constructor arguments...}, "dis": {...D's...},
     "classes": ["0", "1", ...],
     "data": {"name": "digits", "train": 4500, "test": 500, "shape": [1, 28, 28]},
     "changes": [{"iteration": 300, "option": "lr", "from": null, "to": 0.001}],
     "z_dist": "normal", "conditional": false, "ema": null,
     "loss": "nonsaturating", "preset": "dcgan", "dataset": "digits"}

``gen``/``dis`` are the networks' ``config()`` (what
:func:`gan_trainer.nets.build_generator` rebuilds them from); ``classes``
names each label value (``classes[k]`` is label ``k``). ``changes`` lists
the options a resume changed (with ``--allow_change``), oldest first, each
with the iteration it took effect at: the options before it are those of
``run`` with each change undone. The last six keys
repeat the run's values at the top level, where version 1 kept them, so that
older readers still find them.

Version 1, written before ``gan_trainer.run`` existed, had no ``format``,
``version``, ``run``, ``classes`` or ``data``: it loads (the snapshots of
such a run can be used as before), but cannot repeat the run.
:func:`read_record` is the one reader of the file, :meth:`RunRecord.write` the
one writer.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from gan_trainer import files
from gan_trainer.checkpoint import SnapshotError
from gan_trainer.latent import SAMPLERS
from gan_trainer.run.config import ConfigError, RunConfig

FORMAT = 'gan_trainer.run'
VERSION = 2


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """The contents of a run's ``config.json``.

    Attributes:
        config: The run's options; None for a version-1 file.
        gen: G's constructor arguments (``gen.config()``, with ``arch``).
        dis: D's constructor arguments.
        classes: Class name of each label value; empty when unlabelled.
        data: ``name``, ``train``/``test`` sizes and image ``shape``.
        z_dist: The distribution z was drawn from.
        conditional: Whether G and D take labels.
        ema: The decay of G's moving average, or None when there is none.
        version: The file's schema version.
        z_threshold: The bound of a truncated-normal z, or None.
        changes: The options resumes changed: ``{'iteration', 'option',
            'from', 'to'}`` each, oldest first (see the module docstring).
    """

    config: RunConfig | None
    gen: dict
    dis: dict
    classes: tuple[str, ...] = ()
    data: dict = dataclasses.field(default_factory=dict)
    z_dist: str = 'normal'
    conditional: bool = False
    ema: float | None = None
    version: int = VERSION
    z_threshold: float | None = None
    changes: tuple[dict, ...] = ()

    @classmethod
    def of(cls, config: RunConfig, gen: dict, dis: dict, *, classes=(), data=None,
           changes=()) -> RunRecord:
        """The record of a run about to start with ``config`` and these networks."""
        return cls(config, dict(gen), dict(dis), tuple(classes), dict(data or {}),
                   config.z_dist, config.conditional, config.ema, z_threshold=config.z_threshold,
                   changes=tuple(changes))

    @property
    def sampler(self):
        """The z distribution of the run, as :func:`gan_trainer.latent.get_sampler` gives it."""
        from gan_trainer.latent import get_sampler

        return get_sampler(self.z_dist, threshold=self.z_threshold)

    @property
    def n_classes(self) -> int:
        """Number of classes G was trained for (1 if unconditional)."""
        return int(self.gen.get('n_classes', max(len(self.classes), 1)))

    def to_json(self) -> dict[str, Any]:
        """The JSON object written to ``config.json``."""
        run = self.config.to_dict() if self.config is not None else None
        legacy = {'loss': run and run['loss'], 'preset': run and run['preset'],
                  'dataset': run and run['dataset']}
        return {'format': FORMAT, 'version': self.version, 'run': run, 'gen': self.gen,
                'dis': self.dis, 'classes': list(self.classes), 'data': self.data,
                'z_dist': self.z_dist, 'conditional': self.conditional, 'ema': self.ema,
                'changes': [dict(c) for c in self.changes], **legacy}

    @classmethod
    def from_json(cls, data: Any, *, where: str = files.CONFIG) -> RunRecord:
        """Reads :meth:`to_json`'s object (or a version-1 one).

        Raises:
            SnapshotError: For anything that is not a run's config, naming
                ``where``; a newer version says to upgrade gan_trainer.
        """
        if not isinstance(data, dict) or not isinstance(data.get('gen'), dict) or (
                not isinstance(data.get('dis'), dict)):
            raise SnapshotError(f"'{where}' is not the config.json of a gan_trainer run "
                                '(no gen and dis sections)')
        version = data.get('version', 1)
        if isinstance(version, bool) or not isinstance(version, int) or version > VERSION:
            raise SnapshotError(f"'{where}' has config version {version!r}; this gan_trainer "
                                f'reads versions 1 to {VERSION}: upgrade gan_trainer')
        config = None
        if version >= 2 and data.get('run') is not None:
            if not isinstance(data['run'], dict):
                raise SnapshotError(f"'{where}': run must be an object of options, got "
                                    f"{type(data['run']).__name__}")
            try:
                config = RunConfig.from_dict(data['run'], where=where)
            except (ConfigError, TypeError) as e:
                raise SnapshotError(f"'{where}': {e}") from None
        classes = _entry(data, 'classes', list, [], where)
        if not all(isinstance(c, str) for c in classes):
            raise SnapshotError(f"'{where}': classes must be a list of names")
        z_dist = _entry(data, 'z_dist', str, 'normal', where)
        if z_dist not in SAMPLERS:
            raise SnapshotError(f"'{where}': z_dist must be one of {', '.join(sorted(SAMPLERS))}"
                                f', got {z_dist!r}')
        ema = data.get('ema')
        # Version 1 wrote the decay given to --ema, or null (or false).
        ema = None if ema is None or ema is False else ema
        if ema is not None and (isinstance(ema, bool) or not isinstance(ema, (int, float))
                                or not 0 < ema < 1):
            raise SnapshotError(f"'{where}': ema must be a decay in (0, 1) or null, got {ema!r}")
        return cls(config, data['gen'], data['dis'], tuple(classes),
                   dict(_entry(data, 'data', dict, {}, where)), z_dist,
                   _entry(data, 'conditional', bool, False, where),
                   float(ema) if ema else None, version,
                   config.z_threshold if config is not None else None,
                   _changes(_entry(data, 'changes', list, [], where), where))

    def write(self, out: str) -> str:
        """Writes ``OUT/config.json`` atomically; returns its path."""
        return files.write_json(os.path.join(out, files.CONFIG), self.to_json())


def read_record(path: str) -> RunRecord:
    """Reads a run's ``config.json`` (its path, or the run's folder).

    Raises:
        SnapshotError: When the file is missing, unreadable or not a run's.
    """
    if os.path.isdir(path):
        path = os.path.join(path, files.CONFIG)
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except FileNotFoundError:
        raise SnapshotError(f"no {files.CONFIG} at '{path}': pass the config written by the "
                            'training run (--config)') from None
    except (OSError, ValueError) as e:
        raise SnapshotError(f"cannot read config '{path}': {e}") from None
    return RunRecord.from_json(data, where=path)


def record_beside(snapshot: str, config_path: str | None = None) -> RunRecord:
    """The record of the run a snapshot belongs to: ``config.json`` in its folder."""
    return read_record(config_path or os.path.join(
        os.path.dirname(os.path.abspath(snapshot)), files.CONFIG))


def _entry(data: dict, key: str, kind: type, default, where: str):
    """``data[key]`` when it is a ``kind`` (``default`` when absent or null)."""
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise SnapshotError(f"'{where}': {key} must be {_KINDS[kind]}, got {value!r}")
    return value


_KINDS = {list: 'a list', dict: 'an object', str: 'a string', bool: 'true or false'}


def _changes(changes: list, where: str) -> tuple[dict, ...]:
    for change in changes:
        if not (isinstance(change, dict) and isinstance(change.get('option'), str)
                and isinstance(change.get('iteration'), int)):
            raise SnapshotError(f"'{where}': changes must be a list of objects with an option "
                                f'and an iteration, got {change!r}')
    return tuple(dict(c) for c in changes)
