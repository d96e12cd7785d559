"""Adam with one pass over all of a network's parameters at once.

Chainer's :class:`chainer.optimizers.Adam` updates parameter by parameter:
per parameter it walks its update rule, its hooks and device contexts, and
runs 11 NumPy operations that each allocate a temporary. The default
network has 18 parameters, so one iteration spends about 400 NumPy calls
and their Python around them on the two optimizers. This :class:`Adam`
keeps every parameter, and Adam's ``m`` and ``v`` of every parameter, as
views into one flat buffer per network, gathers the gradients into a third
one with one ``concatenate``, and runs the same 11 operations once on the
flat buffers, in place (float32 on oneDNN, four passes on its threads:
:mod:`.onednn_adam`).

It is a drop-in: the same constructor and hyperparameters, the same
update rules with the same state names (``m``, ``v`` and ``t`` per
parameter, so snapshots written by Chainer's Adam load into it and vice
versa) and, operation for operation in the same order and precision,
the same values (the tests compare the two bit for bit). Whatever the
flat pass does not cover runs Chainer's own update instead: a loss
function given to :meth:`update`, optimizer or update-rule hooks, loss
scaling, ``weight_decay_rate``, ``amsgrad``, ``adabound``, a disabled
rule, parameters that are not NumPy arrays of one float dtype, or rules
whose step counts differ. The flat buffers are rebuilt whenever a
parameter's or a state's array has been replaced (``to_device``, a
deserializer that makes new arrays).
"""

from __future__ import annotations

import chainer
import numpy
from chainer.optimizers import adam as chainer_adam

from gan_trainer.ops import onednn_adam


class Adam(chainer.optimizers.Adam):
    """:class:`chainer.optimizers.Adam` with a fused update (see the module docstring)."""

    def setup(self, link):
        super().setup(link)
        self._flat = None
        return self

    def _fusable(self, params) -> bool:
        hp = self.hyperparam
        if (getattr(self, '_loss_scale', None) is not None or hp.weight_decay_rate != 0
                or hp.amsgrad or hp.adabound):
            return False
        dtype = None
        t = None
        for p in params:
            rule = p.update_rule
            a = p.array
            if (rule is None or not rule.enabled or rule._hookable._pre_update_hooks
                    or rule._hookable._post_update_hooks or rule._use_fp32_update
                    or p._loss_scale is not None or not isinstance(a, numpy.ndarray)
                    or not isinstance(p.grad, numpy.ndarray)):
                return False
            if dtype is None:
                dtype, t = a.dtype, rule.t
            elif a.dtype != dtype or rule.t != t:
                return False
        return dtype in (numpy.float32, numpy.float64)

    def _flat_buffers(self, params):
        """``(p, m, v, g, tmp)`` flat buffers, the parameters' and states' arrays views of them."""
        flat = self._flat
        if flat is not None and flat[0] == len(params) and all(
                p.array is view and p.update_rule.state['m'] is mv and p.update_rule.state['v'] is vv
                for p, view, mv, vv in zip(params, *flat[2])):
            return flat[1]
        for p in params:
            p.update_rule._init_states(p)  # Chainer's zeros, on first use
        dtype = params[0].array.dtype
        sizes = [p.array.size for p in params]
        total = sum(sizes)
        buffers = tuple(numpy.empty(total, dtype) for _ in range(5))
        fp, fm, fv = buffers[:3]
        views = ([], [], [])
        offset = 0
        for p, n in zip(params, sizes):
            shape = p.array.shape
            for buf, src, out in ((fp, p.array, views[0]), (fm, p.update_rule.state['m'], views[1]),
                                  (fv, p.update_rule.state['v'], views[2])):
                view = buf[offset:offset + n].reshape(shape)
                view[...] = src
                out.append(view)
            offset += n
        for p, view, mv, vv in zip(params, *views):
            p.array = view
            p.update_rule.state['m'] = mv
            p.update_rule.state['v'] = vv
        self._flat = (len(params), buffers, views)
        return buffers

    def update(self, lossfun=None, *args, **kwds):
        """Chainer's ``update``; with computed gradients, one flat pass when it can."""
        if lossfun is not None:
            return super().update(lossfun, *args, **kwds)
        self.reallocate_cleared_grads()
        params = list(self.target.params())
        if not params or not self._fusable(params):
            return super().update()
        self.call_hooks('pre')  # optimizer hooks (e.g. gradient clipping) see the grads first
        self.t += 1
        fp, fm, fv, fg, tmp = self._flat_buffers(params)
        numpy.concatenate([p.grad.ravel() for p in params], out=fg)
        for p in params:
            p.update_rule.t += 1
        hp = self.hyperparam
        alpha_t = chainer_adam._learning_rate(hp, params[0].update_rule.t)
        on_onednn = onednn_adam.update_for(fp)
        if on_onednn is not None:  # the same operations, four passes on the team's threads
            on_onednn(fp, fm, fv, fg, tmp, beta1=hp.beta1, beta2=hp.beta2, eps=hp.eps,
                      eta=hp.eta, alpha_t=alpha_t)
        else:
            _update_numpy(fp, fm, fv, fg, tmp, hp, alpha_t)
        self.reallocate_cleared_grads()
        self.call_hooks('post')


def _update_numpy(fp, fm, fv, fg, tmp, hp, alpha_t) -> None:
    """Chainer's ``AdamRule.update_core_cpu``, operation for operation, on flat buffers."""
    # m += (1 - beta1) * (grad - m)
    numpy.subtract(fg, fm, out=tmp)
    tmp *= 1.0 - hp.beta1
    fm += tmp
    # v += (1 - beta2) * (grad * grad - v)
    numpy.multiply(fg, fg, out=tmp)
    tmp -= fv
    tmp *= 1.0 - hp.beta2
    fv += tmp
    # param += -eta * ((alpha_t / (sqrt(v) + eps)) * m)
    numpy.sqrt(fv, out=tmp)
    tmp += hp.eps
    numpy.divide(alpha_t, tmp, out=tmp)
    tmp *= fm
    tmp *= -hp.eta
    fp += tmp
