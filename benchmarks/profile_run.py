#!/usr/bin/env python
"""Where each millisecond of an iteration of a whole training run goes.

    python benchmarks/profile_run.py                          # the default run
    python benchmarks/profile_run.py --iterations 600 -- --preset dcgan
    python benchmarks/profile_run.py -- --base_width 64       # flags of train_dcgan.py

Builds the run exactly as ``python examples/train_dcgan.py [FLAGS]`` does
(:func:`gan_trainer.run.build_trainer`, every extension of the run), in a
temporary output folder, with ``--no_progress`` and, unless
``--all_extensions`` is given, the preview, validation and snapshot
intervals beyond the run's end, as the issue that asked for this measured
(those extensions fire once every few hundred iterations; the log line
every ``display_interval`` iterations stays in). After ``--warmup``
iterations the run alternates windows of ``--window`` iterations, plain
and instrumented:

* **plain** windows give the real milliseconds per iteration (from one
  timestamp per iteration, taken by an extension that runs last);
* **instrumented** windows time every part of the iteration: each
  Chainer FunctionNode's forward and backward (exclusive of nodes nested
  in it, by a ``chainer.FunctionHook``), grouped by kind (convolutions,
  batch normalization, linear layers, activations, reshapes, losses and
  arithmetic); the optimizers' ``update``; the iterator's ``next``, the
  converter and the drawing of z; the rest of ``Variable.backward``
  (Chainer's backprop bookkeeping); the rest of ``updater.update``
  (building the graph, ``chainer.report``, the updater's own Python); every
  extension's call and every trigger's check by name; and what is left of
  the iteration (the trainer's loop, the reporter's scope).

The instruments cost time themselves (a few microseconds per node, which
lands in the bookkeeping rows); the row ``instrumentation`` is the
difference between the instrumented and the plain windows' means. The
process's start (imports, data, building the trainer) and the first
iteration (where oneDNN builds its primitives) are printed apart.

The last line is ``profile ITERATION_MS ms/iteration`` (the plain windows'
mean).

``--ab blocks|onednn|bn|linear|eltwise|adam|threads`` compares instead of
profiling: the odd windows switch the fused layer blocks off, oneDNN off
(NumPy functions), the batch normalizations, the linear layers' products,
the (leaky) ReLUs or the fused Adam alone from oneDNN to NumPy, or OpenMP's team
from all cores to one thread, in the same process, so
both settings see the same load as it drifts (on a shared machine a
second process's figures are not comparable with the first's). The last
line is ``ab NAME B / A RATIO``: the median, over the odd windows, of
each one's milliseconds per iteration against the mean of its two
neighbours.
"""

from __future__ import annotations

import time

_T0 = time.perf_counter()

import argparse
import collections
import itertools
import os
import statistics
import sys
import tempfile
import types

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import chainer

from gan_trainer.cli.train import parse_config
from gan_trainer.run import build_trainer

_T_IMPORT = time.perf_counter() - _T0

#: Node class name (substring) -> row, first match wins.
NODE_KINDS = (
    ('BatchNormalization (in a block)', 'batch normalization'),
    ('Block(Linear', 'linear layers'),
    ('Block(', 'convolutions'),
    ('Convolution', 'convolutions'),
    ('Deconvolution', 'convolutions'),
    ('BatchNormalization', 'batch normalization'),
    ('Linear', 'linear layers'),
    ('ReLU', 'activations'),
    ('Tanh', 'activations'),
    ('Sigmoid', 'activations'),
    ('ELU', 'activations'),  # LeakyReLU matches 'ReLU' above
    ('Dropout', 'activations'),
    ('Unpooling', 'upsampling and pooling'),
    ('Upsampl', 'upsampling and pooling'),
    ('Pooling', 'upsampling and pooling'),
    ('Reshape', 'reshapes, casts, concat'),
    ('Cast', 'reshapes, casts, concat'),
    ('Concat', 'reshapes, casts, concat'),
    ('SplitAxis', 'reshapes, casts, concat'),
)
OTHER_NODES = 'losses and arithmetic'


def node_kind(label: str) -> str:
    for part, kind in NODE_KINDS:
        if part in label:
            return kind
    return OTHER_NODES


class Clock:
    """Accumulated seconds per row while :attr:`on`; one instance per profile."""

    def __init__(self) -> None:
        self.on = False
        self.rows: dict[str, float] = collections.defaultdict(float)
        self.node_total = 0.0  # exclusive node time, for the bookkeeping rows
        self.counts: dict[str, int] = collections.defaultdict(int)
        self.by_label: dict[str, float] = collections.defaultdict(float)  # --nodes

    def timed(self, fn, row: str):
        clock = self

        def wrapper(*args, **kwargs):
            if not clock.on:
                return fn(*args, **kwargs)
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                clock.rows[row] += time.perf_counter() - start
        return wrapper


class NodeTimer(chainer.FunctionHook):
    """Exclusive forward/backward time of every FunctionNode, by kind."""

    name = 'profile_run'

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.stack: list[list[float]] = []  # [start, time of nested nodes]

    def _push(self) -> None:
        if self.clock.on:
            self.stack.append([time.perf_counter(), 0.0])

    def _pop(self, function, direction: str) -> None:
        if not self.clock.on or not self.stack:
            return
        start, nested = self.stack.pop()
        elapsed = time.perf_counter() - start
        own = elapsed - nested
        clock = self.clock
        clock.rows[f'{node_kind(function.label)} ({direction})'] += own
        clock.node_total += own
        if function is not _InBlock:  # a part of a node, not a node
            clock.counts[f'{function.label} {direction}'] += 1
        clock.by_label[f'{function.label} {direction}'] += own
        if self.stack:
            self.stack[-1][1] += elapsed

    def forward_preprocess(self, function, in_data):
        self._push()

    def forward_postprocess(self, function, in_data):
        self._pop(function, 'forward')

    def backward_preprocess(self, function, in_data, out_grad):
        self._push()

    def backward_postprocess(self, function, in_data, out_grad):
        self._pop(function, 'backward')


class _InBlock:
    """Stands for the batch normalization inside a fused block in the node timer."""

    label = 'BatchNormalization (in a block)'


def time_blocks(hook: NodeTimer) -> None:
    """Times a fused block's batch normalization (and activation) as a node of its
    own, so that the block's own row holds its layer alone."""
    try:
        from gan_trainer.ops.normalization import BatchNormalizationNumPy
    except ImportError:  # an older tree
        return
    for name, direction in (('normalize', 'forward'), ('gradients', 'backward')):
        method = getattr(BatchNormalizationNumPy, name, None)
        if method is None:
            continue

        def timed(self, *args, _method=method, _direction=direction, **kwargs):
            hook._push()
            try:
                return _method(self, *args, **kwargs)
            finally:
                hook._pop(_InBlock, _direction)
        setattr(BatchNormalizationNumPy, name, timed)


def instrument(trainer, clock: Clock) -> None:
    """Puts timers around the parts of an iteration (see the module docstring)."""
    updater = trainer.updater
    for name, opt in updater.get_all_optimizers().items():
        opt.update = clock.timed(opt.update, 'optimizers (update)')
    iterator = updater.get_iterator('main')
    iterator.next = clock.timed(iterator.next, 'iterator (next batch)')
    updater.converter = clock.timed(updater.converter, 'converter (batch to arrays)')
    updater.make_hidden = clock.timed(updater.make_hidden, 'z (drawing)')

    backward = chainer.Variable.backward

    def timed_backward(self, *args, **kwargs):
        if not clock.on:
            return backward(self, *args, **kwargs)
        nodes, start = clock.node_total, time.perf_counter()
        try:
            return backward(self, *args, **kwargs)
        finally:
            own = time.perf_counter() - start - (clock.node_total - nodes)
            clock.rows['backprop bookkeeping (Variable.backward)'] += own
            clock.node_total += own  # not "updater Python" either
    chainer.Variable.backward = timed_backward

    update = updater.update

    def timed_update():
        if not clock.on:
            return update()
        accounted = _accounted(clock)
        start = time.perf_counter()
        update()
        elapsed = time.perf_counter() - start
        clock.rows['update (total)'] += elapsed
        clock.rows['graph building and updater Python'] += elapsed - (_accounted(clock) - accounted)
    updater.update = timed_update

    for name, entry in trainer._extensions.items():
        if name == Timeline.default_name:
            continue
        ext = entry.extension
        call = type(ext).__call__
        ext.__class__ = type(type(ext).__name__, (type(ext),), {
            '__call__': _timed_method(call, clock, f'extension {name}')})
        trig = entry.trigger
        if not isinstance(trig, types.FunctionType):
            trig.__class__ = type(type(trig).__name__, (type(trig),), {
                '__call__': _timed_method(type(trig).__call__, clock, 'extension triggers')})


#: Rows inside updater.update that are timed on their own.
_INSIDE_UPDATE = ('optimizers (update)', 'iterator (next batch)', 'converter (batch to arrays)',
                  'z (drawing)')


def _accounted(clock: Clock) -> float:
    return clock.node_total + sum(clock.rows[r] for r in _INSIDE_UPDATE)


def _timed_method(method, clock: Clock, row: str):
    def wrapper(self, *args, **kwargs):
        if not clock.on:
            return method(self, *args, **kwargs)
        start = time.perf_counter()
        try:
            return method(self, *args, **kwargs)
        finally:
            clock.rows[row] += time.perf_counter() - start
    return wrapper


class Timeline(chainer.training.Extension):
    """Runs last in every iteration: a timestamp, and the windows' switch."""

    trigger = 1, 'iteration'
    priority = -10**6
    default_name = 'profile_timeline'

    def __init__(self, switch, warmup: int, window: int, last: int) -> None:
        self.switch, self.warmup, self.window, self.last = switch, warmup, window, last
        self.on = False
        self.stamps: list[tuple[int, float, bool]] = []  # (iteration, time, odd window)

    def __call__(self, trainer) -> None:
        it = trainer.updater.iteration
        self.stamps.append((it, time.perf_counter(), self.on))
        # The iteration that starts now is in an odd window (instrumented, or
        # the --ab setting switched).
        on = (it >= self.warmup and ((it - self.warmup) // self.window) % 2 == 1
              and it + 1 < self.last)
        if on != self.on:
            self.switch(on)
            self.on = on


def ab_switch(name: str):
    """``switch(on)`` for ``--ab NAME``: the odd windows run with NAME's second setting."""
    if name == 'bn':
        from gan_trainer.ops import onednn_norm
        return lambda on: setattr(onednn_norm, 'ENABLED', not on)
    if name == 'linear':
        from gan_trainer.ops import onednn_matmul
        return lambda on: setattr(onednn_matmul, 'ENABLED', not on)
    if name == 'eltwise':
        from gan_trainer.ops import onednn_eltwise
        return lambda on: setattr(onednn_eltwise, 'ENABLED', not on)
    if name == 'adam':
        from gan_trainer.ops import onednn_adam
        return lambda on: setattr(onednn_adam, 'ENABLED', not on)
    if name in ('blocks', 'onednn'):
        key = {'blocks': 'gan_trainer_blocks', 'onednn': 'gan_trainer_onednn'}[name]
        return lambda on: setattr(chainer.global_config, key, not on)
    from gan_trainer.ops import threads
    team = threads.team or threads.available_cores()
    return lambda on: threads.set_team(1 if on else team)


#: --ab NAME: (even windows, odd windows), as the report names them.
AB = {'blocks': ('blocks', 'separate layers'), 'onednn': ('oneDNN', 'NumPy'),
      'bn': ('BN on oneDNN', 'BN on NumPy'),
      'linear': ('linear on oneDNN', 'linear on NumPy'),
      'eltwise': ('(leaky) ReLU on oneDNN', '(leaky) ReLU on NumPy'),
      'adam': ('Adam on oneDNN', 'Adam on NumPy'),
      'threads': ('all cores', '1 thread')}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    flags = []
    if '--' in argv:
        at = argv.index('--')
        argv, flags = argv[:at], argv[at + 1:]
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--iterations', type=int, default=300,
                   help='timed iterations after the warm-up (half plain, half instrumented)')
    p.add_argument('--warmup', type=int, default=20)
    p.add_argument('--window', type=int, default=25)
    p.add_argument('--all_extensions', action='store_true',
                   help="keep the run's preview, validation and snapshot intervals")
    p.add_argument('--nodes', action='store_true',
                   help='also print each node class: calls and ms per iteration')
    p.add_argument('--ab', choices=sorted(AB),
                   help='no profile: the odd windows switch the fused blocks, oneDNN, '
                        'the BN, the linear layers, the (leaky) ReLUs or Adam alone '
                        "(oneDNN / NumPy) or OpenMP's team (all cores / 1 thread) instead, "
                        'for a comparison under the same load')
    args = p.parse_args(argv)
    total = args.warmup + args.iterations
    with tempfile.TemporaryDirectory() as out:
        run_flags = ['--iteration', str(total), '--no_progress', '--out', out, *flags]
        if not args.all_extensions:
            far = str(10 * total)
            run_flags += ['--preview_interval', far, '--eval_interval', far,
                          '--snapshot_interval', far]
        t = time.perf_counter()
        config = parse_config(run_flags, prog='profile_run.py')
        trainer = build_trainer(config, log=None)
        t_build = time.perf_counter() - t
        clock = Clock()
        if args.ab and 'team_tuner' in trainer._extensions:
            trainer.get_extension('team_tuner').enabled = False  # a fixed team, or the windows'
        if args.ab:
            switch = ab_switch(args.ab)
        else:
            instrument(trainer, clock)

            def switch(on):
                clock.on = on
        timeline = Timeline(switch, args.warmup, args.window, total)
        trainer.extend(timeline)
        hook = NodeTimer(clock)
        if not args.ab:
            time_blocks(hook)
        t = t_start = time.perf_counter()
        with hook:
            trainer.run()  # its log lines go to stdout, as the command's
        t_run = time.perf_counter() - t
    if args.ab:
        report_ab(args, timeline)
    else:
        report(args, config, timeline, clock, t_build, t_start, t_run)
    entry = trainer._extensions.get('team_tuner')
    if entry is not None:
        tuner = entry.extension
        print(f'# team tuner: enabled {tuner.enabled}, sizes {tuner.sizes}, '
              f'(iteration, team) chosen {tuner.choices}')
    return 0


def window_means(args, timeline: Timeline) -> list[tuple[bool, float]]:
    """``(odd, ms per iteration)`` of each window after the warm-up, in order."""
    windows: list[tuple[bool, list[float]]] = []
    stamps = timeline.stamps
    for (_, t0, _), (it, t1, on) in itertools.pairwise(stamps[:-1]):
        if it <= args.warmup:
            continue
        if not windows or windows[-1][0] != on:
            windows.append((on, []))
        windows[-1][1].append(1e3 * (t1 - t0))
    return [(on, statistics.fmean(ms)) for on, ms in windows]


def report_ab(args, timeline: Timeline) -> None:
    windows = window_means(args, timeline)
    even = [ms for on, ms in windows if not on]
    odd = [ms for on, ms in windows if on]
    # Each odd window against the mean of its neighbours: robust to the load drifting.
    ratios = [windows[i][1] / statistics.fmean([windows[i - 1][1], windows[i + 1][1]])
              for i in range(1, len(windows) - 1) if windows[i][0]]
    a, b = AB[args.ab]
    print(f'{a}: {statistics.fmean(even):.2f} ms/iteration ({len(even)} windows); '
          f'{b}: {statistics.fmean(odd):.2f} ms/iteration ({len(odd)} windows)')
    print(f'ab {args.ab} {b} / {a} {statistics.median(ratios):.3f} (median of {len(ratios)} '
          f'windows against their neighbours; range {min(ratios):.3f} .. {max(ratios):.3f})')


def report(args, config, timeline: Timeline, clock: Clock, t_build: float, t_start: float,
           t_run: float) -> None:
    stamps = timeline.stamps
    plain, timed = [], []
    # The last iteration is left out: every() fires the run's extensions there.
    for (_, t0, _), (it, t1, on) in itertools.pairwise(stamps[:-1]):
        if it > args.warmup:
            (timed if on else plain).append(1e3 * (t1 - t0))
    n_timed = len(timed)
    print(f'# profile of the run: {config.preset} preset, batch {config.batchsize}, '
          f'{args.iterations} iterations after {args.warmup} (windows of {args.window}); '
          f'{os.cpu_count()} CPUs')
    print(f'start: imports {_T_IMPORT:.2f} s, build_trainer {t_build:.2f} s, first iteration '
          f'{1e3 * (stamps[0][1] - t_start):.0f} ms; whole run {t_run:.2f} s')
    mean_plain = statistics.fmean(plain)
    mean_timed = statistics.fmean(timed)
    print(f'plain windows: {len(plain)} iterations, mean {mean_plain:.2f} ms, median '
          f'{statistics.median(plain):.2f} ms; instrumented: mean {mean_timed:.2f} ms')
    rows = {k: 1e3 * v / n_timed for k, v in clock.rows.items()}
    update = rows.pop('update (total)', 0.0)
    ext = sum(v for k, v in rows.items() if k.startswith('extension'))
    loop = mean_timed - update - ext
    rows['trainer loop, reporter scope (rest of the iteration)'] = loop
    rows['instrumentation (instrumented minus plain)'] = mean_timed - mean_plain
    print(f'{"part of an iteration":58s} {"ms":>7s} {"share":>6s}')
    for k, v in sorted(rows.items(), key=lambda kv: -kv[1]):
        print(f'{k:58s} {v:7.2f} {100 * v / mean_timed:5.1f}%')
    print(f'{"update (total)":58s} {update:7.2f} {100 * update / mean_timed:5.1f}%')
    fwd = sum(c for k, c in clock.counts.items() if k.endswith('forward')) / n_timed
    bwd = sum(c for k, c in clock.counts.items() if k.endswith('backward')) / n_timed
    print(f'nodes per iteration: {fwd:.0f} forward, {bwd:.0f} backward')
    if args.nodes:
        for k, ms in sorted(clock.by_label.items(), key=lambda kv: -kv[1]):
            print(f'  {k}: {clock.counts.get(k, 0) / n_timed:.1f} calls, '
                  f'{1e3 * ms / n_timed:.2f} ms')
    print(f'profile {mean_plain:.2f} ms/iteration')


if __name__ == '__main__':
    sys.exit(main())
