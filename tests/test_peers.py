"""The peers of the write-ups' presets (``benchmarks/peers/``) and their comparison.

The peer scripts need TensorFlow, which is never a dependency of the
package: they are run for real only where ``PEER_PYTHON`` (or
``/work/venv-tf/bin/python``) imports keras. The rest runs everywhere:
``peer_io`` (the files a peer hands back), and ``compare.py`` as a real
process, with the preset trained by ``train_dcgan.py`` at toy widths and a
peer written here on ``peer_io`` with NumPy alone (so the protocol between
the two sides is exercised, not mocked).
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy
import pytest
from helpers import script_here
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
PEERS = REPO / 'benchmarks' / 'peers'
sys.path.insert(0, str(PEERS))
sys.path.insert(0, str(REPO / 'benchmarks'))

import compare
import peer_io

# A toy preset of each recipe: 2 iterations of tiny nets.
TINY = '--widths 4,8 --batchsize 8 --gen_fc 8 --dis_fc 8'


def test_batches_are_full_and_cover_every_image_once_per_epoch():
    train = numpy.arange(10, dtype=numpy.float32).reshape(10, 1, 1, 1)
    it = peer_io.batches(train, 3, numpy.random.RandomState(0))
    epochs = [numpy.concatenate([next(it) for _ in range(3)]).ravel() for _ in range(2)]
    for seen in epochs:  # 3 full batches of 3: 9 distinct images, the 10th dropped
        assert len(set(seen.tolist())) == 9
    assert not numpy.array_equal(epochs[0], epochs[1])  # reshuffled


def test_keras_dcgan_draws_take_z_batch_z_from_one_random_state_in_turn():
    train = numpy.arange(10, dtype=numpy.float32).reshape(10, 1, 1, 1)
    draws = peer_io.keras_dcgan_draws(train, 3, 2, numpy.random.RandomState(5))
    rng = numpy.random.RandomState(5)  # by hand: z, the epoch's order, one batch, z, ...
    for epoch_start in (True, False, False, True):
        z_dis, real, z_gen = next(draws)
        numpy.testing.assert_array_equal(z_dis, rng.uniform(-1, 1, (3, 2)).astype(numpy.float32))
        if epoch_start:
            order, batch = rng.permutation(10), 0
        numpy.testing.assert_array_equal(real.ravel(), order[batch * 3:batch * 3 + 3])
        batch += 1
        numpy.testing.assert_array_equal(z_gen, rng.uniform(-1, 1, (3, 2)).astype(numpy.float32))
        assert z_dis.dtype == numpy.float32


def test_recorder_keeps_grids_log_and_samples_that_compare_reads(tmp_path):
    args = peer_io.parse('t', ['--data', 'x', '--out', str(tmp_path / 'peer'),
                               '--iterations', '5', '--grid_every', '2', '--log_every', '2'])
    z_grid = numpy.linspace(-1, 1, 100 * 3, dtype=numpy.float32).reshape(100, 3)

    def draw(z):  # (N, H, W, C): every pixel of image i is tanh(z_i . 1)
        return numpy.tanh(z.sum(axis=1))[:, None, None, None] * numpy.ones((1, 4, 4, 1))

    recorder = peer_io.Recorder(args, draw, z_grid)
    for i in range(1, 6):
        recorder.step(i, loss=float(i))
    recorder.save(z_grid[:7], framework='numpy')
    log = json.loads((tmp_path / 'peer' / 'log.json').read_text())
    assert [e['iteration'] for e in log['log']] == [2, 4, 5] and log['framework'] == 'numpy'
    assert [e['loss'] for e in log['log']] == [2.0, 4.0, 5.0]
    samples = compare.samples_of(str(tmp_path / 'peer'), compare.PEER, 5, None)
    assert samples.shape == (7, 1, 4, 4)
    numpy.testing.assert_allclose(samples[:, 0, 0, 0], numpy.tanh(z_grid[:7].sum(axis=1)),
                                  rtol=1e-6)
    grids = compare.grids_of(str(tmp_path / 'peer'), compare.PEER)
    assert sorted(grids) == [2, 4, 5]
    assert grids[2].shape == (10 * 4 + 11 * 2, 10 * 4 + 11 * 2) and grids[2].dtype == numpy.uint8


def test_seconds_per_iteration_is_the_median_window():
    # Windows of 50 iterations: 100 s (warm-up in the first entry), 50, 60, 55 s.
    entries = [(50, 100.0), (100, 150.0), (150, 210.0), (200, 265.0)]
    assert compare.seconds_per_iteration(entries) == pytest.approx(55 / 50)
    assert compare.seconds_per_iteration([(3, 6.0)]) == pytest.approx(2.0)


def test_inputs_are_the_training_digits_and_the_presets_own_fixed_z(tmp_path):
    from gan_trainer.datasets import get_digits
    from gan_trainer.latent import get_sampler, hidden_for
    from gan_trainer.run import PRESETS

    path = str(tmp_path / 'in.npz')
    compare.write_inputs(path, 'keras-dcgan')
    train, z_grid, z_samples = peer_io.load(path)
    digits = get_digits('train')
    assert train.shape == (4500, 28, 28, 1)
    numpy.testing.assert_array_equal(train[17, :, :, 0], digits[17][0][0])
    # The z that the run's preview grid and quality report draw (uniform for
    # this preset): the updater's make_hidden on RandomState(0).
    sampler = get_sampler(PRESETS['keras-dcgan'].z_dist)
    for z, n in ((z_grid, 100), (z_samples, 1000)):
        want = hidden_for(None, sampler, numpy.random.RandomState(0), n, 100)
        numpy.testing.assert_array_equal(z, want)
    assert z_samples.min() >= -1 and z_samples.max() <= 1 and z_samples.min() < -0.99


FAKE_PEER = '''
import sys
sys.path.insert(0, {peers!r})
import numpy
import peer_io

args = peer_io.parse('a NumPy stand-in for a framework')
train, z_grid, z_samples = peer_io.load(args.data)
w = numpy.random.RandomState(args.seed).randn(z_grid.shape[1], 28 * 28) * 0.1

def draw(z):
    return numpy.tanh(z @ w).reshape(-1, 28, 28, 1)

recorder = peer_io.Recorder(args, draw, z_grid)
for i in range(1, args.iterations + 1):
    w += 0.01 * (train[i].reshape(1, -1) - w.mean(axis=0))  # some change per step
    recorder.step(i, d_loss=1.0 / i, g_loss=float(i))
recorder.save(z_samples, framework='numpy')
'''


def run_compare(*args):
    return subprocess.run([sys.executable, str(PEERS / 'compare.py'), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.process
def test_compare_trains_both_sides_measures_them_alike_and_draws_them(tmp_path):
    peer = tmp_path / 'numpy_peer.py'
    peer.write_text(FAKE_PEER.format(peers=str(PEERS)))
    common = ['--recipe', 'keras-dcgan', '--iterations', '2', '--grid_every', '1',
              '--log_every', '1', '--out', str(tmp_path / 'out')]
    # The peer, and the preset at toy widths under the side name 'tiny'.
    proc = run_compare(*common, '--peer_python', sys.executable, '--peer_script', str(peer),
                       '--variant', 'tiny', f'--flags={TINY}', '--picture',
                       str(tmp_path / 'p.png'))
    assert proc.returncode == 0, proc.stderr
    folder = tmp_path / 'out' / 'keras-dcgan'
    config = json.loads((folder / 'tiny' / 'seed0' / 'config.json').read_text())
    assert config['run']['preset'] == 'keras-dcgan' and config['run']['widths'] == [4, 8]
    assert not (folder / 'preset').exists()
    results = json.loads((folder / 'results.json').read_text())
    assert set(results) == {'peer/seed0/2', 'tiny/seed0/2'}
    # Both measured by the same function: the peer's samples file and the
    # toy preset's last snapshot on the same 1,000 z.
    from gan_trainer.datasets import get_digits
    from gan_trainer.metrics import RealStatistics, load_digits_classifier
    from gan_trainer.metrics.quality import real_images

    real = RealStatistics(load_digits_classifier().embed, real_images(get_digits('train')))
    fid = real.measure(numpy.load(folder / 'peer' / 'seed0' / 'samples.npy'))['fid']
    assert results['peer/seed0/2']['fid'] == pytest.approx(fid)
    rows = [line.split('|')[1].strip() for line in proc.stdout.splitlines()
            if line.startswith('| ')]
    assert rows == ['side', 'peer', 'tiny']
    # The picture: a label row, then one row per iteration; the toy preset's
    # iteration-2 grid is pasted unchanged in the second column.
    sheet = numpy.asarray(Image.open(tmp_path / 'p.png'))
    grid = numpy.asarray(Image.open(folder / 'tiny' / 'seed0' / 'preview' /
                                    'image_00000002.png').convert('L'))
    h, w = grid.shape
    assert sheet.shape == (18 + 2 * h, 60 + 2 * w)
    assert (sheet[18 + h:, 60 + w:] == grid).all()
    # Measured once: a second --table trains and measures nothing new.
    again = run_compare(*common, '--variant', 'tiny', '--table')
    assert again.returncode == 0 and json.loads((folder / 'results.json').read_text()) == results


def compare_here(*args):
    """compare.py's ``main(argv)`` in this process: a CompletedProcess like :func:`run_compare`'s."""
    return script_here(compare.main, *args)


@pytest.mark.parametrize('args, message', [
    # One case as a user runs the script (its exit status and stderr), the
    # others through the same main(argv).
    pytest.param(['--recipe', 'keras-dcgan', '--flags=--lr 1'], '--flags needs --variant NAME',
                 marks=pytest.mark.process, id='process'),
    (['--recipe', 'keras-dcgan', '--variant', 'peer'], "--variant must not be 'peer'"),
    (['--recipe', 'keras-dcgan', '--seeds', 'a'], '--seeds must be comma-separated integers'),
    (['--recipe', 'keras-dcgan', '--peer_python', '/nowhere/python'],
     "--peer_python '/nowhere/python' does not exist"),
    (['--recipe', 'nope'], "argument --recipe: invalid choice: 'nope'"),
])
def test_compare_rejects_bad_flags_in_one_line(tmp_path, args, message, request):
    command = run_compare if 'process' in request.node.keywords else compare_here
    proc = command(*args, '--out', str(tmp_path / 'never'))
    assert proc.returncode == 2 and proc.stdout == ''
    assert message in proc.stderr.strip().splitlines()[-1]
    assert not (tmp_path / 'never').exists()


def _peer_python():
    python = os.environ.get('PEER_PYTHON', '/work/venv-tf/bin/python')
    if not os.path.isfile(python):
        return None
    proc = subprocess.run([python, '-c', 'import keras'], capture_output=True, check=False)
    return python if proc.returncode == 0 else None


@pytest.mark.process
@pytest.mark.skipif(_peer_python() is None, reason='no Python with keras (PEER_PYTHON)')
@pytest.mark.parametrize('script', sorted(compare.RECIPES.values()))
def test_each_peer_trains_and_hands_back_its_files(tmp_path, script):
    recipe = next(r for r, s in compare.RECIPES.items() if s == script)
    compare.write_inputs(str(tmp_path / 'in.npz'), recipe)
    proc = subprocess.run([_peer_python(), str(PEERS / script), '--data',
                           str(tmp_path / 'in.npz'), '--out', str(tmp_path / 'o'),
                           '--iterations', '2', '--grid_every', '1', '--log_every', '1'],
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    samples = numpy.load(tmp_path / 'o' / 'samples.npy')
    assert samples.shape == (1000, 1, 28, 28) and numpy.abs(samples).max() <= 1
    with numpy.load(tmp_path / 'o' / 'grids.npz') as grids:
        assert sorted(grids.files) == ['it_000001', 'it_000002']
        assert not numpy.array_equal(grids['it_000001'], grids['it_000002'])  # it trains
    log = json.loads((tmp_path / 'o' / 'log.json').read_text())['log']
    assert [e['iteration'] for e in log] == [1, 2]
    assert all(numpy.isfinite(v) for e in log for v in e.values())


def test_peer_scripts_say_how_to_make_their_venv():
    for script in compare.RECIPES.values():
        doc = (PEERS / script).read_text()
        assert textwrap.dedent('pip install tensorflow-cpu') in doc, script


def _conv_channel_last(x, kernel, bias, pad):
    """Keras' Conv2D on (N, H, W, C) with a (kh, kw, C, O) kernel, in NumPy."""
    x = numpy.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    windows = numpy.lib.stride_tricks.sliding_window_view(x, kernel.shape[:2], axis=(1, 2))
    return numpy.einsum('nhwcij,ijco->nhwo', windows, kernel) + bias


def _keras_g(w, z, eps=1e-3):
    h = numpy.tanh(z @ w[0] + w[1]) @ w[2] + w[3]
    h = numpy.tanh((h - w[6]) / numpy.sqrt(w[7] + eps) * w[4] + w[5]).reshape(-1, 7, 7, 128)
    for kernel, bias in ((w[8], w[9]), (w[10], w[11])):
        h = numpy.tanh(_conv_channel_last(h.repeat(2, 1).repeat(2, 2), kernel, bias, 2))
    return h


def _keras_d(w, x):
    for kernel, bias, pad in ((w[0], w[1], 2), (w[2], w[3], 0)):
        h = numpy.tanh(_conv_channel_last(x, kernel, bias, pad))
        n, s, _, c = h.shape
        x = h.reshape(n, s // 2, 2, s // 2, 2, c).max(axis=(2, 4))
    return (numpy.tanh(x.reshape(len(x), -1) @ w[4] + w[5]) @ w[6] + w[7])[:, 0]


def test_step_check_hands_keras_the_presets_nets_in_keras_layout(tmp_path):
    # step_check.py copies the preset's weights into the Keras peer's nets;
    # the Keras nets written in NumPy (channel-last, as keras_dcgan.py builds
    # them) must then compute what the package's G and D compute. Biases
    # and BatchNorm's statistics are made non-trivial so that a wrong
    # permutation of the Dense units cannot hide behind zeros and ones.
    import chainer
    import step_check
    updater = step_check.build(0, '', str(tmp_path / 'run'))
    gen, dis = updater.gen, updater.dis
    rng = numpy.random.RandomState(0)
    for link in (gen, dis):
        for _, param in link.namedparams():
            if param.name in ('b', 'beta'):
                param.array[...] = rng.uniform(-0.1, 0.1, param.shape)
    gen.bn0.avg_mean[...] = rng.uniform(-0.5, 0.5, gen.bn0.avg_mean.shape)
    gen.bn0.avg_var[...] = rng.uniform(0.5, 2.0, gen.bn0.avg_var.shape)
    keras_g, keras_d = step_check.keras_weights(gen, dis)
    z = rng.uniform(-1, 1, (4, 100)).astype(numpy.float32)
    with chainer.using_config('train', False), chainer.no_backprop_mode():
        images = gen(z).array
        logits = dis(images).array.reshape(-1)
    numpy.testing.assert_allclose(_keras_g(keras_g, z), images.transpose(0, 2, 3, 1),
                                  atol=2e-5)
    numpy.testing.assert_allclose(_keras_d(keras_d, images.transpose(0, 2, 3, 1)), logits,
                                  rtol=1e-4, atol=1e-5)
    # And back (--streams peer): the peer's arrays into fresh nets are these nets.
    other = step_check.build(1, '', str(tmp_path / 'other'))
    step_check.load_keras_weights(other.gen, other.dis, keras_g, keras_d)
    for a, b in ((gen, other.gen), (dis, other.dis)):
        for (name, p), (_, q) in zip(sorted(a.namedparams()), sorted(b.namedparams())):
            numpy.testing.assert_array_equal(p.array, q.array, err_msg=name)
    numpy.testing.assert_array_equal(gen.bn0.avg_var, other.gen.bn0.avg_var)


@pytest.mark.process
@pytest.mark.skipif(_peer_python() is None, reason='no Python with keras (PEER_PYTHON)')
def test_keras_dcgan_preset_steps_as_the_keras_original(tmp_path):
    # The same weights, batches and z in both: after each of two iterations
    # every tensor's change agrees with Keras' to rounding (a different
    # step, e.g. D's learning rate not halved for the package's summed D
    # loss, differs by the order of the change itself).
    proc = subprocess.run([sys.executable, str(PEERS / 'step_check.py'), '--iterations', '2',
                           '--peer_python', _peer_python()],
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [ln.split() for ln in proc.stdout.splitlines() if ln[:2] in ('g ', 'd ')]
    assert len(rows) == 20
    for row in rows:
        if 'rounding' not in ' '.join(row):
            assert max(float(row[2]), float(row[3])) < 5e-2, row
    d_loss, keras_d_loss = proc.stdout.splitlines()[-1].split('D loss ')[1].split()[:3:2]
    assert float(d_loss) == pytest.approx(float(keras_d_loss.strip('),')), rel=1e-5)
