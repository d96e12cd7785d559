#!/usr/bin/env python
"""Is ``--preset keras-dcgan``'s iteration the Keras original's? Same weights, batches and z in both.

    python3 -m venv /work/venv-tf && /work/venv-tf/bin/pip install tensorflow-cpu
    python benchmarks/peers/step_check.py --iterations 20
    python benchmarks/peers/step_check.py --flags='--dis_lr 5e-4'   # a variant of the preset
    python benchmarks/peers/step_check.py --iterations 600 --measure --streams peer

The preset's G and D are built as a run builds them (seed ``--seed``),
their weights copied into the Keras peer's nets (``keras_dcgan.py``:
kernels transposed, the Dense layers' units permuted between Chainer's
channel-first and Keras' channel-last reshapes), and both train for
``--iterations`` on the same real batches (the preset's own iterator on the
package's digits) and the same z for each D and G step. The Keras side is
``keras_dcgan_step.py``, run by ``--peer_python`` (the TensorFlow venv;
never a dependency of this package).

``--streams`` says whose random draws both sides get: the preset run's
(its nets' initial weights under ``--seed``, its iterator's batches, its
updater's z) or the peer's (``keras_dcgan.py --seed``'s Keras-initialised
weights, its shuffled batches, its z); ``--measure`` adds the package's
metric of both sides' samples after the last iteration (compare.py's
1,000 z), so a whole run of each can be compared on the same draws.

Prints, after the first and the last iteration, for every weight tensor:
how far the package's change of the tensor is from Keras' (the largest
absolute difference of the two changes over the largest absolute Keras
change), and the losses of the first iteration. float32 in both, other
kernels and summation orders: after one iteration a faithful port agrees
to about 1e-5 to 1e-3 of the change; a different step (another learning
rate, a missing BatchNorm term, a sign) shows up as a difference of the
order of the change itself. Over many iterations rounding grows, so the
first iteration is the test and the last shows the drift.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile

import numpy

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.dirname(HERE))

import chainer
import compare
import peer_io

from gan_trainer.cli.train import parse_config
from gan_trainer.run import build_trainer
from gan_trainer.sampling import draw_hidden, generate

#: Keras' weight names, in ``get_weights()`` order.
G_NAMES = ['fc/W', 'fc/b', 'project/W', 'project/b', 'bn/gamma', 'bn/beta', 'bn/mean',
           'bn/var', 'conv0/W', 'conv0/b', 'conv1/W', 'conv1/b']
D_NAMES = ['conv0/W', 'conv0/b', 'conv1/W', 'conv1/b', 'fc/W', 'fc/b', 'out/W', 'out/b']


def _channel_last(channels: int, side: int) -> numpy.ndarray:
    """Chainer's flat index for each of Keras' flat ``(side, side, channels)`` indices."""
    return numpy.arange(channels * side * side).reshape(channels, side, side) \
        .transpose(1, 2, 0).ravel()


def _conv(link) -> list[numpy.ndarray]:
    return [link.W.array.transpose(2, 3, 1, 0), link.b.array]


def keras_weights(gen, dis) -> tuple[list[numpy.ndarray], list[numpy.ndarray]]:
    """The preset's G and D as the arrays of the peer's ``get_weights()``."""
    pg = _channel_last(128, 7)
    bn = gen.bn0
    g = [gen.fc.W.array.T, gen.fc.b.array,
         gen.project.W.array[pg].T, gen.project.b.array[pg],
         bn.gamma.array[pg], bn.beta.array[pg], bn.avg_mean[pg], bn.avg_var[pg],
         *_conv(gen.convs[0]), *_conv(gen.convs[1])]
    pd = _channel_last(128, 5)
    d = [*_conv(dis.convs[0]), *_conv(dis.convs[1]),
         dis.fc.W.array[:, pd].T, dis.fc.b.array, dis.out.W.array.T, dis.out.b.array]
    # Copies: a bias or a one-row kernel is the parameter's own memory otherwise.
    return ([numpy.array(a, numpy.float32, order='C') for a in g],
            [numpy.array(a, numpy.float32, order='C') for a in d])


def build(seed: int, flags: str, out: str):
    """The preset's updater, as ``train_dcgan.py --preset keras-dcgan FLAGS`` builds it."""
    argv = ['--preset', 'keras-dcgan', '--seed', str(seed), '--out', out, '--no_progress',
            *shlex.split(flags)]
    return build_trainer(parse_config(argv), log=None).updater


def streams(updater, args) -> tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray]:
    """``(real, z_dis, z_gen)`` for ``--iterations``, as the preset's run or the peer draws them.

    The package's: the run's iterator and the updater's own random state,
    in the run's order (a D step's z, then the G step's). The peer's:
    ``keras_dcgan.py``'s, :func:`peer_io.keras_dcgan_draws` from
    ``RandomState(seed)``.
    """
    n, batchsize = args.iterations, updater.get_iterator('main').batch_size
    if args.streams == 'package':
        real = [chainer.backends.cuda.to_cpu(updater.next_real_batch()[0]) for _ in range(n)]
        z = [chainer.backends.cuda.to_cpu(updater.make_hidden(batchsize))
             for _ in range(2 * n)]
        return numpy.stack(real), numpy.stack(z[0::2]), numpy.stack(z[1::2])
    from gan_trainer.datasets import get_digits
    from gan_trainer.metrics.quality import real_images

    draws = peer_io.keras_dcgan_draws(real_images(get_digits('train')), batchsize,
                                      updater.n_hidden, numpy.random.RandomState(args.seed))
    z_dis, real, z_gen = zip(*(next(draws) for _ in range(n)))
    return numpy.stack(real), numpy.stack(z_dis), numpy.stack(z_gen)


def load_keras_weights(gen, dis, g, d) -> None:
    """The inverse of :func:`keras_weights`: the peer's arrays into the preset's G and D."""
    pg, pd = _channel_last(128, 7), _channel_last(128, 5)

    def units(target, values):  # Keras' unit k is Chainer's unit pg[k]
        target[pg] = values

    units(gen.project.W.array, g[2].T)
    for target, values in ((gen.project.b.array, g[3]), (gen.bn0.gamma.array, g[4]),
                           (gen.bn0.beta.array, g[5]), (gen.bn0.avg_mean, g[6]),
                           (gen.bn0.avg_var, g[7])):
        units(target, values)
    gen.fc.W.array[...], gen.fc.b.array[...] = g[0].T, g[1]
    for conv, (kernel, bias) in zip((*gen.convs, *dis.convs),
                                    ((g[8], g[9]), (g[10], g[11]), (d[0], d[1]), (d[2], d[3]))):
        conv.W.array[...], conv.b.array[...] = kernel.transpose(3, 2, 0, 1), bias
    dis.fc.W.array[:, pd] = d[4].T
    dis.fc.b.array[...], dis.out.W.array[...], dis.out.b.array[...] = d[5], d[6].T, d[7]


def run_package(updater, real, z_dis, z_gen, keep):
    """The package's iterations on the given batches and z: losses and kept weights."""
    reals = [updater.device.send(r) for r in real]
    zs = [updater.device.send(z) for pair in zip(z_dis, z_gen) for z in pair]
    updater.next_real_batch = lambda: (reals.pop(0), None)
    updater.make_hidden = lambda batchsize, rng=None: zs.pop(0)
    reporter = chainer.Reporter()
    reporter.add_observer('gen', updater.gen)
    reporter.add_observer('dis', updater.dis)
    losses, kept = {'d_loss': [], 'g_loss': []}, {}
    for i in range(len(real)):
        observation = {}
        with reporter.scope(observation):
            updater.update()
        # Keras' D loss is one mean over the 256 images; the package's the
        # sum of the real and the fake mean (its D learning rate is halved).
        value = {k: float(getattr(v, 'array', v)) for k, v in observation.items()}
        losses['d_loss'].append(value['dis/loss'] / 2)
        losses['g_loss'].append(value['gen/loss'])
        if i + 1 in keep:
            kept[i + 1] = keras_weights(updater.gen, updater.dis)
    if reals or zs:
        raise SystemExit('step_check.py: the step drew other batches or z than one real '
                         'batch and one z per D and G step; this check does not fit it')
    return losses, kept


def difference(ours, theirs, start) -> float:
    """Largest |our change - Keras' change| over the largest |Keras' change|."""
    change = theirs - start
    scale = float(numpy.abs(change).max())
    return float(numpy.abs((ours - start) - change).max()) / scale if scale else float('nan')


def measure(ours: numpy.ndarray, theirs: numpy.ndarray) -> None:
    """Prints the package's metric of both sides' samples."""
    real = compare.real_statistics()
    for side, samples in (('package', ours), ('Keras', theirs)):
        m = real.measure(samples)
        print(f'# {side}: ' + ', '.join(f'{k} {float(m[k]):.3f}' for k in compare.METRICS))


def note(net: str, name: str, start: numpy.ndarray, change: float) -> str:
    """Why a tensor's difference may be large without the steps differing."""
    if (net, name) == ('g', 'project/b'):
        return 'zero gradient in theory (BatchNorm follows): rounding only'
    spacing = float(numpy.spacing(numpy.float32(numpy.abs(start).max())))
    if change <= 4 * spacing:
        return f'change within 4 float32 steps ({spacing:.1e}) of the tensor: rounding'
    return ''


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument('--iterations', type=int, default=20)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--flags', default='', help='options over the preset')
    p.add_argument('--streams', choices=('package', 'peer'), default='package',
                   help="whose initial weights, batches and z both sides get: the preset "
                        "run's (seed --seed) or the peer's (keras_dcgan.py --seed)")
    p.add_argument('--measure', action='store_true',
                   help="the package's metric of both sides' samples after the last "
                        "iteration (compare.py's 1,000 z)")
    p.add_argument('--peer_python', default=os.environ.get('PEER_PYTHON',
                                                           '/work/venv-tf/bin/python'))
    args = p.parse_args(argv)
    if args.iterations < 1:
        p.error(f'--iterations must be at least 1, got {args.iterations}')
    with tempfile.TemporaryDirectory() as tmp:
        updater = build(args.seed, args.flags, os.path.join(tmp, 'run'))
        batchsize = updater.get_iterator('main').batch_size
        real, z_dis, z_gen = streams(updater, args)
        keep = sorted({1, args.iterations})
        inputs = {'real': real.transpose(0, 1, 3, 4, 2), 'z_dis': z_dis, 'z_gen': z_gen,
                  'keep': numpy.array(keep)}
        if args.measure:
            inputs['z_samples'] = draw_hidden(compare.N_SAMPLES, updater.n_hidden,
                                              z_dist='uniform', seed=0)
        if args.streams == 'package':
            start_g, start_d = keras_weights(updater.gen, updater.dis)
            inputs.update({f'g_{i}': w for i, w in enumerate(start_g)},
                          **{f'd_{i}': w for i, w in enumerate(start_d)})
        else:
            inputs['seed'] = numpy.array(args.seed)
        numpy.savez(os.path.join(tmp, 'in.npz'), **inputs)
        outputs = os.path.join(tmp, 'out.npz')
        proc = subprocess.run([args.peer_python, os.path.join(HERE, 'keras_dcgan_step.py'),
                               os.path.join(tmp, 'in.npz'), outputs],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            lines = proc.stderr.strip().splitlines() or ['(no output)']
            raise SystemExit(f'step_check.py: error: keras_dcgan_step.py: {lines[-1]}')
        with numpy.load(outputs) as f:
            theirs = {k: f[k] for k in f.files}
        if args.streams == 'peer':
            start_g = [theirs[f'init_g_{i}'] for i in range(len(G_NAMES))]
            start_d = [theirs[f'init_d_{i}'] for i in range(len(D_NAMES))]
            load_keras_weights(updater.gen, updater.dis, start_g, start_d)
        ours, kept = run_package(updater, real, z_dis, z_gen, keep)
        if args.measure:
            ours['samples'] = generate(updater.gen, inputs['z_samples'])
    print(f'# streams: {args.streams} (seed {args.seed})')
    print(f'# keras-dcgan {args.flags or "(the preset)"}, seed {args.seed}, batch {batchsize}: '
          '|our change - Keras change| / |Keras change|, largest over each tensor')
    print(f'{"tensor":<12}' + ''.join(f'{"after " + str(i):>12}' for i in keep)
          + f'{"ours, 1st":>12}{"Keras, 1st":>12}  note')
    for net, names, start in (('g', G_NAMES, start_g), ('d', D_NAMES, start_d)):
        for j, name in enumerate(names):
            ours_j = [kept[i][0 if net == 'g' else 1][j] for i in keep]
            cells = [difference(w, theirs[f'it{i}_{net}_{j}'], start[j])
                     for w, i in zip(ours_j, keep)]
            sizes = [float(numpy.abs(w - start[j]).max())
                     for w in (ours_j[0], theirs[f'it1_{net}_{j}'])]
            print(f'{net + " " + name:<12}' + ''.join(f'{c:>12.2e}' for c in [*cells, *sizes])
                  + f'  {note(net, name, start[j], sizes[1])}')
    print(f'# first iteration: D loss {ours["d_loss"][0]:.6f} (Keras {theirs["d_loss"][0]:.6f}),'
          f' G loss {ours["g_loss"][0]:.6f} (Keras {theirs["g_loss"][0]:.6f})')
    if args.measure:
        measure(ours['samples'], theirs['samples'])
    return 0


if __name__ == '__main__':
    sys.exit(main())
