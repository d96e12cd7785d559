"""ONNX export: ONNX Runtime reproduces the Chainer generator."""

import sys

import chainer
import numpy
import pytest

from gan_trainer.export import export_onnx
from gan_trainer.sampling import draw_hidden
from gan_trainer.testing import tiny_conditional_generator, tiny_generator

onnx = pytest.importorskip('onnx')
onnxruntime = pytest.importorskip('onnxruntime')


def trained(gen):
    """Moves BatchNorm's running statistics away from 0 and 1, so folding them matters."""
    z = draw_hidden(32, gen.n_hidden, seed=1) * 3 + 1
    args = (z,) if not hasattr(gen, 'n_classes') else (z, numpy.arange(32, dtype=numpy.int32) % 2)
    with chainer.using_config('train', True), chainer.no_backprop_mode():
        gen(*args)
    return gen


def run_onnx(path, feeds):
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only
    session = onnxruntime.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])
    return session, session.run(None, feeds)[0]


def chainer_images(gen, *args):
    with chainer.using_config('train', False), chainer.no_backprop_mode():
        return gen(*args).array


@pytest.mark.parametrize('batch', [1, 5])
def test_onnx_runtime_matches_chainer_in_eval_mode(tmp_path, batch):
    gen = trained(tiny_generator(channels=3))
    path = tmp_path / 'models' / 'gen.onnx'
    model = export_onnx(gen, path, batchsize=batch)
    assert [v.name for v in model.graph.input] == ['z']  # the weights are not inputs
    z = draw_hidden(batch, gen.n_hidden, seed=2)
    session, images = run_onnx(path, {'z': z})
    assert [(i.name, i.shape) for i in session.get_inputs()] == [('z', [batch, 4])]
    assert images.shape == (batch, 3, 8, 8) and images.dtype == numpy.float32
    numpy.testing.assert_allclose(images, chainer_images(gen, z), rtol=0, atol=1e-4)


@pytest.mark.parametrize('mode', ['cbn', 'concat'])
def test_conditional_generators_export_with_z_and_labels(tmp_path, mode):
    gen = trained(tiny_conditional_generator(n_classes=2, mode=mode))
    export_onnx(gen, tmp_path / 'cond.onnx', batchsize=4)
    z = draw_hidden(4, gen.n_hidden, seed=3)
    t = numpy.array([0, 1, 1, 0], numpy.int32)
    session, images = run_onnx(tmp_path / 'cond.onnx', {'z': z, 't': t})
    assert [i.name for i in session.get_inputs()] == ['z', 't']
    numpy.testing.assert_allclose(images, chainer_images(gen, z, t), rtol=0, atol=1e-4)


def test_export_leaves_the_generator_unchanged(tmp_path):
    gen = trained(tiny_generator())
    before = {name: p.array.copy() for name, p in gen.namedparams()}
    avg_mean = gen.bn0.avg_mean.copy()
    export_onnx(gen, tmp_path / 'g.onnx')
    for name, p in gen.namedparams():
        numpy.testing.assert_array_equal(p.array, before[name], err_msg=name)
    numpy.testing.assert_array_equal(gen.bn0.avg_mean, avg_mean)


def test_model_ir_version_is_the_oldest_for_its_opset(tmp_path):
    model = export_onnx(tiny_generator(), tmp_path / 'g.onnx')
    assert model.opset_import[0].version == 11
    assert model.ir_version == onnx.helper.find_min_ir_version_for(model.opset_import)
    onnx.checker.check_model(onnx.load(str(tmp_path / 'g.onnx')))


def test_bad_batchsize_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match='batchsize'):
        export_onnx(tiny_generator(), tmp_path / 'g.onnx', batchsize=0)


def test_missing_onnx_is_a_one_line_import_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, 'onnx', None)
    with pytest.raises(ImportError, match=r"pip install -e '\.\[onnx\]'") as info:
        export_onnx(tiny_generator(), tmp_path / 'g.onnx')
    assert '\n' not in str(info.value)
    assert not (tmp_path / 'g.onnx').exists()
