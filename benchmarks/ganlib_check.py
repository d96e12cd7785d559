#!/usr/bin/env python
"""GANUpdater against chainer-gan-lib's own updaters, step for step, on identical inputs.

    git clone https://github.com/pfnet-research/chainer-gan-lib /tmp/ganlib   # commit cf9efba
    python benchmarks/ganlib_check.py --ganlib /tmp/ganlib
    python benchmarks/ganlib_check.py --ganlib /tmp/ganlib --algorithms began,cramer --steps 5

chainer-gan-lib (pfnet-research) has one ``Updater`` class per algorithm;
this package trains all of them with the one :class:`~gan_trainer.GANUpdater`
(a loss, a penalty, a network option, ``dfm``). This script imports
chainer-gan-lib's updaters and networks from a checkout (they run unchanged
on Chainer 7.8.1; nothing of it is copied here), builds each algorithm's
networks once, gives both updaters deep copies of them, the same batches
(the package's built-in digits, padded to 32x32 and repeated to three
channels, as its nets read CIFAR-10) and the same random numbers, and
records every gradient each optimizer is handed, step by step. It prints,
per algorithm, the largest difference between the two updaters' gradients
(relative to the network's largest gradient, worst over every update; see
:func:`check`) and between their weights after ``--steps`` iterations (in
units of the learning rate), and BEGAN's ``k_t``.

Our side runs with ``order='simultaneous'``, chainer-gan-lib's step: G's
and D's losses on the same forward pass of the first D step of the
iteration, G updated, then D (then the iteration's other D steps). The
package's default step order (``dis_first``) differs by design; the
:class:`~gan_trainer.GANUpdater` docstring says how.

Identical random numbers: chainer-gan-lib draws z (``make_hidden``), the
perturbations of DRAGAN, the interpolation weights of WGAN-GP and Cramér and
the denoiser's noise from NumPy's global random state, in an order of its
own; the package draws them from the updater's random state, in its order.
So each side gets a :class:`ScriptedRandom`: one stream of numbers per kind
of draw and size of draw, the same on both sides, so the n-th draw of a
given kind and size is the same number whichever order a loop draws in.
NumPy's ``uniform`` and ``randn`` are pointed at it while the reference
runs, and the package's updater gets it as its ``rng``.

Two adapters, each small and named: chainer-gan-lib's BEGAN D returns the
batch's mean reconstruction error, the package's losses want one error per
image, so our side calls the same D once per image (it has no BatchNorm, so
this changes nothing); and its BEGAN updater calls CuPy's ``.get()`` on D's
outputs, which NumPy arrays lack, so the reference D's output arrays are
given that method. chainer-gan-lib's DFM D returns ``(features, logit)``;
our side reads it through ``forward_with_features``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import os
import sys
import zlib

import chainer
import chainer.functions as F
import numpy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from gan_trainer import GANUpdater
from gan_trainer.dfm import DenoisingFeatureMatching
from gan_trainer.losses import get_loss
from gan_trainer.penalties import DRAGAN, WGANGP

ALGORITHMS = ('dcgan', 'minibatch_discrimination', 'wgan_gp', 'dragan', 'cramer', 'began', 'dfm')

#: ``--algorithms`` may also name this: the Cramér GAN with the penalty differentiated
#: exactly (``get_loss('cramer', penalty='exact')``), where ``cramer`` is the package's
#: default, chainer-gan-lib's penalty (``df/dh`` held constant at the interpolates).
CRAMER_EXACT = 'cramer-exact'


class ScriptedRandom:
    """Random numbers by (kind, size): the n-th draw of each is the same on both sides.

    Provides what both loops call: ``uniform``, ``randn``,
    ``standard_normal`` and ``normal``.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.streams: dict[tuple, numpy.random.RandomState] = {}

    def _stream(self, kind: str, n: int) -> numpy.random.RandomState:
        key = (kind, n)
        if key not in self.streams:
            self.streams[key] = numpy.random.RandomState(
                zlib.crc32(f'{self.seed}:{kind}:{n}'.encode()))
        return self.streams[key]

    @staticmethod
    def _shape(size):
        if size is None:
            return ()
        return (size,) if numpy.isscalar(size) else tuple(size)

    def uniform(self, low=0.0, high=1.0, size=None):
        shape = self._shape(size)
        n = int(numpy.prod(shape))
        return self._stream('uniform', n).uniform(low, high, n).reshape(shape)

    def standard_normal(self, size=None):
        shape = self._shape(size)
        n = int(numpy.prod(shape))
        return self._stream('normal', n).standard_normal(n).reshape(shape)

    def randn(self, *shape):
        return self.standard_normal(shape)

    def normal(self, loc=0.0, scale=1.0, size=None):
        return loc + scale * self.standard_normal(size)


@contextlib.contextmanager
def numpy_random_from(script: ScriptedRandom):
    """NumPy's global ``uniform`` and ``randn`` draw from ``script`` inside the block."""
    saved = numpy.random.uniform, numpy.random.randn
    numpy.random.uniform, numpy.random.randn = script.uniform, script.randn
    try:
        yield
    finally:
        numpy.random.uniform, numpy.random.randn = saved


def recording(optimizer: chainer.Optimizer, log: list, *, after: list | None = None,
              sync: list | None = None) -> None:
    """Makes ``optimizer.update()`` append a copy of every gradient to ``log`` first.

    ``after`` gets a copy of the weights after each update; with ``sync``
    (another run's ``after``) the weights are then set to that run's, so
    that every gradient of the two runs is taken at the same weights.
    """
    update = optimizer.update

    def recorded(*args, **kwargs):
        log.append({name: None if p.grad is None else p.grad.copy()
                    for name, p in optimizer.target.namedparams()})
        result = update(*args, **kwargs)
        if after is not None:
            after.append({n: p.array.copy() for n, p in optimizer.target.namedparams()})
        if sync is not None:
            weights = sync[len(log) - 1]
            for n, p in optimizer.target.namedparams():
                p.array[...] = weights[n]
        return result

    optimizer.update = recorded


def digits(n: int) -> numpy.ndarray:
    """``n`` built-in digits as chainer-gan-lib's nets read images: (n, 3, 32, 32) in [-1, 1]."""
    from gan_trainer.datasets import load_dataset

    data = load_dataset('digits')
    images = numpy.stack([numpy.asarray(data.train[i][0] if isinstance(data.train[i], tuple)
                                        else data.train[i]) for i in range(n)])
    images = numpy.pad(images, ((0, 0), (0, 0), (2, 2), (2, 2)), constant_values=-1.0)
    return numpy.repeat(images, 3, axis=1).astype(numpy.float32)


class _WithGet(numpy.ndarray):
    """A NumPy array with CuPy's ``get()``, which chainer-gan-lib's BEGAN updater calls."""

    def get(self):
        return numpy.asarray(self)


def _per_image(dis_class):
    """chainer-gan-lib's BEGAN D, one reconstruction error per image (the package's form)."""

    class PerImage(dis_class):
        def __call__(self, x):
            return F.stack([dis_class.__call__(self, x[i:i + 1]) for i in range(len(x))])

    return PerImage


def _with_get(dis_class):
    class WithGet(dis_class):
        def __call__(self, x):
            y = dis_class.__call__(self, x)
            y.array = y.array.view(_WithGet)
            return y

    return WithGet


def _features_second(dis_class):
    """chainer-gan-lib's DFM D read as the package's: logits, and ``forward_with_features``."""

    class FeaturesSecond(dis_class):
        def __call__(self, x):
            return dis_class.__call__(self, x)[1]

        def forward_with_features(self, x):
            features, logits = dis_class.__call__(self, x)
            return logits, features

    return FeaturesSecond


def _recast(net, cls):
    """A deep copy of ``net`` whose class is ``cls`` (a subclass adding an adapter)."""
    twin = copy.deepcopy(net)
    twin.__class__ = cls
    return twin


def setup(name: str, lib) -> dict:
    """The networks, hyper-parameters and both sides' settings of algorithm ``name``.

    The hyper-parameters are chainer-gan-lib's ``example.sh`` lines (and
    ``train.py``'s defaults); the networks are its own, at a G width of
    128 channels to keep the check quick (D's width is fixed by the code
    that reads it).
    """
    net = lib['common.net']
    gen = net.DCGANGenerator(ch=128)
    alpha, beta1, beta2 = 2e-4, 0.0, 0.9  # train.py's defaults
    ref_args, ours = {}, {'loss': 'nonsaturating'}
    ours_dis = None
    extra = {}
    if name in ('dcgan', 'minibatch_discrimination'):
        dis = (net.DCGANDiscriminator() if name == 'dcgan'
               else lib['minibatch_discrimination.net'].Discriminator())
        if name == 'dcgan':
            alpha, beta1, beta2 = 2e-4, 0.5, 0.999
        else:
            alpha, beta1, beta2 = 1e-4, 0.0, 0.9
    elif name == 'wgan_gp':
        dis = net.WGANDiscriminator()
        ref_args = {'n_dis': 5, 'lam': 10.0}
        ours = {'loss': 'wasserstein', 'n_dis': 5, 'penalty': WGANGP(10.0)}
    elif name == 'dragan':
        dis = net.WGANDiscriminator()
        alpha, beta1, beta2 = 1e-4, 0.0, 0.9
        ref_args = {'n_dis': 2, 'lam': 10.0}
        ours = {'loss': 'nonsaturating', 'n_dis': 2, 'penalty': DRAGAN(10.0)}
    elif name in ('cramer', CRAMER_EXACT):
        dis = net.WGANDiscriminator(output_dim=256)
        alpha, beta1, beta2 = 1e-4, 0.5, 0.9
        ref_args = {'n_dis': 5, 'lam': 10.0}
        loss = get_loss('cramer', penalty='exact' if name == CRAMER_EXACT else 'ganlib')
        ours = {'loss': loss, 'n_dis': 5, 'penalty': WGANGP(10.0)}
    elif name == 'began':
        gen = net.DCGANGenerator(ch=128, use_bn=False)
        began = lib['began.net'].Discriminator(ch=128)
        dis = _recast(began, _with_get(type(began)))
        ours_dis = _recast(began, _per_image(type(began)))
        ref_args = {'gamma': 0.5}
        ours = {'loss': get_loss('began', gamma=0.5)}
    elif name == 'dfm':
        module = lib['dfm.net']
        dis = module.Discriminator()
        ours_dis = _recast(dis, _features_second(type(dis)))
        extra['den'] = module.Denoiser()
        alpha, beta1, beta2 = 1e-4, 0.5, 0.9
        ours = {'loss': 'nonsaturating', 'dfm': DenoisingFeatureMatching(0.03, noise_sigma=1.0)}
    else:
        raise ValueError(f'unknown algorithm {name!r}')
    return {'gen': gen, 'dis': dis, 'ours_dis': ours_dis, 'extra': extra,
            'adam': (alpha, beta1, beta2), 'ref_args': ref_args, 'ours': ours}


def adam(link, hyper):
    alpha, beta1, beta2 = hyper
    optimizer = chainer.optimizers.Adam(alpha=alpha, beta1=beta1, beta2=beta2)
    optimizer.setup(link)
    return optimizer


def run_reference(name, lib, parts, images, batchsize, steps, seed):
    gen, dis = copy.deepcopy(parts['gen']), copy.deepcopy(parts['dis'])
    extra = {k: copy.deepcopy(v) for k, v in parts['extra'].items()}
    optimizers = {'opt_gen': adam(gen, parts['adam']), 'opt_dis': adam(dis, parts['adam'])}
    models = [gen, dis]
    for key, link in extra.items():
        optimizers[f'opt_{key}'] = adam(link, parts['adam'])
        models.append(link)
    logs = {key: [] for key in optimizers}
    after = {key: [] for key in optimizers}
    for key, optimizer in optimizers.items():
        recording(optimizer, logs[key], after=after[key])
    iterator = chainer.iterators.SerialIterator(images, batchsize, shuffle=False)
    module = 'cramer' if name == CRAMER_EXACT else name
    updater = lib[f'{module}.updater'].Updater(
        iterator={'main': iterator}, optimizer=optimizers, models=models, device=-1,
        **parts['ref_args'])
    with numpy_random_from(ScriptedRandom(seed)):
        for _ in range(steps):
            updater.update()
    nets = {'gen': gen, 'dis': dis, **extra}
    grads = {key: logs[f'opt_{key}'] for key in nets}
    weights = {key: after[f'opt_{key}'] for key in nets}
    return nets, grads, weights, getattr(updater, 'kt', None)


def run_ours(parts, images, batchsize, steps, seed, *, sync=None):
    gen = copy.deepcopy(parts['gen'])
    dis = copy.deepcopy(parts['ours_dis'] or parts['dis'])
    extra = {k: copy.deepcopy(v) for k, v in parts['extra'].items()}
    optimizers = {'gen': adam(gen, parts['adam']), 'dis': adam(dis, parts['adam']),
                  **{k: adam(v, parts['adam']) for k, v in extra.items()}}
    logs = {key: [] for key in optimizers}
    for key, optimizer in optimizers.items():
        recording(optimizer, logs[key], sync=None if sync is None else sync[key])
    iterator = chainer.iterators.SerialIterator(images, batchsize, shuffle=False)
    options = copy.deepcopy(parts['ours'])  # BEGAN's loss has a k_t of its own per run
    updater = GANUpdater(iterator, optimizers, order='simultaneous', **options)
    script = ScriptedRandom(seed)
    updater.rng = script
    with numpy_random_from(script):
        for _ in range(steps):
            updater.update()
    state = updater.loss.state
    return {'gen': gen, 'dis': dis, **extra}, logs, getattr(state, 'k', None)


def gradient_error(ref_log: list, our_log: list) -> float:
    """Largest ``|g_ours - g_ref|`` over a network's weights, relative to its largest ``|g_ref|``.

    The worst over the updates. Relative to the whole network's largest
    gradient, not each array's: a bias whose gradient is 1e-11 has
    rounding of its own size.
    """
    if len(ref_log) != len(our_log):
        raise AssertionError(f'{len(ref_log)} updates in chainer-gan-lib, {len(our_log)} here')
    worst = 0.0
    for ref, ours in zip(ref_log, our_log):
        scale, error = 0.0, 0.0
        for name, g_ref in ref.items():
            g_ours = ours[name]
            if g_ref is None or g_ours is None:
                if (g_ref is None) != (g_ours is None):
                    raise AssertionError(f'{name}: a gradient on one side only')
                continue
            scale = max(scale, float(numpy.abs(g_ref).max()))
            error = max(error, float(numpy.abs(g_ours - g_ref).max()))
        worst = max(worst, error / (scale or 1.0))
    return worst


def parameter_error(ref: chainer.Link, ours: chainer.Link, lr: float) -> float:
    """Largest ``|w_ours - w_ref|`` over the parameters, in learning rates."""
    mine = dict(ours.namedparams())
    return max(float(numpy.abs(mine[n].array - p.array).max()) for n, p in ref.namedparams()) / lr


def check(name: str, lib, *, batchsize: int, steps: int, seed: int) -> dict:
    """The differences between the two updaters.

    ``grad1``: the gradients of the first update of each network (same
    weights on both sides, so only the order of the arithmetic differs);
    ``grad synced``: of every update, our side's weights set to the
    reference's after each update, so that every gradient is taken at the
    same weights and batches: the check that the two compute the same
    step; ``param``: the weights at the end of free runs, in learning rates.
    Free runs part by rounding: Adam moves a weight by about one learning
    rate in its first steps whatever the size of its gradient, so a
    gradient near 0 whose rounding differs moves the weight visibly, and
    LeakyReLU's masks in a gradient penalty amplify that in later steps.
    """
    with chainer.using_config('train', True):
        numpy.random.seed(seed)
        parts = setup(name, lib)
        images = digits(batchsize * steps * 5)
        ref_nets, ref_grads, ref_weights, ref_k = run_reference(
            name, lib, parts, images, batchsize, steps, seed)
        our_nets, our_grads, our_k = run_ours(parts, images, batchsize, steps, seed)
        synced_grads = run_ours(parts, images, batchsize, steps, seed, sync=ref_weights)[1]
    lr = parts['adam'][0]
    result = {'algorithm': name, 'updates': sum(len(v) for v in our_grads.values())}
    result['grad1'] = max(gradient_error(ref_grads[k][:1], our_grads[k][:1]) for k in ref_nets)
    result['grad synced'] = max(gradient_error(ref_grads[k], synced_grads[k]) for k in ref_nets)
    result['param (lr)'] = max(parameter_error(ref_nets[k], our_nets[k], lr) for k in ref_nets)
    if ref_k is not None:
        result['k_t'] = (float(ref_k), float(our_k))
    return result


def load_ganlib(path: str) -> dict:
    """chainer-gan-lib's modules from a checkout (its ``common/`` on the path, as its train.py)."""
    path = os.path.abspath(path)
    if not os.path.isfile(os.path.join(path, 'example.sh')):
        raise SystemExit(f'--ganlib {path}: not a chainer-gan-lib checkout (no example.sh)')
    sys.path[:0] = [path, os.path.join(path, 'common')]
    names = ['common.net', 'began.net', 'dfm.net', 'minibatch_discrimination.net',
             *[f'{a}.updater' for a in ALGORITHMS]]
    return {n: importlib.import_module(n) for n in names}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--ganlib', required=True, help='a checkout of pfnet-research/chainer-gan-lib')
    p.add_argument('--algorithms', default=','.join((*ALGORITHMS, CRAMER_EXACT)))
    p.add_argument('--steps', type=int, default=3, help='iterations per algorithm')
    p.add_argument('--batchsize', type=int, default=8)
    p.add_argument('--seed', type=int, default=0)
    args = p.parse_args(argv)
    names = args.algorithms.split(',')
    unknown = [n for n in names if n not in (*ALGORITHMS, CRAMER_EXACT)]
    if unknown:
        p.error(f'--algorithms: unknown {", ".join(unknown)}; known: {", ".join(ALGORITHMS)}')
    lib = load_ganlib(args.ganlib)
    print(f'{args.steps} iterations, batch {args.batchsize}, seed {args.seed}')
    for name in names:
        result = check(name, lib, batchsize=args.batchsize, steps=args.steps, seed=args.seed)
        print(' '.join(f'{k}={_shown(v)}' for k, v in result.items()), flush=True)
    return 0


def _shown(value) -> str:
    if isinstance(value, float):
        return f'{value:.2e}'
    if isinstance(value, tuple):
        return '/'.join(f'{v:.6f}' for v in value)
    return str(value)


if __name__ == '__main__':
    sys.exit(main())
