"""benchmarks/ganlib_check.py: its scripted random numbers, its errors, and (with a checkout) its verdict.

The step-for-step comparison needs a checkout of pfnet-research/chainer-gan-lib
(not a package on any index): set ``GANLIB_DIR`` to one to run it here; the
figures of the last run are in benchmarks/RESULTS.md.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'benchmarks'))

import ganlib_check


def test_scripted_draws_do_not_depend_on_the_order_of_kinds_and_sizes():
    a, b = ganlib_check.ScriptedRandom(3), ganlib_check.ScriptedRandom(3)
    z1, noise1, z2 = a.uniform(-1, 1, (4, 2)), a.randn(4, 3), a.uniform(-1, 1, (4, 2))
    noise2 = b.standard_normal((4, 3))  # another order, other spellings
    z1b, z2b = b.uniform(-1, 1, size=8).reshape(4, 2), b.uniform(-1, 1, (4, 2))
    numpy.testing.assert_array_equal(noise1, noise2)
    numpy.testing.assert_array_equal(z1, z1b)
    numpy.testing.assert_array_equal(z2, z2b)
    assert not numpy.array_equal(z1, z2)
    with ganlib_check.numpy_random_from(ganlib_check.ScriptedRandom(3)):
        numpy.testing.assert_array_equal(numpy.random.uniform(-1, 1, (4, 2)), z1)
    assert numpy.random.uniform is not a.uniform  # restored


@pytest.mark.process
def test_a_folder_that_is_not_chainer_gan_lib_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, 'benchmarks/ganlib_check.py', '--ganlib', str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (f'--ganlib {tmp_path}: not a chainer-gan-lib checkout '
                                   '(no example.sh)')


@pytest.mark.skipif(not os.environ.get('GANLIB_DIR'), reason='GANLIB_DIR: no chainer-gan-lib')
def test_every_update_equals_chainer_gan_libs_at_the_same_weights():
    lib = ganlib_check.load_ganlib(os.environ['GANLIB_DIR'])
    for name in ('dcgan', 'began', 'dfm', 'dragan', 'cramer'):
        result = ganlib_check.check(name, lib, batchsize=4, steps=2, seed=0)
        assert result['grad synced'] < 1e-5, result
