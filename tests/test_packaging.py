"""The package as users install it: an sdist that holds what a wheel needs, a wheel built from it.

Issue 25.6: there was no MANIFEST.in, so the sdist lacked the start-up hook
``gan_trainer_compat.pth`` that setup.py's ``build_py`` copies into every
wheel, and a wheel built from the unpacked sdist failed. CI installs such a
wheel into a fresh environment outside the checkout and trains with it
(``.ci/run``); this test builds both here, without the network
(``--no-isolation``: this environment's setuptools and wheel).
"""

import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytest.importorskip('build')
pytest.importorskip('wheel')


def _build(what, source, out):
    proc = subprocess.run([sys.executable, '-m', 'build', f'--{what}', '--no-isolation',
                           '--outdir', str(out), str(source)], capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [built] = out.glob('*.tar.gz' if what == 'sdist' else '*.whl')
    return built


def _clean_copy(dest):
    """The checkout's files as a fresh clone has them: no egg-info of an earlier build.

    (setuptools reads an existing ``*.egg-info/SOURCES.txt`` into the sdist,
    which would hide a file MANIFEST.in forgets.)
    """
    listed = subprocess.run(['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'],
                            cwd=REPO, capture_output=True, check=False)
    if listed.returncode != 0:  # not a git checkout: an unpacked sdist, say
        shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(
            '*.egg-info', 'build', 'dist', '.venv*', '__pycache__'))
        return dest
    for name in filter(None, listed.stdout.decode().split('\0')):
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    return dest


@pytest.mark.slow
@pytest.mark.process
def test_the_sdist_builds_a_wheel_that_holds_the_start_up_hook_and_the_data(tmp_path):
    sdist = _build('sdist', _clean_copy(tmp_path / 'checkout'), tmp_path / 'sdist')
    with tarfile.open(sdist) as archive:
        names = {name.split('/', 1)[1] for name in archive.getnames() if '/' in name}
        archive.extractall(tmp_path / 'unpacked', filter='data')
    for needed in ('gan_trainer_compat.pth', 'gan_trainer_compat.py', 'constraints.txt',
                   'LICENSE', 'README.md', 'gan_trainer/data/digits.npz',
                   'gan_trainer/data/NOTICE.md', 'gan_trainer/metrics/digits_classifier.npz'):
        assert needed in names, f'the sdist lacks {needed}'
    [root] = (tmp_path / 'unpacked').iterdir()
    wheel = _build('wheel', root, tmp_path / 'wheel')
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        [metadata] = [n for n in names if n.endswith('.dist-info/METADATA')]
        meta = archive.read(metadata).decode()
    # The hook sits at the top of site-packages, where Python reads .pth files.
    for needed in ('gan_trainer_compat.pth', 'gan_trainer_compat.py',
                   'gan_trainer/data/digits.npz', 'gan_trainer/data/NOTICE.md',
                   'gan_trainer/metrics/digits_classifier.npz', 'gan_trainer/cli/__init__.py'):
        assert needed in names, f'the wheel lacks {needed}'
    assert any(n.endswith('.dist-info/LICENSE') for n in names)
    assert 'License: MIT' in meta.splitlines()
    assert 'License-File: gan_trainer/data/NOTICE.md' in meta.splitlines()


def test_the_lowest_numpy_named_is_the_one_ci_tests():
    setup = (REPO / 'setup.py').read_text()
    [floor] = re.findall(r"'numpy>=([0-9.]+)'", setup)
    ci = (REPO / '.ci' / 'run').read_text()
    tested = re.findall(r"'numpy==([0-9.]+)\.\*'", ci)
    assert floor in tested, f'setup.py names numpy>={floor}; CI tests {tested}'
