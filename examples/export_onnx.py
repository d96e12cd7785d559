#!/usr/bin/env python
"""``gan-trainer export`` under its old name (see :mod:`gan_trainer.cli.tools`)."""

import sys

from gan_trainer.cli.tools import main

if __name__ == '__main__':
    sys.exit(main('export', prog='export_onnx.py'))
