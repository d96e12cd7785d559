#!/usr/bin/env python
"""``gan-trainer interpolate`` under its old name (see :mod:`gan_trainer.cli.interpolate`)."""

import sys

from gan_trainer.cli.interpolate import main

if __name__ == '__main__':
    sys.exit(main(prog='interpolate.py'))
