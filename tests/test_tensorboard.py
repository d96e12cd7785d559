"""TensorBoardReport in a real Trainer: the event file holds the log's scalars and the grid."""

import sys
import warnings

import chainer
import numpy
import pytest
from chainer.training import extensions
from helpers import images, make_trainer, read_events, scalars
from PIL import Image

from gan_trainer.extensions import ImageGrid, TensorBoardReport

pytest.importorskip('tensorboardX.proto.event_pb2')  # helpers.read_events needs it


def make(out, *, stop=4, tensorboard=True):
    trainer = make_trainer(out, stop=stop)
    trainer.extend(ImageGrid(rows=2, cols=2), trigger=(2, 'iteration'))
    trainer.extend(extensions.LogReport(trigger=(2, 'iteration')))
    if tensorboard:
        trainer.extend(TensorBoardReport())
    return trainer


def test_event_file_holds_the_logged_means_and_each_new_grid(tmp_path):
    trainer = make(tmp_path)
    trainer.run()
    log = trainer.get_extension('LogReport').log
    events = read_events(tmp_path / 'tensorboard')
    found = scalars(events)
    assert {'gen/loss', 'dis/loss', 'dis/acc_real', 'dis/acc_fake'} <= set(found)
    assert not {'iteration', 'epoch', 'elapsed_time'} & set(found)
    for key in ('gen/loss', 'dis/loss'):
        assert [s for s, _ in found[key]] == [2, 4]
        numpy.testing.assert_allclose([v for _, v in found[key]], [e[key] for e in log], rtol=1e-6)
    grids = images(events)
    assert [(tag, step) for tag, step, _ in grids] == [('preview', 2), ('preview', 4)]
    with Image.open(tmp_path / 'preview' / 'latest.png') as latest:
        numpy.testing.assert_array_equal(grids[-1][2], numpy.asarray(latest.convert('RGB')))


@pytest.mark.parametrize('first_has_it', [True, False])
def test_a_resumed_run_writes_each_entry_once(tmp_path, first_has_it):
    first = make(tmp_path, stop=2, tensorboard=first_has_it)
    first.run()
    snapshot = tmp_path / 'snapshot'
    chainer.serializers.save_npz(str(snapshot), first)
    second = make(tmp_path, stop=4)
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # no "trigger state not saved" warning
        chainer.serializers.load_npz(str(snapshot), second)
    second.run()
    found = scalars(read_events(tmp_path / 'tensorboard'))
    assert [s for s, _ in found['gen/loss']] == [2, 4]


def test_a_relative_logdir_is_taken_under_out(tmp_path):
    trainer = make_trainer(tmp_path, stop=2)
    trainer.extend(extensions.LogReport(trigger=(1, 'iteration')))
    trainer.extend(TensorBoardReport('tb/run1', preview=None))
    trainer.run()
    found = scalars(read_events(tmp_path / 'tb' / 'run1'))
    assert [s for s, _ in found['gen/loss']] == [1, 2]


def test_missing_tensorboardx_is_a_one_line_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, 'tensorboardX', None)
    with pytest.raises(ImportError, match=r"pip install -e '\.\[tensorboard\]'") as info:
        TensorBoardReport()
    assert '\n' not in str(info.value)
