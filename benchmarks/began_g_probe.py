"""Issue 28, part 2: why does the ``began`` preset's G draw one grey square?

Builds the preset's run (:func:`gan_trainer.run.build_trainer`, no
extensions), calls its updater ``--steps`` times and every ``--interval``
steps prints, for 64 fixed uniform z: G's output spread over z (the
pixel-wise standard deviation across the 64 images, averaged), its mean, the
fakes' reconstruction error ``L_fake``, the mean of D's reconstruction of
the fakes, G's gradient norm, ``k_t``, and the direction in which G's loss
pushes the fake pixels (the share of pixels whose gradient step makes them
darker), the held-out digits' reconstruction error ``L_real`` (64 of them),
the share of G's first-layer units that are dead (at most 0 for all
64 z) and of the fake pixels in tanh's tail (beyond 0.99). Two levers that the run's flags do not have can be tried:
``--gen_he GAIN`` redraws G's weights from N(0, GAIN / fan_in) (He et al.
2015 for GAIN 2; fan_in counts the inputs one output reads: a stride-2 4x4
transposed convolution reads a 2x2 patch of each input channel) and
``--lambda_k`` sets BEGAN's ``k_t`` rate (the paper's 0.001), ``--k0`` its
starting value (the paper's 0), and with the paper's nets (``-- --arch
began``, :mod:`gan_trainer.nets.began`) ``--gen_tanh`` / ``--dis_tanh`` 0
or 1 drop or add the tanh on G's output and D's reconstruction. ``--time
FLAGS FLAGS ...`` times instead ``updater.update()`` of each run (the
quoted flags after the preset's), alternating in each of ``--repeats``
rounds of ``--steps`` iterations (run it under the CPU lock). Other
arguments go to the run's flags::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/began_g_probe.py --steps 300
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/began_g_probe.py --gen_he 2 -- --gen_norm batch
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/began_g_probe.py -- --arch began
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/began_g_probe.py --steps 3 --time '' '--arch began'
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import chainer
import chainer.functions as F
import numpy as np

from gan_trainer.cli.train import parse_config
from gan_trainer.datasets import get_digits
from gan_trainer.image import save_grid
from gan_trainer.run.builder import build_trainer


def redraw_he(gen: chainer.Link, gain: float, seed: int = 0) -> None:
    """G's weights from N(0, gain / fan_in), fan_in as the module docstring says."""
    rng = np.random.RandomState(seed)
    for name, param in sorted(gen.namedparams()):
        if not name.endswith('/W'):
            continue
        w = param.array
        if w.ndim == 2:  # Linear: (out, in)
            fan_in = w.shape[1]
        else:  # Deconvolution2D: (in, out, kh, kw); stride 2 for 4x4, 1 for 3x3
            stride = 2 if w.shape[2] == 4 else 1
            fan_in = w.shape[0] * (w.shape[2] // stride) * (w.shape[3] // stride)
        w[...] = rng.normal(0, np.sqrt(gain / fan_in), w.shape)


def probe(gen, dis, z, real) -> dict[str, float]:
    """G's spread over z, D's view of the fakes and of ``real``, and G's gradients, for the fixed ``z``."""
    with chainer.using_config('train', False), chainer.no_backprop_mode():
        l_real = float(dis(real).array.mean())
        hidden = gen.project(z).array  # G's first layer, before its ReLU
        x = gen(z).array
        rec = dis.reconstruct(x).array
    gen.cleargrads()
    loss = F.mean(dis(gen(z)))
    loss.backward()
    grad_g = float(np.sqrt(sum(float((p.grad ** 2).sum()) for p in gen.params()
                               if p.grad is not None)))
    xv = chainer.Variable(x)
    F.mean(dis(xv)).backward()
    gen.cleargrads()
    dis.cleargrads()
    return {'spread_z': float(x.std(axis=0).mean()), 'mean': float(x.mean()),
            'dead': float((hidden.max(axis=0) <= 0).mean()),
            'saturated': float((np.abs(x) > 0.99).mean()),
            'L_fake': float(loss.array), 'L_real': l_real, 'rec_mean': float(rec.mean()), 'grad_G': grad_g,
            'darker': float((xv.grad > 0).mean())}


def build(flags, out: str, steps: int):
    """The ``began`` preset's updater with ``flags`` after it, built as a run builds it."""
    config = parse_config(['--preset', 'began', '--seed', '0', '--out', out,
                           '--iteration', str(steps), *flags])
    return build_trainer(config, log=None).updater


def time_runs(variants: list[str], steps: int, repeats: int) -> None:
    """Median seconds per ``update()`` of each variant, alternating in each round."""
    with tempfile.TemporaryDirectory() as tmp:
        updaters = [build(v.split(), f'{tmp}/{i}', steps) for i, v in enumerate(variants)]
        for updater in updaters:
            updater.update()  # warm-up
        times = [[] for _ in variants]
        for _ in range(repeats):
            for updater, each in zip(updaters, times):
                start = time.perf_counter()
                for _ in range(steps):
                    updater.update()
                each.append((time.perf_counter() - start) / steps)
    for variant, each in zip(variants, times):
        print(f'{variant or "(the preset)":30} {statistics.median(each):.3f} s/iteration '
              f'({min(each):.3f} to {max(each):.3f})')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--steps', type=int, default=300)
    parser.add_argument('--interval', type=int, default=50)
    parser.add_argument('--gen_he', type=float, default=None, metavar='GAIN')
    parser.add_argument('--lambda_k', type=float, default=None)
    parser.add_argument('--k0', type=float, default=None)
    parser.add_argument('--gen_tanh', type=int, choices=(0, 1), default=None)
    parser.add_argument('--dis_tanh', type=int, choices=(0, 1), default=None)
    parser.add_argument('--time', nargs='+', metavar='FLAGS', default=None)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--png', help="where to save G's 64 images of the fixed z at the end")
    parser.add_argument('flags', nargs='*', help="the run's flags after --")
    args = parser.parse_args()
    if args.time:
        time_runs(args.time, args.steps, args.repeats)
        return
    with tempfile.TemporaryDirectory() as out:
        updater = build(args.flags, out, args.steps)
        gen, dis = updater.gen, updater.dis
        if args.gen_he is not None:
            redraw_he(gen, args.gen_he)
        if args.lambda_k is not None:
            updater.loss.state.lambda_k = args.lambda_k
        if args.k0 is not None:
            updater.loss.state.k = args.k0
        for net, tanh in ((gen, args.gen_tanh), (dis, args.dis_tanh)):
            if tanh is not None:
                net.decoder.tanh = bool(tanh)  # the paper's nets read it at each call
        z = np.random.RandomState(1).uniform(-1, 1, (64, gen.n_hidden)).astype(np.float32)
        digits = get_digits('test')
        real = np.stack([digits[i][0] for i in range(64)])
        print('step spread_z   mean  L_fake rec_mean   grad_G darker   k_t  dead   sat L_real')
        for step in range(args.steps + 1):
            if step:
                updater.update()
            if step % args.interval == 0:
                p = probe(gen, dis, z, real)
                print(f"{step:4d} {p['spread_z']:8.4f} {p['mean']:+.3f} {p['L_fake']:7.4f} "
                      f"{p['rec_mean']:+8.3f} {p['grad_G']:8.2e} {p['darker']:6.3f} "
                      f"{updater.loss.state.k:.4f} {p['dead']:.3f} {p['saturated']:.3f} "
                      f"{p['L_real']:.4f}", flush=True)
        if args.png:
            with chainer.using_config('train', False), chainer.no_backprop_mode():
                save_grid(np.clip(gen(z).array, -1, 1), args.png, 8, 8)


if __name__ == '__main__':
    main()
