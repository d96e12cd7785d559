"""Chainer 7.8.1 on today's stacks: the fixes of gan_trainer_compat."""

import os
import shutil
import subprocess
import sys

import numpy
import pytest

import gan_trainer_compat

# What differs between CI's stacks (Python, NumPy, setuptools) is what these
# fixes are for: every stack runs them, fresh processes included.
pytestmark = pytest.mark.every_stack


def run_python(code):
    """Runs ``code`` in a fresh interpreter (site hooks active) and returns stdout."""
    proc = subprocess.run([sys.executable, '-c', code], check=False, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_chainer_imports_first_in_a_fresh_process():
    # Outside projects import chainer before gan_trainer: the .pth hook must
    # already have made that import work.
    out = run_python(
        'import chainer, numpy\n'
        'import chainer.functions as F\n'
        'x = numpy.ones((1, 1, 2, 2), numpy.float32)\n'
        'print(chainer.__version__, F.resize_images(x, (4, 4)).shape)\n'
        'import gan_trainer\n'
        'print(gan_trainer.GANUpdater.__name__)')
    assert out.split() == ['7.8.1', '(1,', '1,', '4,', '4)', 'GANUpdater']


def test_gan_trainer_imports_first_in_a_fresh_process():
    out = run_python('import gan_trainer, chainer\nprint(chainer.__version__)')
    assert out.strip() == '7.8.1'


def test_resize_images_bilinear_matches_hand_computed():
    import chainer.functions as F

    x = numpy.array([[[[0, 1], [2, 3]]]], numpy.float32)
    y = F.resize_images(x, (3, 3), align_corners=True).array
    # align_corners=True samples at 0, 0.5, 1 along each axis: bilinear
    # interpolation of f(r, c) = 2r + c.
    expected = numpy.array([[0, 0.5, 1], [1, 1.5, 2], [2, 2.5, 3]], numpy.float32)
    numpy.testing.assert_allclose(y[0, 0], expected, atol=1e-6)


def test_resize_images_nearest_and_backward():
    import chainer
    import chainer.functions as F

    x = chainer.Variable(numpy.arange(16, dtype=numpy.float32).reshape(1, 1, 4, 4))
    y = F.resize_images(x, (2, 2), mode='nearest')
    numpy.testing.assert_array_equal(y.array[0, 0], [[0, 2], [8, 10]])
    F.sum(F.resize_images(x, (8, 8))).backward()
    # Upsampling by 2 without align_corners spreads each output over the
    # input with weights summing to 64/16 = 4 per input pixel on average.
    assert x.grad.sum() == pytest.approx(64.0)


def test_as_strided_uses_restored_sctypes():
    import chainer.functions as F

    x = numpy.arange(6, dtype=numpy.float32)
    # Strides in elements: a sliding window of width 3 over x.
    y = F.as_strided(x, (2, 3), (1, 1))
    numpy.testing.assert_array_equal(y.array, [[0, 1, 2], [1, 2, 3]])
    assert numpy.int64 in numpy.sctypes['int']


def test_numpy_distutils_stub_is_removed_after_chainer_import():
    out = run_python(
        'import sys, chainer, numpy\n'
        'print("numpy.distutils" in sys.modules, "distutils" in vars(numpy))')
    assert out.split() == ['False', 'False']


def test_numpy_float_alias_is_not_put_back_globally():
    import chainer.functions  # noqa: F401

    if numpy.lib.NumpyVersion(numpy.__version__) >= '1.24.0':
        assert 'float' not in vars(numpy)


def test_install_is_idempotent_and_leaves_one_finder():
    gan_trainer_compat.install()
    gan_trainer_compat.install()
    finders = [f for f in sys.meta_path if isinstance(f, gan_trainer_compat._ChainerFinder)]
    assert len(finders) <= 1


def test_pkg_resources_stand_in_answers_installed_or_not():
    assert gan_trainer_compat._project_name('cupy>=7.7.0,<8.0.0') == 'cupy'
    assert gan_trainer_compat._require('numpy>=1.0')[0].version == numpy.__version__
    with pytest.raises(gan_trainer_compat._DistributionNotFound):
        gan_trainer_compat._require('no-such-package-gan-trainer>=1')


def test_chainer_runs_with_the_pkg_resources_stand_in():
    # Python 3.12+ venvs and setuptools >= 81 have no pkg_resources.
    out = run_python(
        'import gan_trainer_compat as c\n'
        'c._stub_pkg_resources(force=True)\n'
        'import chainer, pkg_resources, chainer.links as L, numpy\n'
        'print(pkg_resources.__doc__.split()[0], L.Linear(3, 2)(numpy.ones((1, 3), numpy.float32)).shape)')
    assert out.split() == ['Minimal', '(1,', '2)']


def test_onnx_chainer_imports_with_the_onnx_mapping_stand_in():
    # onnx >= 1.19 has no onnx.mapping; without the stand-in onnx_chainer
    # imports, but reports "ONNX is not installed" on export.
    pytest.importorskip('onnx')
    out = run_python(
        'import sys, numpy, onnx, onnx_chainer\n'
        'from onnx import TensorProto as T\n'
        'm = onnx.mapping\n'
        "print(sys.modules['onnx_chainer.export']._available,\n"
        "      m.NP_TYPE_TO_TENSOR_TYPE[numpy.dtype('float32')] == T.FLOAT,\n"
        "      m.NP_TYPE_TO_TENSOR_TYPE[numpy.dtype('int32')] == T.INT32,\n"
        "      m.STORAGE_TENSOR_TYPE_TO_FIELD[T.INT64])"
    )
    assert out.split() == ['True', 'True', 'True', 'int64_data']


def test_onnx_mapping_stand_in_matches_onnx_helper():
    onnx = pytest.importorskip('onnx')
    import onnx_chainer  # noqa: F401  (applies the fix)

    table = onnx.mapping.NP_TYPE_TO_TENSOR_TYPE
    for dtype in ('bool', 'int8', 'uint8', 'int64', 'float16', 'float32', 'float64'):
        assert table[numpy.dtype(dtype)] == onnx.helper.np_dtype_to_tensor_dtype(
            numpy.dtype(dtype)
        )


CUDNN_ADVICE = ('cuDNN is not enabled.\nPlease reinstall CuPy after you install cudnn\n'
                '(see https://docs-cupy.chainer.org/en/stable/install.html#install-cudnn).')


def fake_cupy(monkeypatch, installed):
    """Package metadata that reports the distributions in ``installed`` (name -> version)."""
    import importlib.metadata
    import types

    def distribution(name):
        if name in installed:
            return types.SimpleNamespace(version=installed[name], locate_file=lambda p: '/x')
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, 'distribution', distribution)


@pytest.mark.parametrize('installed, major', [
    ({}, None),
    ({'cupy-cuda13x': '14.2.0'}, 14),
    ({'cupy-cuda12x': '13.6.0'}, 13),
    ({'cupy': '15.0.0rc1'}, 15),
], ids=['none', 'cuda13x-14', 'cuda12x-13', 'source-15'])
def test_installed_cupy_major_reads_package_metadata(monkeypatch, installed, major):
    fake_cupy(monkeypatch, installed)
    assert gan_trainer_compat.installed_cupy_major() == major


@pytest.mark.parametrize('version, silenced', [
    ('14.2.0', True), ('13.6.0', True), ('12.3.0', False)])
def test_chainers_cudnn_advice_is_silenced_from_cupy_13_on(monkeypatch, version, silenced):
    import warnings

    fake_cupy(monkeypatch, {'cupy-cuda12x': version})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        gan_trainer_compat._ignore_cudnn_advice()
        # As Chainer 7.8.1 warns it, from chainer/backends/cuda.py.
        warnings.warn_explicit(CUDNN_ADVICE, UserWarning, 'cuda.py', 154,
                               module='chainer.backends.cuda')
        # Anything else, and the same words from elsewhere, still show.
        warnings.warn_explicit('another warning', UserWarning, 'cuda.py', 160,
                               module='chainer.backends.cuda')
        warnings.warn_explicit(CUDNN_ADVICE, UserWarning, 'mine.py', 1, module='mine')
    messages = [(str(w.message), w.filename) for w in caught]
    assert ((CUDNN_ADVICE, 'cuda.py') not in messages) is silenced
    assert ('another warning', 'cuda.py') in messages
    assert (CUDNN_ADVICE, 'mine.py') in messages


# ------------------------------------------------- fix 7: CUDA 12 wheels


def fake_site(root, distributions):
    """A site-packages folder with the dist-info (and files) of fake distributions.

    Args:
        root: Folder to fill.
        distributions: ``{name: (version, {path: content})}``; ``content`` is
            bytes, or ``('lib', soname, symbol, value)`` for a real shared
            library (compiled here) whose ``int symbol(void)`` returns ``value``.
    """
    for name, (version, files) in distributions.items():
        info = root / f'{name.replace("-", "_")}-{version}.dist-info'
        info.mkdir(parents=True)
        (info / 'METADATA').write_text(
            f'Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n')
        (info / 'RECORD').write_text(''.join(f'{path},,\n' for path in files))
        for path, content in files.items():
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                _, soname, symbol, value = content
                compile_library(target, soname, symbol, value)
    return root


def compile_library(target, soname, symbol, value):
    gcc = shutil.which('gcc') or shutil.which('cc')
    if gcc is None:
        pytest.skip('needs a C compiler to build a stand-in shared library')
    source = target.with_suffix('.c')
    source.write_text(f'int {symbol}(void) {{ return {value}; }}\n')
    subprocess.run([gcc, '-shared', '-fPIC', f'-Wl,-soname,{soname}', '-o', str(target),
                    str(source)], check=True, capture_output=True)


CUPY13 = {'cupy-cuda12x': ('13.6.0', {})}
CUDNN8 = {'nvidia-cudnn-cu12': ('8.9.7.29', {
    'nvidia/cudnn/lib/libcudnn.so.8': ('lib', 'libcudnn.so.8', 'cudnnGetVersion', 8907)})}
CUBLAS = {'nvidia-cublas-cu12': ('12.1.3.1', {
    'nvidia/cublas/lib/libcublas.so.12': ('lib', 'libcublas.so.12', 'fake_cublas', 12)})}

PRELOAD_AND_FIND_BY_SONAME = '''
import ctypes, sys
import gan_trainer_compat as c
def by_name(soname, symbol):
    try:
        return getattr(ctypes.CDLL(soname), symbol)()
    except OSError:
        return None
print(by_name('libcudnn.so.8', 'cudnnGetVersion'))
print(c.preload_cuda_wheels())
print(by_name('libcudnn.so.8', 'cudnnGetVersion'), by_name('libcublas.so.12', 'fake_cublas'))
print(sorted(c.PRELOADED))
'''


def test_cupy_13_finds_the_wheels_libraries_by_soname_once_they_are_preloaded(tmp_path):
    # What CuPy 13's cudnn module does: the loader resolves its
    # NEEDED libcudnn.so.8 by soname. Before the preload there is none.
    site = fake_site(tmp_path, {**CUPY13, **CUDNN8, **CUBLAS})
    proc = subprocess.run(
        [sys.executable, '-c', PRELOAD_AND_FIND_BY_SONAME], capture_output=True, text=True,
        timeout=60, check=False, env={**os.environ, 'PYTHONPATH': str(site)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        'None',
        'cuDNN from nvidia-cudnn-cu12 8.9.7.29',
        '8907 12',
        "['libcublas.so.12', 'libcudnn.so.8']",
    ]


@pytest.fixture
def fresh_preload(monkeypatch):
    """Fix 7's state as before its first run, restored afterwards."""
    monkeypatch.setattr(gan_trainer_compat, 'CUDNN_STATUS', None)
    monkeypatch.setattr(gan_trainer_compat, 'PRELOADED', {})
    monkeypatch.setattr(gan_trainer_compat, '_HANDLES', [])


@pytest.mark.parametrize('distributions, status', [
    (CUPY13, ("nvidia-cudnn-cu12 is not installed: no cuDNN unless the system has cuDNN 8 "
             "(pip install 'nvidia-cudnn-cu12==8.9.7.29', or 'gan_trainer[gpu]')")),
    ({**CUPY13, 'nvidia-cudnn-cu12': ('9.1.0.70', {'nvidia/cudnn/lib/libcudnn.so.9': b''})},
     ('nvidia-cudnn-cu12 9.1.0.70 is installed, but CuPy 13 needs cuDNN 8: no cuDNN '
     "(pip install 'nvidia-cudnn-cu12==8.9.7.29')")),
    ({**CUPY13, 'nvidia-cudnn-cu12': ('8.9.7.29', {})},
     'nvidia-cudnn-cu12 8.9.7.29 holds no libcudnn.so.8: no cuDNN'),
    ({'cupy-cuda13x': ('14.2.0', {}), **CUDNN8}, 'CuPy 14 has no cuDNN (CuPy 14 removed it)'),
    ({'cupy-cuda12x': ('12.3.0', {}), **CUDNN8},
     ('cupy-cuda12x 12.3.0: no cuDNN wheel is loaded for it (only for cupy-cuda12x 13, '
      'built for cuDNN 8); cuDNN only if CuPy finds one itself')),
    ({'cupy-cuda13x': ('13.6.0', {}), **CUDNN8},
     ('cupy-cuda13x 13.6.0: no cuDNN wheel is loaded for it (only for cupy-cuda12x 13, '
      'built for cuDNN 8); cuDNN only if CuPy finds one itself')),
    ({}, None),
], ids=['no-wheel', 'cudnn-9', 'no-library', 'cupy-14', 'cupy-12', 'cuda13x-13', 'no-cupy'])
def test_each_fallback_is_one_line_and_loads_nothing(
        tmp_path, monkeypatch, fresh_preload, distributions, status):
    monkeypatch.syspath_prepend(str(fake_site(tmp_path, distributions)))
    assert gan_trainer_compat.preload_cuda_wheels() == status
    assert gan_trainer_compat.CUDNN_STATUS == status
    assert gan_trainer_compat.PRELOADED == {}


def test_a_library_that_fails_to_load_is_named_in_one_line(tmp_path, monkeypatch, fresh_preload):
    broken = {'nvidia-cudnn-cu12': ('8.9.7.29', {
        'nvidia/cudnn/lib/libcudnn.so.8': b'not a shared library'})}
    site = fake_site(tmp_path, {**CUPY13, **broken})
    monkeypatch.syspath_prepend(str(site))
    status = gan_trainer_compat.preload_cuda_wheels()
    path = site / 'nvidia/cudnn/lib/libcudnn.so.8'
    assert status.startswith(f'could not load {path}: ')
    assert status.endswith(': no cuDNN') and '\n' not in status
    assert gan_trainer_compat.PRELOADED == {}
    # Idempotent: the second call neither loads nor changes anything.
    assert gan_trainer_compat.preload_cuda_wheels() == status


def test_a_first_import_cupy_preloads_too(tmp_path):
    # A program that imports CuPy before Chainer: CuPy 13's first import
    # links libcublas.so.12, which only the wheel holds.
    fake_cupy_package = {'cupy-cuda12x': ('13.6.0', {
        'cupy/__init__.py': b"import ctypes\nVALUE = ctypes.CDLL('libcublas.so.12').fake_cublas()\n"})}
    site = fake_site(tmp_path, {**fake_cupy_package, **CUBLAS})
    proc = subprocess.run(
        [sys.executable, '-c', 'import cupy; print(cupy.VALUE)'], capture_output=True,
        text=True, timeout=60, check=False, env={**os.environ, 'PYTHONPATH': str(site)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == '12'


def test_the_cupy_earliest_on_the_path_is_the_one_reported(tmp_path, monkeypatch):
    # CuPy 13 in a PYTHONPATH folder over the system's CuPy 14: import cupy
    # takes the first, and so must fix 7.
    system = fake_site(tmp_path / 'system', {'cupy-cuda13x': ('14.2.0', {})})
    first = fake_site(tmp_path / 'first', CUPY13)
    monkeypatch.syspath_prepend(str(system))
    assert gan_trainer_compat.installed_cupy() == ('cupy-cuda13x', '14.2.0', 14)
    monkeypatch.syspath_prepend(str(first))
    assert gan_trainer_compat.installed_cupy() == ('cupy-cuda12x', '13.6.0', 13)


REAL_SITE = os.environ.get('GAN_TRAINER_CUDA12_SITE')


@pytest.mark.skipif(not REAL_SITE, reason='set GAN_TRAINER_CUDA12_SITE to a folder holding '
                    "the gpu extra's wheels (pip install --target DIR ...), about 4 GB")
def test_the_real_cupy_13_wheels_import_and_enable_cudnn_without_a_gpu():
    # No GPU is needed to load the libraries: CuPy 13 imports, and Chainer
    # finds cuDNN 8.9.7 through fix 7; without the fix CuPy cannot even
    # import (libcublas.so.12 is only in the wheel).
    code = ('import sys, warnings\n'
            'import gan_trainer_compat as c\n'
            'if sys.argv[1] == "off": c.preload_cuda_wheels = lambda: None\n'
            'import chainer\n'
            'from chainer.backends import cuda\n'
            'print(cuda.available, cuda.cudnn_enabled,\n'
            '      cuda.libcudnn.getVersion() if cuda.cudnn_enabled else None)\n')
    results = {}
    for mode in ('on', 'off'):
        proc = subprocess.run([sys.executable, '-W', 'error::UserWarning', '-c', code, mode],
                              capture_output=True, text=True, timeout=120, check=False,
                              env={**os.environ, 'PYTHONPATH': REAL_SITE})
        results[mode] = proc.stdout.split() if proc.returncode == 0 else proc.stderr
    assert results == {'on': ['True', 'True', '8907'], 'off': ['False', 'False', 'None']}
