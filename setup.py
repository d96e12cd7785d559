"""Packaging for gan_trainer.

Chainer 7.8.1 is published as a source archive only and its build needs
``setuptools<70``; install with ``PIP_CONSTRAINT=constraints.txt`` (see
README.md). Besides the ``gan_trainer`` package this installs
``gan_trainer_compat`` and a ``gan_trainer_compat.pth`` start-up hook into
site-packages, so that ``import chainer`` works on NumPy 2 and Python 3.12+
even in programs that never import ``gan_trainer`` first.
"""

import os

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

HERE = os.path.dirname(os.path.abspath(__file__))
PTH = 'gan_trainer_compat.pth'


class BuildPyWithPth(build_py):
    """Copies the start-up hook next to the packages (wheel and editable)."""

    def run(self):
        super().run()
        self.copy_file(os.path.join(HERE, PTH), os.path.join(self.build_lib, PTH))

    def get_outputs(self, include_bytecode=True):
        return super().get_outputs(include_bytecode) + [
            os.path.join(self.build_lib, PTH)]

    def get_output_mapping(self):
        mapping = super().get_output_mapping()
        mapping[os.path.join(self.build_lib, PTH)] = os.path.join(HERE, PTH)
        return mapping


class EditableWheelWithPth(editable_wheel):
    """Adds the start-up hook to ``pip install -e .`` wheels too.

    setuptools' editable wheels hold only path hooks, not build_py outputs,
    so the ``.pth`` is written into the wheel next to the strategy's files.
    """

    def _select_strategy(self, *args, **kwargs):
        strategy = super()._select_strategy(*args, **kwargs)

        class WithPth:
            def __enter__(self):
                strategy.__enter__()
                return self

            def __exit__(self, *exc):
                return strategy.__exit__(*exc)

            def __call__(self, wheel, files, mapping):
                strategy(wheel, files, mapping)
                with open(os.path.join(HERE, PTH), encoding='utf-8') as f:
                    wheel.writestr(PTH, f.read().encode('utf-8'))

        return WithPth()


# CUDA 12 machines: CuPy 13.6, the last CuPy with cuDNN, which it needs in
# version 8, and the CUDA 12 libraries CuPy 13 links (its wheels bring none).
# gan_trainer_compat (fix 7) loads them from these wheels before CuPy is
# imported, so no CUDA toolkit or system cuDNN is needed; the major versions
# are the sonames CuPy 13 asks for (libcublas.so.12, libcurand.so.10, ...).
GPU_CUDA12 = [
    'cupy-cuda12x==13.6.*',
    'nvidia-cudnn-cu12==8.9.7.29',
    'nvidia-cublas-cu12==12.*',
    'nvidia-cuda-nvrtc-cu12==12.*',
    'nvidia-curand-cu12==10.*',
    'nvidia-cufft-cu12==11.*',
    'nvidia-cusolver-cu12==11.*',
    'nvidia-cusparse-cu12==12.*',
    'nvidia-nvjitlink-cu12==12.*',
    # CuPy 13 finds NCCL's wheel itself; without it, every `import chainer`
    # warns that NCCL could not be loaded (and --communicator pure_nccl needs it).
    'nvidia-nccl-cu12>=2.16.5,<3',
]
ONNX = ['onnx>=1.19', 'onnxruntime>=1.19']
TENSORBOARD = ['tensorboardX>=2.6']
DOCS = ['sphinx>=7', 'myst-parser>=3']
# Data-parallel training (gan_trainer.distributed, --communicator): mpi4py and
# MPICH's PyPI wheel, which brings its own mpiexec into the environment's bin.
# On a cluster, build mpi4py against the system MPI instead (README.md).
DIST = ['mpi4py>=4.1', 'mpich>=5.0']

with open(os.path.join(HERE, 'README.md'), encoding='utf-8') as f:
    long_description = f.read()

setup(
    name='gan_trainer',
    version='0.1.0',
    description='Train GANs with Chainer Trainer/Updater on CPU or GPU',
    long_description=long_description,
    long_description_content_type='text/markdown',
    python_requires='>=3.10',
    # The code's licence; the built-in digits keep their own (CC BY-SA 3.0,
    # gan_trainer/data/NOTICE.md), shipped beside them and named here too.
    license='MIT',
    license_files=['LICENSE', 'gan_trainer/data/NOTICE.md'],
    classifiers=[
        'License :: OSI Approved :: MIT License',
        'Programming Language :: Python :: 3',
        'Programming Language :: Python :: 3.10',
        'Programming Language :: Python :: 3.11',
        'Programming Language :: Python :: 3.12',
        'Programming Language :: Python :: 3.13',
        'Operating System :: POSIX :: Linux',
    ],
    packages=find_packages(include=['gan_trainer', 'gan_trainer.*']),
    py_modules=['gan_trainer_compat'],
    cmdclass={'build_py': BuildPyWithPth, 'editable_wheel': EditableWheelWithPth},
    install_requires=[
        'chainer==7.8.1',
        # The oldest NumPy CI runs the suite with (.ci/run, Python 3.10).
        'numpy>=1.26',
        'matplotlib>=3.5',
        'Pillow>=9.0',
        # oneDNN 3.2's CPU kernels (GNU OpenMP build, no Python code), which
        # gan_trainer.ops loads through ctypes. Wheels exist for x86-64 Linux
        # only; elsewhere (or if it fails to load) the NumPy functions run.
        "onednn-cpu-gomp==2023.2.0; platform_system == 'Linux' and platform_machine == 'x86_64'",
        # OpenBLAS's threads beside oneDNN's (gan_trainer.ops.threads).
        'threadpoolctl>=3.1',
    ],
    # The built-in digits (gan_trainer/data/digits.npz, 5,000 MNIST images)
    # with their notice, and the trained weights of the FID's digit classifier,
    # ship inside the package.
    package_data={'gan_trainer': ['data/*.npz', 'data/*.md'],
                  'gan_trainer.metrics': ['digits_classifier.npz']},
    entry_points={'console_scripts': ['gan-trainer = gan_trainer.cli:main']},
    extras_require={
        'gpu': GPU_CUDA12,
        # Machines with CUDA 13 (CuPy 14 with NumPy 2, run on an H100 here;
        # CuPy 13.6 with NumPy 1.26). Neither has cuDNN for CUDA 13: Chainer
        # uses its own GPU convolutions.
        'gpu-cuda13': ['cupy-cuda13x'],
        # onnx >= 1.19 has no onnx.mapping, which gan_trainer_compat stands in
        # for; onnxruntime >= 1.19 is the first built for NumPy 2.
        'onnx': ONNX,
        'tensorboard': TENSORBOARD,
        'docs': DOCS,
        'dist': DIST,
        # The test suite exercises every optional feature and builds the docs.
        # SciPy is the tests' reference for the FID's matrix square root; pandas
        # backs gan_trainer.logs.log_dataframe (optional for users); pytest-xdist
        # runs the suite in several processes (`pytest -n 2`, as CI does).
        # build and wheel: tests/test_packaging.py builds the sdist and, from
        # it, the wheel, as `python -m build` does.
        'test': ['pytest>=7', 'pytest-xdist>=3.5', 'ruff>=0.17,<0.18', 'scipy>=1.10',
                 'pandas>=1.5', 'build>=1.0', 'wheel>=0.40', *ONNX, *TENSORBOARD, *DOCS, *DIST],
    },
)
