#!/usr/bin/env python
"""``gan-trainer gif`` under its old name (see :mod:`gan_trainer.cli.tools`)."""

import sys

from gan_trainer.cli.tools import main

if __name__ == '__main__':
    sys.exit(main('gif', prog='make_gif.py'))
