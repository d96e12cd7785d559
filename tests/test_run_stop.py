"""A first signal is a graceful stop from the moment config.json exists (in this process).

The graceful stop's handlers used to be installed by its ``initialize``,
the last of the extensions' start-up, after ``config.json`` was written: a
first Ctrl-C in between met Python's own handler and was reported as
"stopped at once by a second SIGINT", with no snapshot. Here a real signal
is sent to this process at those moments.
"""

import os
import signal

import chainer
import pytest

from gan_trainer import files
from gan_trainer.datasets import Data
from gan_trainer.extensions import Stopped
from gan_trainer.run import RunConfig, build_trainer
from gan_trainer.testing import fake_images

TINY = {'base_width': 4, 'batchsize': 4, 'iteration': 20, 'snapshot_interval': 100,
        'progress': False}


class SignalAtStart(chainer.training.Extension):
    """Sends ``signum`` to this process when the extensions start (before the stop's own)."""

    priority = 10**6  # initialised first

    def __init__(self, signum, times=1):
        self.signum, self.times = signum, times

    def initialize(self, trainer):
        assert os.path.exists(os.path.join(trainer.out, files.CONFIG))
        for _ in range(self.times):
            os.kill(os.getpid(), self.signum)

    def __call__(self, trainer):
        pass


def _trainer(tmp_path):
    data = Data.of(fake_images(16, channels=1, size=8), fake_images(4, channels=1, size=8))
    return build_trainer(RunConfig(out=str(tmp_path / 'out'), **TINY), data=data, log=None)


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM])
def test_a_first_signal_while_the_extensions_start_stops_gracefully(tmp_path, signum):
    trainer = _trainer(tmp_path)
    trainer.extend(SignalAtStart(signum), name='signal_at_start')
    before = signal.getsignal(signum)
    with pytest.raises(Stopped) as stopped:
        trainer.run()
    # Stopped after the first iteration, with its snapshot: not "at once".
    assert stopped.value.iteration == 1
    assert stopped.value.snapshot == str(tmp_path / 'out' / 'snapshot_iter_1')
    assert os.path.exists(stopped.value.snapshot)
    assert signal.getsignal(signum) is before  # the handlers are put back


def test_two_signals_while_the_extensions_start_stop_at_once(tmp_path):
    trainer = _trainer(tmp_path)
    trainer.extend(SignalAtStart(signal.SIGINT, times=2), name='signal_at_start')
    # What the process inherited: Python's handler, or SIG_IGN in a job that a
    # non-interactive shell started in the background (what made this test
    # fail when it asserted default_int_handler).
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(Stopped, match='stopped at once by a second SIGINT at iteration 0'):
        trainer.run()
    assert signal.getsignal(signal.SIGINT) is before
