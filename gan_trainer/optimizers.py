"""Optimizers per network: one factory, and a small spec per net.

GAN recipes train G and D with different optimizers: the Keras DCGAN notes
use Adam(lr 1e-5, beta1 0.1) for D and Adam(2e-4, 0.5) for G, keras-dcgan
SGD with Nesterov momentum (lr 5e-4, momentum 0.9) for both, Chainer's
DCGAN example Adam(2e-4, 0.5) with weight decay 1e-4 on both. An
:class:`OptimizerSpec` holds one net's setting (JSON-able through
:meth:`~OptimizerSpec.to_dict`, for ``config.json``), and
:func:`make_optimizer` builds it for a link::

    opt_gen = make_optimizer(gen, OptimizerSpec('adam', lr=2e-4, beta1=0.5))
    opt_dis = make_optimizer(dis, OptimizerSpec('adam', lr=1e-5, beta1=0.1))
    opt = make_optimizer(dis, name='sgd', lr=5e-4, momentum=0.9, nesterov=True)

The optimizers, by :attr:`OptimizerSpec.name` (:data:`OPTIMIZERS`):

* ``'adam'``: :class:`gan_trainer.ops.Adam`, which is
  :class:`chainer.optimizers.Adam` (``lr`` is Chainer's ``alpha``) with a
  one-pass update, the same results and the same saved state; defaults lr
  2e-4, beta1 0.5, beta2 0.999 (the DCGAN paper's), eps 1e-8.
* ``'sgd'``: plain :class:`chainer.optimizers.SGD` without momentum,
  :class:`chainer.optimizers.MomentumSGD` with it (``v = m v - lr g; p +=
  v``, as Keras' and PyTorch's), and :class:`NesterovSGD` with ``nesterov``
  (``p += m v - lr g`` after that velocity update: Keras' and PyTorch's
  Nesterov momentum, Bengio et al. 2013, eq. 7; Chainer's own ``NesterovAG``
  adds ``m^2`` times the *new* velocity instead, chainer/chainer#4274, which
  is another method). Defaults lr 0.01, momentum 0.
* ``'rmsprop'``: :class:`chainer.optimizers.RMSprop` (``rho`` is Chainer's
  ``alpha``); defaults lr 0.01, rho 0.99, eps 1e-8 (Chainer's).

``weight_decay`` adds :class:`chainer.optimizer_hooks.WeightDecay` (L2:
``rate * param`` added to every parameter's gradient, biases and batch-norm
shifts included), as Chainer's DCGAN example does. Choosing an optimizer is
a dict lookup here, so a faster implementation (e.g. an Adam in
:mod:`gan_trainer.ops`) replaces its entry in one place.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable

import chainer

from gan_trainer import ops

#: Settings of each optimizer and their defaults; a setting of another
#: optimizer is refused rather than ignored.
SETTINGS: dict[str, dict] = {
    'adam': {'lr': 2e-4, 'beta1': 0.5, 'beta2': 0.999, 'eps': 1e-8},
    'sgd': {'lr': 0.01, 'momentum': 0.0, 'nesterov': False},
    'rmsprop': {'lr': 0.01, 'rho': 0.99, 'eps': 1e-8},
}


class _NesterovRule(chainer.optimizer.UpdateRule):
    """``v = m v - lr g; p += m v - lr g`` (Keras, PyTorch; Bengio et al. 2013)."""

    is_elementwise = True

    def init_state(self, param):
        with chainer.using_device(param.device):
            self.state['v'] = param.device.xp.zeros_like(param.data)

    def _update(self, param):
        grad = param.grad
        if grad is None:
            return
        v = self.state['v']
        lr, momentum = self.hyperparam.lr, self.hyperparam.momentum
        v *= momentum
        v -= lr * grad
        param.data += momentum * v
        param.data -= lr * grad

    update_core_cpu = _update
    update_core_gpu = _update


class NesterovSGD(chainer.optimizer.GradientMethod):
    """SGD with Nesterov momentum as Keras and PyTorch define it.

    With velocity ``v`` (zero at first), gradient ``g``, learning rate
    ``lr`` and momentum ``m``: ``v = m v - lr g``, then ``p = p + m v - lr
    g`` (Bengio, Boulanger-Lewandowski and Pascanu 2013, eq. 7; Keras'
    ``SGD(nesterov=True)``; PyTorch's ``SGD(nesterov=True)`` with its
    velocity scaled by ``-lr``). The velocity is saved in snapshots.

    Args:
        lr: Learning rate.
        momentum: Momentum ``m``.
    """

    def __init__(self, lr: float = 0.01, momentum: float = 0.9):
        super().__init__()
        self.hyperparam.lr = lr
        self.hyperparam.momentum = momentum

    lr = chainer.optimizer.HyperparameterProxy('lr')
    momentum = chainer.optimizer.HyperparameterProxy('momentum')

    def create_update_rule(self):
        return _NesterovRule(self.hyperparam)


def _sgd(s: dict) -> chainer.Optimizer:
    if s['nesterov']:
        return NesterovSGD(lr=s['lr'], momentum=s['momentum'])
    if s['momentum'] > 0:
        return chainer.optimizers.MomentumSGD(lr=s['lr'], momentum=s['momentum'])
    return chainer.optimizers.SGD(lr=s['lr'])


#: Optimizer name -> builder of the optimizer from its resolved settings.
OPTIMIZERS: dict[str, Callable[[dict], chainer.Optimizer]] = {
    # gan_trainer.ops.Adam: Chainer's Adam, bit for bit and with the same saved
    # state, with each network's update in one pass over flat buffers.
    'adam': lambda s: ops.Adam(
        alpha=s['lr'], beta1=s['beta1'], beta2=s['beta2'], eps=s['eps']),
    'sgd': _sgd,
    'rmsprop': lambda s: chainer.optimizers.RMSprop(lr=s['lr'], alpha=s['rho'], eps=s['eps']),
}


def _number(name: str, value, ok: Callable[[float], bool], rule: str) -> None:
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not math.isfinite(value) or not ok(value)):
        raise ValueError(f'optimizer {name} must be {rule}, got {value!r}')


_RULES = {
    'lr': (lambda v: v > 0, 'a finite number > 0'),
    'beta1': (lambda v: 0 <= v < 1, 'in [0, 1)'),
    'beta2': (lambda v: 0 <= v < 1, 'in [0, 1)'),
    'eps': (lambda v: v > 0, 'a finite number > 0'),
    'momentum': (lambda v: 0 <= v < 1, 'in [0, 1)'),
    'rho': (lambda v: 0 <= v < 1, 'in [0, 1)'),
    'weight_decay': (lambda v: v >= 0, 'a finite number >= 0'),
}


@dataclasses.dataclass(frozen=True)
class OptimizerSpec:
    """One network's optimizer setting; ``None`` means the optimizer's default.

    Args:
        name: ``'adam'``, ``'sgd'`` or ``'rmsprop'`` (:data:`OPTIMIZERS`).
        lr: Learning rate (Adam's ``alpha``).
        beta1, beta2: Adam's moment decay rates, in [0, 1).
        eps: Adam's and RMSprop's denominator offset, > 0.
        momentum: SGD's momentum, in [0, 1); 0 is plain SGD.
        nesterov: SGD with Nesterov momentum (:class:`NesterovSGD`);
            needs ``momentum > 0``.
        rho: RMSprop's decay rate of the squared gradients, in [0, 1).
        weight_decay: L2 rate added to every gradient, >= 0; 0 for none.

    Raises:
        ValueError: For an unknown name, a value out of range, a setting of
            another optimizer (e.g. ``beta1`` with ``'sgd'``), or
            ``nesterov`` without momentum; the message names the setting.
    """

    name: str = 'adam'
    lr: float | None = None
    beta1: float | None = None
    beta2: float | None = None
    eps: float | None = None
    momentum: float | None = None
    nesterov: bool | None = None
    rho: float | None = None
    weight_decay: float = 0.0

    def __post_init__(self):
        if self.name not in SETTINGS:
            raise ValueError(f'unknown optimizer {self.name!r}; valid ones are '
                             f'{", ".join(SETTINGS)}')
        own = SETTINGS[self.name]
        for field in dataclasses.fields(self):
            key, value = field.name, getattr(self, field.name)
            if key in ('name', 'weight_decay') or value is None:
                continue
            if key not in own:
                users = [n for n, s in SETTINGS.items() if key in s]
                raise ValueError(f'optimizer setting {key} applies to {" and ".join(users)}, '
                                 f'not to {self.name!r}')
        for key, (ok, rule) in _RULES.items():
            value = getattr(self, key)
            if value is not None:
                _number(key, value, ok, rule)
        if self.nesterov is not None and not isinstance(self.nesterov, bool):
            raise ValueError(f'optimizer nesterov must be True or False, got {self.nesterov!r}')
        settings = self.settings()
        if settings.get('nesterov') and settings['momentum'] == 0:
            raise ValueError('optimizer nesterov=True needs momentum > 0 (e.g. 0.9): '
                             'Nesterov momentum without momentum is plain SGD')

    def settings(self) -> dict:
        """The effective settings: ``name``, this optimizer's settings with
        their defaults filled in, and ``weight_decay``."""
        own = {k: (d if getattr(self, k) is None else getattr(self, k))
               for k, d in SETTINGS[self.name].items()}
        return {'name': self.name, **own, 'weight_decay': self.weight_decay}

    def to_dict(self) -> dict:
        """JSON-able :meth:`settings`; :meth:`from_dict` rebuilds the same optimizer."""
        return self.settings()

    @classmethod
    def from_dict(cls, settings: dict) -> OptimizerSpec:
        """Builds a spec from :meth:`to_dict`'s output (e.g. read from ``config.json``).

        Raises:
            ValueError: For a key that is no setting (named in the message).
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ValueError(f'unknown optimizer setting {unknown[0]!r}; valid ones are '
                             f'{", ".join(sorted(known))}')
        return cls(**settings)

    def updated(self, **changes) -> OptimizerSpec:
        """A copy with the given settings changed; ``None`` values are ignored.

        That is the convention of command-line overrides (``None`` means "not
        given"), e.g. ``spec.updated(lr=args.lr_dis, beta1=args.beta1_dis)``.
        A change of ``name`` keeps only the settings the new optimizer has.
        """
        changes = {k: v for k, v in changes.items() if v is not None}
        name = changes.get('name', self.name)
        if name != self.name and name in SETTINGS:
            kept = {k: getattr(self, k) for k in SETTINGS[name] if k not in changes}
            return OptimizerSpec(**{**kept, 'weight_decay': self.weight_decay, **changes})
        return dataclasses.replace(self, **changes)


def make_optimizer(link: chainer.Link, spec: OptimizerSpec | None = None,
                   **settings) -> chainer.Optimizer:
    """Builds the optimizer of ``spec`` (or of ``settings``) and sets it up on ``link``.

    Args:
        link: The network to optimize.
        spec: Its setting; ``None`` builds one from ``settings``, e.g.
            ``make_optimizer(dis, name='adam', lr=1e-5, beta1=0.1)``.
        **settings: :class:`OptimizerSpec` fields, when ``spec`` is ``None``.

    Returns:
        chainer.Optimizer: Set up on ``link``, with a ``WeightDecay`` hook
        named ``'weight_decay'`` when ``weight_decay > 0``.

    Raises:
        ValueError: If both ``spec`` and ``settings`` are given, or the
            setting is invalid (see :class:`OptimizerSpec`).
    """
    if spec is None:
        spec = OptimizerSpec.from_dict(settings)
    elif settings:
        raise ValueError(f'make_optimizer takes a spec or settings, not both; got a spec '
                         f'and {", ".join(sorted(settings))}')
    resolved = spec.settings()
    optimizer = OPTIMIZERS[spec.name](resolved)
    optimizer.setup(link)
    if resolved['weight_decay'] > 0:
        optimizer.add_hook(chainer.optimizer_hooks.WeightDecay(resolved['weight_decay']),
                           name='weight_decay')
    return optimizer
