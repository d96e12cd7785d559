"""LossPlot: PlotReport's points and snapshot state, drawn at most every min_seconds."""

import types

import chainer
import numpy
import pytest
from chainer.training import extensions
from PIL import Image

from gan_trainer.extensions import LossPlot, loss_plot

KEYS = ['gen/loss', 'dis/loss']


def fake_trainer(out):
    return types.SimpleNamespace(observation={}, updater=types.SimpleNamespace(iteration=0, epoch=0),
                                 out=str(out), is_before_training=False)


def every_other(trainer):
    return trainer.updater.iteration % 2 == 0


def run(plot, trainer, last):
    for it in range(trainer.updater.iteration + 1, last + 1):
        trainer.updater.iteration = it
        # gen/loss = it, dis/loss = 10 * it (a numpy scalar, as the NaN guard leaves it)
        trainer.observation = {'gen/loss': float(it), 'dis/loss': numpy.float64(10 * it)}
        plot(trainer)


def test_points_are_plotreports_and_drawings_are_spaced(tmp_path, monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(loss_plot.time, 'monotonic', lambda: clock[0])
    drawn = []
    real_draw = loss_plot.draw_curves
    monkeypatch.setattr(loss_plot, 'draw_curves',
                        lambda curves, path: drawn.append(curves) or real_draw(curves, path))
    plot = LossPlot(KEYS, trigger=every_other, filename='loss.png', min_seconds=30)
    trainer = fake_trainer(tmp_path)
    run(plot, trainer, 6)  # points at 2, 4, 6; no time passes: only the first is drawn
    # Each point is the mean since the last: (1 + 2) / 2, (3 + 4) / 2, ...
    assert plot._data == {'gen/loss': [(2, 1.5), (4, 3.5), (6, 5.5)],
                          'dis/loss': [(2, 15.0), (4, 35.0), (6, 55.0)]}
    assert len(drawn) == 1 and drawn[0]['gen/loss'] == ([2], [1.5])
    clock[0] += 30  # due again at the next point
    run(plot, trainer, 8)
    assert len(drawn) == 2 and drawn[-1]['gen/loss'][0] == [2, 4, 6, 8]
    run(plot, trainer, 10)  # not due
    assert len(drawn) == 2
    plot.finalize()  # points since the last drawing: drawn at the end
    assert len(drawn) == 3 and drawn[-1]['gen/loss'] == ([2, 4, 6, 8, 10],
                                                        [1.5, 3.5, 5.5, 7.5, 9.5])
    plot.finalize()  # nothing new: not again
    assert len(drawn) == 3
    with Image.open(tmp_path / 'loss.png') as image:
        assert image.size[0] > 100 and image.size[1] > 100


def test_no_point_no_picture(tmp_path):
    plot = LossPlot(KEYS, trigger=every_other, filename='loss.png')
    run(plot, fake_trainer(tmp_path), 1)
    plot.finalize()
    assert not (tmp_path / 'loss.png').exists()


@pytest.mark.parametrize('direction', ['to_chainer', 'from_chainer'])
def test_snapshots_load_into_and_from_chainers_plotreport(tmp_path, direction):
    ours = LossPlot(KEYS, trigger=every_other, filename='loss.png')
    theirs = extensions.PlotReport(KEYS, 'iteration', trigger=every_other, filename='loss.png')
    source, target = (ours, theirs) if direction == 'to_chainer' else (theirs, ours)
    run(source, fake_trainer(tmp_path), 4)
    serializer = chainer.serializers.DictionarySerializer()
    source.serialize(serializer)
    target.serialize(chainer.serializers.NpzDeserializer(serializer.target))
    assert {k: [tuple(p) for p in v] for k, v in target._data.items()} == {
        'gen/loss': [(2, 1.5), (4, 3.5)], 'dis/loss': [(2, 15.0), (4, 35.0)]}
