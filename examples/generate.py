#!/usr/bin/env python
"""``gan-trainer generate`` under its old name (see :mod:`gan_trainer.cli.generate`)."""

import sys

from gan_trainer.cli.generate import main

if __name__ == '__main__':
    sys.exit(main(prog='generate.py'))
