"""A run's cost does not depend on its length: triggers are computed, not listed.

Issue 25.3: ``every()`` used to list every trigger point of the whole run,
so ``--iteration 10**10`` took 21 GB before the first iteration. These tests
build the same trainer for 300 and for 10**13 iterations and compare.
"""

import pickle
import tracemalloc

import pytest

from gan_trainer.datasets import Data
from gan_trainer.run import RunConfig, build_trainer
from gan_trainer.run.extensions import every
from gan_trainer.run.triggers import AnyOf, Every
from gan_trainer.testing import fake_images

TINY = {'base_width': 4, 'batchsize': 4, 'snapshot_interval': 7, 'display_interval': 5,
        'preview_interval': 3, 'eval_interval': 11, 'progress': False}


@pytest.mark.parametrize('interval, last, points', [
    (3, 10, [3, 6, 9, 10]),
    (5, 10, [5, 10]),
    (20, 6, [6]),  # shorter than the interval: the last iteration still fires
    (1, 4, [1, 2, 3, 4]),
])
def test_every_fires_at_each_interval_and_at_the_last_iteration(interval, last, points):
    trigger = every(interval, last)
    assert [n for n in range(last + 5) if trigger.fires_at(n)] == points


def test_every_near_the_end_of_a_very_long_run():
    trigger = Every(7, 10**13)
    assert trigger.fires_at(7 * 10**12) and trigger.fires_at(10**13)
    assert not trigger.fires_at(10**13 - 1) and not trigger.fires_at(10**13 + 7 - 10**13 % 7)
    both = AnyOf(Every(3, 10), Every(4, 10))
    assert [n for n in range(12) if both.fires_at(n)] == [3, 4, 6, 8, 9, 10]


@pytest.mark.parametrize('interval, last, error', [(0, 5, ValueError), (2.5, 5, TypeError),
                                                   (2, 0, ValueError)])
def test_every_refuses_what_is_not_a_count(interval, last, error):
    with pytest.raises(error):
        Every(interval, last)


def _build(tmp_path, iteration):
    data = Data.of(fake_images(16, channels=1, size=8), fake_images(4, channels=1, size=8))
    tracemalloc.start()
    try:
        trainer = build_trainer(RunConfig(out=str(tmp_path / str(iteration)), iteration=iteration,
                                          **TINY), data=data, log=None)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return trainer, peak


def test_building_a_run_of_ten_trillion_iterations_costs_what_300_cost(tmp_path):
    short, short_peak = _build(tmp_path, 300)
    long, long_peak = _build(tmp_path, 10**13)
    assert long.last_iteration == 10**13
    # The same extensions, with triggers of the same size (no list of points).
    names = sorted(short._extensions)
    assert sorted(long._extensions) == names
    for name in names:
        a, b = short._extensions[name].trigger, long._extensions[name].trigger
        assert len(pickle.dumps(b)) <= len(pickle.dumps(a)) + 16, name
    # Memory: the listed points of 10**13 iterations would not fit in any
    # machine; a generous bound still tells "the same" from "grows".
    assert long_peak < 2 * short_peak + (1 << 20), (short_peak, long_peak)
    # One iteration in, the same extensions fire.
    fired = []
    for trainer in (short, long):
        trainer.updater.update()
        fired.append({n for n in names if trainer._extensions[n].trigger(trainer)})
        trainer.updater.finalize()
    assert fired[0] == fired[1] and 'nan_guard' in fired[0] and 'snapshots' not in fired[0]


def test_the_command_line_reads_an_iteration_in_exponent_notation(capsys):
    from gan_trainer.cli.train import parse_config

    assert parse_config(['--iteration', '1e13']).iteration == 10**13
    with pytest.raises(SystemExit):
        parse_config(['--iteration', '1.5e0'])
    assert "--iteration: expected an integer, got '1.5e0'" in capsys.readouterr().err
