#!/usr/bin/env python
"""Train a DCGAN on the built-in digits or a folder of your images.

    python examples/train_dcgan.py                       # digits, CPU
    python examples/train_dcgan.py --gpu 0               # digits, first GPU
    python examples/train_dcgan.py --dataset ~/faces --size 64 --iteration 20000
    python examples/train_dcgan.py --resume auto         # continue the run in result/
    python examples/train_dcgan.py --config result/config.json --out again   # repeat a run
    mpiexec -n 2 python examples/train_dcgan.py --communicator naive   # 2 processes

Writes into ``--out`` (``result``): ``log`` (JSON), ``loss.png``,
``preview/image_*.png`` and ``preview/latest.png`` (G(z) for a fixed z),
``training.gif`` (those grids as a film), ``snapshot_iter_N`` (the whole
trainer, for ``--resume``), ``gen_iter_N.npz`` / ``dis_iter_N.npz`` (for
``generate.py``) and ``config.json`` (every option, to use the snapshots
and to repeat the run). It is ``gan-trainer train`` under its old name:
flags -> :class:`gan_trainer.run.RunConfig` ->
:func:`gan_trainer.run.build_trainer` -> ``run()``; see
``gan_trainer.cli.train`` for the exit statuses.
"""

import os
import shlex
import sys

from gan_trainer.cli.train import parse_config, run_config

PROG = 'train_dcgan.py'


def main(argv=None) -> int:
    config = parse_config(argv, prog=PROG)  # flags -> RunConfig (bad input: one line, exit 2)
    # A stopped run prints the command that continues it: this interpreter and script.
    again = shlex.join([sys.executable, os.path.relpath(__file__)])
    # build_trainer(config).run(), one line per way it ends
    return run_config(config, prog=PROG, command=again)


if __name__ == '__main__':
    sys.exit(main())
