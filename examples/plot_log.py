#!/usr/bin/env python
"""``gan-trainer plot`` under its old name (see :mod:`gan_trainer.cli.tools`)."""

import sys

from gan_trainer.cli.tools import main

if __name__ == '__main__':
    sys.exit(main('plot', prog='plot_log.py'))
