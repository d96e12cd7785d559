"""README.md stays true: its example runs and its flag table matches the script."""

import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(ROOT, 'README.md'), encoding='utf-8') as _f:
    README = _f.read()


def python_blocks():
    return re.findall(r'```python\n(.*?)```', README, re.DOTALL)


def test_updater_example_runs_and_reports(tmp_path):
    example = next(b for b in python_blocks() if 'GANUpdater(' in b)
    assert len(example.strip().splitlines()) <= 22
    proc = subprocess.run([sys.executable, '-c', example], cwd=tmp_path, check=False,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    log = json.loads((tmp_path / 'result_example' / 'log').read_text())
    assert [entry['iteration'] for entry in log] == [10, 20]
    assert 'validation/dis/accuracy' in log[-1] and 'gen/loss' in log[0]


def parser_flags():
    """The training command's flags, without the ``--no-X`` that ``--X`` brings along."""
    from gan_trainer.cli.train import build_parser

    return {s for a in build_parser('t')._actions for s in a.option_strings
            if s.startswith('--') and s != '--help' and not s.startswith('--no-')}


def test_flag_table_lists_exactly_the_commands_flags():
    first_cells = re.findall(r'^\| (`--[^|]*)\|', README, re.MULTILINE)
    documented = {flag for cell in first_cells for flag in re.findall(r'`(--[\w-]+)`', cell)}
    assert documented - {f for f in documented if f.startswith('--no-')} == parser_flags()


def test_flag_table_defaults_match_the_config():
    from gan_trainer.cli.train import flags_of_options
    from gan_trainer.run import RunConfig

    option = {flag: name for name, flag in flags_of_options().items()}
    defaults = RunConfig()
    rows = re.findall(r'^\| `(--\w+)`[^|]*\| `([^`]*)` \|', README, re.MULTILINE)
    assert len(rows) > 20
    for flag, default in rows:
        value = getattr(defaults, option[flag])
        shown = ','.join(map(str, value)) if isinstance(value, tuple) else str(value)
        assert shown == default, flag


def test_first_two_lines_are_the_install_commands():
    block = re.search(r'```\n(.*?)```', README, re.DOTALL).group(1).splitlines()
    assert block[0].endswith('examples/train_dcgan.py') and 'pip install' in block[0]
    assert block[1].endswith('pytest') and "'.[test]'" in block[1]
