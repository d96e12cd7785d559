#!/usr/bin/env python
"""PyTorch's DCGAN step on the same networks, timed like throughput.py.

    pip install torch            # not a dependency of gan_trainer
    python benchmarks/torch_dcgan.py --net digits28 --device cpu
    python benchmarks/torch_dcgan.py --net dcgan64 --device gpu

The yardstick for ``benchmarks/throughput.py``: the same two networks
(``digits28``, ``dcgan64``; layer for layer, with biases as in
:mod:`gan_trainer.nets`), batch 64, Adam(2e-4, 0.5), and the iteration of
PyTorch's official DCGAN example: a D step on a real and a detached fake
batch with ``BCEWithLogitsLoss``, then a G step through D. By default the G
step generates fresh fakes, as ``GANUpdater`` does; ``--reuse_fakes`` trains
G on the D step's fakes, as the example itself does (and as
``GANUpdater(reuse_fakes=True)``, ``throughput.py --reuse_fakes``). Data are random
tensors already on the device, so only the step is timed. Protocol as in
``throughput.py``: ``--warmup`` untimed iterations, then the median and range
of ``--windows`` windows of ``--iters`` iterations.

The last line is ``torch NET DEVICE IMAGES_PER_S img/s``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from torch import nn

NETS = {
    # name: (size, channels, D widths, iterations per window)
    'digits28': (28, 1, (64, 128), 10),
    'dcgan64': (64, 3, (64, 128, 256, 512), 2),
    'default': (28, 1, (32, 64), 20),  # examples/train_dcgan.py's network (base width 32)
}


def generator(size: int, channels: int, widths) -> nn.Module:
    """z (B, 100) -> Linear -> widths[-1] x s0 x s0 -> stride-2 deconvs -> tanh."""
    s0 = size // 2 ** len(widths)
    g = list(widths[::-1]) + [channels]
    layers = [nn.Linear(100, g[0] * s0 * s0), nn.Unflatten(1, (g[0], s0, s0)),
              nn.BatchNorm2d(g[0]), nn.ReLU()]
    for i in range(len(widths)):
        layers.append(nn.ConvTranspose2d(g[i], g[i + 1], 4, 2, 1))
        if i < len(widths) - 1:
            layers += [nn.BatchNorm2d(g[i + 1]), nn.ReLU()]
    return nn.Sequential(*layers, nn.Tanh())


def discriminator(size: int, channels: int, widths) -> nn.Module:
    """Stride-2 convs with LeakyReLU(0.2), BN but on the first, Linear -> 1."""
    layers, c_in = [], channels
    for i, c in enumerate(widths):
        layers.append(nn.Conv2d(c_in, c, 4, 2, 1))
        if i:
            layers.append(nn.BatchNorm2d(c))
        layers.append(nn.LeakyReLU(0.2))
        c_in = c
    s0 = size // 2 ** len(widths)
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(widths[-1] * s0 * s0, 1))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--net', choices=sorted(NETS), default='digits28')
    p.add_argument('--device', choices=('cpu', 'gpu'), default='cpu')
    p.add_argument('--batchsize', type=int, default=64)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--windows', type=int, default=5)
    p.add_argument('--iters', type=int, default=None)
    p.add_argument('--reuse_fakes', action='store_true',
                   help="the G step trains on the D step's fakes (the example's own loop)")
    args = p.parse_args(argv)
    size, channels, widths, iters = NETS[args.net]
    iters = args.iters or (20 if args.device == 'gpu' else iters)
    device = torch.device('cuda' if args.device == 'gpu' else 'cpu')
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
    torch.manual_seed(0)
    gen = generator(size, channels, widths).to(device)
    dis = discriminator(size, channels, widths).to(device)
    opt_g = torch.optim.Adam(gen.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(dis.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    b = args.batchsize
    real = torch.rand(b, channels, size, size, device=device) * 2 - 1
    ones = torch.ones(b, 1, device=device)
    zeros = torch.zeros(b, 1, device=device)

    def step():
        # D step: real and detached fake batches in separate passes.
        dis.zero_grad()
        fake = gen(torch.randn(b, 100, device=device))
        loss_d = bce(dis(real), ones) + bce(dis(fake.detach()), zeros)
        loss_d.backward()
        opt_d.step()
        # G step against the updated D: on fresh fakes as in gan_trainer's
        # updater, or on the D step's (the example's own loop).
        gen.zero_grad()
        if not args.reuse_fakes:
            fake = gen(torch.randn(b, 100, device=device))
        loss_g = bce(dis(fake), ones)
        loss_g.backward()
        opt_g.step()

    fakes = "G step on the D step's fakes" if args.reuse_fakes else 'fresh fakes for the G step'
    print(f'# PyTorch {torch.__version__}, {torch.get_num_threads()} threads, '
          f'{args.net} on {device}, batch {b}, {fakes}')
    for _ in range(args.warmup):
        step()
    sync()
    rates = []
    for w in range(args.windows):
        start = time.perf_counter()
        for _ in range(iters):
            step()
        sync()
        rates.append(b * iters / (time.perf_counter() - start))
        print(f'window {w + 1}: {rates[-1]:.1f} img/s')
    median = statistics.median(rates)
    print(f'median {median:.1f} img/s, range {min(rates):.1f} .. {max(rates):.1f} img/s '
          f'over {args.windows} windows of {iters} iterations')
    print(f'torch {args.net} {args.device} {median:.1f} img/s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
