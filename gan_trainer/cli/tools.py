"""``gan-trainer gif``, ``plot`` and ``export``: a run's film, curves and ONNX model.

    gan-trainer gif result                       # result/training.gif (a run also writes it)
    gan-trainer plot result --keys dis/acc_real dis/acc_fake --out acc.png
    gan-trainer export result/gen_iter_2500.npz --out gen.onnx     # needs '.[onnx]'
"""

from __future__ import annotations

import argparse
import os

from gan_trainer import files
from gan_trainer.checkpoint import SnapshotError
from gan_trainer.cli._args import fail, integer, positive_int, run_command
from gan_trainer.cli._snapshot import add_generator_args, load_cli_generator

# ------------------------------------------------------------------ gif


def add_gif_arguments(p: argparse.ArgumentParser) -> None:
    a = p.add_argument
    a('out_dir', metavar='OUT', help='output folder of a training run (holds preview/)')
    a('--out', '-o', help='GIF to write (default OUT/training.gif)')
    a('--duration', type=positive_int, default=300, help='milliseconds per frame (default 300)')
    a('--max_frames', type=positive_int, help='keep at most this many frames, evenly spaced')


def run_gif(args: argparse.Namespace, prog: str) -> int:
    from gan_trainer.animation import AnimationError, make_gif

    out = args.out or os.path.join(args.out_dir, files.GIF)
    try:
        path = make_gif(os.path.join(args.out_dir, files.PREVIEW_DIR), out,
                        duration_ms=args.duration, max_frames=args.max_frames)
    except (AnimationError, OSError) as e:
        return fail(prog, e)
    print(f'wrote {path}')
    return 0


# ----------------------------------------------------------------- plot


def add_plot_arguments(p: argparse.ArgumentParser) -> None:
    from gan_trainer.logs import DEFAULT_KEYS

    a = p.add_argument
    a('out_dir', metavar='OUT', help="output folder of a training run, or its 'log' file")
    a('--keys', nargs='+', default=list(DEFAULT_KEYS), metavar='KEY',
      help=f'log keys to plot (default: {" ".join(DEFAULT_KEYS)})')
    a('--out', '-o', help='image to write (default OUT/loss_replot.png)')


def run_plot(args: argparse.Namespace, prog: str) -> int:
    from gan_trainer.logs import LogError, plot_log

    folder = args.out_dir if os.path.isdir(args.out_dir) else os.path.dirname(args.out_dir)
    out = args.out or os.path.join(folder, 'loss_replot.png')
    try:
        path = plot_log(args.out_dir, out, keys=args.keys)
    except (LogError, OSError) as e:
        return fail(prog, e)
    print(f'wrote {path}')
    return 0


# --------------------------------------------------------------- export


def add_export_arguments(p: argparse.ArgumentParser) -> None:
    add_generator_args(p, labels=False)
    a = p.add_argument
    a('--out', '-o', default='gen.onnx', help='ONNX file to write (default gen.onnx)')
    a('--batch', type=positive_int, default=1, help='batch size the model is fixed to')
    a('--opset', type=integer,
      help='ONNX opset (default: the newest onnx_chainer knows, 11; it exports 7 to 11)')


def run_export(args: argparse.Namespace, prog: str) -> int:
    try:
        # Imported here so that --help works without onnx installed.
        from gan_trainer.export import export_onnx, opset_range

        if args.opset is not None:
            low, high = opset_range()
            if not low <= args.opset <= high:
                return fail(prog, ValueError(f'--opset {args.opset}: ONNX export supports '
                                             f'opsets {low} to {high}'))
        gen, _ = load_cli_generator(args, lambda line: print(f'{prog}: {line}'))
        model = export_onnx(gen, args.out, batchsize=args.batch, opset_version=args.opset)
    except (SnapshotError, ImportError, OSError, ValueError) as e:
        return fail(prog, e)
    shapes = ', '.join(
        f'{v.name} {tuple(d.dim_value for d in v.type.tensor_type.shape.dim)}'
        for v in (*model.graph.input, *model.graph.output))
    print(f'wrote {args.out} (opset {model.opset_import[0].version}: {shapes})')
    return 0


# ---------------------------------------------------------------- mains

TOOLS = {
    'gif': (add_gif_arguments, run_gif, 'make an animated GIF from the preview grids of a run'),
    'plot': (add_plot_arguments, run_plot, 'plot the log of a run'),
    'export': (add_export_arguments, run_export, 'export a generator snapshot to ONNX'),
}


def main(tool: str, argv=None, *, prog: str | None = None) -> int:
    """Runs one of :data:`TOOLS` as its own command (the examples' scripts do)."""
    add, run, description = TOOLS[tool]
    return run_command(argv, prog=prog or f'gan-trainer {tool}',
                       description=description[0].upper() + description[1:] + '.',
                       add_arguments=add, run=run)
