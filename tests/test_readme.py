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


def test_the_flag_and_preset_tables_are_those_the_code_declares():
    sys.path.insert(0, os.path.join(ROOT, 'docs'))
    try:
        import readme_tables
    finally:
        sys.path.pop(0)
    assert readme_tables.updated(README) == README, 'run python docs/readme_tables.py'


def test_every_flag_of_the_command_is_in_the_reference():
    from gan_trainer.cli.train import build_parser

    parser_flags = {s for a in build_parser('t')._actions for s in a.option_strings
                    if s.startswith('--') and s not in ('--help', '--config')}
    block = README[README.index('<!-- flags:'):README.index('<!-- /flags -->')]
    documented = set(re.findall(r'`(--[\w-]+)`', block))
    assert parser_flags <= documented and len(parser_flags) > 60


def test_first_two_lines_are_the_install_commands():
    block = re.search(r'```\n(.*?)```', README, re.DOTALL).group(1).splitlines()
    assert block[0].endswith('examples/train_dcgan.py') and 'pip install' in block[0]
    assert block[1].endswith('pytest') and "'.[test]'" in block[1]
