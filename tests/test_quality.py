"""QualityReport: metrics of G's samples in a real Trainer, a fixed z, the EMA, the best snapshot."""

import json
import math
import os

import chainer
import numpy
import pytest
from chainer import training
from chainer.training import extensions
from helpers import train_here
from PIL import Image

from gan_trainer import GANEvaluator, GANUpdater
from gan_trainer.ema import GeneratorEMA
from gan_trainer.extensions import QualityReport
from gan_trainer.metrics import RealStatistics
from gan_trainer.run import load_generator
from gan_trainer.sampling import generate
from gan_trainer.testing import (
    fake_dataset,
    fake_images,
    tiny_conditional_discriminator,
    tiny_conditional_generator,
    tiny_discriminator,
    tiny_generator,
)

KEYS = {'fid', 'kid', 'precision', 'recall', 'is', 'classes', 'class_kl'}


def fake_embed(images):
    """A stand-in feature network for 8x8 squares: 4x4 mean-pooled pixels, and
    2 classes by brightness (fake_dataset draws class 0 dark, class 1 bright)."""
    x = numpy.asarray(images, numpy.float64)
    n = len(x)
    features = x.reshape(n, -1, 4, 2, 4, 2).mean(axis=(1, 3, 5)).reshape(n, 16)
    bright = 20 * (x.reshape(n, -1).max(axis=1) - 0.5)
    logits = numpy.stack([-bright, bright], axis=1)
    probs = numpy.exp(logits - logits.max(axis=1, keepdims=True))
    return features, probs / probs.sum(axis=1, keepdims=True)


def make_trainer(out, *, conditional=False, ema=False, stop=4):
    if conditional:
        gen, dis = tiny_conditional_generator(), tiny_conditional_discriminator()
        data = fake_dataset(40)
    else:
        gen, dis, data = tiny_generator(), tiny_discriminator(), fake_images(40)
    opts = {}
    for name, net in (('gen', gen), ('dis', dis)):
        opts[name] = chainer.optimizers.Adam(1e-2, beta1=0.5)
        opts[name].setup(net)
    it = chainer.iterators.SerialIterator(data, 4, shuffle=False)
    updater = GANUpdater(
        it,
        opts,
        device=-1,
        seed=0,
        conditional=conditional,
        ema=GeneratorEMA(gen, decay=0.5) if ema else None,
    )
    return training.Trainer(updater, (stop, 'iteration'), out=str(out))


def report(**kwargs):
    kwargs.setdefault('embed', fake_embed)
    kwargs.setdefault('n_samples', 32)
    return QualityReport(fake_images(64, seed=1), **kwargs)


def test_reports_every_metric_and_keeps_the_generator_with_the_best_fid(tmp_path):
    trainer = make_trainer(tmp_path)
    ext = report()
    trainer.extend(ext, trigger=(1, 'iteration'))
    # The evaluator's name is 'validation' too: the keys must not become 'validation_1/...'.
    held_out = chainer.iterators.SerialIterator(fake_images(8), 4, repeat=False, shuffle=False)
    nets = {'gen': trainer.updater.gen, 'dis': trainer.updater.dis}
    trainer.extend(GANEvaluator(held_out, nets), trigger=(1, 'iteration'))
    trainer.extend(extensions.LogReport(trigger=(1, 'iteration')))
    trainer.run()

    log = json.loads((tmp_path / 'log').read_text())
    assert [entry['iteration'] for entry in log] == [1, 2, 3, 4]
    for entry in log:
        assert {f'validation/{k}' for k in KEYS} | {'validation/dis/loss'} <= set(entry)
        assert 'validation/label_accuracy' not in entry
        assert all(math.isfinite(entry[f'validation/{k}']) for k in KEYS)
    fids = [entry['validation/fid'] for entry in log]
    best = json.loads((tmp_path / 'gen_best.json').read_text())
    assert best['fid'] == pytest.approx(min(fids))
    assert best['iteration'] == log[int(numpy.argmin(fids))]['iteration']
    assert (ext.best_fid, ext.best_iteration) == (best['fid'], best['iteration'])
    assert best['n_samples'] == 32 and set(best) >= KEYS
    # No temporary file is left behind the atomic renames.
    assert not [name for name in os.listdir(tmp_path) if name.endswith('.tmp')]

    # The snapshot is that generator: measured again on the same z, it gives that FID.
    gen = tiny_generator()
    chainer.serializers.load_npz(str(tmp_path / 'gen_best.npz'), gen)
    z = trainer.updater.make_hidden(32, numpy.random.RandomState(0))
    assert ext.statistics().measure(generate(gen, z))['fid'] == pytest.approx(best['fid'])


def test_same_z_and_evaluation_mode_give_repeatable_numbers(tmp_path):
    trainer = make_trainer(tmp_path)
    bn = trainer.updater.gen.bns[0].avg_mean.copy()
    state = numpy.random.get_state()[1].copy()
    ext = report(seed=3)
    first, second = ext(trainer), ext(trainer)
    assert first == second
    numpy.testing.assert_array_equal(trainer.updater.gen.bns[0].avg_mean, bn)
    numpy.testing.assert_array_equal(numpy.random.get_state()[1], state)


def test_the_real_statistics_are_computed_once(tmp_path):
    calls = []

    def counting_embed(images):
        calls.append(len(images))
        return fake_embed(images)

    trainer = make_trainer(tmp_path)
    ext = report(embed=counting_embed, best_name=None)
    ext(trainer)
    ext(trainer)
    assert calls == [64, 32, 32]  # the 64 real images once, then 32 samples per run
    assert not (tmp_path / 'gen_best.npz').exists()


def test_an_ema_generator_is_the_one_measured(tmp_path):
    trainer = make_trainer(tmp_path, ema=True)
    trainer.run()
    ext = report()
    images, labels, gen = ext.samples(trainer.updater)
    assert gen is trainer.updater.ema.target and labels is None
    assert images.shape == (32, 1, 8, 8)


def test_a_conditional_generator_is_asked_for_every_class_and_judged_on_them(tmp_path):
    trainer = make_trainer(tmp_path, conditional=True)
    real = RealStatistics(fake_embed, fake_dataset(64, seed=1).images)
    ext = QualityReport(real, n_samples=32)
    images, labels, _ = ext.samples(trainer.updater)
    assert images.shape == (32, 1, 8, 8)
    numpy.testing.assert_array_equal(labels, numpy.arange(32) % 2)
    result = ext(trainer)
    assert set(result) == KEYS | {'label_accuracy'}
    assert 0 <= result['label_accuracy'] <= 1


def test_the_best_fid_survives_a_snapshot_so_a_resumed_run_keeps_it(tmp_path):
    ext = report()
    ext.best_fid, ext.best_iteration = 1.25, 7
    target = {}
    ext.serialize(chainer.serializers.DictionarySerializer(target))
    resumed = report()
    assert resumed.best_fid == math.inf
    resumed.serialize(chainer.serializers.NpzDeserializer(target))
    assert (resumed.best_fid, resumed.best_iteration) == (1.25, 7)

    # A worse generator than the kept one does not replace the snapshot.
    resumed.best_fid = -1.0
    resumed(make_trainer(tmp_path))
    assert not (tmp_path / 'gen_best.npz').exists()


@pytest.mark.parametrize(
    'kwargs, match',
    [
        ({'embed': None}, 'needs embed='),
        ({'n_samples': 3}, 'at least 4'),
    ],
)
def test_bad_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        report(**kwargs)


# --- examples/train_dcgan.py --fid_interval, as a user runs it ---------------------------------

def test_train_dcgan_logs_the_metrics_and_keeps_the_best_generator(tmp_path):
    out = tmp_path / 'result'
    # The FID's classifier is the shipped one: nothing to train or cache first.
    proc = train_here('--out', out, '--fid_interval', 3, '--fid_samples', 20)
    assert proc.returncode == 0, proc.stderr
    header = next(line for line in proc.stdout.splitlines() if line.startswith('epoch'))
    assert 'validation/fid' in header  # a column of the printed table
    log = json.loads((out / 'log').read_text())
    for entry in log:
        assert {f'validation/{k}' for k in KEYS} <= set(entry)
    best = json.loads((out / 'gen_best.json').read_text())
    assert best['fid'] == min(entry['validation/fid'] for entry in log)
    gen, _ = load_generator(str(out / 'gen_best.npz'))
    assert gen.n_hidden == 100


@pytest.mark.parametrize('case', ['folder without weights', 'missing weights', 'negative'])
def test_train_dcgan_bad_fid_input_is_one_line_and_exit_status_2(tmp_path, case):
    folder = tmp_path / 'pictures'
    folder.mkdir()
    for i in range(4):
        Image.fromarray(numpy.full((8, 8, 3), 40 * i, numpy.uint8)).save(folder / f'{i}.png')
    args, names = {
        'folder without weights': (
            ['--dataset', folder, '--size', 8, '--fid_interval', 3],
            ['--fid_weights', 'pictures', 'pytorch-fid'],
        ),
        'missing weights': (
            ['--fid_interval', 3, '--fid_weights', tmp_path / 'no.onnx'],
            ['--fid_weights', 'no.onnx', 'does not exist', 'docs/metrics.md'],
        ),
        'negative': (['--fid_interval', -1], ['--fid_interval', '-1']),
    }[case]
    proc = train_here('--out', tmp_path / 'result', *args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('train_dcgan.py: error: '), proc.stderr
    for name in names:
        assert name in lines[0]
