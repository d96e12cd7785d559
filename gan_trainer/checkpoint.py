"""Model snapshots that can be used without the training script.

A training run writes ``OUT/config.json`` (the networks' constructor
arguments, the z distribution, the class names) beside the generator and
discriminator snapshots ``gen_iter_N.npz`` / ``dis_iter_N.npz`` (Chainer
``save_npz`` files holding parameters and BatchNorm statistics). With both,
:func:`load_generator` rebuilds a generator anywhere: in ``generate.py``, a
notebook, or another project.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
import zlib

import chainer

from gan_trainer.nets import build_discriminator, build_generator

CONFIG_NAME = 'config.json'


class SnapshotError(ValueError):
    """A snapshot or config file is missing, unreadable or does not match."""


def save_config(out: str, config: dict) -> str:
    """Writes ``config`` as ``OUT/config.json`` (atomically) and returns the path."""
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, CONFIG_NAME)
    tmp = path + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump(config, f, indent=2, sort_keys=True)
    os.replace(tmp, path)
    return path


def check_writable(out: str) -> None:
    """Makes sure ``out`` can be created and written, before training starts.

    Raises:
        SnapshotError: naming the folder, when it cannot be used.
    """
    try:
        os.makedirs(out, exist_ok=True)
        probe = os.path.join(out, '.write_test')
        with open(probe, 'w') as f:
            f.write('ok')
        os.remove(probe)
    except OSError as e:
        raise SnapshotError(f"output folder '{out}' is not writable: {e.strerror or e}") from None


def load_config(snapshot: str, config_path: str | None = None) -> dict:
    """Reads the run config for ``snapshot`` (by default from its folder)."""
    path = config_path or os.path.join(os.path.dirname(os.path.abspath(snapshot)), CONFIG_NAME)
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except FileNotFoundError:
        raise SnapshotError(
            f"no {CONFIG_NAME} at '{path}': pass the config written by the "
            'training run (--config)') from None
    except (OSError, ValueError) as e:
        raise SnapshotError(f"cannot read config '{path}': {e}") from None


def _check_exists(snapshot: str) -> None:
    if not os.path.isfile(snapshot):
        raise SnapshotError(f"snapshot '{snapshot}' does not exist")


def load_params(snapshot: str, link: chainer.Link) -> chainer.Link:
    """Loads a ``save_npz`` snapshot into ``link`` with one-line errors."""
    _check_exists(snapshot)
    try:
        chainer.serializers.load_npz(snapshot, link)
    # numpy.load takes a file that is not a zip for a pickle (UnpicklingError);
    # a damaged compressed member fails in zlib.
    except (zipfile.BadZipFile, pickle.UnpicklingError, zlib.error, OSError, EOFError) as e:
        raise SnapshotError(f"snapshot '{snapshot}' is not a readable .npz file ({e})") from None
    except (KeyError, ValueError, TypeError) as e:
        raise SnapshotError(
            f"snapshot '{snapshot}' does not match what it is loaded into: {e}") from None
    return link


def load_generator(snapshot: str, config_path: str | None = None):
    """Rebuilds the generator of a run and loads ``snapshot`` into it.

    Returns:
        ``(gen, config)``: the generator on the CPU and the run's config.
    """
    # Checked first: a missing snapshot would otherwise be reported as a
    # missing config.json beside it.
    _check_exists(snapshot)
    config = load_config(snapshot, config_path)
    return load_params(snapshot, build_generator(config['gen'])), config


def load_discriminator(snapshot: str, config_path: str | None = None) -> chainer.Link:
    """Rebuilds the discriminator of a run and loads ``snapshot`` into it."""
    _check_exists(snapshot)
    config = load_config(snapshot, config_path)
    return load_params(snapshot, build_discriminator(config['dis']))
