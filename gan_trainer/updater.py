"""GANUpdater: the one training loop for every GAN in this package.

One call to :meth:`GANUpdater.update` is one *iteration*: ``n_dis``
discriminator (D) steps, each on a fresh real batch and a fresh z, and one
generator (G) step on a fresh z (or, with ``reuse_fakes=True``, on the fakes
of the last D step). Everything that varies between GAN recipes
(the loss, ``n_dis``, the order of the steps, the z distribution, whether D
sees real and fake images in one batch, a gradient penalty on D, class
conditioning, an EMA of G, an augmentation of D's inputs) is a keyword
argument; a new variant is a new :class:`~gan_trainer.losses.GANLoss`,
penalty or augmentation, never a copy of this loop.

The details that the DCGAN write-ups learned the hard way are defaults here:

* **D step, G not touched.** Fakes for the D step are generated under
  ``chainer.no_backprop_mode()``, so no graph is built through G: G's
  gradients stay empty and no time is spent on a backward pass through G.
* **G step, D frozen.** D's parameters are constants during the G step
  (:func:`gan_trainer.ops.frozen`): the gradient flows through D into G,
  but D's weight gradients are not even computed, and only G's optimizer
  is applied, so D cannot change. The G step runs after the D step(s) of the
  same iteration (``order='dis_first'``) and therefore sees the updated D.
* **Reused fakes, if asked for.** ``reuse_fakes=True`` is the iteration of
  PyTorch's DCGAN example: G runs once, in the last D step, and keeps its
  graph; D trains on the bare fake arrays, and the G step then
  backpropagates through the updated D into that same forward pass. One
  pass through G per iteration instead of two (see
  ``benchmarks/throughput.py --reuse_fakes`` for what it saves), at the
  price of a G step on the z that D has just trained on; the default
  follows Goodfellow et al.'s algorithm, which draws a fresh z for the G
  step. A conditional G step then uses the real batch's labels.
* **D's fakes from G in training mode.** G's BatchNorm normalises the D
  step's fakes with their own batch statistics, as in the G step, so D
  learns on the images G is trained through. ``eval_fakes=True`` makes
  them in evaluation mode instead (BatchNorm's running averages, which the
  D step then leaves as they are): what Keras write-ups get from
  ``g.predict`` (keras-dcgan); while the averages still lag, early in a
  run, D then trains on other images than G's step sees.
* **Real and fake batches kept apart.** D sees the real and the fake batch
  in two forward passes (``separate_batches=True``): in one concatenated
  batch, BatchNorm would normalise real and fake images with shared
  statistics, which lets D tell them apart by batch statistics alone.

Losses that compare real and fake outputs (``loss='rpgan'``, any
:class:`~gan_trainer.losses.GANLoss` with ``gen_needs_real``): D's step
computes its loss from both batches' outputs at once, and the G step runs
the frozen D, without a graph, on the real batch of the iteration's last D
step (R3GAN's trainer does the same: one real batch per iteration for both
players), so G is judged against the same reals D just learned from. With
``order='gen_first'`` there is no D step before it, and the G step takes the
next real batch of the iterator.

The simultaneous step (``order='simultaneous'``) is chainer-gan-lib's (its
nine updaters, pfnet-research): the first D step of the iteration draws its
fakes with G's graph, G's loss is computed from that step's D outputs, G is
updated, the fakes are cut from G's graph, and then D is updated on the same
outputs (so both gradients are taken at the same weights: simultaneous
gradient descent); the iteration's other ``n_dis - 1`` D steps follow. D's
weight gradients that G's backward pass computes are thrown away, as there.
The default step (``dis_first``) differs in three ways: G learns against
the D that has just been updated, on a z of its own (or, with
``reuse_fakes``, on the last D step's fakes, made by the G of before), and
D is frozen in it, so no D weight gradient is computed; ``gen_first``
differs from the simultaneous step in drawing a fresh z and batch for G and
in freezing D. ``benchmarks/ganlib_check.py`` runs this loop with the
simultaneous step beside chainer-gan-lib's own updaters.

What chainer-gan-lib's algorithms added, each a field of the loss or one
keyword here (``tests/test_ganlib_loop.py`` checks each by hand):

* a loss whose D outputs are not logits (:attr:`GANLoss.dis_output
  <gan_trainer.losses.GANLoss>`): BEGAN's reconstruction errors, the Cramér
  GAN's ``(B, K)`` vectors; checked against D's ``output_kind`` or
  ``out_dim`` when the updater is made, and no ``dis/acc_*`` for them;
* a loss that asks for several fake batches (``n_fakes``, the Cramér GAN's
  two): each step draws that many, each on its own z, and the loss gets
  the tuple of their outputs;
* a loss that tells a gradient penalty what to differentiate (``critic``,
  the Cramér GAN's ``f``, which depends on the step's second fakes);
* a loss that owns state (``state``, BEGAN's ``k_t``): observed after every
  D step, reported under ``dis/`` (``dis/k_t``, ``dis/measure``) and saved
  in snapshots;
* an auxiliary network with its own optimizer (``dfm`` and
  ``optimizer['den']``, DFM's denoiser): trained in every D step on D's
  features of the real batch (``den/loss``), read in every G step
  (``gen/dfm``), saved in snapshots with its optimizer as any network.

Lazy regularization (``penalty_every=k``, Karras et al. 2020, StyleGAN2): the
gradient penalty, a second backward pass through D, runs on every k-th D step
only, multiplied by k so that its strength over a run is unchanged. Which D
steps get it follows from the iteration alone, so a resumed run penalises
the same steps as an uninterrupted one.

Regularizers on D's outputs (``regularizers``, see
:mod:`gan_trainer.regularizers`: LeCam, consistency regularization): each is
called in every D step with D and the step's batches and outputs, its term
is added to D's loss and reported as ``dis/NAME``; their state (LeCam's
moving averages) is saved in snapshots.

Soft and noisy labels (``real_label``): D's target for real images, 1 by
default, may be a smaller value (one-sided label smoothing, Salimans et al.
2016: 0.9) or a range ``(lo, hi)`` from which each real image's target is
drawn uniformly with the updater's own random state (ganhacks and
keras-dcgan's pull request #13: 0.7-1.2, which this package caps at 1 for
the cross-entropy losses, see :func:`gan_trainer.losses.check_real_label`).
Fakes keep the target 0 and G's loss is unchanged, so the smoothing is
one-sided: a softened fake target would leave fakes far from the data no
reason to move towards it (Salimans et al.). ``dis/loss_real`` reports the
softened loss; the evaluator's validation losses keep the hard targets.

Reported keys (through ``chainer.report`` with the optimizers' targets as
observers): ``gen/loss``, ``dis/loss``, ``dis/loss_real``, ``dis/loss_fake``,
``dis/acc_real`` (fraction of real images D scores above the loss's
boundary, 0 for logits, 0.5 for LSGAN) and ``dis/acc_fake`` (fakes below
it), ``dis/penalty``
when a gradient penalty is used (``dis/loss`` includes it), and
``dis/augment_p`` with adaptive augmentation. With
``n_dis > 1`` the ``dis/*`` values are means over the iteration's D steps
(over those that computed a value, for a lazy penalty). A coupled loss
reports no ``dis/loss_real`` and ``dis/loss_fake``.

Augmentation (``augment``, see :mod:`gan_trainer.augment`): every image D
sees goes through it, the real and the fake batch of the D step (drawn
apart) and the fakes of the G step, whose gradient flows through it into G.
A gradient penalty sees D as ``D(augment(x))`` with a fresh draw and takes
its gradient with respect to the un-augmented ``x``, as StyleGAN2-ADA
applies R1 (and DiffAugment's own code takes it) through the augmentation
of the reals. D's logits on the augmented reals go to
``augment.observe`` (ADA's overfitting signal) after every D step.

Conditional GANs (``conditional=True``): the iterator yields ``(image,
label)``; G is called as ``gen(z, t)`` and D as ``dis(x, t)``. In the D step
the fakes get the labels of the real batch (so both halves have the same
class mix); in the G step labels are drawn uniformly from
``range(gen.n_classes)`` with the updater's random state.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import chainer
import chainer.functions as F
import numpy
from chainer.dataset import convert
from chainer.training import StandardUpdater

from gan_trainer import dfm as dfm_module
from gan_trainer import precision
from gan_trainer.augment import get_augment
from gan_trainer.ema import GeneratorEMA
from gan_trainer.iterators import (
    SAVES_ORDER,
    ResumableShuffleOrderSampler,
    serialize_random_state,
)
from gan_trainer.latent import Sampler, get_sampler, hidden_for
from gan_trainer.losses import (
    GANLoss,
    check_discriminator,
    check_real_label,
    get_loss,
    soft_real,
)
from gan_trainer.nets import call_net, checked_outputs, dis_outputs
from gan_trainer.ops import frozen
from gan_trainer.streams import random_state

ORDERS = ('dis_first', 'gen_first', 'simultaneous')


def _arrays(y):
    """The array of a Variable, or a tuple of them for a tuple of Variables."""
    return tuple(v.array for v in y) if isinstance(y, tuple) else y.array


class NotResumableWarning(UserWarning):
    """The training iterator does not save its shuffling state in snapshots."""


def _warn_if_not_resumable(iterator) -> None:
    """Warns (once per process) about an iterator whose shuffling a snapshot misses."""
    if getattr(iterator, SAVES_ORDER, False) or getattr(iterator, 'order_sampler', None) is None:
        return
    warnings.warn(
        f'the training iterator ({type(iterator).__name__}) does not save its shuffling '
        'state in snapshots, so a resumed run will train on other batches than an '
        'uninterrupted one; gan_trainer.iterators.train_iterator() resumes exactly',
        NotResumableWarning, stacklevel=3)


class GANUpdater(StandardUpdater):
    """Trains a generator and a discriminator with one shared loop.

    Args:
        iterator: Dataset iterator (or ``{'main': iterator}``) yielding
            image arrays ``(C, H, W)`` or ``(image, label)`` tuples; labels
            are ignored by an unconditional GAN.
        optimizer: ``{'gen': opt_gen, 'dis': opt_dis}`` (and ``'den'``
            with ``dfm``); the networks are the optimizers' targets. G maps
            z ``(B, n_hidden)`` to images; D maps images to one logit per
            image, shape ``(B,)`` or ``(B, 1)`` (or what the loss's
            ``dis_output`` says).
        device: Device the models and batches go to (``-1``/``'@numpy'``
            CPU, ``0``/``'@cupy:0'`` first GPU), as in ``StandardUpdater``.
        converter: Turns a list of examples into arrays on ``device``.
        loss: A name from :data:`gan_trainer.losses.LOSSES`
            (``'nonsaturating'``, the DCGAN paper's choice, by default) or a
            :class:`~gan_trainer.losses.GANLoss`.
        n_dis: D steps per G step (``k`` in Goodfellow et al.; WGAN uses 5).
        order: ``'dis_first'`` (the papers' order: G learns against the D it
            just updated), ``'gen_first'``, or ``'simultaneous'``
            (chainer-gan-lib's step, see above).
        z_dist: ``'normal'``, ``'uniform'`` or a sampler function, see
            :mod:`gan_trainer.latent`. Ignored when G has a
            ``make_hidden(batchsize)`` method (Chainer's DCGAN example
            convention), which is then called instead.
        n_hidden: Dimension of z; defaults to ``gen.n_hidden``.
        separate_batches: Feed real and fake batches to D in separate
            forward passes (default, BatchNorm-safe) or concatenated.
        seed: Seed of the updater's own random state (z, augmentation,
            soft labels; saved in snapshots): :func:`gan_trainer.streams.random_state`
            ``(seed, 'step')``, a stream independent of
            ``numpy.random.seed(seed)``'s, so nets initialised under that
            seed do not see their own initial weights as z.
        penalty: A gradient penalty added to D's loss, a callable
            ``(d, x_real, x_fake, rng) -> scalar`` such as
            :class:`gan_trainer.penalties.WGANGP` or
            :class:`gan_trainer.penalties.R1`; ``None`` for none.
        conditional: Pass class labels to G and D (see above).
        ema: A :class:`gan_trainer.ema.GeneratorEMA` of G, updated after
            every G step and saved in snapshots; ``None`` for none.
        reuse_fakes: Train G on the last D step's fakes instead of
            generating new ones (see above); needs ``order='dis_first'``.
        eval_fakes: Make the D step's fakes with G in evaluation mode (see
            above); not with ``reuse_fakes`` or ``order='simultaneous'``,
            whose G step trains through those fakes.
        loss_scale: Passed to ``StandardUpdater``: a static loss scale for
            both optimizers. Each backward pass uses its optimizer's current
            scale, so the dynamic scaling of
            :func:`gan_trainer.precision.configure_optimizers` (mixed16)
            works as well.
        augment: What D's inputs go through (see above): a policy name for
            :func:`gan_trainer.augment.get_augment` (``'translation,cutout'``,
            ``'ada'``), a :class:`~gan_trainer.augment.DiffAugment`, any
            callable ``(x, rng) -> Variable`` (optionally with ``observe``,
            ``stats`` and ``serialize``, as ``DiffAugment``), or ``None``.
        real_label: D's target for real images: ``None`` (1, through the
            loss's own ``dis_real``), a number such as 0.9, or a range
            ``(lo, hi)`` drawn per image (see above). Defined for the
            nonsaturating, minimax and lsgan losses; refused for hinge,
            wasserstein and rpgan, and above 1 for the cross-entropy losses.
        penalty_every: Compute the penalty on every ``k``-th D step only,
            weighted by ``k`` (lazy regularization, see above); 1 computes
            it on every step.
        regularizers: Terms added to D's loss, each a callable
            ``(discriminate, x_real, x_fake, y_real, y_fake, rng) ->
            scalar`` with a ``name`` (reported as ``dis/NAME``) and
            optionally ``serialize`` (see :mod:`gan_trainer.regularizers`).
        dfm: Denoising feature matching (:mod:`gan_trainer.dfm`), with the
            denoiser's optimizer as ``optimizer['den']``; D must have
            ``forward_with_features``.
    """

    def __init__(
        self,
        iterator,
        optimizer: dict[str, chainer.Optimizer],
        *,
        device: Any = None,
        converter=convert.concat_examples,
        loss: str | GANLoss = 'nonsaturating',
        n_dis: int = 1,
        order: str = 'dis_first',
        z_dist: str | Sampler = 'normal',
        n_hidden: int | None = None,
        separate_batches: bool = True,
        seed: int | None = None,
        penalty: Callable | None = None,
        conditional: bool = False,
        ema: GeneratorEMA | None = None,
        reuse_fakes: bool = False,
        eval_fakes: bool = False,
        loss_scale: float | None = None,
        augment: str | Callable | None = None,
        real_label: float | tuple[float, float] | None = None,
        penalty_every: int = 1,
        regularizers: Sequence[Callable] = (),
        dfm: dfm_module.DenoisingFeatureMatching | None = None,
    ) -> None:
        if not isinstance(optimizer, dict) or not {'gen', 'dis'} <= set(optimizer) <= {
                'gen', 'dis', 'den'}:
            raise ValueError(
                "optimizer must be a dict with the keys 'gen' and 'dis' (and 'den' with dfm)")
        if (dfm is None) != ('den' not in optimizer):
            raise ValueError("dfm needs the denoiser's optimizer as optimizer['den']" if dfm
                             else "optimizer 'den' without dfm: the denoiser is DFM's")
        if n_dis < 1:
            raise ValueError(f'n_dis must be at least 1, got {n_dis}')
        if order not in ORDERS:
            raise ValueError(f'unknown order {order!r}; valid: {", ".join(ORDERS)}')
        if isinstance(penalty_every, bool) or not isinstance(penalty_every, int) \
                or penalty_every < 1:
            raise ValueError(f'penalty_every must be an integer >= 1, got {penalty_every!r}')
        if reuse_fakes and order != 'dis_first':
            raise ValueError("reuse_fakes needs order='dis_first': the G step reuses "
                             'the fakes of the D step before it')
        if eval_fakes and (reuse_fakes or order == 'simultaneous'):
            raise ValueError('eval_fakes cannot go with reuse_fakes or the simultaneous step: '
                             'the G step would train through fakes made in evaluation mode')
        super().__init__(iterator, optimizer, converter=converter,
                         device=device, loss_scale=loss_scale)
        self.loss = get_loss(loss)
        check_discriminator(self.loss, self.dis)
        self.dfm = dfm
        if dfm is not None:
            dfm_module.check_discriminator(self.dis)
        # (lo, hi) of the real targets, or None for the loss's hard target.
        self.real_label = check_real_label(real_label, self.loss)
        self._soft_real = soft_real(self.loss)
        self.n_dis = n_dis
        self.order = order
        self.sampler = get_sampler(z_dist)
        self.separate_batches = separate_batches
        gen = self.gen
        self.n_hidden = n_hidden if n_hidden is not None else getattr(gen, 'n_hidden', None)
        if self.n_hidden is None and not hasattr(gen, 'make_hidden'):
            raise ValueError(
                'n_hidden is required when the generator has neither an '
                'n_hidden attribute nor a make_hidden method')
        self.rng = random_state(seed, 'step')
        self.penalty = penalty
        self.penalty_every = penalty_every
        self.regularizers = tuple(regularizers)
        names = [getattr(r, 'name', None) for r in self.regularizers]
        if None in names or len(set(names)) != len(names):
            raise ValueError(f'every regularizer needs a name of its own, got {names}')
        self.conditional = conditional
        if conditional and not hasattr(gen, 'n_classes'):
            raise ValueError('conditional=True needs a generator with an n_classes attribute')
        self.ema = ema
        self.reuse_fakes = reuse_fakes
        self.eval_fakes = eval_fakes
        _warn_if_not_resumable(self.get_iterator('main'))
        # (fakes with G's graph, their labels) from the last D step, for the
        # G step of the same iteration (reuse_fakes only).
        self._kept_fakes = None
        # (real batch, labels) of the last D step, for the G step of a loss
        # that compares fakes with reals (gen_needs_real only).
        self._kept_real = None
        self.augment = get_augment(augment) if isinstance(augment, str) else augment
        self._check_combinations()

    def _check_combinations(self) -> None:
        """The options that cannot work together with a loss or with DFM (one-line errors)."""
        loss = self.loss
        if loss.boundary is None and hasattr(self.augment, 'observe'):
            raise ValueError("adaptive augmentation (ADA) follows the sign of D's logits, and "
                             'this loss has none (its D outputs reconstruction errors or vectors)')
        if loss.boundary is None and self.regularizers:
            raise ValueError(f'the regularizers {[r.name for r in self.regularizers]} read '
                             "D's logits, and this loss has none")
        if (loss.n_fakes > 1 or self.dfm is not None) and not self.separate_batches:
            raise ValueError('separate_batches=False is not supported with a loss of several '
                             'fake batches or with dfm: D sees each batch on its own')
        if self.dfm is not None and self.conditional:
            raise ValueError('dfm is for an unconditional D (forward_with_features takes no '
                             'labels)')

    @property
    def gen(self) -> chainer.Link:
        """The generator (the target of the ``'gen'`` optimizer)."""
        return self.get_optimizer('gen').target

    @property
    def dis(self) -> chainer.Link:
        """The discriminator (the target of the ``'dis'`` optimizer)."""
        return self.get_optimizer('dis').target

    @property
    def device(self) -> chainer.backend.Device:
        """The device batches and z are sent to."""
        return self._device or chainer.get_device('@numpy')

    def make_hidden(self, batchsize: int,
                    rng: numpy.random.RandomState | None = None):
        """Draws z for ``batchsize`` images on the updater's device.

        Args:
            batchsize: Number of vectors.
            rng: Random state to draw from; the updater's own (saved in
                snapshots) by default. Extensions pass their own to get a
                fixed z without disturbing training.

        Returns:
            An array ``(batchsize, n_hidden)`` (or whatever
            ``gen.make_hidden`` returns) on :attr:`device`.
        """
        z = hidden_for(self.gen, self.sampler, rng or self.rng, batchsize, self.n_hidden)
        return self.device.send(z)

    def next_real_batch(self):
        """Returns the next real batch ``(x, t)`` on the device.

        ``t`` (the labels) is ``None`` for an unconditional GAN, which
        ignores labels even when the iterator yields them.
        """
        batch = self.get_iterator('main').next()
        arrays = self.converter(batch, self.device)
        if not isinstance(arrays, tuple):
            if self.conditional:
                raise ValueError('conditional=True needs an iterator of (image, label) pairs')
            return arrays, None
        return arrays[0], (arrays[1] if self.conditional else None)

    def generate(self, z, t=None):
        """G(z), or G(z, t) for a conditional GAN."""
        return call_net(self.gen, z, t)

    def discriminate(self, x, t=None, *, features: bool = False):
        """D's outputs on ``x`` (``D(x)`` or ``D(x, t)``): ``(B,)`` logits, or ``(B, K)`` vectors.

        With ``features``, ``(outputs, features)`` from D's
        ``forward_with_features`` (DFM).
        """
        vectors = self.loss.dis_output == 'vector'
        if features:
            y, f = self.dis.forward_with_features(x)
            return checked_outputs(y, len(x), self.dis, vectors=vectors), f
        return dis_outputs(self.dis, x, t, vectors=vectors)

    def augmented(self, x):
        """``x`` through :attr:`augment` (drawing from the updater's random state), or ``x``."""
        return x if self.augment is None else self.augment(x, self.rng)

    def sample_labels(self, batchsize: int):
        """Uniform class labels for the G step (``None`` if unconditional)."""
        if not self.conditional:
            return None
        labels = self.rng.randint(0, self.gen.n_classes, batchsize).astype(numpy.int32)
        return self.device.send(labels)

    def update_core(self) -> None:
        last = self.n_dis - 1
        steps = [functools.partial(self.dis_step, keep_fakes=self.reuse_fakes and i == last,
                                   index=i) for i in range(self.n_dis)]
        if self.order == 'simultaneous':  # G's step rides on the first D step
            steps[0] = functools.partial(self.dis_step, index=0, with_gen=True)
        elif self.order == 'dis_first':
            steps = [*steps, self.gen_step]
        else:
            steps = [self.gen_step, *steps]
        dis_reports = []
        for step in steps:
            report = step()
            if report is not None:
                dis_reports.append(report)
        # With n_dis > 1 the D statistics of one iteration are averaged, so
        # the log shows the whole iteration rather than its last D step (a
        # lazy penalty: over the steps that computed it).
        mean = {}
        for report in dis_reports:
            for k, v in report.items():
                mean.setdefault(k, []).append(v)
        chainer.report({k: sum(v) / len(v) for k, v in mean.items()}, self.dis)

        iterator = self.get_iterator('main')
        if self.auto_new_epoch and iterator.is_new_epoch:
            for opt in self._optimizers.values():
                opt.new_epoch(auto=True)

    def dis_logits(self, x_real, x_fake, t=None):
        """D's logits ``(B,)`` for a real and a fake batch (labels ``t``)."""
        if self.separate_batches:
            return self.discriminate(x_real, t), self.discriminate(x_fake, t)
        x = F.concat([x_real, x_fake], axis=0)
        tt = None if t is None else self.device.xp.concatenate([t, t])
        y = self.discriminate(x, tt)
        y_real, y_fake = F.split_axis(y, [len(x_real)], axis=0)
        return y_real, y_fake

    def real_targets(self, batchsize: int, dtype=numpy.float32):
        """D's targets for a real batch, ``(B,)`` of ``dtype`` on the device (``real_label``).

        A fixed value is a Python float (no draw, no transfer); a range is
        drawn per image from the updater's random state.
        """
        lo, hi = self.real_label
        if lo == hi:
            return lo
        return self.device.send(self.rng.uniform(lo, hi, batchsize).astype(dtype))

    def dis_loss_real(self, y_real):
        """D's loss on the real logits ``(B,)``, with ``real_label``'s targets if set."""
        if self.real_label is None:
            return self.loss.dis_real(y_real)
        return self._soft_real(y_real, self.real_targets(len(y_real), y_real.dtype))

    def penalty_due(self, index: int = 0) -> bool:
        """Whether D step ``index`` of this iteration computes the penalty (``penalty_every``)."""
        return (self.penalty is not None
                and (self.iteration * self.n_dis + index) % self.penalty_every == 0)

    def make_fakes(self, batchsize: int, t=None, *, graph: bool = False, train: bool = True):
        """``loss.n_fakes`` fake batches, each on a fresh z: ``([fakes], z of the first)``.

        With ``graph`` the fakes keep G's graph (the G step, reused fakes,
        the simultaneous step); otherwise G runs without one. ``train=False``
        runs G in evaluation mode (``eval_fakes``).
        """
        fakes, first_z = [], None
        for _ in range(self.loss.n_fakes):
            z = self.make_hidden(batchsize)
            first_z = z if first_z is None else first_z
            with chainer.using_config('enable_backprop', graph), \
                    chainer.using_config('train', train):
                fakes.append(self.generate(z, t))
        return fakes, first_z

    def fake_outputs(self, fakes, t=None, *, features: bool = False):
        """D's outputs on each fake batch, in the form the loss reads, and DFM's features.

        Returns:
            ``(y_fake, f_fake)``: ``y_fake`` the outputs of the one batch, or
            the tuple of each batch's (``loss.n_fakes > 1``); ``f_fake`` the
            first batch's features with ``features``, else ``None``.
        """
        ys, f_fake = [], None
        for i, x in enumerate(fakes):
            if features and i == 0:
                y, f_fake = self.discriminate(self.augmented(x), t, features=True)
            else:
                y = self.discriminate(self.augmented(x), t)
            ys.append(y)
        return (ys[0] if len(ys) == 1 else tuple(ys)), f_fake

    def dis_step(self, keep_fakes: bool = False, index: int = 0,
                 with_gen: bool = False) -> dict[str, Any]:
        """One D update on a fresh real batch and fresh fakes.

        Args:
            keep_fakes: Generate the fakes with G's graph and keep them
                for the next :meth:`gen_step` (``reuse_fakes``).
            index: Which of the iteration's ``n_dis`` D steps this is (the
                lazy penalty's schedule).
            with_gen: The simultaneous step (``order='simultaneous'``): G's
                loss from this step's outputs, G updated, then D.

        Returns:
            The D statistics of this step (loss, loss_real, loss_fake,
            acc_real, acc_fake, and penalty if any) as arrays, for
            :meth:`update_core` to report.
        """
        x_real, t = self.next_real_batch()
        batchsize = len(x_real)
        # G in train mode (its BatchNorm uses batch statistics, as in the G
        # step) but without a graph unless a G step will use the fakes. D
        # gets the bare arrays then: nothing flows back into G, and D's
        # first layer computes no input gradient. With eval_fakes, G in
        # evaluation mode instead (Keras' g.predict).
        fakes, z = self.make_fakes(batchsize, t, graph=keep_fakes or with_gen,
                                   train=not self.eval_fakes)
        x_fakes = [f.array for f in fakes]
        if x_fakes[0].shape[1:] != x_real.shape[1:]:
            raise ValueError(f'the generator ({type(self.gen).__name__}) makes images of shape '
                             f'{tuple(x_fakes[0].shape[1:])}, and the data\'s are '
                             f'{tuple(x_real.shape[1:])}')
        self._kept_fakes = (fakes, t, z) if keep_fakes else None
        self._kept_real = ((x_real, t) if self.loss.gen_needs_real and not with_gen
                           else None)
        features = self.dfm is not None
        if features:
            y_real, f_real = self.discriminate(self.augmented(x_real), t, features=True)
        if self.loss.n_fakes == 1 and not features:
            y_real, y_fake = self.dis_logits(self.augmented(x_real), self.augmented(
                fakes[0] if with_gen else x_fakes[0]), t)
            f_fake = None
        else:
            if not features:
                y_real = self.discriminate(self.augmented(x_real), t)
            y_fake, f_fake = self.fake_outputs(fakes if with_gen else x_fakes, t,
                                               features=features)
        if features:  # DFM's denoiser learns D's real features (updated below)
            den_loss = self.dfm.denoiser_loss(self.get_optimizer('den').target, f_real.array,
                                              self.rng)
        soft = None if self.real_label is None else self.dis_loss_real
        loss, loss_real, loss_fake = self.loss.dis_loss(y_real, y_fake, dis_real=soft)
        stats = {}
        critic = self.loss.critic

        def discriminate(x):
            h = self.discriminate(self.augmented(x), t)
            return h if critic is None else critic(h, y_fake)

        if self.penalty_due(index):
            penalty = self.penalty(discriminate, x_real, x_fakes[0], self.rng)
            loss = loss + (penalty if self.penalty_every == 1 else self.penalty_every * penalty)
            stats['penalty'] = penalty.array
        for regularizer in self.regularizers:
            term = regularizer(discriminate, x_real, x_fakes[0], y_real, y_fake, self.rng)
            loss = loss + term
            stats[regularizer.name] = term.array
        if with_gen:
            # chainer-gan-lib's step: G's gradient at the D of before this
            # step's update (D's weight gradients it computes are cleared
            # below), G updated; then the fakes are cut from G's graph, so
            # D's backward pass stops at them.
            self.update_gen(y_fake, y_real, f_fake, z=z, t=t)
            for f in fakes:
                f.unchain_backward()

        dis = self.dis
        dis.cleargrads()
        loss.backward(loss_scale=precision.loss_scale(self.get_optimizer('dis')))
        self.get_optimizer('dis').update()
        loss.unchain_backward()
        if features:
            den = self.get_optimizer('den')
            value = self.dfm.update_denoiser(den, den_loss,
                                             loss_scale=precision.loss_scale(den))
            chainer.report({'loss': value}, den.target)

        if self.loss.state is not None:  # BEGAN's k_t
            stats.update(self.loss.state.observe(y_real.array, _arrays(y_fake)))
        if hasattr(self.augment, 'observe'):
            # ADA's sign(D(real)), about the loss's boundary (0.5 for LSGAN).
            self.augment.observe(y_real.array - self.loss.boundary)
        if hasattr(self.augment, 'stats'):
            stats.update(self.augment.stats())
        if loss_real is not None:
            stats.update({'loss_real': loss_real.array, 'loss_fake': loss_fake.array})
        stats['loss'] = loss.array
        if self.loss.boundary is not None:
            xp = self.device.xp
            stats.update({
                'acc_real': xp.mean((y_real.array > self.loss.boundary).astype(xp.float32)),
                'acc_fake': xp.mean((y_fake.array < self.loss.boundary).astype(xp.float32)),
            })
        return stats

    def update_gen(self, y_fake, y_real, f_fake, *, z, t=None) -> None:
        """G's loss from D's outputs (and DFM's term), its backward pass and G's update.

        Reports ``gen/loss`` (and ``gen/dfm``), then updates the EMA of G.
        """
        gen = self.gen
        gen.cleargrads()
        loss = self.loss.gen_loss(y_fake, y_real)
        if self.dfm is not None:
            term = self.dfm.gen_loss(self.get_optimizer('den').target, f_fake)
            chainer.report({'dfm': term}, gen)
            loss = loss + term
        loss.backward(loss_scale=precision.loss_scale(self.get_optimizer('gen')))
        self.get_optimizer('gen').update()
        chainer.report({'loss': loss}, gen)
        if self.ema is not None:
            self.ema.update(gen, self.iteration, z=z, labels=t)

    def gen_step(self) -> None:
        """One G update against the current D, on a fresh z (or the kept fakes)."""
        dis = self.dis
        dis.cleargrads()
        kept, self._kept_fakes = self._kept_fakes, None
        # D is frozen: the gradient flows through D into G, but D's weight
        # gradients are never computed (nor could leak into a D update).
        with frozen(dis):
            if kept is None:
                batchsize = self.get_iterator('main').batch_size
                t = self.sample_labels(batchsize)
                fakes, z = self.make_fakes(batchsize, t, graph=True)
            else:
                fakes, t, z = kept
            y_real = self.real_logits_for_gen() if self.loss.gen_needs_real else None
            y_fake, f_fake = self.fake_outputs(fakes, t, features=self.dfm is not None)
            self.update_gen(y_fake, y_real, f_fake, z=z, t=t)
        dis.cleargrads()  # a no-op unless something outside frozen() set them
        for f in fakes:
            f.unchain_backward()

    def real_logits_for_gen(self):
        """D's outputs on a real batch for the G step of a loss with ``gen_needs_real``.

        The last D step's real batch (and labels), or the iterator's next one
        when no D step came before (``order='gen_first'``); no graph: G's
        gradient flows through the fakes' outputs only.
        """
        kept, self._kept_real = self._kept_real, None
        x_real, t = kept if kept is not None else self.next_real_batch()
        with chainer.no_backprop_mode():
            return self.discriminate(self.augmented(x_real), t)

    def serialize(self, serializer) -> None:
        """Saves/restores iterators, optimizers, models and random states.

        Besides what ``StandardUpdater`` saves (the iterators, which with
        :func:`gan_trainer.iterators.train_iterator` include their shuffling
        state), this keeps the z random state and the moving average of G,
        so a resumed run draws the same z and the same batches as an
        uninterrupted one. Snapshots written before iterators saved their
        own shuffling state kept it here as ``order_rng:NAME``; it is read
        from there when present.
        """
        super().serialize(serializer)
        serialize_random_state(serializer['z_rng'], self.rng)
        if self.ema is not None:
            self.ema.serialize(serializer['gen_ema'])
        if hasattr(self.augment, 'serialize'):  # ADA's p
            self.augment.serialize(serializer['augment'])
        if hasattr(self.loss.state, 'serialize'):  # BEGAN's k_t
            self.loss.state.serialize(serializer['loss'])
        for regularizer in self.regularizers:  # LeCam's moving averages
            if hasattr(regularizer, 'serialize'):
                regularizer.serialize(serializer['regularizer:' + regularizer.name])
        if isinstance(serializer, chainer.serializer.Deserializer):
            for name, iterator in self._iterators.items():
                sampler = getattr(iterator, 'order_sampler', None)
                if isinstance(sampler, ResumableShuffleOrderSampler):
                    try:
                        sampler.serialize(serializer['order_rng:' + name], iterator.epoch)
                    except KeyError:
                        pass  # a snapshot of today's layout: the iterator had it
