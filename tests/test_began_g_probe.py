"""benchmarks/began_g_probe.py (issue 28): its He redraw and a short run of it."""

import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / 'benchmarks'))

from began_g_probe import redraw_he

from gan_trainer.run import PRESETS, build_networks


def test_redraw_he_uses_the_inputs_each_output_reads():
    # The preset's G: Linear 128 -> 64x7x7, then stride-2 4x4 deconvolutions
    # 64 -> 32 and 32 -> 1, each output reading a 2x2 patch of every input channel.
    gen, _ = build_networks(PRESETS['began'].replace(seed=0), (1, 28, 28))
    redraw_he(gen, 2.0)
    weights = dict(gen.namedparams())
    expected = {'/project/W': 128, '/deconvs/0/W': 64 * 4, '/deconvs/1/W': 32 * 4}
    for name, fan_in in expected.items():
        std = float(weights[name].array.std())
        assert abs(std / np.sqrt(2.0 / fan_in) - 1) < 0.05, (name, std)


def test_the_probe_prints_a_row_per_interval():
    proc = subprocess.run([sys.executable, 'benchmarks/began_g_probe.py', '--steps', '2',
                           '--interval', '1'], check=False, cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines()[1:]]
    assert [row[0] for row in rows] == ['0', '1', '2']
    spread = float(rows[0][1])
    assert 0 < spread < 1  # a spread of tanh images over z
