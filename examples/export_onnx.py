#!/usr/bin/env python
"""Export a trained generator snapshot to ONNX.

    pip install -e '.[onnx]'
    python examples/export_onnx.py result/gen_iter_2500.npz --out gen.onnx
    python examples/export_onnx.py result/gen_iter_2500.npz --out gen16.onnx --batch 16

The model's input is ``z`` ``(B, n_hidden)`` float32 (plus ``t`` ``(B,)``
int32, the class labels, for a conditional snapshot) and its output
``images`` ``(B, C, H, W)`` in [-1, 1], with B fixed by ``--batch``. Run it
with ONNX Runtime::

    import numpy, onnxruntime
    session = onnxruntime.InferenceSession('gen.onnx')
    z = numpy.random.standard_normal((1, 100)).astype(numpy.float32)
    images = session.run(None, {'z': z})[0]
"""

from __future__ import annotations

import argparse
import sys

from _cli import Parser, add_generator_args, fail, load_cli_generator, positive_int

from gan_trainer.checkpoint import SnapshotError

PROG = 'export_onnx.py'


def parse_args(argv=None) -> argparse.Namespace:
    p = Parser(prog=PROG, description='Export a gan_trainer generator snapshot to ONNX.')
    add_generator_args(p)
    a = p.add_argument
    a('--out', '-o', default='gen.onnx', help='ONNX file to write (default gen.onnx)')
    a('--batch', type=positive_int, default=1, help='batch size the model is fixed to')
    a('--opset', type=int, help='ONNX opset (default: the newest onnx_chainer knows, 11)')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        # Imported here so that --help works without onnx installed.
        from gan_trainer.export import export_onnx

        gen, _ = load_cli_generator(args, PROG)
        model = export_onnx(gen, args.out, batchsize=args.batch, opset_version=args.opset)
    except (SnapshotError, ImportError, OSError) as e:
        return fail(PROG, e)
    shapes = ', '.join(
        f'{v.name} {tuple(d.dim_value for d in v.type.tensor_type.shape.dim)}'
        for v in (*model.graph.input, *model.graph.output)
    )
    print(f'wrote {args.out} (opset {model.opset_import[0].version}: {shapes})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
