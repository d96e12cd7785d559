"""build_trainer in this process: your own networks and data, the extension order, endings."""

import errno
import json
import os

import chainer
import chainer.functions as F
import chainer.links as L
import numpy
import pytest

from gan_trainer import files
from gan_trainer.augment import DiffAugment
from gan_trainer.datasets import Data
from gan_trainer.nets.resnet import ResNetDiscriminator, ResNetGenerator
from gan_trainer.priorities import PRIORITIES
from gan_trainer.run import (
    ResourceError,
    RunConfig,
    RunTrainer,
    SnapshotError,
    TrainingDiverged,
    build_trainer,
    load_generator,
)
from gan_trainer.testing import fake_images

TINY = {'base_width': 4, 'batchsize': 8, 'iteration': 4, 'snapshot_interval': 2,
        'display_interval': 2, 'preview_interval': 2, 'eval_interval': 2, 'progress': False}


class MyGenerator(chainer.Chain):
    """A generator of the user's own: z (B, 8) -> images (B, 1, 8, 8)."""

    n_hidden = 8

    def __init__(self):
        super().__init__()
        with self.init_scope():
            self.l1 = L.Linear(8, 64)

    def forward(self, z):
        return F.tanh(F.reshape(self.l1(z), (-1, 1, 8, 8)))


class MyDiscriminator(chainer.Chain):
    def __init__(self):
        super().__init__()
        with self.init_scope():
            self.l1 = L.Linear(64, 1)

    def forward(self, x):
        return self.l1(F.reshape(x, (len(x), -1)))


def test_your_own_networks_and_data_get_a_complete_run(tmp_path):
    out = tmp_path / 'mine'
    data = Data.of(fake_images(24, channels=1, size=8), fake_images(8, channels=1, size=8))
    trainer = build_trainer(RunConfig(out=str(out), **TINY), gen=MyGenerator(),
                            dis=MyDiscriminator(), data=data, log=None)
    assert isinstance(trainer, RunTrainer) and isinstance(trainer, chainer.training.Trainer)
    assert not (out / files.CONFIG).exists()  # written by run(), after every check
    trainer.run()
    names = set(os.listdir(out))
    assert {'snapshot_iter_2', 'snapshot_iter_4', 'gen_iter_4.npz', 'dis_iter_4.npz', 'log',
            files.CONFIG, files.GIF, files.PREVIEW_DIR} <= names
    record = json.loads((out / files.CONFIG).read_text())
    assert record['gen'] == {'arch': 'custom', 'class': f'{__name__}.MyGenerator'}
    assert record['data'] == {'name': 'custom', 'train': 24, 'test': 8, 'shape': [1, 8, 8]}
    with pytest.raises(SnapshotError, match='own gen class'):
        load_generator(str(out / 'gen_iter_4.npz'))
    # ... and resume exactly like the package's nets.
    again = build_trainer(RunConfig(out=str(out), resume='auto', **dict(TINY, iteration=6)),
                          gen=MyGenerator(), dis=MyDiscriminator(), data=data, log=None)
    assert again.updater.iteration == 4
    again.run()
    assert (out / 'snapshot_iter_6').exists()


def test_both_networks_or_neither():
    with pytest.raises(ValueError, match='both gen and dis, or neither'):
        build_trainer(RunConfig(), gen=MyGenerator())


def test_extensions_run_in_the_order_of_the_priority_table(tmp_path):
    trainer = build_trainer(RunConfig(out=str(tmp_path / 'o'), **TINY), log=None)
    entries = trainer._extensions
    assert set(entries) <= set(PRIORITIES)
    for name, entry in entries.items():
        assert entry.priority == PRIORITIES[name][0], name
    order = sorted(entries, key=lambda n: entries[n].priority, reverse=True)
    assert order[0] == 'nan_guard' and order[-2:] == ['snapshots', 'graceful_stop']
    assert order.index('validation') < order.index('LogReport') < order.index('PrintReport')
    trainer.folder.unlock()


def test_the_extension_classes_default_to_their_place_in_the_table():
    # A run built by hand from the classes runs them in the command's order.
    from gan_trainer.extensions import (
        DivergenceMonitor,
        GracefulStop,
        ImageGrid,
        MeanOverRanks,
        NaNGuard,
        QualityReport,
        Snapshots,
        TensorBoardReport,
        TrainingGif,
    )
    from gan_trainer.schedules import Schedule

    classes = {'divergence_monitor': DivergenceMonitor, 'graceful_stop': GracefulStop,
               'image_grid': ImageGrid, 'mean_over_ranks': MeanOverRanks, 'nan_guard': NaNGuard,
               'quality': QualityReport, 'snapshots': Snapshots, 'tensorboard': TensorBoardReport,
               'training_gif': TrainingGif, 'schedule': Schedule}
    for name, cls in classes.items():
        assert cls.default_name == name and cls.priority == PRIORITIES[name][0], name
    # The three that run before the writers are in a strict order (they tied once).
    first = [PRIORITIES[n][0] for n in ('mean_over_ranks', 'nan_guard', 'average_persistents')]
    assert first == sorted(first, reverse=True) and len(set(first)) == 3


def test_resnet_with_ada_is_built_from_options(tmp_path):
    config = RunConfig(out=str(tmp_path / 'o'), arch='resnet', augment='ada', ada_speed=1000,
                       spectral_norm=True, **TINY)
    trainer = build_trainer(config, log=None)
    updater = trainer.updater
    assert isinstance(updater.gen, ResNetGenerator) and isinstance(updater.dis, ResNetDiscriminator)
    assert isinstance(updater.augment, DiffAugment)
    assert updater.augment.adaptive and updater.augment.speed == 1000
    assert updater.dis.spectral_norm
    trainer.run()
    log = json.loads((tmp_path / 'o' / 'log').read_text())
    assert 'dis/augment_p' in log[-1]
    gen, record = load_generator(str(tmp_path / 'o' / 'gen_iter_4.npz'))
    assert isinstance(gen, ResNetGenerator) and record.config.augment == 'ada'


def test_a_full_disk_during_training_is_a_resource_error_naming_the_kept_snapshot(
        tmp_path, monkeypatch):
    out = tmp_path / 'o'
    trainer = build_trainer(RunConfig(out=str(out), **dict(TINY, snapshot_interval=1)), log=None)
    real = files.save_npz

    def fill_up(path, obj):
        if os.path.basename(path) == 'snapshot_iter_3':
            raise OSError(errno.ENOSPC, 'No space left on device', str(path))
        return real(path, obj)

    monkeypatch.setattr(files, 'save_npz', fill_up)
    with pytest.raises(ResourceError) as excinfo:
        trainer.run()
    assert str(excinfo.value) == (
        f"could not write '{out}/snapshot_iter_3' at iteration 3 (No space left on device); "
        f'the newest complete snapshot is {out}/snapshot_iter_2 (--resume auto continues '
        'from it)')
    assert not (out / files.GIF).exists()  # an ending in error writes no film


def test_divergence_names_the_newest_snapshot_kept(tmp_path):
    out = tmp_path / 'o'
    trainer = build_trainer(RunConfig(out=str(out), **dict(TINY, iteration=8)), log=None)
    gen = trainer.updater.gen

    class Poison(chainer.training.Extension):
        trigger = 1, 'iteration'
        priority = PRIORITIES['nan_guard'][0] + 1  # just before the guard looks

        def __call__(self, trainer):
            if trainer.updater.iteration == 3:
                gen.project.W.array[0, 0] = numpy.nan

    trainer.extend(Poison())
    with pytest.raises(TrainingDiverged) as excinfo:
        trainer.run()
    assert str(excinfo.value) == ('training stopped at iteration 3: parameter gen/project/W '
                                  f'holds nan (newest snapshot kept: {out}/snapshot_iter_2)')


def test_the_lock_is_released_when_the_run_ends(tmp_path):
    out = tmp_path / 'o'
    build_trainer(RunConfig(out=str(out), **TINY), log=None).run()
    # A second run in the same process can take the folder.
    again = build_trainer(RunConfig(out=str(out), resume='auto', **dict(TINY, iteration=6)),
                          log=None)
    again.run()
    assert (out / 'snapshot_iter_6').exists()
