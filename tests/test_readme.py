"""README.md and the reference pages stay true: the example runs, the tables match the code.

README is the front door (what it is, the two commands, three ways to use
it, where the rest lives); the tables moved to docs/. What can be checked
against the code is: the flag and preset tables of docs/command.md are the
ones the declarations make, every flag is documented, the exit statuses
are the ones the package returns, every test the fault table names exists,
and every link between the pages leads to a file.
"""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / 'README.md').read_text(encoding='utf-8')
COMMAND_PAGE = (ROOT / 'docs' / 'command.md').read_text(encoding='utf-8')


def python_blocks():
    return re.findall(r'```python\n(.*?)```', README, re.DOTALL)


def section(text, title):
    """The body of the Markdown section ``## title`` (up to the next ``## ``)."""
    start = text.index(f'## {title}\n')
    end = text.find('\n## ', start + 1)
    return text[start:] if end < 0 else text[start:end]


@pytest.mark.process
def test_updater_example_runs_and_reports(tmp_path):
    example = next(b for b in python_blocks() if 'GANUpdater(' in b)
    assert len(example.strip().splitlines()) <= 22
    proc = subprocess.run([sys.executable, '-c', example], cwd=tmp_path, check=False,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    log = json.loads((tmp_path / 'result_example' / 'log').read_text())
    assert [entry['iteration'] for entry in log] == [10, 20]
    assert 'validation/dis/accuracy' in log[-1] and 'gen/loss' in log[0]


def test_readme_is_a_front_door_of_at_most_250_lines():
    assert len(README.splitlines()) <= 250
    assert '| flag |' not in README and '| preset |' not in README  # the tables are in docs/


def test_the_flag_and_preset_tables_are_those_the_code_declares():
    sys.path.insert(0, str(ROOT / 'docs'))
    try:
        import reference_tables
    finally:
        sys.path.pop(0)
    assert reference_tables.updated(COMMAND_PAGE) == COMMAND_PAGE, (
        'run python docs/reference_tables.py')


def test_every_flag_of_the_command_is_in_the_reference():
    from gan_trainer.cli.train import build_parser

    parser_flags = {s for a in build_parser('t')._actions for s in a.option_strings
                    if s.startswith('--') and s not in ('--help', '--config')}
    block = COMMAND_PAGE[COMMAND_PAGE.index('<!-- flags:'):COMMAND_PAGE.index('<!-- /flags -->')]
    documented = set(re.findall(r'`(--[\w-]+)`', block))
    assert parser_flags <= documented and len(parser_flags) > 60


def test_the_exit_statuses_are_the_ones_the_package_returns():
    from gan_trainer.run import errors

    rows = re.findall(r'^\| ([\d, ]+) \| ', section(COMMAND_PAGE, 'Exit statuses and bad input'),
                      re.MULTILINE)
    listed = {int(code) for row in rows for code in row.split(',')}
    assert listed == {errors.EXIT_DONE, errors.EXIT_INPUT, errors.EXIT_DIVERGED,
                      errors.EXIT_RESOURCE, 128 + signal.SIGINT, 128 + signal.SIGTERM}


def test_every_test_the_fault_table_names_exists():
    table = section(COMMAND_PAGE, 'Never lose a run')
    named = 0
    for row in re.findall(r'^\|.*\|$', table, re.MULTILINE)[2:]:
        module = None
        for name in re.findall(r'`([\w.]+(?:::\w+)?)`', row.split('|')[-2]):
            if '::' in name:
                module, name = name.split('::')
            if not name.startswith('test_'):
                continue
            source = (ROOT / 'tests' / module).read_text(encoding='utf-8')
            assert f'def {name}(' in source, f'{module}::{name}'
            named += 1
    assert named >= 15


@pytest.mark.parametrize('page', ['README.md', *sorted(
    str(p.relative_to(ROOT)) for p in (ROOT / 'docs').glob('*.md'))])
def test_every_link_between_the_pages_leads_to_a_file(page):
    path = ROOT / page
    for target in re.findall(r'\]\(([^)#\s]+)(?:#[^)]*)?\)', path.read_text(encoding='utf-8')):
        if re.match(r'[a-z]+:', target):  # https:, mailto:
            continue
        assert (path.parent / target).exists(), f'{page}: {target}'


def test_first_two_lines_are_the_install_commands():
    block = re.search(r'```\n(.*?)```', README, re.DOTALL).group(1).splitlines()
    assert block[0].endswith('examples/train_dcgan.py') and 'pip install' in block[0]
    assert block[1].endswith('pytest') and "'.[test]'" in block[1]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / '.ci' / 'run').read_text(encoding='utf-8')
    pattern = re.search(r"grep -m1 -E '(.*?)' README.md", ci).group(1)
    line = next(line for line in README.splitlines() if re.search(pattern, line))  # grep -m1
    assert line == re.search(r'```\n(.*?)```', README, re.DOTALL).group(1).splitlines()[1]
    assert os.path.basename(line.split()[-1]) == 'pytest'
