"""Export a generator to ONNX, to run it without Chainer.

:func:`export_onnx` traces G once in evaluation mode with ``onnx_chainer``
(shipped inside the chainer package; it needs the ``onnx`` package,
``pip install -e '.[onnx]'``) and writes a model whose input is ``z``
``(B, n_hidden)`` float32, plus ``t`` ``(B,)`` int32 for a conditional G, and
whose output is ``images`` ``(B, C, H, W)`` in [-1, 1]. BatchNorm is folded
to its running statistics, so ONNX Runtime reproduces Chainer's
``generate`` to float rounding.

The batch size B is fixed when exporting: ``onnx_chainer`` records the
traced shapes, including the reshape of the first layer's output. Two fixes
make its output load in today's runtimes: the IR version is lowered to the
oldest one that supports the opset used (``onnx_chainer`` stamps the
installed onnx's newest, which a slightly older onnxruntime refuses), and
the weights are removed from the graph inputs (an IR 3 habit that makes
ONNX Runtime warn about every weight and skip constant folding).
``gan_trainer_compat`` restores the ``onnx.mapping`` tables that onnx 1.19
removed and ``onnx_chainer`` imports.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import chainer
import numpy

from gan_trainer import ops
from gan_trainer.files import atomic_write

#: Names of the graph's inputs and output.
Z_NAME, LABEL_NAME, OUTPUT_NAME = 'z', 't', 'images'


def _onnx_chainer():
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise ImportError("ONNX export needs the onnx package: pip install -e '.[onnx]'") from None
    import onnx_chainer

    return onnx_chainer


def export_onnx(
    gen: chainer.Link,
    path: str | os.PathLike,
    *,
    batchsize: int = 1,
    opset_version: int | None = None,
):
    """Writes ``gen`` as an ONNX model file.

    Args:
        gen: A generator taking ``z`` ``(B, n_hidden)``, or ``(z, t)`` when
            it has ``n_classes`` (the conditional nets); on any device.
        path: The ``.onnx`` file to write; parent folders are created.
        batchsize: The batch size B the model is fixed to.
        opset_version: ONNX opset; ``None`` takes the newest that
            ``onnx_chainer`` knows (11) and the installed onnx supports.

    Returns:
        onnx.ModelProto: The model written (checked with ``onnx.checker``).

    Raises:
        ImportError: If the onnx package is missing (one line saying how to
            install it).
        ValueError: If ``batchsize < 1`` or the opset is outside
            :func:`opset_range`.
    """
    onnx_chainer = _onnx_chainer()
    import onnx

    if isinstance(batchsize, bool) or not isinstance(batchsize, int) or batchsize < 1:
        raise ValueError(f'batchsize must be an integer >= 1, got {batchsize!r}')
    low, high = opset_range()
    if opset_version is not None and not low <= opset_version <= high:
        raise ValueError(f'opset {opset_version}: this onnx_chainer and onnx export opsets '
                         f'{low} to {high}')
    device = gen.device
    args = [device.send(numpy.zeros((batchsize, gen.n_hidden), numpy.float32))]
    names = [Z_NAME]
    if getattr(gen, 'n_classes', None) is not None:
        args.append(device.send(numpy.zeros(batchsize, numpy.int32)))
        names.append(LABEL_NAME)
    # onnx_chainer converts Chainer's own FunctionNodes only, so the graph is
    # traced with gan_trainer.ops' fast CPU functions switched off.
    with chainer.using_config('train', False), chainer.using_config(ops.CONFIG_KEY, False):
        model = onnx_chainer.export(
            gen,
            tuple(args) if len(args) > 1 else args[0],
            train=False,
            opset_version=opset_version,
            input_names=names,
            output_names=[OUTPUT_NAME],
        )
    model.ir_version = onnx.helper.find_min_ir_version_for(model.opset_import)
    weights = {tensor.name for tensor in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        f.write(model.SerializeToString())
    return model


def opset_range() -> tuple[int, int]:
    """The ONNX opsets :func:`export_onnx` can write: ``onnx_chainer``'s range,
    capped by what the installed onnx knows."""
    _onnx_chainer()
    import onnx
    onnx_export = importlib.import_module('onnx_chainer.export')  # the module, not the function

    high = min(onnx_export.MAXIMUM_OPSET_VERSION, int(onnx.defs.onnx_opset_version()))
    return onnx_export.MINIMUM_OPSET_VERSION, high
