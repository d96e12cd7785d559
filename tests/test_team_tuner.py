"""TeamTuner: the fastest OpenMP team for the load, and never a changed number."""

import types
import warnings

import chainer
import numpy
import pytest

from gan_trainer import GANUpdater, ops
from gan_trainer.extensions import TeamTuner, ThreadsWarning, team_tuner
from gan_trainer.latent import global_seed
from gan_trainer.nets import Discriminator, Generator
from gan_trainer.ops import dnnl, onednn_conv, threads
from gan_trainer.testing import fake_images

needs_onednn = pytest.mark.skipif(dnnl.library() is None, reason='oneDNN does not load here')


def test_candidates():
    assert team_tuner.candidates(1) == [1]
    assert team_tuner.candidates(2) == [2, 1]
    assert team_tuner.candidates(3) == [3, 1]
    assert team_tuner.candidates(8) == [8, 4, 1]


real_team_times = onednn_conv.team_times


class FakeMachine:
    """Iterations whose duration depends on the team: ms[team]."""

    def __init__(self, ms, monkeypatch):
        self.ms, self.now, self.team, self.sets = ms, 0.0, 2, []
        monkeypatch.setattr(threads, 'team', 2)
        monkeypatch.setattr(threads, 'set_team', self.set_team)
        monkeypatch.setattr(team_tuner.time, 'perf_counter', lambda: self.now)
        monkeypatch.setattr(threads, 'onednn_loaded', lambda: True)

    def set_team(self, n):
        self.team = n
        self.sets.append(n)

    def run(self, tuner, first, last):
        trainer = types.SimpleNamespace(updater=types.SimpleNamespace(iteration=0))
        for it in range(first, last + 1):
            self.now += self.ms[self.team] / 1e3
            trainer.updater.iteration = it
            tuner(trainer)


def test_the_faster_team_is_kept_and_the_load_is_measured_again(monkeypatch):
    monkeypatch.setattr(onednn_conv, 'team_independent', lambda teams, set_team: True)
    machine = FakeMachine({2: 10.0, 1: 6.0}, monkeypatch)  # a busy machine: 1 thread wins
    tuner = TeamTuner(window=4, rounds=2, explore_every=100, warmup=5)
    machine.run(tuner, 1, 40)
    assert tuner.enabled and tuner.choices == [(23, 1)] and machine.team == 1
    machine.ms = {2: 5.0, 1: 6.0}  # quiet again: two threads win at the next exploration
    machine.run(tuner, 41, 140)
    assert tuner.choices[-1] == (123, 2) and machine.team == 2


def test_a_smaller_team_must_be_clearly_faster(monkeypatch):
    monkeypatch.setattr(onednn_conv, 'team_independent', lambda teams, set_team: True)
    machine = FakeMachine({2: 10.0, 1: 9.8}, monkeypatch)  # 2% faster: not enough
    tuner = TeamTuner(window=4, rounds=2, explore_every=100, warmup=5)
    machine.run(tuner, 1, 40)
    assert tuner.choices == [(23, 2)] and machine.team == 2


def team_dependent_machine(monkeypatch, times):
    """A FakeMachine whose kernels change their sums with the team; ``times``: the
    check's milliseconds per team."""
    monkeypatch.delenv(team_tuner.ADVICE_SWITCH, raising=False)  # conftest turns it off
    monkeypatch.setattr(onednn_conv, 'team_independent', lambda teams, set_team: False)
    monkeypatch.setattr(onednn_conv, 'team_times', lambda teams, set_team: times)
    return FakeMachine({2: 10.0, 1: 6.0}, monkeypatch)


def test_no_tuning_where_the_team_changes_the_bits(monkeypatch):
    machine = team_dependent_machine(monkeypatch, {2: 10.0, 1: 9.0})
    tuner = TeamTuner(window=4, rounds=2, explore_every=100, warmup=5)
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # 1 thread only 10% faster: no warning
        machine.run(tuner, 1, 40)
    assert tuner.enabled is False and tuner.choices == [] and set(machine.sets) <= {2}
    assert tuner.timed == {2: 10.0, 1: 9.0} and tuner.advice is None


def test_a_clearly_faster_smaller_team_is_advised_not_switched(monkeypatch):
    machine = team_dependent_machine(monkeypatch, {2: 38.0, 1: 23.0})
    tuner = TeamTuner(window=4, rounds=2, explore_every=100, warmup=5)
    with pytest.warns(ThreadsWarning, match=r'1\.7x faster with 1 thread.*OMP_NUM_THREADS=1'):
        machine.run(tuner, 1, 40)
    assert tuner.advice == 1 and tuner.choices == [] and machine.team == 2
    monkeypatch.setenv(team_tuner.ADVICE_SWITCH, '0')
    quiet = TeamTuner(window=4, rounds=2, explore_every=100, warmup=5)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        machine.run(quiet, 1, 40)
    assert quiet.advice is None and quiet.enabled is False


def test_only_a_long_run_is_advised():
    def trainer(*length):
        return types.SimpleNamespace(stop_trigger=chainer.training.triggers.IntervalTrigger(*length))
    assert not team_tuner.long_run(trainer(100, 'iteration'), 500)
    assert team_tuner.long_run(trainer(500, 'iteration'), 500)
    assert team_tuner.long_run(trainer(1, 'epoch'), 500)
    assert team_tuner.long_run(types.SimpleNamespace(), 500)  # an unknown stop: long


@needs_onednn
def test_team_times_runs_each_teams_own_primitives(monkeypatch):
    monkeypatch.setattr(dnnl, '_CACHE', {})
    rng = numpy.random.default_rng(0)
    x = rng.standard_normal((8, 8, 8, 8)).astype(numpy.float32)
    ops.convolution_2d(x, rng.standard_normal((16, 8, 4, 4)).astype(numpy.float32), None, 2, 1)
    sets = []
    try:
        ms = onednn_conv.team_times([2, 1], lambda n: sets.append(n) or threads.set_team(n))
        assert set(ms) == {1, 2} and all(v > 0 for v in ms.values()) and sets[:2] == [2, 1] and set(sets) == {1, 2}
        if threads.onednn_loaded():
            assert sorted(key[-1] for key in dnnl._CACHE if key[0] == 'conv') == [1, 2]
    finally:
        threads.set_team(threads.available_cores())
    monkeypatch.setattr(dnnl, '_CACHE', {})
    assert onednn_conv.team_times([2, 1], threads.set_team) == {}  # nothing cached


def test_no_tuning_without_a_team_to_share(monkeypatch):
    machine = FakeMachine({2: 10.0, 1: 6.0}, monkeypatch)
    monkeypatch.setattr(threads, 'team', None)  # the user's OMP_NUM_THREADS, or no share_cores
    tuner = TeamTuner(window=4, rounds=2, explore_every=100, warmup=5)
    machine.run(tuner, 1, 40)
    assert tuner.enabled is False and machine.sets == []


@needs_onednn
def test_team_independent_compares_real_primitives(monkeypatch):
    rng = numpy.random.default_rng(0)
    monkeypatch.setattr(dnnl, '_CACHE', {})
    x = rng.standard_normal((4, 8, 8, 8)).astype(numpy.float32)
    ops.convolution_2d(x, rng.standard_normal((16, 8, 4, 4)).astype(numpy.float32),
                       numpy.zeros(16, numpy.float32), 2, 1, activation='leaky_relu')
    teams = []
    assert onednn_conv.team_independent([2, 1], teams.append) in (True, False)
    assert teams == [2, 1, 2, 1]  # each team set to build its primitives, then to run them
    # A kernel whose sums depend on the team is caught.
    compute = onednn_conv.ConvolutionDNNL.compute
    calls = []  # each call's output shifted by its number: the second team's differs
    monkeypatch.setattr(onednn_conv.ConvolutionDNNL, 'compute',
                        lambda self, *a: calls.append(1) or compute(self, *a) + len(calls))
    assert not onednn_conv.team_independent([2, 1], teams.append)
    monkeypatch.setattr(dnnl, '_CACHE', {})
    assert not onednn_conv.team_independent([2, 1], teams.append)  # nothing to check


@needs_onednn
def test_the_check_builds_every_teams_primitives_with_that_team(monkeypatch):
    """Backward primitives are built at their first use: the check must run each
    team's passes with that team set, or it compares one team with itself."""
    monkeypatch.setattr(dnnl, '_CACHE', {})
    built = []
    init = dnnl.Primitive.__init__
    monkeypatch.setattr(dnnl.Primitive, '__init__', lambda self, *a: (
        built.append(threads.current_team()), init(self, *a))[1])
    rng = numpy.random.default_rng(0)
    x = rng.standard_normal((4, 8, 8, 8)).astype(numpy.float32)
    W = rng.standard_normal((16, 8, 4, 4)).astype(numpy.float32)
    try:
        threads.set_team(2)
        ops.convolution_2d(x, W, numpy.zeros(16, numpy.float32), 2, 1)  # forward, team 2
        onednn_conv.team_independent([2, 1], threads.set_team)
        if threads.onednn_loaded():
            assert built.count(2) == built.count(1) >= 3  # forward, backward data, weights
    finally:
        threads.set_team(threads.available_cores())


@needs_onednn
def test_a_failing_backward_primitive_leaves_the_team_as_it_was(monkeypatch):
    machine = team_dependent_machine(monkeypatch, {})
    monkeypatch.setattr(onednn_conv, 'team_times', real_team_times)
    monkeypatch.setattr(dnnl, '_CACHE', {})
    rng = numpy.random.default_rng(0)
    ops.convolution_2d(rng.standard_normal((4, 8, 8, 8)).astype(numpy.float32),
                       rng.standard_normal((16, 8, 4, 4)).astype(numpy.float32), None, 2, 1)

    def fail(*args):
        raise dnnl.DNNLError('unimplemented')
    monkeypatch.setattr(onednn_conv.ConvolutionDNNL, 'gradients', fail)
    assert onednn_conv.team_times([2, 1], machine.set_team) == {}
    tuner = TeamTuner(window=4, rounds=2, explore_every=100, warmup=5)
    machine.run(tuner, 1, 40)
    assert tuner.enabled is False and tuner.timed == {} and machine.team == 2


@needs_onednn
def test_another_python_thread_builds_with_the_chosen_team():
    import threading
    if not threads.onednn_loaded():
        pytest.skip('oneDNN not loaded in this process')
    seen = []
    try:
        threads.set_team(1)
        worker = threading.Thread(target=lambda: seen.append(threads.current_team()))
        worker.start()
        worker.join()
        assert seen == [1] and threads.current_team() == 1
    finally:
        threads.set_team(threads.available_cores())


@needs_onednn
def test_a_primitive_runs_the_team_it_is_built_with(monkeypatch):
    """dnnl.cached keeps primitives per team size: after a team change a call
    builds its own (a primitive built for 2 threads would go on running 2)."""
    monkeypatch.setattr(dnnl, '_CACHE', {})
    rng = numpy.random.default_rng(0)
    x = rng.standard_normal((4, 8, 8, 8)).astype(numpy.float32)
    W = rng.standard_normal((16, 8, 4, 4)).astype(numpy.float32)
    try:
        for n in (2, 1, 2):
            threads.set_team(n)
            ops.convolution_2d(x, W, None, 2, 1)
        assert sorted(key[-1] for key in dnnl._CACHE if key[0] == 'conv') == [1, 2]
    finally:
        threads.set_team(threads.available_cores())


def train(tuned: bool, monkeypatch):
    with global_seed(0):
        gen = Generator(size=16, channels=1, widths=[8, 16])
        dis = Discriminator(size=16, channels=1, widths=[8, 16])
    optimizers = {}
    for name, net in (('gen', gen), ('dis', dis)):
        optimizers[name] = ops.Adam(2e-4, beta1=0.5)
        optimizers[name].setup(net)
    iterator = chainer.iterators.SerialIterator(fake_images(32, size=16), 16, shuffle=False)
    updater = GANUpdater(iterator, optimizers, device=-1, seed=0, loss='lsgan', reuse_fakes=True)
    trainer = chainer.training.Trainer(updater, (16, 'iteration'))
    tuner = TeamTuner(window=2, rounds=2, explore_every=8, warmup=1)
    if tuned:
        trainer.extend(tuner)
    trainer.run()
    serializer = chainer.serializers.DictionarySerializer()
    serializer.save(updater)
    return tuner, {k: numpy.array(v) for k, v in serializer.target.items()}


@needs_onednn
def test_a_tuned_run_is_the_untuned_run_bit_for_bit(monkeypatch):
    monkeypatch.setattr(threads, 'team', 2)
    sets = []
    set_team = threads.set_team
    monkeypatch.setattr(threads, 'set_team', lambda n: sets.append(n) or set_team(n))
    tuner, tuned = train(True, monkeypatch)
    _, plain = train(False, monkeypatch)
    for key, value in plain.items():
        numpy.testing.assert_array_equal(tuned[key], value, err_msg=key)
    if tuner.enabled:  # the kernels here give the same bits with either team: it tuned
        assert 1 in sets and len(tuner.choices) >= 1
    else:  # the check built each team's primitives, then the tuner left the team at 2
        assert tuner.choices == [] and sets[-1] == 2 and threads.current_team() == 2
    set_team(threads.available_cores())


def test_a_steady_machine_is_explored_less_and_less(monkeypatch):
    monkeypatch.setattr(onednn_conv, 'team_independent', lambda teams, set_team: True)
    machine = FakeMachine({2: 10.0, 1: 6.0}, monkeypatch)
    tuner = TeamTuner(window=2, rounds=1, explore_every=10, max_every=40, warmup=5)
    machine.run(tuner, 1, 180)
    # Explorations start at 7, 17, 27, 47, 87, 127, 167 (the interval doubles up to 40
    # once a choice repeats) and end 4 iterations later.
    assert [it for it, _ in tuner.choices] == [11, 21, 31, 51, 91, 131, 171]
    assert {team for _, team in tuner.choices} == {1}
