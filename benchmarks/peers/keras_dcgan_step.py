#!/usr/bin/env python
"""The keras-dcgan peer's iterations from given weights, batches and z: Keras' half of ``step_check.py``.

Run by ``step_check.py`` with the TensorFlow venv's Python (see
``keras_dcgan.py`` for the venv)::

    /work/venv-tf/bin/python benchmarks/peers/keras_dcgan_step.py IN.npz OUT.npz

``IN.npz`` holds ``g_0 ... g_K`` and ``d_0 ... d_L`` (the arrays of
``g.get_weights()`` and ``d.get_weights()``, Keras' layout and order),
``real`` ``(T, B, 28, 28, 1)``, ``z_dis`` and ``z_gen`` ``(T, B, 100)``
and ``keep``, the iterations (from 1) after which to save the weights.
Without ``g_*`` and ``d_*`` but with ``seed``, the nets start from the
peer's own initial weights (``keras_dcgan.py --seed SEED``'s), which
``OUT.npz`` then holds as ``init_g_*`` and ``init_d_*``. ``OUT.npz`` gets
``d_loss`` and ``g_loss`` ``(T,)`` and, for each kept iteration ``i``,
``it{i}_g_*`` and ``it{i}_d_*``; with ``z_samples`` in ``IN.npz``,
``samples``: G's images of it after the last iteration, in inference mode,
``(N, 1, 28, 28)``. The iteration is :func:`keras_dcgan.train_step`, the
peer's own.
"""

from __future__ import annotations

import os
import sys

import numpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras_dcgan
import peer_io


def _arrays(f, prefix: str) -> list[numpy.ndarray]:
    n = sum(1 for k in f.files if k.startswith(prefix))
    return [f[f'{prefix}{i}'] for i in range(n)]


def main(argv=None) -> int:
    src, dst = (argv if argv is not None else sys.argv[1:])
    with numpy.load(src) as f:
        g_weights, d_weights = _arrays(f, 'g_'), _arrays(f, 'd_')
        seed = int(f['seed']) if 'seed' in f.files else None
        real, z_dis, z_gen = f['real'], f['z_dis'], f['z_gen']
        keep = {int(i) for i in f['keep']}
        z_samples = f['z_samples'] if 'z_samples' in f.files else None
    out = {'d_loss': [], 'g_loss': []}
    if g_weights:
        g, d, d_on_g = keras_dcgan.build()
        g.set_weights(g_weights)
        d.set_weights(d_weights)
    else:  # the peer's own initial weights, as keras_dcgan.py --seed SEED draws them
        keras_dcgan.keras.utils.set_random_seed(seed)
        g, d, d_on_g = keras_dcgan.build()
        for net, name in ((g, 'g'), (d, 'd')):
            for j, w in enumerate(net.get_weights()):
                out[f'init_{name}_{j}'] = w
    for i in range(len(real)):
        d_loss, g_loss = keras_dcgan.train_step(g, d, d_on_g, real[i], z_dis[i], z_gen[i],
                                                check=i == 0)
        out['d_loss'].append(d_loss)
        out['g_loss'].append(g_loss)
        if i + 1 in keep:
            for net, name in ((g, 'g'), (d, 'd')):
                for j, w in enumerate(net.get_weights()):
                    out[f'it{i + 1}_{name}_{j}'] = w
    if z_samples is not None:
        out['samples'] = peer_io.nchw(keras_dcgan.draw(g, z_samples))
    numpy.savez(dst, **out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
