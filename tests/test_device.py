"""gan_trainer.device without a GPU: the TF32 switches and the line --gpu prints."""

import os
import sys
import types

import chainer
import numpy
import pytest

from gan_trainer import device
from gan_trainer.device import DeviceError, configure_tf32, describe, tf32_wanted

TF32_VARS = ('GAN_TRAINER_TF32', 'CUPY_TF32', 'NVIDIA_TF32_OVERRIDE')


@pytest.fixture
def env(monkeypatch):
    """A clean slate of the three variables, and CuPy's compute-type setter recorded."""
    for name in TF32_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(device, '_SET_OVERRIDE', False)
    calls = []
    linalg = types.SimpleNamespace(COMPUTE_TYPE_TF32='tf32', COMPUTE_TYPE_DEFAULT='default',
                                   set_compute_type=lambda dtype, kind: calls.append(kind))
    core = types.ModuleType('cupy._core')
    core._routines_linalg = linalg
    monkeypatch.setitem(sys.modules, 'cupy', types.ModuleType('cupy'))
    monkeypatch.setitem(sys.modules, 'cupy._core', core)
    monkeypatch.setitem(sys.modules, 'cupy._core._routines_linalg', linalg)
    return calls


def state():
    return {name: os.environ.get(name) for name in TF32_VARS[1:]}


def test_tf32_is_on_by_default(env):
    assert configure_tf32() is True
    assert state() == {'CUPY_TF32': '1', 'NVIDIA_TF32_OVERRIDE': None}
    assert env == ['tf32']


@pytest.mark.parametrize('how', ['argument', 'variable'])
def test_tf32_off_sets_cupys_and_nvidias_switches(env, monkeypatch, how):
    if how == 'argument':
        on = configure_tf32(False)
    else:
        monkeypatch.setenv('GAN_TRAINER_TF32', '0')
        on = configure_tf32()
    assert on is False
    assert state() == {'CUPY_TF32': '0', 'NVIDIA_TF32_OVERRIDE': '0'}
    assert env == ['default']


def test_off_then_on_takes_back_only_its_own_override(env, monkeypatch):
    monkeypatch.setattr(device, '_SET_OVERRIDE', False)
    configure_tf32(False)
    assert configure_tf32(True) is True
    assert state() == {'CUPY_TF32': '1', 'NVIDIA_TF32_OVERRIDE': None}
    monkeypatch.setenv('NVIDIA_TF32_OVERRIDE', '0')  # yours
    configure_tf32(False)
    configure_tf32(True)
    assert os.environ['NVIDIA_TF32_OVERRIDE'] == '0'


def test_a_cupy_tf32_of_your_own_is_kept_unless_you_choose(env, monkeypatch):
    monkeypatch.setenv('CUPY_TF32', '0')
    assert configure_tf32() is False  # yours, by default
    assert os.environ['NVIDIA_TF32_OVERRIDE'] == '0'
    assert configure_tf32(True) is True  # an explicit choice wins
    assert os.environ['CUPY_TF32'] == '1'


def test_a_bad_tf32_variable_is_one_line(env, monkeypatch):
    monkeypatch.setenv('GAN_TRAINER_TF32', 'yes')
    with pytest.raises(DeviceError, match=r"^GAN_TRAINER_TF32 must be 0 or 1, got 'yes'$"):
        tf32_wanted()
    # The CPU never reads it.
    assert device.get_device(-1).xp is numpy


FACTS = {'name': 'NVIDIA H200', 'capability': '90', 'cupy_version': '13.6.0',
         'tf32': True, 'dtype': numpy.dtype(numpy.float32)}


@pytest.mark.parametrize('changes, line', [
    ({'cudnn_version': 8907, 'cudnn_status': 'cuDNN from nvidia-cudnn-cu12 8.9.7.29'},
     ('--gpu 0: NVIDIA H200 (compute capability 9.0), CuPy 13.6.0, '
     'cuDNN 8.9.7 (nvidia-cudnn-cu12 8.9.7.29), TF32 on, dtype float32')),
    ({'cudnn_version': 8600, 'cudnn_status': None, 'tf32': False},
     ('--gpu 0: NVIDIA H200 (compute capability 9.0), CuPy 13.6.0, cuDNN 8.6.0, TF32 off, '
     'dtype float32')),
    ({'cudnn_version': None, 'cudnn_status': 'CuPy 14 has no cuDNN (CuPy 14 removed it)',
      'cupy_version': '14.2.0', 'dtype': chainer.mixed16},
     ('--gpu 0: NVIDIA H200 (compute capability 9.0), CuPy 14.2.0, no cuDNN: CuPy 14 has no '
     "cuDNN (CuPy 14 removed it); Chainer runs its own, slower convolutions, TF32 on, "
     'dtype mixed16')),
    ({'cudnn_version': None, 'cudnn_status': None, 'capability': '75', 'name': 'Tesla T4'},
     ('--gpu 0: Tesla T4 (compute capability 7.5), CuPy 13.6.0, no cuDNN: CuPy found no '
     'cuDNN; Chainer runs its own, slower convolutions, TF32 not available, dtype float32')),
], ids=['wheel-cudnn', 'system-cudnn-tf32-off', 'cupy-14-mixed16', 'turing-none'])
def test_the_gpu_line_says_which_path(changes, line):
    assert describe(0, **{**FACTS, **changes}) == line
