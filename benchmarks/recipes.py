#!/usr/bin/env python
"""Sample quality of recipes and presets trained for the same wall-clock budget, on the digits.

    python benchmarks/recipes.py --lock /tmp/gan_cpu.lock            # the final table
    python benchmarks/recipes.py --candidates dcgan,ema --seeds 1 --out sweep1
    python benchmarks/recipes.py --candidates ema --budget 600       # ten minutes each
    python benchmarks/recipes.py --budget 600 --out long --calibrations recipes_out
    python benchmarks/recipes.py --candidates dcgan,diffaug-tc --subset 500   # 500 digits
    python benchmarks/recipes.py --list                              # every candidate
    python benchmarks/recipes.py --out all --merge sweep1 sweep2 --candidates dcgan,ema --table
    python benchmarks/recipes.py --out all --candidates dcgan,ema --table --grids grids.png

A candidate is a named change of the run's options (:data:`CANDIDATES`,
RunConfig names over the ``dcgan`` preset, or another preset). Every one is
given the same **training time**, ``--budget`` seconds (by default the
default run's, :data:`BUDGET`), as a number of iterations, so that each
run is reproducible:

1. **calibration**: one real training process of the candidate (seed 0,
   every interval as in the real run) runs ``--warmup`` iterations and
   ``--windows`` windows of ``--timed`` more; the log's ``elapsed_time``
   over the fastest window gives the seconds per iteration (log lines, loss
   plots and preview grids included, at the run's own intervals; the
   fastest, because other work on the machine only ever slows a window);
2. **the runs**: ``round(budget / seconds per iteration)`` iterations, for
   each of ``--seeds`` seeds, each a real ``examples/train_dcgan.py``
   process with ``--fid_interval`` equal to its iterations, so the package's
   metric (``--fid_samples`` images of a fixed z; ``validation/fid``,
   ``kid``, ``precision``, ``recall``, ``classes``) is measured once, at the
   end (see docs/metrics.md).

The table gives, per candidate, the mean and the range (min-max) over the
seeds of each metric, the iterations, the calibrated seconds per
iteration, the log's ``elapsed_time`` at the end (training, plus the one
measurement of a few seconds) and the whole process's wall time.
``OUT/recipes.json`` holds every run (options, command, calibration, the
last log entry's metrics, times, the machine's load average when it
started); ``OUT/runs/NAME/seedS/`` keeps each run's log, ``config.json``
and sample grid (``preview/latest.png``). Running again with the same
``--out`` continues: calibrations and runs already in the JSON with the
same command are kept, so an interrupted sweep resumes where it stopped
(use a new ``--out`` to measure again).

With ``--subset N`` every run trains on ``N`` digits
(``benchmarks/train_subset.py``) and the table's metrics compare G with all
4,500 training digits; the log's FID against the ``N`` seen ones is the
extra column ``FID seen``.

Every calibration must have the CPU to itself, or the budget is unfair:
``--lock FILE`` takes an exclusive ``flock`` on ``FILE`` around each
process (so other work can run between them, never during), and each run
records the 1-minute load average it started at. The runs themselves have a
fixed number of iterations, so sharing the CPU changes their wall time, not
their result: with ``--runs_unlocked`` only the calibrations take the lock,
and the runs train beside other work at the lowest priority (``nice 19``);
their ``train s`` and ``wall s`` then measure the machine, not the recipe.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import fcntl
import itertools
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time

import numpy

from gan_trainer import files
from gan_trainer.cli.train import build_parser, config_from_args, flags_of_options
from gan_trainer.run import PRESETS
from gan_trainer.run.options import declared

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(ROOT, 'examples', 'train_dcgan.py')
TRAIN_SUBSET = os.path.join(ROOT, 'benchmarks', 'train_subset.py')

#: Seconds of training of the default run when this benchmark was written:
#: its 2,500 iterations at the calibrated speed of ``python examples/train_dcgan.py``
#: (code of commit 5a3ba7a, 0.054 s per iteration, the fastest window of its
#: calibrations under the CPU lock on the project's 2-core machine). Its whole
#: runs logged an ``elapsed_time`` of 171.7 and 188.9 s, on a machine whose
#: other work slowed parts of them by up to 50%; the budget is measured like
#: the candidates' speed, so that the default recipe gets its own 2,500
#: iterations (see benchmarks/RESULTS.md).
BUDGET = 135.0

#: Name -> RunConfig options over the ``dcgan`` preset (``preset`` picks another).
CANDIDATES: dict[str, dict] = {
    **{name: {'preset': name} for name in PRESETS},  # 'dcgan' is today's default recipe
    # Today's default run as it is: 2,500 iterations, whatever the budget.
    'default-2500': {'iteration': 2500},
    # G's moving average for sampling; start: the first weights are noise.
    'ema': {'ema': 0.999},
    'ema-start1000': {'ema': 0.999, 'ema_start': 1000},
    'ema0.995': {'ema': 0.995},
    'ema0.99': {'ema': 0.99},
    # DiffAugment policies and ADA (against D memorising 4,500 digits).
    'diffaug-t': {'augment': 'translation'},
    'diffaug-tc': {'augment': 'translation,cutout'},
    'diffaug-ctc': {'augment': 'color,translation,cutout'},
    'ada': {'augment': 'ada'},
    # TTUR (Heusel et al. 2017): D learns faster than G; or both faster.
    'ttur': {'gen_lr': 1e-4, 'dis_lr': 4e-4},
    'lr4e-4': {'lr': 4e-4},
    'r1': {'penalty': 'r1'},
    'width48': {'base_width': 48},
    'width64': {'base_width': 64},
    'n_dis2': {'n_dis': 2},
    'batch32': {'batchsize': 32},
    'batch128': {'batchsize': 128},
    # One G forward per iteration: more iterations in the same time.
    'reuse': {'reuse_fakes': True},
    # EMA with each of the others (EMA costs nothing per step, so it stays on).
    'ema-t': {'ema': 0.999, 'augment': 'translation'},
    'ema-tc': {'ema': 0.999, 'augment': 'translation,cutout'},
    'ema-ada': {'ema': 0.999, 'augment': 'ada'},
    'ema-reuse': {'ema': 0.999, 'reuse_fakes': True},
    'ema-ttur': {'ema': 0.999, 'gen_lr': 1e-4, 'dis_lr': 4e-4},
    'ema-width48': {'ema': 0.999, 'base_width': 48},
    'ema-batch32': {'ema': 0.999, 'batchsize': 32},
    # The least-squares loss, with one G forward per iteration.
    'lsgan-reuse': {'preset': 'lsgan', 'reuse_fakes': True},
    'lsgan-tc': {'preset': 'lsgan', 'augment': 'translation,cutout'},
    # The lsgan preset as the default run trains it: 2,500 iterations.
    'lsgan-2500': {'preset': 'lsgan', 'iteration': 2500},
    # The default run since this sweep (the 'default' preset): lsgan with the
    # D step's fakes reused, 3,000 iterations (fewer than lsgan-reuse's 4,164
    # of a fast calibration; its runs trained 166 s, past the budget).
    'default': {'preset': 'lsgan', 'reuse_fakes': True, 'iteration': 3000},
    # Issue 24: the levers since 2019, over the default preset (lsgan, reused
    # fakes). Learning-rate decay to 0 at the end (cosine / linear over the
    # second half), and a warm-up for larger rates.
    'cos': {'preset': 'default', 'lr_schedule': 'cosine'},
    'lin-half': {'preset': 'default', 'lr_schedule': 'linear', 'lr_decay_start': 0.5},
    'cos-lr5e-4': {'preset': 'default', 'lr_schedule': 'cosine', 'lr': 5e-4, 'lr_warmup': 100},
    # G's moving average with StyleGAN2's ramp-up of its half-life.
    'ema-ramp': {'preset': 'default', 'ema': 0.999, 'ema_rampup': 0.05},
    'cos-ema-ramp': {'preset': 'default', 'lr_schedule': 'cosine', 'ema': 0.999,
                     'ema_rampup': 0.05},
    # R3GAN's loss: relativistic pairing with R1 + R2, no normalisation in D,
    # Adam beta1 0; the penalty on every 4th D step (lazy), 0.1 or 1.
    'rpgan-r1r2': {'preset': 'default', 'loss': 'rpgan', 'penalty': 'r1,r2',
                   'penalty_weight': 0.1, 'penalty_every': 4, 'dis_norm': 'none', 'beta1': 0.0},
    'rpgan-r1r2-g1': {'preset': 'default', 'loss': 'rpgan', 'penalty': 'r1,r2',
                      'penalty_weight': 1.0, 'penalty_every': 4, 'dis_norm': 'none',
                      'beta1': 0.0},
    'rpgan-bn': {'preset': 'default', 'loss': 'rpgan'},
    # Small-data regularizers of D's outputs.
    'lecam': {'preset': 'default', 'lecam': 0.1},
    'bcr': {'preset': 'default', 'bcr': 1.0},
    # Capacity against speed.
    'cos-beta1-0-nobn': {'preset': 'default', 'lr_schedule': 'cosine', 'beta1': 0.0,
                         'dis_norm': 'none'},
    'cos-n_dis2': {'preset': 'default', 'lr_schedule': 'cosine', 'n_dis': 2},
    'cos-batch128': {'preset': 'default', 'lr_schedule': 'cosine', 'batchsize': 128,
                     'lr': 4e-4},
    'cos-batch32': {'preset': 'default', 'lr_schedule': 'cosine', 'batchsize': 32},
    'cos-width48': {'preset': 'default', 'lr_schedule': 'cosine', 'base_width': 48},
    # Round 2: in the first round everything that slowed G against D lost (a
    # decay to 0, two D steps, the TTUR that favours D); so G's step larger,
    # D's smaller, both larger, D's outputs regularized. (Results:
    # benchmarks/RESULTS.md, "Issue 24's sweep".)
    'dlr1e-4': {'preset': 'default', 'dis_lr': 1e-4},
    'glr4e-4': {'preset': 'default', 'gen_lr': 4e-4},
    'glr4e-4-dlr1e-4': {'preset': 'default', 'gen_lr': 4e-4, 'dis_lr': 1e-4},
    'lr4e-4-d': {'preset': 'default', 'lr': 4e-4},
    'glr4e-4-ema': {'preset': 'default', 'gen_lr': 4e-4, 'ema': 0.999, 'ema_rampup': 0.05},
    'dis-noise': {'preset': 'default', 'dis_noise': 0.1},
    'r1-lazy': {'preset': 'default', 'penalty': 'r1', 'penalty_weight': 1.0,
                'penalty_every': 4},
    # Round 3: G's larger step won round 2; how far it goes, and with what.
    'glr8e-4': {'preset': 'default', 'gen_lr': 8e-4},
    'glr6e-4': {'preset': 'default', 'gen_lr': 6e-4},
    'glr4e-4-b0': {'preset': 'default', 'gen_lr': 4e-4, 'gen_beta1': 0.0},
    'glr4e-4-lecam': {'preset': 'default', 'gen_lr': 4e-4, 'lecam': 0.1},
    'glr4e-4-drop': {'preset': 'default', 'gen_lr': 4e-4, 'dis_dropout': 0.3},
    # Round 4: 8e-4 beat 4e-4; further, and with D's regularizers.
    'glr1.2e-3': {'preset': 'default', 'gen_lr': 1.2e-3},
    'glr1.6e-3': {'preset': 'default', 'gen_lr': 1.6e-3},
    'glr8e-4-lecam': {'preset': 'default', 'gen_lr': 8e-4, 'lecam': 0.1},
    'glr8e-4-b0': {'preset': 'default', 'gen_lr': 8e-4, 'gen_beta1': 0.0},
    'glr8e-4-drop': {'preset': 'default', 'gen_lr': 8e-4, 'dis_dropout': 0.3},
    # The SNGAN ResNet nets with their paper's loss and spectral norm.
    'resnet16': {'preset': 'sngan', 'arch': 'resnet', 'base_width': 16},
    'resnet32': {'preset': 'sngan', 'arch': 'resnet', 'base_width': 32},
}

#: What runs without ``--candidates``: every preset, and the best recipes.
FINAL = (*PRESETS, 'ema')

#: Metrics of the last log entry, in the table's order (``validation/KEY``).
METRICS = ('fid', 'kid', 'precision', 'recall', 'classes')
OUT_JSON = 'recipes.json'
PROG = 'recipes.py'


class Failure(Exception):
    """A training process that did not end well; the message says how."""


# ------------------------------------------------------------ candidates


def option_flags(options: dict) -> list[str]:
    """RunConfig options as the flags of the training command (``--reuse_fakes`` for True)."""
    fields, flags = declared_fields(), flags_of_options()
    result = []
    for name, value in options.items():
        meta = fields[name].metadata
        if meta['kind'] == 'bool':
            if meta['negate']:  # a flag that turns the option off
                result += [] if value else [meta['negate']]
            else:
                result.append(flags[name] if value else f'--no-{flags[name][2:]}')
            continue
        shown = ','.join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)
        result += [flags[name], shown]
    return result


def declared_fields():
    from gan_trainer.run import RunConfig

    return declared(RunConfig)


def parse_options(text: str) -> dict:
    """``--options`` text ``KEY=VALUE,KEY=VALUE`` -> ``{KEY: VALUE}``.

    Values stay text (the training command's parser reads them), except
    those of on/off options: ``true``/``false``.
    """
    result, fields = {}, declared_fields()
    for item in filter(None, text.split(',')):
        key, sep, value = item.partition('=')
        if not sep or key not in fields:
            raise ValueError(f'--options: {item!r} is not KEY=VALUE with KEY a run option')
        if fields[key].metadata['kind'] == 'bool':
            if value not in ('true', 'false'):
                raise ValueError(f'--options: {key} takes true or false, got {value!r}')
            value = value == 'true'
        result[key] = value
    return result


def candidate_flags(name: str, extra: dict) -> list[str]:
    """The flags of candidate ``name`` (plus the ``--options``), checked as the command would.

    Raises:
        ValueError: When the command would refuse them (the message names the flag).
    """
    # Over the dcgan preset unless the candidate names one (whatever the default preset).
    options = {'preset': 'dcgan', **{k: v for k, v in CANDIDATES[name].items()
                                     if k != 'iteration'}}
    flags = option_flags(dict(options, **extra))
    # A value the command's parser refuses ends here, in its one line.
    args = build_parser(PROG).parse_args(flags)
    args.config = None
    try:
        config_from_args(args)
    except ValueError as e:
        raise ValueError(f'candidate {name}: {e}') from None
    return flags


# ------------------------------------------------------------ processes


class Lock:
    """An exclusive ``flock`` on a file while a training process runs (no file: no lock)."""

    def __init__(self, path: str | None) -> None:
        self.path, self.fd = path, None

    def __enter__(self):
        if self.path:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def train(script: str, flags: list[str], out: str, lock: Lock, *, nice: int = 0) -> dict:
    """Runs one training process into ``out``; returns its log, wall time and load.

    Args:
        nice: Run it at this CPU niceness (``--runs_unlocked``: ``--nice``, 19).

    Raises:
        Failure: For a non-zero exit, with the last line of its stderr.
    """
    if os.path.exists(out):
        shutil.rmtree(out)  # an interrupted earlier attempt
    cmd = [*(['nice', '-n', str(nice)] if nice else []), sys.executable, script, *flags,
           '--no_progress', '--out', out]
    with lock:
        load = os.getloadavg()[0]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
        wall = time.perf_counter() - start
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or ['(no output)']
        raise Failure(f'exit {proc.returncode}: {lines[-1][-300:]}')
    with open(os.path.join(out, files.LOG)) as f:
        log = json.load(f)
    return {'log': log, 'wall': wall, 'load': load,
            'command': ' '.join(['python', os.path.relpath(script, ROOT), *flags])}


def calibrate(name: str, flags: list[str], args, lock: Lock) -> dict:
    """Seconds per iteration of a candidate: the fastest of ``--windows`` timed windows.

    One process runs ``--warmup`` iterations, then ``--windows`` windows of
    ``--timed`` iterations, and one more (the last iteration also validates,
    draws and saves). The log is written every ``gcd(warmup, timed)``
    iterations (50 with the defaults, the run's own interval), so each
    window starts and ends on a log entry and holds the run's log lines,
    loss plots and preview grids. The fastest window is taken because
    anything else on the machine only ever slows a window down; the budget
    (:data:`BUDGET`) was measured the same way.
    """
    every = math.gcd(args.warmup, args.timed)
    ends = [args.warmup + k * args.timed for k in range(args.windows + 1)]
    out = os.path.join(args.out, 'runs', name, 'calibration')
    result = train(args.script, [*flags, '--iteration', str(ends[-1] + 1), '--seed', '0',
                                 '--display_interval', str(every)], out, lock)
    elapsed = {entry['iteration']: entry['elapsed_time'] for entry in result['log']}
    shutil.rmtree(out)
    windows = [(elapsed[b] - elapsed[a]) / args.timed for a, b in itertools.pairwise(ends)]
    return {'seconds_per_iteration': min(windows), 'windows': windows,
            'warmup': args.warmup, 'timed': args.timed, 'n_windows': args.windows,
            'load': result['load'],
            'command': result['command']}


def measure(name: str, flags: list[str], iterations: int, seed: int, args, lock: Lock) -> dict:
    """One run of ``iterations`` at ``seed``, measured once at its end."""
    out = os.path.join(args.out, 'runs', name, f'seed{seed}')
    result = train(args.script, [*flags, '--iteration', str(iterations), '--seed', str(seed),
                                 '--fid_interval', str(iterations),
                                 '--fid_samples', str(args.fid_samples)], out,
                   Lock(None) if args.runs_unlocked else lock,
                   nice=args.nice if args.runs_unlocked else 0)
    last = result['log'][-1]
    run = {'seed': seed, 'iteration': last['iteration'], 'elapsed': last['elapsed_time'],
           'wall': result['wall'], 'load': result['load'], 'command': result['command'],
           **{key: last[f'validation/{key}'] for key in (*METRICS, 'class_kl', 'is')},
           'grid': os.path.join(out, files.PREVIEW_DIR, files.PREVIEW_LATEST)}
    if args.subset:
        with open(os.path.join(out, 'quality_full.json')) as f:
            full = json.load(f)
        run['fid_seen'] = run['fid']
        run.update({key: full[key] for key in (*METRICS, 'class_kl', 'is')})
    tidy(out, keep_all=args.keep_runs)
    return run


def tidy(out: str, *, keep_all: bool) -> None:
    """Leaves a run's log, config.json, sample grid and quality files; the rest goes."""
    if keep_all:
        return
    keep = {files.LOG, files.CONFIG, files.PREVIEW_DIR, 'quality_full.json',
            f'{files.BEST_STEM}.json'}
    for entry in os.listdir(out):
        path = os.path.join(out, entry)
        if entry not in keep:
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    preview = os.path.join(out, files.PREVIEW_DIR)
    for entry in os.listdir(preview):
        if entry != files.PREVIEW_LATEST:
            os.remove(os.path.join(preview, entry))


# ------------------------------------------------------------ the table


def spread(values: list[float], digits: int) -> str:
    """``mean (min-max)``, or the value alone for one run."""
    if len(values) == 1:
        return f'{values[0]:.{digits}f}'
    mean = sum(values) / len(values)
    return f'{mean:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})'


def table(results: dict, names: list[str], seeds: int, subset: int | None) -> str:
    """The Markdown table of ``names`` (those with runs of seeds below ``seeds``), in order."""
    header = ['candidate', 'iterations', 's/it', 'train s', 'wall s', 'FID', 'KID',
              'precision', 'recall', 'classes']
    if subset:
        header.append('FID seen')
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for name in names:
        entry = results.get(name) or {}
        runs = [run for run in entry.get('runs', ()) if run['seed'] < seeds]
        if entry.get('error'):
            lines.append(f'| {name} | failed: {entry["error"]} |')
            continue
        if not runs:
            continue
        col = {key: [run[key] for run in runs] for key in runs[0]}
        cells = [name, str(entry['iterations']),
                 f'{entry["calibration"]["seconds_per_iteration"]:.4f}',
                 spread(col['elapsed'], 0), spread(col['wall'], 0),
                 spread(col['fid'], 1), spread(col['kid'], 2), spread(col['precision'], 2),
                 spread(col['recall'], 2), spread(col['classes'], 0)]
        if subset:
            cells.append(spread(col['fid_seen'], 1))
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def montage(results: dict, names: list[str], path: str, per_row: int = 3) -> list[str]:
    """Writes one picture of the candidates' seed-0 sample grids, labelled, in table order.

    Each cell is the run's last preview grid (its fixed z; ``preview/latest.png``)
    under a line ``NAME: FID F, N it``. Returns the names drawn; raises
    ``OSError`` naming a grid that is missing.
    """
    from PIL import Image, ImageDraw

    from gan_trainer.image import save_image

    cells = []
    for name in names:
        run = next((r for r in (results.get(name) or {}).get('runs', ()) if r['seed'] == 0), None)
        if run is None:
            continue
        if not os.path.isfile(run['grid']):
            raise OSError(f'no sample grid for {name}: {run["grid"]} is missing')
        cells.append((f'{name}: FID {run["fid"]:.0f}, {run["iteration"]} it',
                      Image.open(run['grid']).convert('L')))
    if not cells:
        raise OSError('no run of seed 0 to draw')
    width = max(im.width for _, im in cells)
    height = max(im.height for _, im in cells)
    label = 18
    rows = math.ceil(len(cells) / per_row)
    sheet = Image.new('L', (per_row * width, rows * (height + label)), 255)
    draw = ImageDraw.Draw(sheet)
    for i, (text, image) in enumerate(cells):
        row, col = divmod(i, per_row)
        left, top = col * width, row * (height + label)
        draw.text((left + 4, top + 3), text, fill=0)
        sheet.paste(image, (left, top + label))
    save_image(numpy.asarray(sheet), path)
    return [text.split(':')[0] for text, _ in cells]


def cpu_name() -> str:
    """The CPU model, the core count and whether it has AVX-512."""
    try:
        with open('/proc/cpuinfo') as f:
            text = f.read()
    except OSError:
        return platform.processor() or 'unknown CPU'
    model = next((ln.split(':', 1)[1].strip() for ln in text.splitlines()
                  if ln.startswith('model name')), 'unknown CPU')
    return f'{model}, {os.cpu_count()} cores, AVX-512 {"yes" if " avx512f" in text else "no"}'


def git_commit() -> str:
    proc = subprocess.run(['git', 'describe', '--always', '--dirty'], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    return proc.stdout.strip() or 'unknown'


# ------------------------------------------------------------ main


def parse_args(argv=None) -> argparse.Namespace:
    from gan_trainer.cli._args import Parser, positive_int

    def seconds(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f'expected a number of seconds, got {text!r}') from None
        if not value > 0 or not math.isfinite(value):
            raise argparse.ArgumentTypeError(f'must be a number of seconds above 0, got {text}')
        return value

    p = Parser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument('--budget', type=seconds, default=BUDGET,
                   help=f'training seconds per run (default {BUDGET:g}: the default run\'s)')
    p.add_argument('--seeds', type=positive_int, default=3, help='seeds 0..N-1 (default 3)')
    p.add_argument('--runs_unlocked', action='store_true',
                   help='with --lock: lock the calibrations only; the runs train beside other '
                        'work at nice 19 (their results are the same, their times are not)')
    p.add_argument('--jobs', type=positive_int, default=1,
                   help="a candidate's seeds trained this many at a time (with --runs_unlocked "
                        'or without --lock; give each process one thread: OMP_NUM_THREADS=1); '
                        'their results are those of one at a time, their times are not')
    p.add_argument('--nice', type=int, default=19, choices=range(20), metavar='N',
                   help='with --runs_unlocked: the runs\' niceness (default 19)')
    p.add_argument('--candidates', default=','.join(FINAL),
                   help="comma-separated names (see --list), or 'all' (default: every preset "
                        'and the best recipes)')
    p.add_argument('--out', default='recipes_out', help='folder of the JSON and the runs')
    p.add_argument('--subset', type=positive_int,
                   help='train on this many digits (a multiple of 10); metrics against all')
    p.add_argument('--options', default='',
                   help='KEY=VALUE,... run options for every candidate (quick checks: '
                        'base_width=8,batchsize=8)')
    p.add_argument('--lock', help='flock this file around each training process')
    p.add_argument('--warmup', type=positive_int, default=50,
                   help='calibration: untimed iterations (default 50)')
    p.add_argument('--timed', type=positive_int, default=100,
                   help='calibration: iterations per timed window (default 100)')
    p.add_argument('--windows', type=positive_int, default=5,
                   help='calibration: timed windows; the fastest counts (default 5)')
    p.add_argument('--fid_samples', type=positive_int, default=1000)
    p.add_argument('--keep_runs', action='store_true', help='keep snapshots and every grid')
    p.add_argument('--merge', nargs='+', default=[], metavar='DIR',
                   help="take the --candidates of these earlier --out folders that this one "
                        'lacks, from the first folder that has each (one table of several '
                        'sweeps)')
    p.add_argument('--calibrations', nargs='+', default=[], metavar='DIR',
                   help='take the seconds per iteration of candidates with the same flags '
                        'from these earlier --out folders instead of calibrating again (for '
                        'another --budget)')
    p.add_argument('--table', action='store_true',
                   help='print the table of the runs already in --out (and --merge) and exit')
    p.add_argument('--grids', metavar='PNG',
                   help="with --table: also write one picture of each candidate's seed-0 "
                        'sample grid (its last preview), labelled, to this file')
    p.add_argument('--list', action='store_true', help='print the candidates and exit')
    args = p.parse_args(argv)
    names = list(CANDIDATES) if args.candidates == 'all' else [
        n.strip() for n in args.candidates.split(',') if n.strip()]
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown or not names:
        p.error(f'--candidates: unknown {", ".join(unknown) or "(none given)"}; '
                f'known: {", ".join(CANDIDATES)}')
    if args.subset is not None and (args.subset % 10 or args.subset > 4500):
        p.error(f'--subset must be a multiple of 10 up to 4500, got {args.subset}')
    if args.grids and not args.table:
        p.error('--grids needs --table (it draws the runs already made)')
    if args.jobs > 1 and args.lock and not args.runs_unlocked:
        p.error('--jobs: the runs would wait for each other on --lock; add --runs_unlocked')
    if args.fid_samples < 4:
        p.error(f'--fid_samples must be at least 4, got {args.fid_samples}')
    try:
        extra = parse_options(args.options)
        args.flags = {name: candidate_flags(name, extra) for name in names}
    except ValueError as e:
        p.error(str(e))
    args.names = names
    args.out = os.path.abspath(args.out)  # the processes run in the repository
    args.script = TRAIN_SUBSET if args.subset else TRAIN
    if args.subset:
        args.flags = {n: ['--subset', str(args.subset), *f] for n, f in args.flags.items()}
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.list:
        for name, options in CANDIDATES.items():
            print(f'{name:18} {" ".join(option_flags(options))}')
        return 0
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, OUT_JSON)
    state = {'machine': cpu_name(), 'budget': args.budget, 'subset': args.subset,
             'fid_samples': args.fid_samples, 'candidates': {}}
    if os.path.exists(path):
        with open(path) as f:
            state['candidates'] = json.load(f).get('candidates', {})
    for folder in args.merge:
        other = read_sweep(folder, '--merge')
        if other is None:
            return 2
        for name, entry in other.items():
            if name in args.names:  # a folder may hold others' merged copies too
                state['candidates'].setdefault(name, entry)
    state.update(date=datetime.date.today().isoformat(), commit=git_commit(),
                 python=platform.python_version(), command=' '.join(['python',
                 'benchmarks/recipes.py', *(sys.argv[1:] if argv is None else argv)]))
    if args.table:
        save(path, state)
        print(table(state['candidates'], args.names, args.seeds, args.subset))
        if args.grids:
            try:
                drawn = montage(state['candidates'], args.names, args.grids)
            except OSError as e:
                print(f'{PROG}: error: --grids: {e}', file=sys.stderr)
                return 2
            print(f'{args.grids}: the seed-0 grids of {", ".join(drawn)}')
        return 0
    args.reused = {}
    for folder in args.calibrations:
        other = read_sweep(folder, '--calibrations')
        if other is None:
            return 2
        for name, entry in other.items():
            if (name in args.names and name not in args.reused and entry.get('calibration')
                    and entry.get('flags') == args.flags[name]):
                args.reused[name] = entry['calibration']
    lock = Lock(args.lock)
    print(f'{state["machine"]}; budget {args.budget:g} s of training per run; '
          f'{args.seeds} seed(s); commit {state["commit"]}', flush=True)
    failed = False
    entries = {}

    def calibrated(name: str, calibration_lock: Lock) -> None:
        """The candidate's entry, calibrated (kept from an earlier call when it still fits)."""
        flags = args.flags[name]
        entry = state['candidates'].get(name, {})
        calibration = entry.get('calibration', {})
        same = (entry.get('flags') == flags and entry.get('budget') == args.budget
                and (calibration == args.reused.get(name)
                     or (calibration.get('warmup'), calibration.get('timed'),
                         calibration.get('n_windows')) == (args.warmup, args.timed,
                                                           args.windows)))
        if not same:
            entry = {'flags': flags, 'budget': args.budget, 'runs': []}
        entry.pop('error', None)
        state['candidates'][name] = entries[name] = entry
        if 'calibration' not in entry:
            entry['calibration'] = args.reused.get(name) or calibrate(
                name, flags, args, calibration_lock)
            spi = entry['calibration']['seconds_per_iteration']
            entry['iterations'] = CANDIDATES[name].get('iteration') or max(
                1, round(args.budget / spi))
            save(path, state)
        print(f'{name}: {entry["calibration"]["seconds_per_iteration"]:.4f} s/it -> '
              f'{entry["iterations"]} iterations', flush=True)

    def failure(name: str, e: Failure) -> None:
        nonlocal failed
        state['candidates'][name]['error'] = str(e)
        save(path, state)
        print(f'  {name} failed: {e}', flush=True)
        failed = True

    if args.runs_unlocked:
        # Every calibration first, in one hold of the lock (other work queued
        # on it waits once, not between candidates); then the runs, unlocked.
        with lock:
            for name in args.names:
                try:
                    calibrated(name, Lock(None))
                except Failure as e:
                    failure(name, e)
    for name in args.names:
        try:
            if name not in entries:
                calibrated(name, lock)
            entry = entries[name]
            if entry.get('error'):
                continue
            done = {run['seed'] for run in entry['runs']}
            todo = [seed for seed in range(args.seeds) if seed not in done]
            errors = []
            with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
                runs = [pool.submit(measure, name, args.flags[name], entry['iterations'], seed,
                                    args, lock) for seed in todo]
                for future in concurrent.futures.as_completed(runs):
                    try:
                        run = future.result()
                    except Failure as e:  # the seeds still training are kept when they end
                        errors.append(e)
                        continue
                    entry['runs'].append(run)
                    entry['runs'].sort(key=lambda r: r['seed'])
                    save(path, state)
                    print(f'  seed {run["seed"]}: FID {run["fid"]:.1f}, {run["iteration"]} '
                          f'iterations, {run["elapsed"]:.0f} s training, {run["wall"]:.0f} s '
                          f'wall, load {run["load"]:.2f}', flush=True)
            if errors:
                raise errors[0]
        except Failure as e:
            failure(name, e)
    save(path, state)
    print()
    print(table(state['candidates'], args.names, args.seeds, args.subset))
    return 1 if failed else 0


def read_sweep(folder: str, flag: str) -> dict | None:
    """The candidates of an earlier ``--out`` folder, or None after a one-line error naming
    ``flag`` and the file."""
    json_path = os.path.join(folder, OUT_JSON)
    try:
        with open(json_path) as f:
            return json.load(f).get('candidates', {})
    except (OSError, ValueError) as e:
        print(f'{PROG}: error: {flag}: cannot read {json_path}: {e}', file=sys.stderr)
        return None


def save(path: str, state: dict) -> None:
    files.write_json(path, state)


if __name__ == '__main__':
    sys.exit(main())
