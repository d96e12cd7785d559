"""GANEvaluator: validation losses of a GAN on held-out real images.

Training losses of a GAN are measured on moving targets; the evaluator gives
a steadier view. Every time it runs it walks once over a held-out set of
real images (a non-repeating iterator), pairs batch ``i`` with the same
z every time (drawn from ``RandomState(seed)`` anew at each run), and reports
with both networks in evaluation mode (BatchNorm uses its running averages)
and without building a graph:

* ``validation/gen/loss``: G's loss on the fakes (a relativistic loss
  compares them with the batch's real images, as in training),
* ``validation/dis/loss``: D's loss on real plus fake,
* ``validation/dis/accuracy``: the fraction of real images D calls real and
  of fakes it calls fake, over both halves (not for the losses whose D
  outputs have no boundary between real and fake: ``began``, ``cramer``).

Because z is fixed, changes in these numbers between two evaluations come
from the networks, not from sampling noise.
"""

from __future__ import annotations

from typing import Any

import chainer
import numpy
from chainer.dataset import convert
from chainer.training import extensions

from gan_trainer.latent import Sampler, get_sampler, hidden_for
from gan_trainer.losses import GANLoss, get_loss
from gan_trainer.nets import call_net, dis_outputs


class GANEvaluator(extensions.Evaluator):
    """Reports validation losses and D's accuracy on held-out real images.

    Args:
        iterator: A non-repeating iterator over held-out real images (arrays
            or ``(image, label)`` tuples), e.g.
            ``SerialIterator(test, 64, repeat=False, shuffle=False)``.
        target: ``{'gen': gen, 'dis': dis}``.
        device: Device to evaluate on (as for ``GANUpdater``).
        converter: Turns a list of examples into arrays on ``device``.
        loss: The loss the networks are trained with (name or
            :class:`~gan_trainer.losses.GANLoss`).
        z_dist: Distribution of z (name or sampler); ignored when G has a
            ``make_hidden`` method, as in the updater.
        n_hidden: Dimension of z; defaults to ``gen.n_hidden``.
        seed: Seed of the fixed z.
        conditional: Pass the held-out labels to G and D, as
            ``GANUpdater(conditional=True)`` does (fakes get the real
            batch's labels).
        name: Prefix of the reported keys (``validation/gen/loss``); set
            here so that calling the evaluator directly, outside a trainer,
            reports the same keys.
    """

    trigger = 1, 'epoch'
    default_name = 'validation'

    def __init__(
        self,
        iterator,
        target: dict[str, chainer.Link],
        *,
        device: Any = None,
        converter=convert.concat_examples,
        loss: str | GANLoss = 'nonsaturating',
        z_dist: str | Sampler = 'normal',
        n_hidden: int | None = None,
        seed: int = 0,
        conditional: bool = False,
        name: str = 'validation',
    ) -> None:
        if not isinstance(target, dict) or set(target) != {'gen', 'dis'}:
            raise ValueError("target must be a dict with the keys 'gen' and 'dis'")
        super().__init__(iterator, target, converter=converter, device=device,
                         eval_func=self.evaluate_batch)
        self.loss = get_loss(loss)
        self.sampler = get_sampler(z_dist)
        self.n_hidden = n_hidden if n_hidden is not None else getattr(
            target['gen'], 'n_hidden', None)
        self.seed = seed
        self.conditional = conditional
        self.name = name
        self._rng = None

    def evaluate(self) -> dict[str, Any]:
        # A fresh RandomState per run: batch i gets the same z every time.
        self._rng = numpy.random.RandomState(self.seed)
        return super().evaluate()

    def evaluate_batch(self, *arrays) -> None:
        """Reports the losses and accuracy of one held-out batch."""
        x_real = arrays[0]
        t = arrays[1] if self.conditional else None
        gen, dis = self.get_target('gen'), self.get_target('dis')
        batchsize = len(x_real)
        device = self.device or chainer.get_device('@numpy')
        # Separate passes, as in training; in evaluation mode BatchNorm uses
        # running statistics, so this matches a concatenated pass anyway. A
        # loss of several fake batches (Cramér) gets as many, each its own z.
        vectors = self.loss.dis_output == 'vector'
        y_fakes = []
        for _ in range(self.loss.n_fakes):
            z = device.send(hidden_for(gen, self.sampler, self._rng, batchsize, self.n_hidden))
            y_fakes.append(dis_outputs(dis, call_net(gen, z, t), t, vectors=vectors))
        y_fake = y_fakes[0] if len(y_fakes) == 1 else tuple(y_fakes)
        y_real = dis_outputs(dis, x_real, t, vectors=vectors)
        dis_loss, _, _ = self.loss.dis_loss(y_real, y_fake)
        chainer.report({'loss': self.loss.gen_loss(y_fake, y_real)}, gen)
        chainer.report({'loss': dis_loss}, dis)
        boundary = self.loss.boundary
        if boundary is not None:  # BEGAN's errors and Cramér's vectors do not say real or fake
            xp = device.xp
            correct = (xp.sum(y_real.array > boundary) + xp.sum(y_fake.array < boundary))
            chainer.report({'accuracy': correct / (2.0 * batchsize)}, dis)
