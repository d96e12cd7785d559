"""The throughput benchmark runs, splits its time and prints its contract line.

``benchmarks/throughput.py`` is run as a real process with one short window
(the figures themselves are never asserted: they depend on the machine); what
is checked is that it runs both networks' code paths and both data paths,
that the per-phase split adds up to the timed window, and that the last line
is exactly ``throughput NET DEVICE X img/s``.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy
import pytest
from helpers import script_here
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'benchmarks'))  # recipes.py's main(argv), in this process
# Every test runs a benchmark script as its user does, in a process of its own.
pytestmark = pytest.mark.process
LAST_LINE = re.compile(r'^throughput (digits28|dcgan64|default) (cpu|gpu) (\d+\.\d) img/s$')
PHASE = re.compile(r'^  (data|G forward|D forward|D step backward|G step backward|optimizers|other)'
                   r' +(-?\d+\.\d\d) ms +(-?\d+\.\d)%$')


def bench(*args):
    proc = subprocess.run(
        [sys.executable, 'benchmarks/throughput.py', '--warmup', '1', '--windows', '2',
         '--iters', '1', *args],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, f'exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}'
    return proc.stdout.strip().splitlines()


def phases(lines):
    found = {}
    for line in lines:
        m = PHASE.match(line)
        if m:
            found[m.group(1)] = (float(m.group(2)), float(m.group(3)))
    return found


@pytest.mark.parametrize('args', [
    ('--net', 'digits28'),
    ('--net', 'digits28', '--reference'),
    ('--net', 'digits28', '--data', 'folder', '--folder_images', '8', '--folder_side', '40',
     '--batchsize', '4', '--loaderjob', '1'),
    ('--net', 'digits28', '--reuse_fakes'),
], ids=['fast', 'reference', 'folder', 'reuse_fakes'])
def test_throughput_prints_windows_a_split_and_the_contract_line(args):
    lines = bench(*args)
    assert ("G step on the D step's fakes" in lines[0]) == ('--reuse_fakes' in args)
    m = LAST_LINE.match(lines[-1])
    assert m, lines[-1]
    assert m.group(1) == 'digits28' and m.group(2) == 'cpu'
    rates = [float(line.split()[2]) for line in lines if line.startswith('window ')]
    assert len(rates) == 2
    # The reported figure is the median of the windows (of two: their mean).
    assert float(m.group(3)) == pytest.approx(sum(rates) / 2, abs=0.1)
    split = phases(lines)
    assert set(split) == {'data', 'G forward', 'D forward', 'D step backward',
                          'G step backward', 'optimizers', 'other'}
    # Every phase took time, and the shares add up to the whole window.
    assert all(ms > 0 for name, (ms, _) in split.items() if name != 'other')
    assert sum(pct for _, pct in split.values()) == pytest.approx(100, abs=0.5)
    matmul = [line for line in lines if line.startswith('matrix products')]
    assert len(matmul) == (0 if '--reference' in args else 1)


def test_throughput_builds_the_papers_64x64_dcgan():
    lines = bench('--net', 'dcgan64', '--batchsize', '8', '--windows', '1', '--warmup', '0')
    assert LAST_LINE.match(lines[-1]).group(1) == 'dcgan64'


def test_throughput_rejects_a_bad_flag_in_one_line():
    proc = subprocess.run(
        [sys.executable, 'benchmarks/throughput.py', '--windows', '0'],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].endswith('--windows must be at least 1')


def test_throughput_profile_lists_the_slowest_functions_after_an_untouched_split():
    lines = bench('--net', 'digits28', '--profile', '3')
    start = next(i for i, line in enumerate(lines) if line.startswith('slowest functions'))
    rows = [line.split() for line in lines[start + 1:-1]]
    assert len(rows) == 3
    times = [float(row[1]) for row in rows]
    assert times == sorted(times, reverse=True) and times[-1] > 0
    # The package's fast convolution is among the slowest on the CPU.
    assert 'ConvolutionDNNL' in [row[0] for row in rows] or 'Convolution2DNumPy' in [row[0] for row in rows]
    # The profile window runs after the split: the split's own timers must
    # not count it (they did once, which made 'other' negative).
    split = phases(lines)
    assert split['other'][0] >= 0
    assert sum(pct for _, pct in split.values()) == pytest.approx(100, abs=0.5)
    assert LAST_LINE.match(lines[-1])


def test_deconv_routines_times_all_three_and_names_the_pick():
    proc = subprocess.run(
        [sys.executable, 'benchmarks/deconv_routines.py', '--batchsize', '1', '--reps', '1'],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines()[2:]]
    assert len(rows) == 9
    for row in rows:
        ms = [float(v) for v in row[5:8]]
        assert all(v > 0 for v in ms)
    # The DCGAN layers take the routine the module's rule gives them.
    picked = {(row[0], row[1]): row[8] for row in rows}
    assert picked['4x4x512', '256'] == 'gather'
    assert picked['32x32x64', '3'] == 'scatter'
    assert picked['32x32x64', '64'] == 'phases'


def test_gpu_paths_rejects_an_unknown_path_in_one_line():
    proc = subprocess.run(
        [sys.executable, 'benchmarks/gpu_paths.py', '--device', 'cpu', '--paths', 'tf32,bf16'],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].endswith(
        '--paths: unknown bf16; valid: tf32, fp32, mixed16, nocudnn')


@pytest.mark.slow
def test_gpu_check_dry_run_runs_every_step_on_the_cpu(tmp_path):
    # DRY_RUN=1: the script's steps with --device cpu / --gpu -1 and one
    # iteration each, so its logic is checked where there is no GPU.
    out = tmp_path / 'logs'
    proc = subprocess.run(
        ['bash', 'benchmarks/gpu_check.sh'], cwd=REPO, capture_output=True, text=True,
        timeout=600, check=False,
        env={**os.environ, 'DRY_RUN': '1', 'OUT': str(out), 'PYTHON': sys.executable,
             'CUDA12_WHEELS': str(tmp_path / 'none')})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = (out / 'summary.log').read_text().splitlines()
    paths = [line.split()[1:4] for line in summary if line.startswith('gpu_paths ')]
    # Round 1 (every path), then round 2 (tf32) around the PyTorch slot.
    assert paths == [['default', '4', 'tf32'], ['default', '4', 'fp32'],
                     ['default', '4', 'mixed16'], ['default', '4', 'tf32']]
    assert any(re.match(r'^training run: \d+ s wall$', line) for line in summary)
    assert summary[-1] == 'exit status: 0'
    assert (out / 'cudnn.log').read_text().startswith('skipped: no cupy_cuda12x-13.6 wheel')
    assert json.loads((out / 'train_log.json').read_text())[-1]['iteration'] == 4


def run_script(*args, timeout=300, env=None):
    proc = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, check=False, env=env)
    return proc


def test_throughput_runs_the_default_runs_network():
    lines = bench('--net', 'default')
    assert LAST_LINE.match(lines[-1]).group(1) == 'default'


@pytest.mark.parametrize('options, per_net', [
    # Chainer's AdamRule: 13 NumPy operations per parameter (see its
    # update_core_cpu); G has 10 parameters, D 8.
    (('--onednn', 'off', '--adam', 'chainer'), (130, 104)),
    # ops.Adam: 14 per network, whatever the number of parameters.
    (('--adam', 'ops'), (14, 14)),
], ids=['chainer_adam', 'ops_adam'])
def test_count_calls_counts_nodes_and_optimizer_operations(options, per_net):
    proc = run_script('benchmarks/count_calls.py', *options)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert 'parameters: gen 10, dis 8' in lines[0]
    assert f'optimizer array operations: gen {per_net[0]}, dis {per_net[1]}' in lines
    m = re.match(r'^calls default nodes (\d+) optimizer_ops (\d+)$', lines[-1])
    assert m and int(m.group(2)) == sum(per_net)
    forward = int(re.match(r'^forward: (\d+) nodes', lines[1]).group(1))
    backward = int(re.match(r'^backward: (\d+) nodes', lines[2]).group(1))
    assert int(m.group(1)) == forward + backward
    # One D step (real + fake) and one G step: D runs forward 3 times and
    # G twice; each pass through each net applies its conv/deconv layers,
    # alone or inside a block node (conv + BatchNorm + activation).
    # ('Deconvolution...' is spelled with a small c: not counted.)
    conv = 'Convolution2DNumPy' if 'off' in options else 'ConvolutionDNNL'
    items = lines[1][lines[1].index('(') + 1:-1].split(', ')
    applied = sum(int(n) for name, n in (item.rsplit(' ', 1) for item in items) if conv in name)
    assert applied == (6 if 'off' in options else 10), lines[1]


def test_whole_run_and_cpu_vs_torch_need_torch(tmp_path):
    for script in ('benchmarks/whole_run.sh', 'benchmarks/cpu_vs_torch.sh'):
        proc = subprocess.run(['bash', script], cwd=REPO, capture_output=True, text=True,
                              timeout=60, check=False,
                              env={'PATH': '/usr/bin:/bin', 'PYTHON': sys.executable,
                                   'TORCH_PYTHON': sys.executable, 'OUT': str(tmp_path)})
        assert proc.returncode == 2
        assert proc.stderr.strip().endswith('cannot import torch (set TORCH_PYTHON)')
        assert len(proc.stderr.strip().splitlines()) == 1


def test_fid_of_exports_the_digits_and_scores_them(tmp_path):
    out = tmp_path / 'digits.npy'
    proc = run_script('benchmarks/fid_of.py', '--export', str(out))
    assert proc.returncode == 0, proc.stderr
    digits = numpy.load(out)
    assert digits.shape == (4500, 1, 28, 28) and -1 <= digits.min() < digits.max() <= 1
    # 1,000 of the training digits against all of them: near the floor
    # (benchmarks/quality.py measured 2.3 for 1,000 real digits), far below
    # any generator's.
    sample = tmp_path / 'sample.npy'
    numpy.save(sample, digits[numpy.random.RandomState(0).permutation(len(digits))[:1000]])
    proc = run_script('benchmarks/fid_of.py', '--samples', str(sample))
    assert proc.returncode == 0, proc.stderr
    fid = float(proc.stdout.strip().splitlines()[-1].split()[1])
    assert 0 <= fid < 5

#: Quick settings for the recipe benchmark: tiny nets, a few iterations, 40 samples.
RECIPES_QUICK = ['--seeds', '1', '--warmup', '2', '--timed', '4', '--windows', '2',
                 '--fid_samples', '40', '--options', 'base_width=4,batchsize=8']


def recipes(*args, cwd=REPO):
    return subprocess.run([sys.executable, str(REPO / 'benchmarks' / 'recipes.py'), *args],
                          cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope='module')
def ema_sweep(tmp_path_factory):
    """One quick sweep of the ``ema`` candidate (budget 0.2 s): (its --out, the process).

    Tests that read it (or pass it to ``--merge`` and ``--calibrations``)
    share it and never write into it.
    """
    out = tmp_path_factory.mktemp('recipes') / 'sweep'
    proc = recipes('--candidates', 'ema', '--budget', '0.2', '--out', str(out), *RECIPES_QUICK)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out, proc


def test_recipes_trains_for_the_budget_and_tables_the_runs_it_saves(ema_sweep):
    out, proc = ema_sweep
    saved = json.loads((out / 'recipes.json').read_text())
    entry = saved['candidates']['ema']
    assert saved['budget'] == 0.2 and entry['flags'][:4] == ['--preset', 'dcgan', '--ema', '0.999']
    spi = entry['calibration']['seconds_per_iteration']
    # The iterations are the budget over the calibrated seconds per iteration.
    assert entry['iterations'] == max(1, round(0.2 / spi)) and 0 < spi < 1
    (run,) = entry['runs']
    log = json.loads((out / 'runs' / 'ema' / 'seed0' / 'log').read_text())
    assert run['iteration'] == log[-1]['iteration'] == entry['iterations']
    assert run['fid'] == log[-1]['validation/fid'] > 0 and 1 <= run['classes'] <= 10
    assert f'--iteration {entry["iterations"]} --seed 0 --fid_interval' in run['command']
    # The run kept its grid (10x10 digits of 28 pixels) and shed its snapshots.
    grid = Image.open(run['grid'])
    assert grid.size[0] >= 280 and grid.size[0] == grid.size[1]
    assert sorted(os.listdir(out / 'runs' / 'ema' / 'seed0')) == [
        'config.json', 'gen_best.json', 'log', 'preview']
    # The table's row is the JSON's run.
    row = next(line for line in proc.stdout.splitlines() if line.startswith('| ema |'))
    cells = [c.strip() for c in row.strip('|').split('|')]
    assert cells[1] == str(entry['iterations']) and cells[5] == f'{run["fid"]:.1f}'
    # The same --out again: nothing is trained twice, the table is the same.
    again = recipes('--candidates', 'ema', '--budget', '0.2', '--out', str(out),
                    *RECIPES_QUICK)
    assert again.returncode == 0 and 'seed 0: FID' not in again.stdout
    assert row in again.stdout.splitlines()


def test_recipes_on_a_subset_measures_against_every_training_digit(tmp_path):
    out = tmp_path / 'small'
    proc = recipes('--candidates', 'dcgan', '--budget', '0.1', '--subset', '20',
                   '--out', str(out), *RECIPES_QUICK)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run,) = json.loads((out / 'recipes.json').read_text())['candidates']['dcgan']['runs']
    folder = out / 'runs' / 'dcgan' / 'seed0'
    full = json.loads((folder / 'quality_full.json').read_text())
    log = json.loads((folder / 'log').read_text())
    # The table's FID is against the 4,500 digits; the log's, against the 20 seen.
    assert run['fid'] == full['fid'] and run['fid_seen'] == log[-1]['validation/fid']
    assert full['fid'] != run['fid_seen']
    assert json.loads((folder / 'config.json').read_text())['data']['train'] == 20
    assert 'FID seen' in proc.stdout


def test_recipes_merges_earlier_sweeps_into_one_table(tmp_path, ema_sweep):
    first = tmp_path / 'first'
    shutil.copytree(ema_sweep[0], first)  # this test deletes a grid of it
    merged = recipes('--candidates', 'ema', '--budget', '0.2', '--out', str(tmp_path / 'all'),
                     '--merge', str(first), '--table', *RECIPES_QUICK)
    assert merged.returncode == 0 and 'seed 0: FID' not in merged.stdout
    want = json.loads((first / 'recipes.json').read_text())['candidates']['ema']
    got = json.loads((tmp_path / 'all' / 'recipes.json').read_text())['candidates']['ema']
    assert got == want and any(line.startswith('| ema |') for line in merged.stdout.splitlines())
    missing = recipes('--candidates', 'ema', '--out', str(tmp_path / 'x'),
                      '--merge', str(tmp_path / 'nowhere'), *RECIPES_QUICK)
    assert missing.returncode == 2 and '--merge: cannot read' in missing.stderr
    # --grids: the seed-0 grid under a label line, one cell per drawn candidate.
    sheet = tmp_path / 'grids.png'
    drawn = recipes('--candidates', 'ema,dcgan', '--out', str(tmp_path / 'all'), '--table',
                    '--grids', str(sheet), *RECIPES_QUICK)
    assert drawn.returncode == 0, drawn.stderr
    assert f'{sheet}: the seed-0 grids of ema' in drawn.stdout
    grid = Image.open(want['runs'][0]['grid'])
    picture = numpy.asarray(Image.open(sheet))
    assert picture.shape == (grid.height + 18, 3 * grid.width)
    assert (picture[18:, :grid.width] == numpy.asarray(grid.convert('L'))).all()
    assert (picture[:18, :grid.width] < 128).any() and (picture[:, grid.width:] == 255).all()
    os.remove(want['runs'][0]['grid'])
    lost = recipes('--candidates', 'ema', '--out', str(tmp_path / 'all'), '--table',
                   '--grids', str(sheet), *RECIPES_QUICK)
    assert lost.returncode == 2 and '--grids: no sample grid for ema' in lost.stderr


def test_recipes_reuses_calibrations_for_another_budget(tmp_path, ema_sweep):
    first = ema_sweep[0]
    calibration = json.loads((first / 'recipes.json').read_text())['candidates']['ema'][
        'calibration']
    # Other calibration settings too: the reused measurement is kept as it was.
    quick = [*RECIPES_QUICK[:2], '--warmup', '3', *RECIPES_QUICK[4:]]
    for _ in range(2):  # the second time resumes: nothing is trained again
        proc = recipes('--candidates', 'ema', '--budget', '0.5', '--out', str(tmp_path / 'long'),
                       '--calibrations', str(first), *quick)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        entry = json.loads((tmp_path / 'long' / 'recipes.json').read_text())['candidates']['ema']
        assert entry['calibration'] == calibration and entry['budget'] == 0.5
        assert entry['iterations'] == max(1, round(0.5 / calibration['seconds_per_iteration']))
        assert [run['seed'] for run in entry['runs']] == [0]
    assert 'seed 0: FID' not in proc.stdout


def recipes_here(*args):
    """recipes.py's ``main(argv)`` in this process: a CompletedProcess like :func:`recipes`'s."""
    import recipes as script

    return script_here(script.main, *args)


@pytest.mark.parametrize('args, message', [
    # One case as a user runs the script (every test of this module is
    # marked process), the others through the same main(argv) in this process.
    pytest.param(['--candidates', 'dcgan,nope'],
                 '--candidates: unknown nope; known: default, dcgan,', id='process'),
    (['--budget', '0'], 'argument --budget: must be a number of seconds above 0, got 0'),
    (['--options', 'widths'], "--options: 'widths' is not KEY=VALUE with KEY a run option"),
    (['--options', 'base_width=x'], "argument --base_width: expected an integer, got 'x'"),
    (['--subset', '25'], '--subset must be a multiple of 10 up to 4500, got 25'),
    (['--grids', 'x.png'], '--grids needs --table (it draws the runs already made)'),
])
def test_recipes_rejects_bad_flags_in_one_line(tmp_path, args, message, request):
    command = recipes if request.node.callspec.id == 'process' else recipes_here
    proc = command(*args, '--out', str(tmp_path / 'never'))
    assert proc.returncode == 2 and proc.stdout == ''
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith('recipes.py: error: ') and message in line
    assert not (tmp_path / 'never').exists()


def test_recipes_with_runs_unlocked_calibrates_everything_first_under_the_lock(tmp_path):
    # Every calibration comes before the first run (one hold of the lock).
    # (--nice 0: at nice 19 the runs would wait for the other test process.)
    lock = tmp_path / 'cpu.lock'
    out = tmp_path / 'sweep'
    proc = recipes('--candidates', 'ema,dcgan', '--budget', '0.2', '--out', str(out),
                   '--lock', str(lock), '--runs_unlocked', '--nice', '0', *RECIPES_QUICK)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(('ema:', 'dcgan:', '  seed'))]
    assert [ln.split(':')[0].strip() for ln in lines] == ['ema', 'dcgan', 'seed 0', 'seed 0']
    saved = json.loads((out / 'recipes.json').read_text())['candidates']
    assert all(len(saved[n]['runs']) == 1 for n in ('ema', 'dcgan'))


def test_recipes_jobs_trains_seeds_side_by_side_as_one_at_a_time(tmp_path):
    # Two seeds at once (--jobs 2) give the runs that one at a time gives.
    quick = [*RECIPES_QUICK[2:], '--seeds', '2', '--budget', '0.2']
    together = recipes('--candidates', 'dcgan', '--out', str(tmp_path / 'a'), '--jobs', '2',
                       *quick)
    assert together.returncode == 0, together.stdout + together.stderr
    # One at a time, with the first sweep's calibration (so the same iterations).
    one = recipes('--candidates', 'dcgan', '--out', str(tmp_path / 'b'), '--calibrations',
                  str(tmp_path / 'a'), *quick)
    assert one.returncode == 0, one.stdout + one.stderr
    runs = [json.loads((tmp_path / d / 'recipes.json').read_text())['candidates']['dcgan']
            for d in 'ab']
    assert runs[0]['iterations'] == runs[1]['iterations']
    assert [r['seed'] for r in runs[0]['runs']] == [0, 1]
    # Same seeds, same iterations: the same samples, so the same FID.
    assert [r['fid'] for r in runs[0]['runs']] == [r['fid'] for r in runs[1]['runs']]
    assert sorted(ln.split(':')[0].strip() for ln in together.stdout.splitlines()
                  if ln.startswith('  seed')) == ['seed 0', 'seed 1']


def test_recipes_jobs_with_a_lock_needs_runs_unlocked(tmp_path):
    proc = recipes('--candidates', 'dcgan', '--out', str(tmp_path), '--jobs', '2',
                   '--lock', str(tmp_path / 'l'), *RECIPES_QUICK)
    assert proc.returncode == 2
    assert '--jobs: the runs would wait for each other on --lock' in proc.stderr.splitlines()[-1]


def test_snapshot_write_times_stored_and_deflated_files_of_the_same_arrays():
    proc = subprocess.run([sys.executable, 'benchmarks/snapshot_write.py', '--repeats', '1'],
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    rows = {tuple(line.split()[:2]): float(line.split()[2])
            for line in proc.stdout.splitlines()[1:]}
    assert set(rows) == {(n, w) for n in ('trainer', 'gen') for w in ('stored', 'deflated')}
    # The trainer holds both networks and their optimizers' state.
    assert rows['trainer', 'stored'] > 2 * rows['gen', 'stored'] > 0
    assert rows['gen', 'deflated'] <= rows['gen', 'stored']


def test_recipes_jobs_keeps_the_seeds_that_end_well_when_one_fails(tmp_path, monkeypatch):
    # Seed 0 fails at once while seed 1 still trains: seed 1's run is saved,
    # the candidate is marked failed, and the exit status says so.
    import threading

    import recipes as script

    started = threading.Event()

    def measure(name, flags, iterations, seed, args, lock):
        if seed == 0:
            started.wait(10)
            raise script.Failure('seed 0 broke')
        started.set()
        time.sleep(0.5)  # still training when seed 0 fails
        return {'seed': seed, 'iteration': iterations, 'elapsed': 1.0, 'wall': 1.0, 'load': 0.0,
                'command': 'fake', 'grid': '', 'class_kl': 0.0, 'is': 1.0,
                **dict.fromkeys(script.METRICS, 1.0)}

    monkeypatch.setattr(script, 'calibrate', lambda *a: {'seconds_per_iteration': 0.1})
    monkeypatch.setattr(script, 'measure', measure)
    proc = recipes_here('--candidates', 'dcgan', '--seeds', '2', '--jobs', '2', '--budget', '1',
                        '--out', tmp_path)
    assert proc.returncode == 1 and 'dcgan failed: seed 0 broke' in proc.stdout
    entry = json.loads((tmp_path / 'recipes.json').read_text())['candidates']['dcgan']
    assert [run['seed'] for run in entry['runs']] == [1] and entry['error'] == 'seed 0 broke'


def test_fid_of_a_run_draws_z_from_the_runs_own_distribution(tmp_path):
    from gan_trainer.datasets import get_digits
    from gan_trainer.metrics import RealStatistics, load_digits_classifier
    from gan_trainer.metrics.quality import real_images
    from gan_trainer.run import RunConfig, build_trainer, load_generator
    from gan_trainer.sampling import draw_hidden, generate

    out = tmp_path / 'uniform'
    build_trainer(RunConfig(z_dist='uniform', base_width=4, batchsize=8, iteration=2,
                            snapshot_interval=2, display_interval=2, preview_interval=2,
                            eval_interval=2, progress=False, out=str(out)), log=None).run()
    proc = run_script('benchmarks/fid_of.py', '--run', str(out), '--n_samples', '200')
    assert proc.returncode == 0, proc.stderr
    printed = float(proc.stdout.strip().splitlines()[-1].split()[1])
    gen, _ = load_generator(str(out / 'gen_iter_2.npz'))
    real = RealStatistics(load_digits_classifier().embed, real_images(get_digits('train')))
    fids = {dist: real.measure(generate(gen, draw_hidden(200, gen.n_hidden, z_dist=dist,
                                                          seed=0)))['fid']
            for dist in ('uniform', 'normal')}
    assert printed == pytest.approx(fids['uniform'], abs=0.006)
    assert abs(fids['normal'] - fids['uniform']) > 0.05  # the test tells the two apart


def test_snapshot_write_refuses_an_unknown_preset_in_one_line():
    proc = subprocess.run([sys.executable, 'benchmarks/snapshot_write.py', '--preset', 'nope'],
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2 and proc.stdout == ''
    assert "argument --preset: invalid choice: 'nope'" in proc.stderr.strip().splitlines()[-1]
    assert 'Traceback' not in proc.stderr


def test_onednn_layers_bn_times_each_normalization_on_both_paths():
    from gan_trainer.ops import dnnl
    if dnnl.library() is None:
        pytest.skip('oneDNN does not load here')
    proc = subprocess.run(
        [sys.executable, 'benchmarks/onednn_layers.py', '--bn', '--net', 'dcgan64',
         '--batchsize', '2', '--reps', '1'],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    # G's projection and three deconvolutions, D's three convolutions but the first.
    rows = lines[1:-1]
    assert [r.split()[0] for r in rows] == ['G'] * 4 + ['D'] * 3
    assert ' nchw relu ' in rows[0] and ' nhwc leaky_relu ' in rows[-1]
    last = re.match(r'^bn dcgan64 onednn (\d+\.\d{3}) numpy (\d+\.\d{3}) ms$', lines[-1])
    assert last and all(float(v) > 0 for v in last.groups())
