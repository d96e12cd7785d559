#!/usr/bin/env python
"""The default run's network trained by PyTorch, in the loop of PyTorch's DCGAN example.

    python benchmarks/fid_of.py --export digits.npy          # gan_trainer's Python
    /path/to/torch-venv/bin/python benchmarks/torch_train.py --data digits.npy \\
        --samples torch_samples.npy
    python benchmarks/fid_of.py --samples torch_samples.npy   # FID, the package's metric

The yardstick for the wall time of ``python examples/train_dcgan.py``
(``benchmarks/whole_run.sh`` alternates the two): the same network (G: z
100 -> Linear 64*7*7 + BN + ReLU -> ConvTranspose 64->32 (k4 s2 p1) + BN +
ReLU -> ConvTranspose 32->1 -> tanh; D: Conv 1->32 + LeakyReLU(0.2) ->
Conv 32->64 + BN + LeakyReLU -> Linear -> 1; biases everywhere, weights
N(0, 0.02), BN gamma N(1, 0.02) and eps 2e-5 as in :mod:`gan_trainer.nets`),
the same 4,500 training digits (exported by ``fid_of.py --export``, since
this script runs where gan_trainer is not installed), batch 64, 2,500
iterations, Adam(2e-4, 0.5, 0.999), ``BCEWithLogitsLoss``, and the loop of
``pytorch/examples/dcgan/main.py``: per batch of a shuffled epoch, D on the
real batch and on ``fake.detach()``, one D step, then G's step through the
updated D on the same ``fake``. The batches come from the in-memory tensor
(a ``DataLoader`` with worker processes would only add processes on two
cores). At the end G, in evaluation mode (BN's running statistics, as
gan_trainer's samples), draws ``--n_samples`` images from a fixed z into
``--samples``.

The last line is ``torch_train ITERATIONS iterations SECONDS s``: the
training loop's wall time (imports, data and sampling not included); the
line before it gives the milliseconds per iteration from
``--from_iteration`` on (past the first iterations' warm-up). ``--loss
lsgan`` trains with the default run's least-squares loss instead of the
example's cross-entropy.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy
import torch
from torch import nn


def init(module: nn.Module) -> None:
    """gan_trainer.nets' initialisation: N(0, 0.02) weights, zero biases, BN gamma N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def networks(width: int, size: int = 28, channels: int = 1, stages: int = 2):
    """G and D of gan_trainer.nets at base width ``width``: ``stages`` stride-2 stages
    of widths ``width * 2**i`` (D order), G mirrored with a tanh output."""
    # Chainer's BN: eps 2e-5, running averages with decay 0.9 (momentum 0.1).
    def bn(c):
        return nn.BatchNorm2d(c, eps=2e-5, momentum=0.1)

    widths = [width * 2**i for i in range(stages)]
    s0 = size // 2**stages
    g = widths[::-1] + [channels]
    layers = [nn.Linear(100, g[0] * s0 * s0), nn.Unflatten(1, (g[0], s0, s0)), bn(g[0]),
              nn.ReLU()]
    for i in range(stages):
        layers.append(nn.ConvTranspose2d(g[i], g[i + 1], 4, 2, 1))
        layers += [bn(g[i + 1]), nn.ReLU()] if i < stages - 1 else [nn.Tanh()]
    gen = nn.Sequential(*layers)
    layers, c_in = [], channels
    for i, c in enumerate(widths):
        layers.append(nn.Conv2d(c_in, c, 4, 2, 1))
        layers += [bn(c), nn.LeakyReLU(0.2)] if i else [nn.LeakyReLU(0.2)]
        c_in = c
    dis = nn.Sequential(*layers, nn.Flatten(), nn.Linear(widths[-1] * s0 * s0, 1))
    init(gen)
    init(dis)
    return gen, dis


#: --net: (size, channels, stages, base width); ``default`` is the default run's.
NETS = {'default': (28, 1, 2, 32), 'digits28': (28, 1, 2, 64), 'dcgan64': (64, 3, 4, 64)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--data', required=True,
                   help='.npy of the training images (N, 1, 28, 28); dcgan64 trains on '
                        'random 64x64 RGB images in memory instead')
    p.add_argument('--net', choices=sorted(NETS), default=None,
                   help='default, digits28 (base width 64) or dcgan64; sets --base_width')
    p.add_argument('--samples', required=True, help='.npy to write the final samples to')
    p.add_argument('--iterations', type=int, default=2500)
    p.add_argument('--batchsize', type=int, default=64)
    p.add_argument('--base_width', type=int, default=32)
    p.add_argument('--n_samples', type=int, default=1000)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--loss', choices=('bce', 'lsgan'), default='bce',
                   help="the D and G losses: BCEWithLogitsLoss (the example's), or "
                        "least squares on the logits, 0.5 (D(x) - t)^2 (the default run's)")
    p.add_argument('--threads', type=int, default=None,
                   help="torch.set_num_threads (default: PyTorch's own, one per core)")
    p.add_argument('--from_iteration', type=int, default=None,
                   help='first iteration of the ms/iteration window (default: a fifth in)')
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    size, channels, stages, width = NETS[args.net] if args.net else (28, 1, 2, args.base_width)
    if size == 28:
        data = torch.from_numpy(numpy.load(args.data).astype(numpy.float32))
        if data.ndim != 4 or data.shape[1:] != (1, 28, 28):
            p.error(f'--data must hold (N, 1, 28, 28) images, got {tuple(data.shape)}')
    else:  # as whole_vs_torch.py gives gan_trainer: random images in memory
        data = torch.from_numpy(numpy.random.RandomState(0).uniform(
            -1, 1, (512, channels, size, size)).astype(numpy.float32))
    gen, dis = networks(width, size, channels, stages)
    opt_d = torch.optim.Adam(dis.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(gen.parameters(), lr=2e-4, betas=(0.5, 0.999))
    if args.loss == 'bce':
        criterion = nn.BCEWithLogitsLoss()
    else:  # gan_trainer's lsgan: 0.5 mean((y - t)^2) on the logits, targets 1 and 0
        def criterion(y, t):
            return 0.5 * torch.mean((y - t) ** 2)
    b = args.batchsize
    print(f'# PyTorch {torch.__version__}, {torch.get_num_threads()} threads, '
          f'{len(data)} images, batch {b}, {args.iterations} iterations')
    start = time.perf_counter()
    stamps = []  # the time at the end of each iteration
    it = 0
    while it < args.iterations:
        order = torch.randperm(len(data))
        for i in range(0, len(data) - b + 1, b):  # drop the last partial batch
            if it == args.iterations:
                break
            real = data[order[i:i + b]]
            ones, zeros = torch.ones(b, 1), torch.zeros(b, 1)
            # (1) D: maximize log D(x) + log(1 - D(G(z)))
            dis.zero_grad()
            err_real = criterion(dis(real), ones)
            err_real.backward()
            fake = gen(torch.randn(b, 100))
            err_fake = criterion(dis(fake.detach()), zeros)
            err_fake.backward()
            opt_d.step()
            # (2) G: maximize log D(G(z)), on the same fakes
            gen.zero_grad()
            err_g = criterion(dis(fake), ones)
            err_g.backward()
            opt_g.step()
            it += 1
            stamps.append(time.perf_counter())
            if it % 500 == 0:
                print(f'iteration {it}: loss D {(err_real + err_fake).item():.3f} '
                      f'G {err_g.item():.3f}', flush=True)
    seconds = time.perf_counter() - start
    gen.eval()
    with torch.no_grad():
        z = torch.from_numpy(numpy.random.RandomState(args.seed).standard_normal(
            (args.n_samples, 100)).astype(numpy.float32))
        numpy.save(args.samples, gen(z).numpy())
    first = args.iterations // 5 if args.from_iteration is None else args.from_iteration
    window = stamps[first - 1:] if first >= 1 else [start, *stamps]
    if len(window) > 1:
        ms = 1e3 * (window[-1] - window[0]) / (len(window) - 1)
        print(f'ms/iteration {ms:.2f} (iterations {first + 1}-{args.iterations})')
    print(f'torch_train {args.iterations} iterations {seconds:.1f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
