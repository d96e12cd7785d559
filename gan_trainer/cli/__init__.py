"""The ``gan-trainer`` command: train, generate, interpolate, gif, plot, export.

::

    gan-trainer train                                   # the DCGAN on the built-in digits
    gan-trainer train --config result/config.json --out again   # repeat a run
    gan-trainer generate result/gen_iter_2500.npz --out grid.png
    gan-trainer interpolate result/gen_iter_2500.npz --out interp.png
    gan-trainer gif result
    gan-trainer plot result --keys dis/acc_real dis/acc_fake
    gan-trainer export result/gen_iter_2500.npz --out gen.onnx

``examples/*.py`` are the same commands under their old names. This package
is the only place that reads command lines (argparse); everything it runs
is the library's (:mod:`gan_trainer.run` and friends).
"""

from __future__ import annotations

import sys

from gan_trainer.cli._args import Parser

SUBCOMMANDS = {
    'train': 'train a GAN (see gan-trainer train --help)',
    'generate': 'write a grid or image files from a generator snapshot',
    'interpolate': 'write a grid of latent interpolations from a generator snapshot',
    'gif': 'make an animated GIF from the preview grids of a run',
    'plot': 'plot the log of a run',
    'export': 'export a generator snapshot to ONNX',
}


def main(argv=None) -> int:
    """``gan-trainer SUBCOMMAND [flags]``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ('-h', '--help'):
        parser = Parser(prog='gan-trainer', description='Train GANs with Chainer, and use them.')
        parser.add_argument('subcommand', choices=list(SUBCOMMANDS),
                            help='; '.join(f'{k}: {v}' for k, v in SUBCOMMANDS.items()))
        if not argv:
            parser.error('a subcommand is required: ' + ', '.join(SUBCOMMANDS))
        parser.print_help()
        return 0
    name, rest = argv[0], argv[1:]
    prog = f'gan-trainer {name}'
    if name == 'train':
        from gan_trainer.cli.train import main as train

        return train(rest, prog=prog)
    if name == 'generate':
        from gan_trainer.cli.generate import main as generate

        return generate(rest, prog=prog)
    if name == 'interpolate':
        from gan_trainer.cli.interpolate import main as interpolate

        return interpolate(rest, prog=prog)
    if name in ('gif', 'plot', 'export'):
        from gan_trainer.cli.tools import main as tool

        return tool(name, rest, prog=prog)
    print(f"gan-trainer: error: unknown subcommand {name!r}; choose from "
          f"{', '.join(SUBCOMMANDS)}", file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(main())
