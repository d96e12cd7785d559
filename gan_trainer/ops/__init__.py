"""Fast CPU building blocks: drop-ins for Chainer's conv, deconv, BN, LeakyReLU, ELU and pooling.

Chainer 7's NumPy path spends most of a DCGAN step outside its matrix
products (im2col padding copies, transposes around ``tensordot``, col2im
scatter-adds, LeakyReLU's and ELU's boolean masks). The functions here compute the
same values with one strided-view copy and one matrix product per
convolution, keeping feature maps channel-last in memory; see
:mod:`.conv`, :mod:`.normalization` and :mod:`.activation` for how.

* Functions: :func:`convolution_2d`, :func:`deconvolution_2d`,
  :func:`batch_normalization`, :func:`leaky_relu`, :func:`elu`, and 2x2 pooling
  (:func:`max_pooling_2x2`, :func:`average_pooling_2x2`); same arguments as
  Chainer's, same results (checked against Chainer's reference and by
  ``chainer.gradient_check`` in the tests).
* :func:`linear` (and the link :class:`Linear`): Chainer's linear layer
  as one node, with a backward pass that builds no nodes (:mod:`.linear`;
  its float32 products on oneDNN's threads, :mod:`.onednn_matmul`).
* Blocks: :func:`block` runs a layer, its batch normalization and its
  activation as one node (:mod:`.blocks`; :func:`conv_bn`,
  :func:`linear_bn` on arrays), with the values of the separate layers.
* Links: :class:`Convolution2D`, :class:`Deconvolution2D`,
  :class:`BatchNormalization`, :class:`Linear`; Chainer's links with a
  faster ``forward``, used by every network in :mod:`gan_trainer.nets`.
* :func:`frozen`: no weight gradients for a link inside a ``with`` block
  (the updater's G step freezes D with it).

The fast path is taken for NumPy float32/float64 arrays. On CuPy, batch
normalization has its own node (:mod:`.normalization`; Chainer's is
slow without cuDNN, which CuPy 14 dropped) and everything else goes to
Chainer's functions (and cuDNN where CuPy has it). Switch it off to compare or debug with
``chainer.using_config('gan_trainer_fast', False)``, or for a whole process
with the environment variable ``GAN_TRAINER_FAST=0``; the fused blocks alone
with ``gan_trainer_blocks`` / ``GAN_TRAINER_BLOCKS=0``, oneDNN alone with
``gan_trainer_onednn`` / ``GAN_TRAINER_ONEDNN=0``.
"""

from gan_trainer.ops._common import BLOCKS_KEY, CONFIG_KEY, ONEDNN_KEY, fast_enabled, use_fast
from gan_trainer.ops.activation import elu, leaky_relu
from gan_trainer.ops.adam import Adam
from gan_trainer.ops.blocks import conv_bn, linear_bn
from gan_trainer.ops.conv import convolution_2d, deconvolution_2d
from gan_trainer.ops.linear import Linear, linear
from gan_trainer.ops.links import (
    BatchNormalization,
    Convolution2D,
    Deconvolution2D,
    block,
    frozen,
)
from gan_trainer.ops.normalization import batch_normalization
from gan_trainer.ops.pooling import average_pooling_2x2, max_pooling_2x2

__all__ = [
    'BLOCKS_KEY',
    'CONFIG_KEY',
    'ONEDNN_KEY',
    'Adam',
    'BatchNormalization',
    'Convolution2D',
    'Deconvolution2D',
    'Linear',
    'average_pooling_2x2',
    'batch_normalization',
    'block',
    'conv_bn',
    'convolution_2d',
    'deconvolution_2d',
    'elu',
    'fast_enabled',
    'frozen',
    'leaky_relu',
    'linear',
    'linear_bn',
    'max_pooling_2x2',
    'use_fast',
]
