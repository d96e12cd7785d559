"""Data-parallel training over MPI: real ``mpiexec -n 2`` jobs on the CPU, and the pieces.

The end-to-end tests launch ``examples/train_dcgan.py --communicator naive``
with the ``mpiexec`` that the ``mpich`` wheel puts beside this Python (the
``[test]`` and ``[dist]`` extras install it), tiny nets and 4 iterations,
each job under a time limit so a hang fails the test instead of blocking CI.
The helpers of :mod:`gan_trainer.distributed` are tested in this process,
where mpi4py is an MPI "singleton" of size 1 (a two-process agreement is
played by two threads).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading

import chainer
import numpy
import pytest
from helpers import REPO, assert_one_line_error, assert_same_weights, here, run, succeeded

from gan_trainer import ops
from gan_trainer.distributed import (
    average_persistents,
    rank_seed,
    setup_distributed,
    use_multi_node_batch_norm,
)
from gan_trainer.extensions import MeanOverRanks
from gan_trainer.files import rank_suffix
from gan_trainer.run import RunFolder, load_generator
from gan_trainer.testing import (
    tiny_conditional_generator,
    tiny_discriminator,
    tiny_generator,
)

PROG = 'train_dcgan.py'
MPIEXEC = os.path.join(os.path.dirname(sys.executable), 'mpiexec')
MPI_REASON = "mpi4py or the mpich wheel's mpiexec is missing (pip install -e '.[dist]')"
try:
    import mpi4py  # noqa: F401

    HAVE_MPI = os.path.isfile(MPIEXEC)
except ImportError:
    HAVE_MPI = False
needs_mpi = pytest.mark.skipif(not HAVE_MPI, reason=MPI_REASON)

TINY = [
    *('--base_width', '4', '--batchsize', '8', '--iteration', '4', '--snapshot_interval', '2'),
    *('--display_interval', '2', '--preview_interval', '2', '--eval_interval', '2'),
    *('--no_progress', '--communicator', 'naive'),
]
TIMEOUT = 300  # seconds for one mpiexec job; a hang fails instead of blocking CI


def mpirun(n, *args):
    """``mpiexec -n N python examples/train_dcgan.py TINY ARGS`` -> CompletedProcess.

    One BLAS thread per process: two processes share this machine's two
    cores. The job runs in its own session so that a timeout kills every
    process of it, not only mpiexec.
    """
    command = [MPIEXEC, '-n', str(n), sys.executable, 'examples/train_dcgan.py', *TINY]
    command += [str(a) for a in args]
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f'mpiexec -n {n} hung for {TIMEOUT} s\n{stdout}\n{stderr}')
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


def arrays(path, prefix=''):
    with numpy.load(path) as f:
        return {k[len(prefix) :]: f[k] for k in f.files if k.startswith(prefix)}


def assert_same_arrays(a, b):
    assert sorted(a) == sorted(b)
    for key in a:
        numpy.testing.assert_array_equal(a[key], b[key], err_msg=key)


def run_files(out):
    return {p.name for p in out.iterdir()}


@pytest.fixture(scope='module')
def two_processes(tmp_path_factory):
    """A 2-process run of 4 iterations, snapshots at 2 and 4: (out, process)."""
    if not HAVE_MPI:
        pytest.skip(MPI_REASON)
    out = tmp_path_factory.mktemp('mpi') / 'result'
    return out, succeeded(mpirun(2, '--out', out))


# ------------------------------------------------------------ real MPI jobs


@pytest.mark.slow
@pytest.mark.process
@needs_mpi
def test_two_processes_train_one_model_and_rank_0_writes_the_files(two_processes):
    out, proc = two_processes
    assert proc.stderr == ''  # no warning from ChainerMN, MPI or us
    # One log, one set of previews and npz files; a trainer snapshot per process.
    assert run_files(out) == {
        '.lock', 'log', 'loss.png', 'preview', 'training.gif', 'config.json',
        'gen_iter_2.npz', 'gen_iter_4.npz', 'dis_iter_2.npz', 'dis_iter_4.npz',
        'snapshot_iter_2.rank0', 'snapshot_iter_2.rank1',
        'snapshot_iter_4.rank0', 'snapshot_iter_4.rank1',
    }  # fmt: skip
    assert proc.stdout.count('validation/dis/accuracy') == 1  # one PrintReport header
    log = json.loads((out / 'log').read_text())
    assert [entry['iteration'] for entry in log] == [2, 4]
    assert all(numpy.isfinite(entry['validation/gen/loss']) for entry in log)

    for n in (2, 4):
        ranks = [out / f'snapshot_iter_{n}.rank{r}' for r in (0, 1)]
        # The same G, D (parameters and BN statistics) and Adam moments on both.
        for prefix in ('updater/model:gen/', 'updater/model:dis/', 'updater/optimizer:'):
            assert_same_arrays(*(arrays(path, prefix) for path in ranks))
        # ... but each process has its own z stream and its own data order.
        for key in ('updater/z_rng/keys', 'updater/iterator:main/order'):
            first, second = (arrays(path)[key] for path in ranks)
            assert not numpy.array_equal(first, second), key
        # The npz files are rank 0's networks.
        assert_same_arrays(
            arrays(out / f'gen_iter_{n}.npz'), arrays(ranks[0], 'updater/model:gen/')
        )
    gen2, gen4 = arrays(out / 'gen_iter_2.npz'), arrays(out / 'gen_iter_4.npz')
    assert not numpy.array_equal(gen2['project/W'], gen4['project/W'])  # it trained


@pytest.mark.slow
@pytest.mark.process
@needs_mpi
def test_resume_auto_of_two_processes_ends_bit_for_bit_like_the_uninterrupted_run(
    two_processes, tmp_path
):
    first, _ = two_processes
    out = tmp_path / 'result'
    shutil.copytree(first, out)
    for path in out.glob('*_4*'):  # as if killed between iterations 2 and 4
        path.unlink()
    proc = succeeded(mpirun(2, '--resume', 'auto', '--out', out))
    assert proc.stdout.splitlines()[0] == f'{PROG}: resuming from {out}/snapshot_iter_2.rank0'
    assert proc.stderr == ''
    for name in ('gen_iter_4.npz', 'dis_iter_4.npz'):
        assert_same_weights(out / name, first / name)
    for r in (0, 1):
        for prefix in ('updater/model:', 'updater/optimizer:', 'updater/z_rng', 'updater/iter'):
            assert_same_arrays(
                arrays(out / f'snapshot_iter_4.rank{r}', prefix),
                arrays(first / f'snapshot_iter_4.rank{r}', prefix),
            )
    logs = [json.loads((folder / 'log').read_text()) for folder in (first, out)]
    for entries in logs:
        for entry in entries:
            entry.pop('elapsed_time')
    assert logs[0] == logs[1]


@pytest.mark.slow
@pytest.mark.process
@needs_mpi
def test_resume_needs_as_many_processes_as_wrote_the_snapshot(two_processes, tmp_path):
    first, _ = two_processes
    proc = mpirun(1, '--resume', first / 'snapshot_iter_2.rank1', '--out', tmp_path / 'one')
    assert_one_line_error(proc, 'has files of more processes than the 1 of this run', PROG)
    proc = mpirun(3, '--resume', first / 'snapshot_iter_2', '--out', tmp_path / 'three')
    # Only process 2 lacks its file; rank 0 says so for all, once.
    assert_one_line_error(proc, "process 2: snapshot '", PROG)
    assert 'snapshot_iter_2.rank2' in proc.stderr


@pytest.mark.slow
@pytest.mark.process
@needs_mpi
def test_one_process_under_mpiexec_and_multi_node_batch_norm(tmp_path):
    one = tmp_path / 'one'
    succeeded(mpirun(1, '--iteration', 2, '--out', one))
    assert {'snapshot_iter_2.rank0', 'gen_iter_2.npz', 'log'} <= run_files(one)

    # MNBN in the conditional nets (their BN sits inside conditional BN).
    mnbn = tmp_path / 'mnbn'
    proc = succeeded(mpirun(2, '--iteration', 2, '--mnbn', '--conditional', '--out', mnbn))
    assert proc.stderr == ''
    ranks = [mnbn / f'snapshot_iter_2.rank{r}' for r in (0, 1)]
    assert_same_arrays(*(arrays(path, 'updater/model:') for path in ranks))
    # Same parameter names as the plain nets: generate.py loads the snapshot.
    gen, record = load_generator(str(mnbn / 'gen_iter_2.npz'))
    # The plain nets' link (the package's fast BatchNormalization), not MNBN.
    assert record.conditional and type(gen.bn0.bn) is ops.BatchNormalization


@pytest.mark.slow
@pytest.mark.process
@needs_mpi
def test_bad_input_under_mpiexec_is_one_line_from_rank_0(tmp_path):
    proc = mpirun(2, '--dataset', tmp_path / 'missing', '--out', tmp_path / 'out')
    assert_one_line_error(proc, 'unknown dataset', PROG)
    assert not (tmp_path / 'out' / 'config.json').exists()


# ---------------------------------- bad command lines, no MPI job, in this process


@pytest.mark.parametrize(
    'flags, message',
    [
        # The line names the process's own command line: a real process.
        pytest.param(['--communicator', 'naive'], 'no MPI launcher started this process: run ',
                     marks=pytest.mark.process),
        (['--communicator', 'mpi'], "unknown communicator 'mpi'; choose 'naive'"),
        (['--communicator', 'hierarchical'], 'removed in ChainerMN 7'),
        (['--communicator', 'pure_nccl'], "'pure_nccl' needs GPUs (--gpu 0"),
        (['--communicator', 'pure_nccl', '--gpu', '0'], 'needs CuPy and a GPU'),
        (['--mnbn'], '--mnbn: needs communicator'),
        (['--resume', 'run/snapshot_iter_2.rank0'], "is one process's snapshot of a data-"),
    ],
)
def test_bad_distributed_flags_are_one_line_and_exit_status_2(flags, message, tmp_path):
    if '--gpu' in flags and chainer.backends.cuda.available:
        pytest.skip('CuPy with a GPU is available here')
    if flags[-1] == 'naive' and not HAVE_MPI:
        pytest.skip(MPI_REASON)
    out = tmp_path / 'out'
    command = run if flags[-1] == 'naive' else here
    proc = command('train_dcgan.py', '--out', out, *flags)
    assert_one_line_error(proc, message, PROG)
    if flags[-1] == 'naive':  # it says what to run instead
        assert f'{MPIEXEC} -n 2 ' in proc.stderr and '--communicator naive' in proc.stderr
    assert not out.exists() or not any(out.iterdir())  # nothing written


# ------------------------------------------------ the pieces, in this process


def test_rank_seeds_differ_per_rank_and_seed_and_repeat():
    seeds = {(s, r): rank_seed(s, r) for s in (0, 1, 1000) for r in range(4)}
    assert len(set(seeds.values())) == len(seeds)
    assert all(0 <= v < 2**32 for v in seeds.values())
    assert rank_seed(1, 0) == seeds[1, 0]
    with pytest.raises(ValueError, match='seed must be >= 0'):
        rank_seed(-1, 0)


@pytest.fixture(scope='module')
def comm():
    """A naive communicator of one process (an MPI singleton)."""
    if not HAVE_MPI:
        pytest.skip(MPI_REASON)
    import chainermn

    return chainermn.create_communicator('naive')


@pytest.mark.parametrize(
    'make, replaced',
    [
        (lambda: tiny_generator(size=8), 2),  # bn0 and bns/0
        (lambda: tiny_discriminator(size=8), 1),  # bns/0 (none on the input layer)
        (lambda: tiny_conditional_generator(mode='cbn'), 2),  # inside conditional BN
    ],
    ids=['gen', 'dis', 'conditional_gen'],
)
# ChainerMN's MNBN without gamma/beta (conditional BN's) reads Link._device_id.
@pytest.mark.filterwarnings('ignore:Link._device_id:DeprecationWarning')
def test_multi_node_batch_norm_replaces_every_bn_and_keeps_names_and_outputs(comm, make, replaced):
    from chainermn.links import MultiNodeBatchNormalization

    net = make()
    bn = getattr(net.bns[0], 'bn', net.bns[0])  # conditional BN holds a plain one
    bn.avg_mean[...] = 0.5  # statistics are copied too
    before = {path: p.array.copy() for path, p in net.namedparams()}
    x = _input(net)
    with chainer.using_config('train', False), chainer.no_backprop_mode():
        expected = net(*x).array
    assert use_multi_node_batch_norm(net, comm) == replaced
    kinds = [type(link) for link in net.links()]
    assert kinds.count(MultiNodeBatchNormalization) == replaced
    # No batch normalization of any kind (Chainer's or the package's) is left.
    assert not any(issubclass(kind, chainer.links.BatchNormalization) for kind in kinds)
    assert_same_arrays({path: p.array for path, p in net.namedparams()}, before)
    bn = getattr(net.bns[0], 'bn', net.bns[0])
    assert isinstance(bn, MultiNodeBatchNormalization) and float(bn.avg_mean[0]) == 0.5
    with chainer.using_config('train', False), chainer.no_backprop_mode():
        numpy.testing.assert_array_equal(net(*x).array, expected)


def _input(net):
    rng = numpy.random.RandomState(0)
    if hasattr(net, 'n_hidden'):
        z = rng.randn(3, net.n_hidden).astype(numpy.float32)
        return (z, numpy.arange(3, dtype=numpy.int32) % 2) if hasattr(net, 'n_classes') else (z,)
    return (rng.randn(3, 1, 8, 8).astype(numpy.float32),)


def test_setup_distributed_keeps_targets_and_its_first_update_is_a_real_step(comm):
    gen = tiny_generator(size=8)
    optimizer = chainer.optimizers.SGD(lr=0.1)
    optimizer.setup(gen)
    [(name, multi)] = setup_distributed(comm, {'gen': optimizer}).items()
    assert name == 'gen' and multi.target is gen
    before = gen.project.W.array.copy()
    gen.cleargrads()
    chainer.functions.sum(gen(numpy.ones((2, gen.n_hidden), numpy.float32))).backward()
    multi.update()  # as GANUpdater calls it: gradients averaged, then SGD
    # ChainerMN alone would broadcast instead of updating on this first call.
    numpy.testing.assert_allclose(gen.project.W.array, before - 0.1 * gen.project.W.grad)


def test_setup_distributed_refuses_uninitialised_parameters(comm):
    optimizer = chainer.optimizers.SGD()
    optimizer.setup(chainer.links.Linear(None, 2))
    with pytest.raises(ValueError, match="optimizer 'dis': parameters /W are not initialised"):
        setup_distributed(comm, {'dis': optimizer})


def test_average_persistents_keeps_a_single_process_statistics(comm):
    net = tiny_discriminator(size=8)
    net.bns[0].avg_var[...] = 2.0
    average_persistents(comm, [net])()
    numpy.testing.assert_array_equal(net.bns[0].avg_var, 2.0)


class _Trainer:
    def __init__(self, observation):
        self.observation = observation


class _TwoRanks:
    """A communicator of 2 whose other process reported twice our values."""

    size = 2

    def __init__(self):
        self.mpi_comm = self

    def allgather(self, local):
        return [local, {key: 2 * value for key, value in local.items()}]


def test_mean_over_ranks_averages_the_scalars_and_leaves_the_rest():
    loss = chainer.Variable(numpy.array(1.0, numpy.float32))
    image = numpy.zeros((2, 2), numpy.float32)
    trainer = _Trainer({'gen/loss': loss, 'dis/acc': numpy.float32(0.5), 'image': image})
    MeanOverRanks(_TwoRanks())(trainer)
    assert trainer.observation['gen/loss'] == 1.5
    assert trainer.observation['dis/acc'] == 0.75
    assert trainer.observation['image'] is image


class _ThreadComm:
    """One of ``size`` processes played by threads, with an allgather."""

    def __init__(self, rank, size, slots, barrier):
        self.rank, self.size, self.mpi_comm = rank, size, self
        self.slots, self.barrier = slots, barrier

    def allgather(self, value):
        self.slots[self.rank] = value
        self.barrier.wait()
        gathered = list(self.slots)
        self.barrier.wait()
        return gathered


def _agree(out, size=2):
    slots, barrier, found = [None] * size, threading.Barrier(size), [None] * size

    def play(rank):
        comm = _ThreadComm(rank, size, slots, barrier)
        found[rank] = RunFolder(out, rank=rank).latest_common(comm)

    threads = [threading.Thread(target=play, args=(r,)) for r in range(size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return found


def _snapshots(out, rank, *iterations):
    out.mkdir(exist_ok=True)
    for n in iterations:
        with open(out / f'snapshot_iter_{n}{rank_suffix(rank)}', 'wb') as f:
            numpy.savez(f, **{'updater/iteration': numpy.array(n)})


def test_processes_agree_on_the_newest_snapshot_they_all_have(tmp_path):
    _snapshots(tmp_path, 0, 2, 4, 6)
    _snapshots(tmp_path, 1, 2, 4)  # killed before process 1 wrote iteration 6
    (tmp_path / 'snapshot_iter_4.rank1').write_bytes(b'truncated')  # and 4 is damaged
    with pytest.warns(UserWarning, match='snapshot_iter_4.rank1'):
        found = _agree(tmp_path)
    assert found == [str(tmp_path / f'snapshot_iter_2.rank{r}') for r in (0, 1)]


def test_processes_agree_on_none_when_one_has_no_snapshot(tmp_path):
    _snapshots(tmp_path, 0, 2)
    assert _agree(tmp_path) == [None, None]


def test_rank_file_names_the_missing_file(tmp_path):
    _snapshots(tmp_path, 0, 2)

    class Comm:
        rank, size = 1, 2

    with pytest.raises(ValueError, match=r"'.*snapshot_iter_2\.rank1' does not exist: 2 processes"):
        RunFolder(tmp_path, rank=1).rank_file(str(tmp_path / 'snapshot_iter_2.rank0'), Comm())


def test_rank_file_refuses_a_snapshot_of_more_processes(tmp_path):
    _snapshots(tmp_path, 0, 2)
    _snapshots(tmp_path, 1, 2)
    _snapshots(tmp_path, 2, 2)

    class Comm:
        rank, size = 0, 2

    with pytest.raises(ValueError, match='more processes than the 2 of this run'):
        RunFolder(tmp_path, rank=0).rank_file(str(tmp_path / 'snapshot_iter_2'), Comm())
