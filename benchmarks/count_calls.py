#!/usr/bin/env python
"""Python-level work in one training iteration: Chainer nodes and optimizer array operations.

    python benchmarks/count_calls.py                          # the package's paths
    python benchmarks/count_calls.py --onednn off --adam chainer   # as before oneDNN

On a small network most of a CPU step is fixed cost per call, not
arithmetic: Chainer's Python around every FunctionNode (forward and
backward) and the optimizer's NumPy operations, each with its own
temporary. This counts, for one ``GANUpdater.update()`` of ``--net``
(default: the network of ``python examples/train_dcgan.py``, batch 64,
after two warm-up iterations):

* the FunctionNodes applied (forward) and run backward, by a Chainer
  function hook, per node type;
* the NumPy array operations (ufunc calls and array functions such as
  ``concatenate``) inside the two optimizers' ``update``, counted by
  running that one update on counting views of every array it touches.

The last line is ``calls NET nodes N optimizer_ops M`` (N: forward plus backward).
"""

from __future__ import annotations

import argparse
import collections
import os
import sys

import chainer
import numpy

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gan_trainer import GANUpdater, ops
from gan_trainer.datasets import get_digits
from gan_trainer.nets import Discriminator, Generator

NETS = {'default': (28, 1, 32), 'digits28': (28, 1, 64)}


class Counting(numpy.ndarray):
    """An array view that counts the NumPy operations that involve it."""

    count = 0

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        Counting.count += 1
        inputs = tuple(i.view(numpy.ndarray) if isinstance(i, Counting) else i for i in inputs)
        if out is not None:
            kwargs['out'] = tuple(o.view(numpy.ndarray) if isinstance(o, Counting) else o
                                  for o in out)
        result = getattr(ufunc, method)(*inputs, **kwargs)
        if out is not None and len(out) == 1:
            return out[0]
        # Temporaries count too when they take part in the next operation.
        return result.view(Counting) if isinstance(result, numpy.ndarray) else result

    def __array_function__(self, func, types, args, kwargs):
        Counting.count += 1

        def plain(a):
            if isinstance(a, Counting):
                return a.view(numpy.ndarray)
            if isinstance(a, (list, tuple)):
                return type(a)(plain(v) for v in a)
            return a

        result = func(*plain(args), **{k: plain(v) for k, v in kwargs.items()})
        return result.view(Counting) if isinstance(result, numpy.ndarray) else result


class NodeCounter(chainer.FunctionHook):
    name = 'NodeCounter'

    def __init__(self):
        self.forward = collections.Counter()
        self.backward = collections.Counter()

    def forward_preprocess(self, function, in_data):
        self.forward[function.label] += 1

    def backward_preprocess(self, function, in_data, out_grad):
        self.backward[function.label] += 1


def counted_update(opt, counts: dict, name: str):
    """``opt.update`` run on counting views of its arrays; the count goes to ``counts[name]``."""
    update = opt.update

    def wrapped(*args, **kwargs):
        params = list(opt.target.params())
        # Put back afterwards (the same memory, updated in place), so that
        # the rest of the iteration sees plain arrays.
        saved = [(p, p.array, dict(p.update_rule.state or {})) for p in params]
        saved_flat = getattr(opt, '_flat', None)
        for p in params:
            if p.grad is not None:
                p.grad = p.grad.view(Counting)
            p.array = p.array.view(Counting)
            state = p.update_rule.state or {}
            for key, value in state.items():
                state[key] = value.view(Counting)
        flat = getattr(opt, '_flat', None)
        if flat is not None:  # ops.Adam's buffers; its views stay the parameters' arrays
            n, buffers, views = flat
            views = tuple([v.view(Counting) for v in vs] for vs in views)
            for p, pv, mv, vv in zip(params, *views):
                p.array, p.update_rule.state['m'], p.update_rule.state['v'] = pv, mv, vv
            opt._flat = (n, tuple(b.view(Counting) for b in buffers), views)
        Counting.count = 0
        try:
            return update(*args, **kwargs)
        finally:
            counts[name] = Counting.count
            opt.update = update
            for p, array, state in saved:
                p.array = array
                p.grad = None if p.grad is None else p.grad.view(numpy.ndarray)
                if p.update_rule.state is not None:
                    p.update_rule.state.update(state)
            if saved_flat is not None:
                opt._flat = saved_flat
    opt.update = wrapped


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--net', choices=sorted(NETS), default='default')
    p.add_argument('--onednn', choices=('on', 'off'), default='on')
    p.add_argument('--adam', choices=('ops', 'chainer'), default='ops',
                   help="gan_trainer.ops.Adam (one pass per net) or Chainer's")
    p.add_argument('--reuse_fakes', action='store_true')
    args = p.parse_args(argv)
    setattr(chainer.global_config, ops.ONEDNN_KEY, args.onednn == 'on')
    size, channels, base = NETS[args.net]
    numpy.random.seed(0)
    gen = Generator(size=size, channels=channels, base_width=base)
    dis = Discriminator(size=size, channels=channels, base_width=base)
    adam = ops.Adam if args.adam == 'ops' else chainer.optimizers.Adam
    optimizers = {}
    for name, net in (('gen', gen), ('dis', dis)):
        optimizers[name] = adam(alpha=2e-4, beta1=0.5)
        optimizers[name].setup(net)
    iterator = chainer.iterators.SerialIterator(get_digits('train'), 64)
    updater = GANUpdater(iterator, optimizers, device=-1, seed=0, reuse_fakes=args.reuse_fakes)
    for _ in range(2):
        updater.update()
    opt_counts = {}
    for name, opt in optimizers.items():
        counted_update(opt, opt_counts, name)
    hook = NodeCounter()
    with hook:
        updater.update()
    n_params = {name: len(list(opt.target.params())) for name, opt in optimizers.items()}
    print(f'# {args.net}, oneDNN {args.onednn} (loaded: {ops.dnnl.library() is not None}), '
          f'{adam.__module__}.Adam, {"reused" if args.reuse_fakes else "fresh"} fakes; '
          f'parameters: gen {n_params["gen"]}, dis {n_params["dis"]}')
    for kind, counter in (('forward', hook.forward), ('backward', hook.backward)):
        items = ', '.join(f'{k} {v}' for k, v in counter.most_common())
        print(f'{kind}: {sum(counter.values())} nodes ({items})')
    print(f'optimizer array operations: gen {opt_counts["gen"]}, dis {opt_counts["dis"]}')
    nodes = sum(hook.forward.values()) + sum(hook.backward.values())
    print(f'calls {args.net} nodes {nodes} optimizer_ops {sum(opt_counts.values())}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
