"""Fixtures that several test modules share (helpers without state are in ``helpers.py``).

Markers (declared in setup.cfg):

* ``process``: the test needs a fresh Python process of its own (signals,
  exit statuses, ``flock`` between processes, MPI, the start-up hook, a
  command as a user starts it, a script in another framework's Python:
  the peers' TensorFlow and PyTorch scripts). CI's first stack runs every
  test; the other stacks, there to prove the package on other Python and
  NumPy versions, skip these: ``-m 'not process or every_stack'``. What a
  process test proves does not depend on the stack's Python and NumPy (the
  proof of the in-process code under them is the in-process tests', which
  every stack runs).
* ``every_stack``: a fresh-process test that every stack runs anyway: the
  compatibility fixes (what differs between the stacks) and one short
  real training.
"""

import os

import pytest
from helpers import succeeded, train, write_image_folder

# The test processes share the machine's cores, so the team tuner would
# often (and rightly) advise a smaller oneDNN team in the runs the tests
# start, a warning line the tests of stderr do not expect; its own tests
# turn it back on (tests/test_team_tuner.py).
os.environ['GAN_TRAINER_TEAM_ADVICE'] = '0'


@pytest.fixture(scope='session')
def digits_run(tmp_path_factory):
    """One 6-iteration run on the built-in digits (helpers.FAST): (out folder, process).

    Tests that only read its files share it; a test that changes a run
    copies the folder first.
    """
    out = tmp_path_factory.mktemp('digits') / 'result'
    return out, succeeded(train('--out', out))


@pytest.fixture(scope='session')
def image_folder(tmp_path_factory):
    """12 random 16x16 RGB PNGs in two class folders, plus a text file named broken.png."""
    root = write_image_folder(tmp_path_factory.mktemp('images') / 'pets', 6, 16)
    (root / 'cats' / 'broken.png').write_text('not an image')
    return root
