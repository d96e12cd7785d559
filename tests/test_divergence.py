"""DivergenceMonitor on hand-made observations: when it fires, when it stays quiet."""

import json
import types
import warnings

import chainer
import numpy
import pytest
from chainer import training
from chainer.training import extensions

from gan_trainer.extensions import DivergenceMonitor, DivergenceWarning
from gan_trainer.extensions.divergence import slope

WINDOW = 10


def feed(monitor, rows, *, start=1):
    """Calls ``monitor`` once per ``(acc, gen_loss)`` row, as a trainer would.

    Returns:
        ``(reported, warned)``: the iterations where ``warning/divergence``
        was reported, and those where a :class:`DivergenceWarning` was raised.
    """
    reported, warned = [], []
    for iteration, (acc, loss) in enumerate(rows, start):
        observation = {'dis/acc_real': acc, 'dis/acc_fake': acc, 'gen/loss': loss}
        trainer = types.SimpleNamespace(
            observation=observation, updater=types.SimpleNamespace(iteration=iteration)
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            with chainer.Reporter().scope(observation):
                monitor(trainer)
        if observation.get('warning/divergence') == 1.0:
            reported.append(iteration)
        if any(w.category is DivergenceWarning for w in caught):
            warned.append(iteration)
    return reported, warned


def rising(n, acc=1.0, start=0.0, step=0.1):
    return [(acc, start + step * i) for i in range(n)]


def test_slope_is_the_least_squares_slope():
    assert slope([1, 3, 5, 7]) == pytest.approx(2.0)
    assert slope([2, 2, 2]) == 0.0
    assert slope([0, 3, 0, 3]) == pytest.approx(0.6)  # noise around a flat line


def test_fires_once_when_d_wins_and_the_g_loss_rises():
    reported, warned = feed(DivergenceMonitor(window=WINDOW), rising(25))
    assert warned == [WINDOW]  # as soon as the first full window shows it
    assert reported == list(range(WINDOW, 26))  # and in the log while it lasts


@pytest.mark.parametrize(
    'rows',
    [
        rising(30, step=0.0),  # D wins, G's loss flat
        rising(30, step=-0.1),  # D wins, G's loss falls
        rising(30, acc=0.9),  # G's loss rises, D does not win
        rising(WINDOW - 1),  # both, but for less than a window
        [(1.0, 0.1 * i) if i % 4 else (0.9, 0.1 * i) for i in range(30)],  # D at 97.5%
    ],
    ids=['flat_loss', 'falling_loss', 'd_not_winning', 'short', 'd_mostly_winning'],
)
def test_stays_quiet_without_both_signs_over_a_whole_window(rows):
    assert feed(DivergenceMonitor(window=WINDOW), rows) == ([], [])


def test_threshold_and_min_slope_are_options():
    rows = rising(WINDOW, acc=0.96, step=0.01)
    assert feed(DivergenceMonitor(window=WINDOW, acc_threshold=0.95), rows)[1] == [WINDOW]
    monitor = DivergenceMonitor(window=WINDOW, acc_threshold=0.95, min_slope=0.05)
    assert feed(monitor, rows) == ([], [])


def test_a_new_episode_warns_again_only_after_a_healthy_window():
    monitor = DivergenceMonitor(window=WINDOW)
    rows = (
        rising(20)  # 1-20: episode 1 starts at 10
        + [(0.5, 0.0)] * 5  # 21-25: D loses for a moment, too short to end it
        + rising(15)  # 26-40: diverging again, visible from 35 on
        + [(0.5, 0.0)] * 30  # 41-70: healthy for more than a window: it ends
        + rising(20)  # 71-90: episode 2, visible from 80 on
    )
    reported, warned = feed(monitor, rows)
    assert warned == [10, 80]
    assert reported == [*range(10, 21), *range(35, 41), *range(80, 91)]


def test_iterations_without_the_keys_or_with_nan_are_skipped():
    monitor = DivergenceMonitor(window=WINDOW)
    feed(monitor, rising(WINDOW - 1))
    trainer = types.SimpleNamespace(observation={'gen/loss': 1.0}, updater=None)
    monitor(trainer)  # no accuracies: nothing happens
    assert feed(monitor, [(1.0, float('nan'))], start=WINDOW) == ([], [])
    assert feed(monitor, [(1.0, 5.0)], start=WINDOW + 1)[1] == [WINDOW + 1]


def test_window_below_two_is_refused():
    with pytest.raises(ValueError, match='window'):
        DivergenceMonitor(window=1)


@pytest.mark.parametrize('split', [0, 4, WINDOW + 3, 40])
def test_a_resumed_monitor_continues_exactly(tmp_path, split):
    rows = rising(20) + [(0.5, 0.0)] * 15 + rising(20)
    expected = feed(DivergenceMonitor(window=WINDOW), rows)
    first = DivergenceMonitor(window=WINDOW)
    head = feed(first, rows[:split])
    chainer.serializers.save_npz(str(tmp_path / 'monitor.npz'), first)
    resumed = DivergenceMonitor(window=WINDOW)
    chainer.serializers.load_npz(str(tmp_path / 'monitor.npz'), resumed)
    tail = feed(resumed, rows[split:], start=split + 1)
    assert (head[0] + tail[0], head[1] + tail[1]) == expected


class ScriptedUpdater(training.Updater):
    """Reports hand-made D accuracies and G losses, one row per iteration."""

    def __init__(self, rows):
        self.rows, self.iteration = rows, 0
        self.epoch, self.epoch_detail, self.previous_epoch_detail = 0, 0.0, None
        self.is_new_epoch = False

    def connect_trainer(self, trainer):
        pass

    def finalize(self):
        pass

    def get_optimizer(self, name):
        raise KeyError(name)

    def get_all_optimizers(self):
        return {}

    def update(self):
        acc, loss = self.rows[self.iteration]
        self.iteration += 1
        chainer.report({'dis/acc_real': acc, 'dis/acc_fake': acc, 'gen/loss': loss})

    def serialize(self, serializer):
        self.iteration = serializer('iteration', self.iteration)


def test_the_warning_lands_in_the_log_report(tmp_path):
    rows = rising(12) + [(0.5, 0.0)] * 8
    trainer = training.Trainer(ScriptedUpdater(rows), (20, 'iteration'), out=str(tmp_path))
    trainer.extend(DivergenceMonitor(window=WINDOW))
    trainer.extend(extensions.LogReport(trigger=(5, 'iteration')))
    with pytest.warns(DivergenceWarning) as record:
        trainer.run()
    assert len(record) == 1
    message = str(record[0].message)
    assert message.startswith('training may be diverging at iteration 10: ')
    assert 'D was right on 100.0% of the images of the last 10 iterations' in message
    log = json.loads((tmp_path / 'log').read_text())
    # Reported at iterations 10, 11 and 12: the entries ending at 10 and 15.
    assert [entry.get('warning/divergence') for entry in log] == [None, 1.0, 1.0, None]
    assert numpy.isfinite([entry['gen/loss'] for entry in log]).all()
