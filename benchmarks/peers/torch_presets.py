#!/usr/bin/env python
"""A preset's own networks and loop in PyTorch: milliseconds per iteration on the CPU.

    TORCH_PYTHON=/work/venv-torch/bin/python python benchmarks/recipe_steps.py --torch

``benchmarks/recipe_steps.py --torch`` runs this script with the
PyTorch venv's Python (``python3 -m venv /work/venv-torch &&
/work/venv-torch/bin/pip install torch --index-url
https://download.pytorch.org/whl/cpu``; PyTorch is never a dependency of
gan_trainer) and hands it, as JSON, what the preset builds: G's and D's
``config()`` (the architecture, parameter for parameter), the batch size,
the loop (``order``, ``separate_batches``, ``reuse_fakes``, n_dis 1) and
both optimizers' settings. This script builds the same networks from
those configs, layer for layer (only the options the write-ups' presets
use; anything else is refused in one line), runs ``--warmup`` iterations
and then ``--iters`` more, and prints the parameter count of each net
(``recipe_steps.py`` checks it against the package's) and last ``torch MS
ms/it``: the yardstick for
the speed of gan_trainer's nets, which PyTorch runs through oneDNN too.

Same computation, not the same numbers: the weights are PyTorch's own
draws, the data random, and the losses the cross-entropy on logits (the
presets' ``nonsaturating``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch
from torch import nn

ACTIVATIONS = {'tanh': nn.Tanh, 'elu': nn.ELU, 'relu': nn.ReLU,
               'leaky_relu': lambda: nn.LeakyReLU(0.2)}


class Refused(ValueError):
    pass


class Noise(nn.Module):
    """Gaussian noise of ``sigma`` in training (Chainer's DCGAN example's D)."""

    def __init__(self, sigma: float):
        super().__init__()
        self.sigma = sigma

    def forward(self, x):
        return x + self.sigma * torch.randn_like(x) if self.training else x


class ShiftOnlyBatchNorm(nn.Module):
    """Batch normalization with a learned shift and no scale (``bn_gamma=False``)."""

    def __init__(self, width: int, **kwargs):
        super().__init__()
        self.bn = nn.BatchNorm2d(width, affine=False, **kwargs)
        self.beta = nn.Parameter(torch.zeros(1, width, 1, 1))

    def forward(self, x):
        return self.bn(x) + self.beta


def _check(config: dict, known: set, net: str) -> None:
    extra = sorted(set(config) - known)
    if extra:
        raise Refused(f'{net} option {extra[0]}={config[extra[0]]!r} is not built here')


def _bn(c: dict) -> dict:
    """PyTorch's BatchNorm arguments for the config's ``bn_decay`` and ``bn_eps`` (Chainer's
    ``decay`` is 1 - PyTorch's ``momentum``)."""
    return {'eps': c.get('bn_eps', 2e-5), 'momentum': 1 - c.get('bn_decay', 0.9)}


def generator(c: dict) -> nn.Module:
    """The package's Generator from its config (DCGAN nets, the write-ups' options)."""
    _check(c, {'size', 'channels', 'n_hidden', 'widths', 'ksize', 'upsample', 'activation',
               'fc_width', 'project_norm', 'stage_norm', 'init', 'bn_decay', 'bn_eps'}, 'G')
    act = ACTIVATIONS[c.get('activation', 'relu')]
    widths, k = c['widths'], c['ksize']
    s0 = c['size'] // 2 ** len(widths)
    g = list(widths[::-1]) + [c['channels']]
    layers, n_in = [], c['n_hidden']
    if c.get('fc_width'):
        layers += [nn.Linear(n_in, c['fc_width']), act()]
        n_in = c['fc_width']
    layers.append(nn.Linear(n_in, g[0] * s0 * s0))
    if c.get('project_norm', 'channel') == 'unit':
        layers += [nn.BatchNorm1d(g[0] * s0 * s0, **_bn(c)), act(),
                   nn.Unflatten(1, (g[0], s0, s0))]
    else:
        layers += [nn.Unflatten(1, (g[0], s0, s0)), nn.BatchNorm2d(g[0], **_bn(c)), act()]
    for i in range(len(widths)):
        if c.get('upsample', 'deconv') == 'deconv':
            pad = {3: 1, 4: 1, 5: 2}[k]
            layers.append(nn.ConvTranspose2d(g[i], g[i + 1], k, 2, pad,
                                             output_padding=1 if k % 2 else 0))
        elif c['upsample'] == 'nearest':
            layers += [nn.Upsample(scale_factor=2, mode='nearest'),
                       nn.Conv2d(g[i], g[i + 1], k, 1, k // 2)]
        else:
            raise Refused(f"G option upsample={c['upsample']!r} is not built here")
        if i < len(widths) - 1:
            if c.get('stage_norm', True):
                layers.append(nn.BatchNorm2d(g[i + 1], **_bn(c)))
            layers.append(act())
    return nn.Sequential(*layers, nn.Tanh())


def discriminator(c: dict) -> nn.Module:
    """The package's Discriminator from its config (no spectral norm)."""
    _check(c, {'size', 'channels', 'widths', 'ksize', 'norm', 'spectral_norm', 'downsample',
               'activation', 'fc_width', 'fc_activation', 'dropout', 'padding', 'init',
               'noise_sigma', 'bn_gamma', 'bn_decay', 'bn_eps'}, 'D')
    if c.get('spectral_norm'):
        raise Refused('D option spectral_norm=True is not built here')
    act = ACTIVATIONS[c.get('activation', 'leaky_relu')]
    k, widths = c['ksize'], c['widths']
    pool = c.get('downsample', 'stride')
    sigma = c.get('noise_sigma', 0.0)
    noise = (lambda: [Noise(sigma)]) if sigma else (list)
    layers, c_in, side = noise(), c['channels'], c['size']
    for i, width in enumerate(widths):
        if pool == 'stride':
            pad = {3: 1, 4: 1, 5: 2}[k]
            layers.append(nn.Conv2d(c_in, width, k, 2, pad))
            side //= 2
        else:
            pad = k // 2 if i == 0 or c.get('padding', 'same') == 'same' else 0
            layers.append(nn.Conv2d(c_in, width, k, 1, pad))
            side = (side + 2 * pad - k + 1) // 2
        if i and c.get('norm', 'batch') == 'batch':
            layers.append(nn.BatchNorm2d(width, **_bn(c)) if c.get('bn_gamma', True)
                          else ShiftOnlyBatchNorm(width, **_bn(c)))
        layers += [*noise(), act()]
        if pool != 'stride':
            layers.append(nn.MaxPool2d(2) if pool == 'max_pool' else nn.AvgPool2d(2))
        if c.get('dropout'):
            layers.append(nn.Dropout(c['dropout']))
        c_in = width
    layers.append(nn.Flatten())
    n = widths[-1] * side * side
    if c.get('fc_width'):
        fc_act = ACTIVATIONS[c.get('fc_activation') or c.get('activation', 'leaky_relu')]
        layers += [nn.Linear(n, c['fc_width']), *noise(), fc_act()]
        if c.get('dropout'):
            layers.append(nn.Dropout(c['dropout']))
        n = c['fc_width']
    return nn.Sequential(*layers, nn.Linear(n, 1))


def optimizer(params, s: dict) -> torch.optim.Optimizer:
    # weight_decay: L2 added to every gradient, as Chainer's WeightDecay hook.
    if s['name'] == 'adam':
        return torch.optim.Adam(params, lr=s['lr'], betas=(s['beta1'], s['beta2']), eps=s['eps'],
                                weight_decay=s['weight_decay'])
    if s['name'] == 'sgd':
        return torch.optim.SGD(params, lr=s['lr'], momentum=s['momentum'],
                               nesterov=s['nesterov'], weight_decay=s['weight_decay'])
    raise Refused(f"optimizer {s['name']!r} is not built here")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--config', required=True, help='JSON from recipe_steps.py')
    p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--iters', type=int, default=3)
    args = p.parse_args(argv)
    run = json.loads(args.config)
    torch.manual_seed(0)
    try:
        gen, dis = generator(run['gen']), discriminator(run['dis'])
        opt_g = optimizer(gen.parameters(), run['opt_gen'])
        opt_d = optimizer(dis.parameters(), run['opt_dis'])
        if run['loss'] != 'nonsaturating' or run['n_dis'] != 1:
            raise Refused(f"loss {run['loss']!r} with n_dis {run['n_dis']} is not built here")
    except Refused as e:
        print(f'torch_presets.py: error: {e}', file=sys.stderr)
        return 2
    b, n_hidden = run['batchsize'], run['gen']['n_hidden']
    bce = nn.BCEWithLogitsLoss()
    real = torch.rand(b, run['gen']['channels'], run['gen']['size'], run['gen']['size']) * 2 - 1
    ones, zeros = torch.ones(b, 1), torch.zeros(b, 1)

    def z():
        if run['z_dist'] == 'uniform':
            return torch.rand(b, n_hidden) * 2 - 1
        return torch.randn(b, n_hidden)

    def dis_step():
        fake = gen(z())
        if run['separate_batches']:
            loss = bce(dis(real), ones) + bce(dis(fake.detach()), zeros)
        else:
            y = dis(torch.cat([real, fake.detach()]))
            loss = bce(y[:b], ones) + bce(y[b:], zeros)
        opt_d.zero_grad()
        loss.backward()
        opt_d.step()
        return fake

    def gen_step(fake=None):
        for q in dis.parameters():
            q.requires_grad_(False)  # D frozen, as gan_trainer's ops.frozen
        loss = bce(dis(gen(z()) if fake is None else fake), ones)
        opt_g.zero_grad()
        loss.backward()
        opt_g.step()
        for q in dis.parameters():
            q.requires_grad_(True)

    def step():
        if run['order'] == 'gen_first':
            gen_step()
            dis_step()
        else:
            fake = dis_step()
            gen_step(fake if run['reuse_fakes'] else None)

    for _ in range(args.warmup):
        step()
    start = time.perf_counter()
    for _ in range(args.iters):
        step()
    ms = 1e3 * (time.perf_counter() - start) / args.iters
    sizes = [sum(q.numel() for q in net.parameters()) for net in (gen, dis)]
    print(f'# PyTorch {torch.__version__}, {torch.get_num_threads()} threads, batch {b}')
    print(f'# parameters G {sizes[0]} D {sizes[1]}')
    print(f'torch {ms:.1f} ms/it')
    return 0


if __name__ == '__main__':
    sys.exit(main())
