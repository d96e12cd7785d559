#!/usr/bin/env python
"""A write-up's recipe in its own framework against its preset, at equal iterations.

    python3 -m venv /work/venv-tf && /work/venv-tf/bin/pip install tensorflow-cpu
    python benchmarks/peers/compare.py --recipe keras-dcgan --seeds 0,1,2 \\
        --lock /tmp/gan_cpu.lock --picture docs/images/peer_keras_dcgan.png
    python benchmarks/peers/compare.py --recipe tf-gan --iterations 1200
    python benchmarks/peers/compare.py --recipe keras-dcgan --variant old \\
        --flags='--gen_project_norm channel'      # the preset with other options
    python benchmarks/peers/compare.py --recipe keras-dcgan --table   # measure, train nothing

For each seed, in turn and each under ``--lock``: the peer script
(:data:`RECIPES`; ``keras_dcgan.py``, ``keras_dcgan_notes.py`` or
``tf_dcgan.py``, run by ``--peer_python``, the TensorFlow venv's Python;
never a dependency of this package), then ``examples/train_dcgan.py
--preset NAME`` for the same ``--iterations``, both on the same 4,500
training digits and judged on the same z: this script writes the peer's
input (:mod:`peer_io`), with the preset's own preview and quality z
(its z distribution, ``RandomState(0)``). Then, for both sides, with the
same function: the package's metric (FID, KID, precision, recall, classes;
docs/metrics.md) of the 1,000 samples of that z, G in inference mode;
seconds per iteration, the median over ``--log_every``-iteration windows of
each log's elapsed time after the first window (which holds compilation
and warm-up; log lines and grids are inside the windows on both sides);
and, with ``--picture``, the seed-0 grids of both, side by side, one row
per ``--grid_every`` iterations.

This compares whole runs, each side with its own random streams (initial
weights, data order, z); ``step_check.py`` compares the keras-dcgan
preset's iterations with Keras' from the same weights, batches and z.

``OUT/RECIPE/results.json`` keeps every measurement; runs whose files are
there are not trained again (a new ``--out`` measures anew). ``--variant
NAME --flags=...`` trains the preset with other options under the side
name NAME (one change at a time, for bisecting a difference).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shlex
import statistics
import subprocess
import sys
import time

import numpy

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(HERE))

from recipes import TRAIN, Failure, Lock, cpu_name, train

from gan_trainer import files
from gan_trainer.run import PRESETS

#: Recipe (preset name) -> its peer script in this folder.
RECIPES = {
    'keras-dcgan': 'keras_dcgan.py',
    'keras-dcgan-notes': 'keras_dcgan_notes.py',
    'tf-gan': 'tf_dcgan.py',
}
PEER = 'peer'
PRESET = 'preset'
N_GRID = 100
N_SAMPLES = 1000


def write_inputs(path: str, recipe: str) -> None:
    """The peer's input: the training digits channel-last and the preset's fixed z."""
    from gan_trainer.datasets import get_digits
    from gan_trainer.metrics.quality import real_images
    from gan_trainer.sampling import draw_hidden

    preset = PRESETS[recipe]
    z = {name: draw_hidden(n, preset.n_hidden, z_dist=preset.z_dist, seed=0)
         for name, n in (('z_grid', N_GRID), ('z_samples', N_SAMPLES))}
    train_digits = real_images(get_digits('train')).transpose(0, 2, 3, 1)
    tmp = path + '.tmp.npz'
    numpy.savez(tmp, train=train_digits, **z)
    os.replace(tmp, path)


def run_peer(recipe: str, seed: int, args, lock: Lock, inputs: str) -> str:
    """Trains the peer into OUT/RECIPE/peer/seedS (unless done); returns the folder."""
    out = os.path.join(args.out, recipe, PEER, f'seed{seed}')
    if _done(os.path.join(out, 'log.json'), args.iterations):
        return out
    script = args.peer_script or os.path.join(HERE, RECIPES[recipe])
    cmd = [args.peer_python, script, '--data', inputs,
           '--out', out, '--iterations', str(args.iterations), '--seed', str(seed),
           '--grid_every', str(args.grid_every), '--log_every', str(args.log_every)]
    with lock:
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or ['(no output)']
        raise Failure(f'{os.path.basename(script)} exit {proc.returncode}: '
                      f'{lines[-1][-300:]}')
    print(f'{recipe} {PEER} seed {seed}: {wall:.0f} s', flush=True)
    return out


def run_preset(recipe: str, side: str, flags: list[str], seed: int, args, lock: Lock) -> str:
    """Trains the preset (with ``flags``) into OUT/RECIPE/SIDE/seedS unless done."""
    out = os.path.join(args.out, recipe, side, f'seed{seed}')
    if _done(os.path.join(out, files.LOG), args.iterations):
        return out
    train(TRAIN, ['--preset', recipe, *flags, '--iteration', str(args.iterations),
                  '--seed', str(seed), '--preview_interval', str(args.grid_every),
                  '--display_interval', str(args.log_every),
                  '--snapshot_interval', str(args.iterations),
                  '--eval_interval', str(args.iterations)], out, lock)
    print(f'{recipe} {side} seed {seed}: done', flush=True)
    return out


def _done(log_path: str, iterations: int) -> bool:
    try:
        with open(log_path) as f:
            log = json.load(f)
    except (OSError, ValueError):
        return False
    entries = log['log'] if isinstance(log, dict) else log
    return bool(entries) and entries[-1]['iteration'] == iterations


def elapsed_of(folder: str, side: str) -> list[tuple[int, float]]:
    """``(iteration, seconds since training started)`` of each log entry."""
    if side == PEER:
        with open(os.path.join(folder, 'log.json')) as f:
            return [(e['iteration'], e['elapsed']) for e in json.load(f)['log']]
    with open(os.path.join(folder, files.LOG)) as f:
        return [(e['iteration'], e['elapsed_time']) for e in json.load(f)]


def seconds_per_iteration(entries: list[tuple[int, float]]) -> float:
    """Median seconds per iteration over the log's windows, the first one left out."""
    windows = [(t1 - t0) / (i1 - i0) for (i0, t0), (i1, t1) in itertools.pairwise(entries)]
    return statistics.median(windows or [entries[-1][1] / entries[-1][0]])


def samples_of(folder: str, side: str, iterations: int, z: numpy.ndarray) -> numpy.ndarray:
    """The 1,000 images of the fixed z: the peer's file, or G of the preset's last snapshot."""
    if side == PEER:
        return numpy.load(os.path.join(folder, 'samples.npy'))
    from gan_trainer.run import load_generator
    from gan_trainer.sampling import generate

    gen, _ = load_generator(os.path.join(folder, f'gen_iter_{iterations}.npz'))
    return generate(gen, z)


def grids_of(folder: str, side: str) -> dict[int, numpy.ndarray]:
    """Iteration -> the fixed-z grid as a uint8 picture."""
    from PIL import Image

    from gan_trainer.image import tile_images

    if side == PEER:
        with numpy.load(os.path.join(folder, 'grids.npz')) as f:
            return {int(k.split('_')[1]): tile_images(f[k], 10, 10) for k in f.files}
    preview = os.path.join(folder, files.PREVIEW_DIR)
    grids = {}
    for name in os.listdir(preview):
        match = files.PREVIEW_FRAME.match(name)
        if match:
            grids[int(match.group(1))] = numpy.asarray(
                Image.open(os.path.join(preview, name)).convert('L'))
    return grids


def picture(columns: list[tuple[str, dict[int, numpy.ndarray]]], path: str) -> None:
    """The grids side by side: one column per side, one row per iteration, labelled."""
    from PIL import Image, ImageDraw

    from gan_trainer.image import save_image

    its = sorted(set.intersection(*(set(g) for _, g in columns)))
    h = max(g[i].shape[0] for _, g in columns for i in its)
    w = max(g[i].shape[1] for _, g in columns for i in its)
    label, left = 18, 60
    sheet = Image.new('L', (left + len(columns) * w, label + len(its) * h), 255)
    draw = ImageDraw.Draw(sheet)
    for c, (name, grids) in enumerate(columns):
        draw.text((left + c * w + 4, 3), name, fill=0)
        for r, it in enumerate(its):
            sheet.paste(Image.fromarray(grids[it]), (left + c * w, label + r * h))
    for r, it in enumerate(its):
        draw.text((4, label + r * h + h // 2), f'it {it}', fill=0)
    save_image(numpy.asarray(sheet), path)


def real_statistics():
    """The package's metric of the training digits (``.measure(samples)``; docs/metrics.md)."""
    from gan_trainer.datasets import get_digits
    from gan_trainer.metrics import RealStatistics, load_digits_classifier
    from gan_trainer.metrics.quality import real_images

    return RealStatistics(load_digits_classifier().embed, real_images(get_digits('train')))


def measure_all(recipe: str, sides: list[str], args) -> dict:
    """Every side's metrics and seconds per iteration, per seed (cached in results.json)."""
    path = os.path.join(args.out, recipe, 'results.json')
    try:
        with open(path) as f:
            results = json.load(f)
    except (OSError, ValueError):
        results = {}
    with numpy.load(os.path.join(args.out, recipe, 'inputs.npz')) as f:
        z = f['z_samples']
    real = None
    for side in sides:
        for seed in args.seeds:
            key = f'{side}/seed{seed}/{args.iterations}'
            folder = os.path.join(args.out, recipe, side, f'seed{seed}')
            if key in results or not os.path.isdir(folder):
                continue
            if real is None:
                real = real_statistics()
            m = real.measure(samples_of(folder, side, args.iterations, z))
            results[key] = {**{k: float(m[k]) for k in METRICS},
                            's_per_it': seconds_per_iteration(elapsed_of(folder, side))}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(results, f, indent=1, sort_keys=True)
    return results


METRICS = ('fid', 'kid', 'precision', 'recall', 'classes')


def table(recipe: str, sides: list[str], results: dict, args) -> str:
    """Markdown: per side, mean (min-max) over the seeds of every metric and s/it."""
    seeds = ','.join(map(str, args.seeds))
    lines = [f'{recipe}, {args.iterations} iterations, seeds {seeds} ({cpu_name()})', '',
             '| side | FID | KID | precision | recall | classes | s/it |',
             '|---|---|---|---|---|---|---|']
    for side in sides:
        rows = [results.get(f'{side}/seed{s}/{args.iterations}') for s in args.seeds]
        rows = [r for r in rows if r]
        if not rows:
            continue
        cells = []
        for key, digits in (*zip(METRICS, (1, 2, 2, 2, 0)), ('s_per_it', 3)):
            values = [r[key] for r in rows]
            text = f'{statistics.mean(values):.{digits}f}'
            if len(values) > 1:
                text += f' ({min(values):.{digits}f}-{max(values):.{digits}f})'
            cells.append(text)
        lines.append(f'| {side} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--recipe', required=True, choices=sorted(RECIPES))
    p.add_argument('--iterations', type=int, default=600)
    p.add_argument('--seeds', default='0', help='comma-separated, e.g. 0,1,2')
    p.add_argument('--out', default='peers_out')
    p.add_argument('--lock', help='flock this file around each training process')
    p.add_argument('--peer_python', default=os.environ.get('PEER_PYTHON',
                                                           '/work/venv-tf/bin/python'),
                   help="the peer framework's Python (default $PEER_PYTHON or "
                        '/work/venv-tf/bin/python)')
    p.add_argument('--peer_script', help='another peer script than the recipe\'s (it takes '
                                         "peer_io's flags)")
    p.add_argument('--variant', help='a side name for the preset trained with --flags')
    p.add_argument('--flags', default='', help='options over the preset, for --variant')
    p.add_argument('--sides', help='comma-separated sides to tabulate and draw '
                                   '(default: peer, preset and --variant)')
    p.add_argument('--grid_every', type=int, default=100)
    p.add_argument('--log_every', type=int, default=50)
    p.add_argument('--table', action='store_true', help='train nothing; measure what is there')
    p.add_argument('--picture', metavar='PNG', help="draw the seed-0 grids side by side")
    args = p.parse_args(argv)
    try:
        args.seeds = [int(s) for s in args.seeds.split(',') if s.strip()]
    except ValueError:
        p.error(f'--seeds must be comma-separated integers, got {args.seeds!r}')
    if args.flags and not args.variant:
        p.error('--flags needs --variant NAME (the side its runs are kept under)')
    if args.variant in (PEER, PRESET):
        p.error(f'--variant must not be {PEER!r} or {PRESET!r}')
    if args.iterations < 1 or not args.seeds:
        p.error('--iterations must be at least 1 and --seeds name at least one seed')
    if args.peer_script and not os.path.isfile(args.peer_script):
        p.error(f'--peer_script {args.peer_script!r} does not exist')
    if not args.table and not os.path.isfile(args.peer_python):
        p.error(f'--peer_python {args.peer_python!r} does not exist; make the venv as the '
                'docstring says')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    recipe, lock = args.recipe, Lock(args.lock)
    os.makedirs(os.path.join(args.out, recipe), exist_ok=True)
    inputs = os.path.join(args.out, recipe, 'inputs.npz')
    if not os.path.isfile(inputs):
        write_inputs(inputs, recipe)
    trained = [(args.variant, shlex.split(args.flags))] if args.variant else [
        (PRESET, [])]
    if not args.table:
        for seed in args.seeds:
            try:
                run_peer(recipe, seed, args, lock, inputs)
                for side, flags in trained:
                    run_preset(recipe, side, flags, seed, args, lock)
            except Failure as e:
                print(f'compare.py: error: seed {seed}: {e}', file=sys.stderr)
                return 1
    sides = (args.sides.split(',') if args.sides else
             [PEER, PRESET] + ([args.variant] if args.variant else []))
    results = measure_all(recipe, sides, args)
    print(table(recipe, sides, results, args))
    if args.picture:
        seed = args.seeds[0]
        columns = [(f'{side} (seed {seed})', grids_of(
            os.path.join(args.out, recipe, side, f'seed{seed}'), side)) for side in sides
            if os.path.isdir(os.path.join(args.out, recipe, side, f'seed{seed}'))]
        picture(columns, args.picture)
        print(f'{args.picture}: the seed-{seed} grids of {", ".join(c for c, _ in columns)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
