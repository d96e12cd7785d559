"""``python -m gan_trainer.cli``: the ``gan-trainer`` command without the entry point."""

import sys

from gan_trainer.cli import main

sys.exit(main())
