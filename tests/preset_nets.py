"""The digests of every preset's nets, as a run builds them; ``tests/preset_nets.json`` holds them.

``test_presets.py`` builds the nets again and compares: a change that was
meant to leave the networks alone (a refactoring of the nets, of their
options or of the run's translation) must leave every parameter, every
persistent value and every ``config()`` bit for bit the same. A change
that is meant to change a preset's nets writes the file anew::

    .venv/bin/python tests/preset_nets.py

and the diff of the JSON shows which nets it changed.
"""

import hashlib
import json
import sys
from pathlib import Path

import numpy

RECORD = Path(__file__).with_name('preset_nets.json')


def digest(net) -> str:
    """sha256 of the parameters and persistent values (names, dtypes, shapes, bytes), config()."""
    h = hashlib.sha256()
    arrays = [(name, p.array) for name, p in net.namedparams()]
    for link_name, link in net.namedlinks():
        arrays += [(f'{link_name}/{name}', getattr(link, name)) for name in link._persistent]
    for name, array in sorted(arrays, key=lambda item: item[0]):
        array = numpy.ascontiguousarray(array)
        h.update(f'{name} {array.dtype} {array.shape}'.encode())
        h.update(array.tobytes())
    h.update(json.dumps(net.config(), sort_keys=True).encode())
    return h.hexdigest()


def cases():
    """``name -> RunConfig`` for every preset, plain and conditional, and the ResNet nets."""
    from gan_trainer.run import PRESETS, ConfigError

    made = {}
    for name, config in PRESETS.items():
        made[name] = config
        try:
            made[f'{name} conditional'] = config.replace(conditional=True)
        except ConfigError:  # nets of the unconditional DCGAN only (BEGAN's D, ...)
            pass
    made['sngan resnet'] = PRESETS['sngan'].replace(arch='resnet')
    made['sngan resnet conditional'] = PRESETS['sngan'].replace(arch='resnet', conditional=True)
    return made


def digests() -> dict:
    """``case -> [G's digest, D's digest]`` on the built-in digits' shape (10 classes)."""
    from gan_trainer.run import build_networks

    return {case: [digest(net) for net in build_networks(config, (1, 28, 28), n_classes=10)]
            for case, config in cases().items()}


if __name__ == '__main__':
    RECORD.write_text(json.dumps(digests(), indent=1, sort_keys=True) + '\n')
    print(f'wrote {RECORD}', file=sys.stderr)
