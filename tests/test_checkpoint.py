"""Loading a run's snapshots (gan_trainer.checkpoint): rebuild, config.json, one-line errors."""

import json
import os

import chainer
import numpy
import pytest

from gan_trainer.checkpoint import SnapshotError, damage, load_params, snapshot_iteration
from gan_trainer.files import CONFIG, write_json
from gan_trainer.run import load_discriminator, load_generator
from gan_trainer.testing import fake_images, tiny_discriminator, tiny_generator

CONFIG_NAME = CONFIG


def trained_pair(*, channels=1, widths=(4, 8), seed=0):
    """Tiny nets whose BatchNorm statistics are no longer the initial ones."""
    gen = tiny_generator(channels=channels, widths=widths, seed=seed)
    dis = tiny_discriminator(channels=channels, widths=widths, seed=seed)
    with chainer.using_config('train', True), chainer.no_backprop_mode():
        z = numpy.random.RandomState(seed).standard_normal((16, gen.n_hidden))
        dis(gen(z.astype(numpy.float32)))
        dis(fake_images(16, channels=channels, seed=seed))
    return gen, dis


def save_config(folder, config):
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / CONFIG_NAME, config)


def write_run(folder, gen, dis, *, iteration=6):
    """Writes what a training run leaves behind: config.json and npz snapshots.

    The config is in the layout of version 1 (gen, dis, z_dist only), which
    loads as it did: the newer layout adds keys around the same sections.
    """
    save_config(folder, {'gen': gen.config(), 'dis': dis.config(), 'z_dist': 'normal'})
    gen_path, dis_path = folder / f'gen_iter_{iteration}.npz', folder / f'dis_iter_{iteration}.npz'
    chainer.serializers.save_npz(str(gen_path), gen)
    chainer.serializers.save_npz(str(dis_path), dis)
    return gen_path, dis_path


def eval_outputs(gen, dis, z):
    with chainer.using_config('train', False), chainer.no_backprop_mode():
        images = gen(z).array
        return images, dis(images).array


def one_line_error(excinfo):
    message = str(excinfo.value)
    assert message and '\n' not in message, repr(message)
    return message


@pytest.mark.parametrize('channels, widths', [(1, (4, 8)), (3, (4,)), (3, (2, 4))])
def test_load_generator_and_discriminator_reproduce_the_saved_nets(tmp_path, channels, widths):
    gen, dis = trained_pair(channels=channels, widths=widths)
    gen_path, dis_path = write_run(tmp_path, gen, dis)
    z = numpy.random.RandomState(9).standard_normal((5, gen.n_hidden)).astype(numpy.float32)
    expected_images, expected_logits = eval_outputs(gen, dis, z)

    loaded_gen, record = load_generator(str(gen_path))
    loaded_dis = load_discriminator(str(dis_path))
    assert record.gen == gen.config() and record.dis == dis.config()
    assert record.version == 1 and record.config is None  # a config.json of version 1
    assert isinstance(loaded_gen, type(gen)) and isinstance(loaded_dis, type(dis))
    images, _ = eval_outputs(loaded_gen, loaded_dis, z)
    numpy.testing.assert_array_equal(images, expected_images)
    numpy.testing.assert_array_equal(eval_outputs(gen, loaded_dis, z)[1], expected_logits)
    # BatchNorm running statistics are part of the snapshot too.
    numpy.testing.assert_array_equal(loaded_gen.bn0.avg_mean, gen.bn0.avg_mean)

    # The match is due to loading: nets with other weights give other outputs.
    other_gen, other_dis = trained_pair(channels=channels, widths=widths, seed=1)
    other_images, other_logits = eval_outputs(other_gen, other_dis, z)
    assert not numpy.allclose(other_images, expected_images)
    assert not numpy.allclose(other_logits, expected_logits)


def test_load_generator_reads_an_explicit_config_path(tmp_path):
    gen, dis = trained_pair()
    gen_path, _ = write_run(tmp_path / 'run', gen, dis)
    moved = tmp_path / 'moved.npz'
    os.replace(gen_path, moved)  # no config.json beside it any more
    config_path = tmp_path / 'run' / CONFIG_NAME
    loaded, record = load_generator(str(moved), str(config_path))
    assert record.z_dist == 'normal'
    z = numpy.ones((2, gen.n_hidden), numpy.float32)
    numpy.testing.assert_array_equal(eval_outputs(loaded, dis, z)[0], eval_outputs(gen, dis, z)[0])


def corrupt(data, position):
    damaged = bytearray(data)
    for i in range(position, position + 20):
        damaged[i] ^= 0xFF
    return bytes(damaged)


# Each case turns a good snapshot's bytes into a broken file's bytes.
BROKEN = {
    'text': lambda data: b'this is not an npz file\n',
    'random_bytes': lambda data: numpy.random.RandomState(0).bytes(500),
    'empty': lambda data: b'',
    'zip_magic_only': lambda data: b'PK\x03\x04' + bytes(100),
    'truncated_half': lambda data: data[: len(data) // 2],
    'truncated_tail': lambda data: data[:-10],
    'damaged_member': lambda data: corrupt(data, 100),
    'damaged_middle': lambda data: corrupt(data, len(data) // 2),
}


@pytest.mark.parametrize('case', sorted(BROKEN))
@pytest.mark.parametrize('loader', ['generator', 'discriminator'])
def test_unreadable_snapshot_is_a_snapshot_error_naming_it(tmp_path, case, loader):
    gen, dis = trained_pair()
    gen_path, dis_path = write_run(tmp_path, gen, dis)
    path = gen_path if loader == 'generator' else dis_path
    path.write_bytes(BROKEN[case](path.read_bytes()))
    load = load_generator if loader == 'generator' else load_discriminator
    with pytest.raises(SnapshotError) as excinfo:
        load(str(path))
    assert f"'{path}'" in one_line_error(excinfo)


def test_missing_snapshot_is_reported_as_such_even_without_a_config(tmp_path):
    # With neither file there, the snapshot (what the user typed) is named,
    # not the config.json that would sit beside it.
    for load in (load_generator, load_discriminator):
        path = tmp_path / 'gen_iter_100.npz'
        with pytest.raises(SnapshotError) as excinfo:
            load(str(path))
        message = one_line_error(excinfo)
        assert f"'{path}'" in message and 'does not exist' in message
        assert CONFIG_NAME not in message


def test_missing_snapshot_with_a_config(tmp_path):
    gen, dis = trained_pair()
    save_config(tmp_path, {'gen': gen.config(), 'dis': dis.config()})
    path = tmp_path / 'gen_iter_100.npz'
    with pytest.raises(SnapshotError) as excinfo:
        load_params(str(path), tiny_generator())
    assert f"'{path}'" in one_line_error(excinfo)


@pytest.mark.parametrize('content', [None, '{"gen": ', b'\xff\xfe\x00garbage'])
def test_missing_or_unreadable_config_is_a_snapshot_error_naming_it(tmp_path, content):
    gen, dis = trained_pair()
    gen_path, dis_path = write_run(tmp_path, gen, dis)
    config = tmp_path / CONFIG_NAME
    if content is None:
        config.unlink()
    elif isinstance(content, bytes):
        config.write_bytes(content)
    else:
        config.write_text(content)
    for load, path in ((load_generator, gen_path), (load_discriminator, dis_path)):
        with pytest.raises(SnapshotError) as excinfo:
            load(str(path))
        assert f"'{config}'" in one_line_error(excinfo)


@pytest.mark.parametrize(
    'saved_widths, config_widths',
    [((4, 8), (8, 16)), ((4, 8), (4,)), ((4,), (4, 8))],
    ids=['wider', 'fewer_layers', 'more_layers'],
)
def test_snapshot_of_another_architecture_is_a_snapshot_error(
    tmp_path, saved_widths, config_widths
):
    gen, dis = trained_pair(widths=saved_widths)
    gen_path, dis_path = write_run(tmp_path, gen, dis)
    config = json.loads((tmp_path / CONFIG_NAME).read_text())
    config['gen']['widths'] = config['dis']['widths'] = list(config_widths)
    save_config(tmp_path, config)
    for load, path in ((load_generator, gen_path), (load_discriminator, dis_path)):
        with pytest.raises(SnapshotError) as excinfo:
            load(str(path))
        message = one_line_error(excinfo)
        assert f"'{path}'" in message and 'does not match' in message


def test_generator_snapshot_loaded_as_discriminator_is_a_snapshot_error(tmp_path):
    gen, dis = trained_pair()
    gen_path, _ = write_run(tmp_path, gen, dis)
    with pytest.raises(SnapshotError) as excinfo:
        load_discriminator(str(gen_path))
    assert f"'{gen_path}'" in one_line_error(excinfo)


@pytest.mark.parametrize('case', sorted(BROKEN))
def test_damage_names_what_is_wrong_with_a_broken_snapshot(tmp_path, case):
    gen, dis = trained_pair()
    gen_path, _ = write_run(tmp_path, gen, dis)
    assert damage(str(gen_path)) is None
    gen_path.write_bytes(BROKEN[case](gen_path.read_bytes()))
    reason = damage(str(gen_path))
    assert reason and '\n' not in reason


def test_a_custom_network_is_named_not_rebuilt(tmp_path):
    gen, dis = trained_pair()
    gen_path, _ = write_run(tmp_path, gen, dis)
    save_config(tmp_path, {'gen': {'arch': 'custom', 'class': 'mine.Gen'}, 'dis': dis.config()})
    with pytest.raises(SnapshotError, match=r'own gen class \(mine\.Gen\)') as excinfo:
        load_generator(str(gen_path))
    one_line_error(excinfo)


def write_npz(path, **arrays):
    with open(path, 'wb') as f:  # a file object: numpy adds no '.npz' suffix
        numpy.savez_compressed(f, **arrays)
    return path


@pytest.mark.parametrize('content', [b'garbage', None])
def test_snapshot_iteration_of_something_else_is_a_snapshot_error(tmp_path, content):
    path = tmp_path / 'gen_iter_3.npz'
    if content is None:
        write_npz(path, W=numpy.zeros(2))
    else:
        path.write_bytes(content)
    with pytest.raises(SnapshotError) as excinfo:
        snapshot_iteration(str(path))
    assert f"'{path}'" in one_line_error(excinfo)


def test_snapshot_iteration_reads_the_updaters_iteration(tmp_path):
    path = write_npz(tmp_path / 'snapshot_iter_10', **{'updater/iteration': numpy.array(10)})
    assert snapshot_iteration(str(path)) == 10
