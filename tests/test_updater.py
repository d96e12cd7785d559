"""GANUpdater: the correctness properties of the one training loop."""

import copy
import warnings

import chainer
import chainer.functions as F
import numpy
import pytest
from chainer import training
from helpers import reported

from gan_trainer import GANUpdater
from gan_trainer.iterators import train_iterator
from gan_trainer.losses import NONSATURATING
from gan_trainer.testing import fake_dataset, fake_images, tiny_discriminator, tiny_generator
from gan_trainer.updater import NotResumableWarning


def make_updater(data=None, *, batchsize=4, gen=None, dis=None, **options):
    gen = gen or tiny_generator()
    dis = dis or tiny_discriminator()
    opts = {}
    for name, net in (('gen', gen), ('dis', dis)):
        opts[name] = chainer.optimizers.Adam(1e-2, beta1=0.5)
        opts[name].setup(net)
    data = fake_images(40) if data is None else data
    shuffle_seed = options.pop('shuffle_seed', None)
    n_processes = options.pop('n_processes', None)
    if n_processes is not None:
        it = train_iterator(data, batchsize, seed=shuffle_seed, n_processes=n_processes)
    elif shuffle_seed is None:
        it = chainer.iterators.SerialIterator(data, batchsize, shuffle=False)
    else:
        sampler = chainer.iterators.ShuffleOrderSampler(numpy.random.RandomState(shuffle_seed))
        it = chainer.iterators.SerialIterator(data, batchsize, order_sampler=sampler)
    options.setdefault('seed', 0)
    return GANUpdater(it, opts, device=-1, **options)


def params(link):
    return {name: p.array.copy() for name, p in link.namedparams()}


def same(a, b):
    return all(numpy.array_equal(a[k], b[k]) for k in a)


class Recorder:
    """Wraps a link's forward to record its inputs, outputs and parameters,
    and whether it built a graph (``chainer.config.enable_backprop``)."""

    def __init__(self, link):
        self.calls = []
        forward = link.forward

        def recording_forward(x):
            y = forward(x)
            self.calls.append({'x': numpy.asarray(getattr(x, 'array', x)).copy(),
                               'y': y.array.copy(), 'params': params(link),
                               'backprop': chainer.config.enable_backprop})
            return y

        link.forward = recording_forward


def test_dis_step_does_not_backpropagate_into_gen():
    updater = make_updater()
    gen_before = params(updater.gen)
    updater.gen.cleargrads()  # Chainer starts grads as NaN arrays, not None
    updater.dis_step()
    assert all(p.grad is None for p in updater.gen.params())
    assert same(gen_before, params(updater.gen))
    assert any(p.grad is not None for p in updater.dis.params())


def test_gen_step_does_not_change_dis_parameters():
    updater = make_updater()
    dis_before, gen_before = params(updater.dis), params(updater.gen)
    updater.gen_step()
    assert same(dis_before, params(updater.dis))
    assert not same(gen_before, params(updater.gen))
    # D's gradients from the G step are dropped, never left for a D update.
    assert all(p.grad is None for p in updater.dis.params())


@pytest.mark.parametrize('order', ['dis_first', 'gen_first'])
def test_gen_step_sees_dis_as_of_its_turn(order):
    updater = make_updater(order=order)
    dis_initial = params(updater.dis)
    recorder = Recorder(updater.dis)
    updater.update()
    # Separate batches: D is called twice in its step and once in G's step.
    assert len(recorder.calls) == 3
    g_call = recorder.calls[-1] if order == 'dis_first' else recorder.calls[0]
    if order == 'dis_first':
        assert same(g_call['params'], params(updater.dis))
        assert not same(g_call['params'], dis_initial)
    else:
        assert same(g_call['params'], dis_initial)


@pytest.mark.parametrize('n_dis', [1, 3])
def test_n_dis_steps_each_take_a_fresh_batch_and_fresh_z(n_dis):
    updater = make_updater(n_dis=n_dis)
    gen_rec, dis_rec = Recorder(updater.gen), Recorder(updater.dis)
    updater.update()
    assert updater.get_iterator('main').current_position == 4 * n_dis
    assert len(gen_rec.calls) == n_dis + 1
    zs = [c['x'] for c in gen_rec.calls]
    assert all(not numpy.array_equal(a, b) for i, a in enumerate(zs) for b in zs[i + 1:])
    # The real batches D saw are consecutive, distinct slices of the data.
    data = fake_images(40)
    reals = [c['x'] for c in dis_rec.calls[0:2 * n_dis:2]]
    for k, x in enumerate(reals):
        numpy.testing.assert_array_equal(x, data[4 * k:4 * k + 4])


@pytest.mark.parametrize('reuse_fakes', [False, True])
@pytest.mark.parametrize('n_dis', [1, 2])
def test_gen_step_gradient_is_that_of_its_z_through_the_updated_dis(reuse_fakes, n_dis):
    updater = make_updater(n_dis=n_dis, reuse_fakes=reuse_fakes)
    gen_before = copy.deepcopy(updater.gen)
    gen_rec = Recorder(updater.gen)
    updater.update()
    # reuse_fakes: one G forward per D step and none in the G step.
    assert len(gen_rec.calls) == n_dis + (not reuse_fakes)
    # G's gradient (left in its params) is that of the G loss on the last
    # recorded z, G as it was and D as updated: with reuse_fakes, that z is
    # the last D step's, whose fakes D was trained on.
    z = gen_rec.calls[-1]['x']
    loss = NONSATURATING.gen(F.flatten(updater.dis(gen_before(z))))
    gen_before.cleargrads()
    loss.backward()
    for (name, p), q in zip(updater.gen.namedparams(), gen_before.params()):
        numpy.testing.assert_allclose(p.grad, q.grad, rtol=1e-4, atol=1e-6, err_msg=name)


@pytest.mark.parametrize('n_dis', [1, 3])
def test_reuse_fakes_builds_a_graph_through_gen_only_in_the_last_dis_step(n_dis):
    updater = make_updater(n_dis=n_dis, reuse_fakes=True)
    gen_rec = Recorder(updater.gen)
    for _ in range(2):
        updater.update()
        assert updater._kept_fakes is None  # dropped by the G step
    assert [c['backprop'] for c in gen_rec.calls] == ([False] * (n_dis - 1) + [True]) * 2


def test_reuse_fakes_needs_dis_first():
    with pytest.raises(ValueError, match="reuse_fakes needs order='dis_first'"):
        make_updater(order='gen_first', reuse_fakes=True)


def test_reports_match_hand_computed_values_from_d_outputs():
    updater = make_updater()
    recorder = Recorder(updater.dis)
    obs = reported(updater)
    assert set(obs) == {'gen/loss', 'dis/loss', 'dis/loss_real', 'dis/loss_fake',
                        'dis/acc_real', 'dis/acc_fake'}
    y_real, y_fake, y_gen = (c['y'].astype(numpy.float64) for c in recorder.calls)
    softplus = lambda v: numpy.log1p(numpy.exp(v))
    assert obs['dis/loss_real'] == pytest.approx(softplus(-y_real).mean(), rel=1e-5)
    assert obs['dis/loss_fake'] == pytest.approx(softplus(y_fake).mean(), rel=1e-5)
    assert obs['dis/loss'] == pytest.approx(obs['dis/loss_real'] + obs['dis/loss_fake'])
    assert obs['dis/acc_real'] == pytest.approx((y_real > 0).mean())
    assert obs['dis/acc_fake'] == pytest.approx((y_fake < 0).mean())
    assert obs['gen/loss'] == pytest.approx(softplus(-y_gen).mean(), rel=1e-5)


def test_concatenated_batches_go_through_d_in_one_pass():
    updater = make_updater(separate_batches=False)
    recorder = Recorder(updater.dis)
    updater.dis_step()
    assert [c['x'].shape[0] for c in recorder.calls] == [8]
    numpy.testing.assert_array_equal(recorder.calls[0]['x'][:4], fake_images(40)[:4])


def test_separate_batches_keep_batchnorm_statistics_apart():
    # With real and fake in separate passes, D's BatchNorm normalises each
    # batch with its own statistics: the D output on the real batch does
    # not depend on the fakes. Concatenated, it does.
    outs = {}
    for separate in (True, False):
        updater = make_updater(separate_batches=separate)
        real = updater.device.send(fake_images(40)[:4])
        fakes = [updater.gen(updater.make_hidden(4)).array for _ in range(2)]
        with chainer.no_backprop_mode():
            outs[separate] = [updater.dis_logits(real, f)[0].array for f in fakes]
    numpy.testing.assert_allclose(outs[True][0], outs[True][1], rtol=1e-6)
    assert not numpy.allclose(outs[False][0], outs[False][1])


def test_tuple_batches_and_b1_logits_are_accepted():
    dis = tiny_discriminator()
    plain_forward = dis.forward
    dis.forward = lambda x: F.reshape(plain_forward(x), (-1, 1))
    updater = make_updater(fake_dataset(20), dis=dis)
    obs = reported(updater)
    assert numpy.isfinite(obs['dis/loss']) and numpy.isfinite(obs['gen/loss'])


@pytest.mark.parametrize('z_dist', ['normal', 'uniform', 'truncated_normal'])
def test_z_distribution(z_dist):
    updater = make_updater(z_dist=z_dist)
    z = updater.make_hidden(2000)
    assert z.shape == (2000, 4) and z.dtype == numpy.float32
    if z_dist == 'uniform':
        assert z.min() >= -1 and z.max() <= 1 and z.std() == pytest.approx(1 / 3 ** 0.5, rel=0.05)
    elif z_dist == 'truncated_normal':  # 2 sigma: variance 0.774
        assert numpy.abs(z).max() <= 2 and z.var() == pytest.approx(0.774, rel=0.05)
    else:
        assert z.min() < -2 and z.std() == pytest.approx(1.0, rel=0.05)


def test_generator_make_hidden_takes_precedence():
    gen = tiny_generator()
    gen.make_hidden = lambda b: numpy.full((b, 4), 0.25, numpy.float32)
    updater = make_updater(gen=gen, z_dist='uniform')
    numpy.testing.assert_array_equal(updater.make_hidden(3), numpy.full((3, 4), 0.25))


def test_custom_loss_object_is_used():
    updater = make_updater(loss=NONSATURATING._replace(gen=lambda y: F.mean(y) * 0))
    gen_before = params(updater.gen)
    updater.gen_step()
    # A zero loss gives zero gradients; Adam then leaves G unchanged.
    assert same(gen_before, params(updater.gen))


def softplus(v):
    return numpy.logaddexp(0, v)


@pytest.mark.parametrize('real_label', [0.9, (0.7, 1.0)])
def test_real_label_softens_only_the_real_targets(real_label):
    updater = make_updater(real_label=real_label)
    rng = copy.deepcopy(updater.rng)
    recorder = Recorder(updater.dis)
    obs = reported(updater)
    y_real, y_fake, y_gen = (c['y'].astype(numpy.float64) for c in recorder.calls)
    rng.standard_normal((4, 4))  # the D step's z comes first, then the targets
    t = (numpy.full(4, 0.9) if real_label == 0.9 else
         rng.uniform(0.7, 1.0, 4).astype(numpy.float32).astype(numpy.float64))
    expected = (t * softplus(-y_real) + (1 - t) * softplus(y_real)).mean()
    assert obs['dis/loss_real'] == pytest.approx(expected, rel=1e-5)
    assert obs['dis/loss_fake'] == pytest.approx(softplus(y_fake).mean(), rel=1e-5)
    assert obs['gen/loss'] == pytest.approx(softplus(-y_gen).mean(), rel=1e-5)
    # The targets came from the updater's own random state (none for a
    # fixed value), between the D step's z and the G step's.
    rng.standard_normal((4, 4))
    assert updater.rng.randint(1 << 30) == rng.randint(1 << 30)


def test_real_label_with_lsgan_and_its_refusals():
    updater = make_updater(loss='lsgan', real_label=0.8)
    recorder = Recorder(updater.dis)
    obs = reported(updater)
    y_real = recorder.calls[0]['y'].astype(numpy.float64)
    assert obs['dis/loss_real'] == pytest.approx(0.5 * ((y_real - 0.8) ** 2).mean(), rel=1e-5)
    with pytest.raises(ValueError, match='real_label is not defined for the hinge loss'):
        make_updater(loss='hinge', real_label=0.9)
    with pytest.raises(ValueError, match='goes above 1 with the nonsaturating loss'):
        make_updater(real_label=(0.7, 1.2))


def run_trainer(updater, iterations, out, snapshot_at=None):
    trainer = training.Trainer(updater, (iterations, 'iteration'), out=str(out))
    if snapshot_at:
        trainer.extend(chainer.training.extensions.snapshot(filename='snap'),
                       trigger=(snapshot_at, 'iteration'))
    return trainer


# train_iterator without and with loader processes.
@pytest.mark.parametrize('n_processes', [0, 2])
def test_serialize_resumes_exactly_across_epochs(tmp_path, n_processes):
    # 12 images, batch 4, n_dis 2: an epoch every 1.5 iterations, so the
    # shuffled order of later epochs must come back from the snapshot too.
    data = fake_images(12)
    straight = make_updater(data, n_dis=2, shuffle_seed=1, n_processes=n_processes)
    run_trainer(straight, 6, tmp_path / 'a').run()

    first = make_updater(data, n_dis=2, shuffle_seed=1, n_processes=n_processes)
    run_trainer(first, 3, tmp_path / 'b', snapshot_at=3).run()
    # A new process would build everything from scratch, with other seeds.
    resumed = make_updater(data, n_dis=2, shuffle_seed=5, gen=tiny_generator(seed=7),
                           dis=tiny_discriminator(seed=7), seed=99, n_processes=n_processes)
    trainer = run_trainer(resumed, 6, tmp_path / 'c')
    chainer.serializers.load_npz(str(tmp_path / 'b' / 'snap'), trainer)
    assert resumed.iteration == 3
    trainer.run()
    assert same(params(straight.gen), params(resumed.gen))
    assert same(params(straight.dis), params(resumed.dis))
    assert straight.rng.randint(1 << 30) == resumed.rng.randint(1 << 30)


def test_snapshots_of_the_earlier_layout_resume_exactly(tmp_path):
    # Before iterators saved their own shuffling state, the updater kept it
    # as order_rng:main; such a snapshot must still resume bit for bit.
    data = fake_images(12)
    straight = make_updater(data, n_dis=2, shuffle_seed=1, n_processes=0)
    run_trainer(straight, 6, tmp_path / 'a').run()
    first = make_updater(data, n_dis=2, shuffle_seed=1, n_processes=0)
    run_trainer(first, 3, tmp_path / 'b', snapshot_at=3).run()
    with numpy.load(tmp_path / 'b' / 'snap') as f:
        arrays = {k: f[k] for k in f.files}
    moved = 'updater/iterator:main/order_sampler/'
    old = {k.replace(moved, 'updater/order_rng:main/'): v for k, v in arrays.items()}
    assert len([k for k in old if k.startswith('updater/order_rng:main/')]) == 2
    with open(tmp_path / 'old_snap', 'wb') as f:
        numpy.savez(f, **old)
    resumed = make_updater(data, n_dis=2, shuffle_seed=5, seed=99, n_processes=0)
    trainer = run_trainer(resumed, 6, tmp_path / 'c')
    chainer.serializers.load_npz(str(tmp_path / 'old_snap'), trainer)
    trainer.run()
    assert same(params(straight.gen), params(resumed.gen))


def test_an_iterator_that_cannot_resume_exactly_is_warned_about():
    data = fake_images(12)
    with pytest.warns(NotResumableWarning, match=r'SerialIterator\) does not save its shuffl'):
        make_updater(data, shuffle_seed=1)  # Chainer's own sampler: not in snapshots
    with warnings.catch_warnings():
        warnings.simplefilter('error', NotResumableWarning)
        make_updater(data)  # not shuffled: nothing to save
        make_updater(data, shuffle_seed=1, n_processes=0)  # train_iterator saves it


@pytest.mark.parametrize('kwargs, message', [
    ({'n_dis': 0}, 'n_dis must be at least 1'),
    ({'order': 'both'}, "unknown order 'both'"),
    ({'loss': 'nope'}, "unknown loss 'nope'"),
    ({'z_dist': 'cauchy'}, "unknown z distribution 'cauchy'"),
])
def test_bad_options_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_updater(**kwargs)


def test_optimizers_must_be_named_gen_and_dis():
    opt = chainer.optimizers.Adam()
    opt.setup(tiny_generator())
    it = chainer.iterators.SerialIterator(fake_images(8), 4)
    with pytest.raises(ValueError, match="keys 'gen' and 'dis'"):
        GANUpdater(it, {'main': opt})


def test_penalty_is_added_to_the_dis_loss_and_reported():
    import copy

    from gan_trainer.penalties import R1

    updater = make_updater(penalty=R1(gamma=10.0))
    dis_before = copy.deepcopy(updater.dis)
    obs = reported(updater)
    assert obs['dis/loss'] == pytest.approx(
        obs['dis/loss_real'] + obs['dis/loss_fake'] + obs['dis/penalty'], rel=1e-5)
    x_real = fake_images(40)[:4]
    expected = R1(gamma=10.0)(lambda x: F.flatten(dis_before(x)), x_real, None, None)
    assert obs['dis/penalty'] == pytest.approx(float(expected.array), rel=1e-4)
    assert obs['dis/penalty'] > 0


def test_ema_follows_gen_and_is_saved_in_snapshots(tmp_path):
    from gan_trainer.ema import GeneratorEMA

    gen = tiny_generator()
    ema = GeneratorEMA(gen, decay=0.5)
    initial = params(gen)
    updater = make_updater(gen=gen, ema=ema)
    updater.update()
    for name, value in params(ema.target).items():
        numpy.testing.assert_allclose(value, 0.5 * initial[name] + 0.5 * params(gen)[name],
                                      rtol=1e-6, atol=1e-7)
    chainer.serializers.save_npz(str(tmp_path / 'snap'), updater)
    other = make_updater(gen=tiny_generator(seed=4), ema=GeneratorEMA(tiny_generator(seed=4)))
    chainer.serializers.load_npz(str(tmp_path / 'snap'), other)
    assert same(params(other.ema.target), params(ema.target))


@pytest.mark.parametrize('reuse_fakes', [False, True])
def test_the_ema_runs_forward_on_the_g_steps_z_for_its_batchnorm_statistics(reuse_fakes):
    from gan_trainer.ema import GeneratorEMA

    gen = tiny_generator()
    ema = GeneratorEMA(gen, decay=0.5)
    expected = copy.deepcopy(ema.target)
    drawn = []
    updater = make_updater(gen=gen, ema=ema, reuse_fakes=reuse_fakes)
    make_hidden = updater.make_hidden
    updater.make_hidden = lambda n, *a: drawn.append(make_hidden(n, *a)) or drawn[-1]
    initial = params(gen)
    updater.update()
    # The G step's z: drawn afresh, or the D step's when it reuses the fakes.
    z = drawn[0] if reuse_fakes else drawn[-1]
    assert len(drawn) == (1 if reuse_fakes else 2)
    for name, p in expected.namedparams():
        p.array[...] = 0.5 * initial[name] + 0.5 * params(gen)[name]
    with chainer.using_config('train', True):
        expected(z)
    for name, link in expected.namedlinks():
        if isinstance(link, chainer.links.BatchNormalization):
            got = dict(ema.target.namedlinks())[name]
            numpy.testing.assert_allclose(got.avg_mean, link.avg_mean, rtol=1e-5, atol=1e-6)
            numpy.testing.assert_allclose(got.avg_var, link.avg_var, rtol=1e-5, atol=1e-6)


class ToyConditionalGenerator(chainer.Chain):
    """G(z, t): a linear map of [z, one-hot(t)] to 8x8 images, recording t."""

    n_hidden, n_classes = 4, 3

    def __init__(self):
        super().__init__()
        self.labels = []
        with self.init_scope():
            self.l = chainer.links.Linear(7, 64)

    def forward(self, z, t):
        self.labels.append(numpy.asarray(t).copy())
        onehot = numpy.eye(3, dtype=numpy.float32)[numpy.asarray(t)]
        return F.tanh(F.reshape(self.l(F.concat([z, onehot])), (-1, 1, 8, 8)))


class ToyConditionalDiscriminator(chainer.Chain):
    def __init__(self):
        super().__init__()
        self.labels = []
        with self.init_scope():
            self.l = chainer.links.Linear(64, 1)
            self.embed = chainer.links.EmbedID(3, 64)

    def forward(self, x, t):
        self.labels.append(numpy.asarray(t).copy())
        h = F.reshape(x, (len(x), -1))
        return F.flatten(self.l(h)) + F.sum(self.embed(t) * h, axis=1)


def test_conditional_gan_passes_labels_to_both_networks():
    data = fake_dataset(24, n_classes=3)
    gen, dis = ToyConditionalGenerator(), ToyConditionalDiscriminator()
    updater = make_updater(data, gen=gen, dis=dis, conditional=True)
    obs = reported(updater)
    assert numpy.isfinite(obs['gen/loss'])
    real_labels = numpy.array([data[i][1] for i in range(4)])
    # D step: fakes get the real batch's labels; D sees them for both halves.
    numpy.testing.assert_array_equal(gen.labels[0], real_labels)
    numpy.testing.assert_array_equal(dis.labels[0], real_labels)
    numpy.testing.assert_array_equal(dis.labels[1], real_labels)
    # G step: labels drawn in range(n_classes), the same ones given to D.
    assert gen.labels[1].dtype == numpy.int32 and set(gen.labels[1]) <= {0, 1, 2}
    numpy.testing.assert_array_equal(dis.labels[2], gen.labels[1])


def test_conditional_gan_with_reuse_fakes_keeps_the_real_labels_for_the_gen_step():
    data = fake_dataset(24, n_classes=3)
    gen, dis = ToyConditionalGenerator(), ToyConditionalDiscriminator()
    updater = make_updater(data, gen=gen, dis=dis, conditional=True, reuse_fakes=True)
    reported(updater)
    real_labels = numpy.array([data[i][1] for i in range(4)])
    assert len(gen.labels) == 1  # G ran once, in the D step
    numpy.testing.assert_array_equal(gen.labels[0], real_labels)
    numpy.testing.assert_array_equal(dis.labels[2], real_labels)  # D in the G step


def test_conditional_needs_labels_and_n_classes():
    with pytest.raises(ValueError, match='n_classes'):
        make_updater(conditional=True)
    updater = make_updater(fake_images(8), gen=ToyConditionalGenerator(),
                           dis=ToyConditionalDiscriminator(), conditional=True)
    with pytest.raises(ValueError, match=r'\(image, label\) pairs'):
        updater.update()


# --- losses that compare fakes with reals, lazy penalties, regularizers ----

@pytest.mark.parametrize('reuse_fakes', [False, True])
def test_rpgan_g_step_compares_its_fakes_with_the_d_steps_reals_through_the_updated_d(
        reuse_fakes):
    from gan_trainer.losses import RPGAN

    updater = make_updater(loss='rpgan', reuse_fakes=reuse_fakes)
    gen_before = copy.deepcopy(updater.gen)
    gen_rec, dis_rec = Recorder(updater.gen), Recorder(updater.dis)
    obs = reported(updater)
    # D: its real and fake batch in its step; G step: the reals again, then fakes.
    assert len(dis_rec.calls) == 4
    real_d, fake_d, real_g, fake_g = dis_rec.calls
    numpy.testing.assert_array_equal(real_g['x'], real_d['x'])  # the same real batch
    assert same(real_g['params'], params(updater.dis)) and not real_g['backprop']
    softplus = lambda v: numpy.log1p(numpy.exp(v.astype(numpy.float64)))
    assert obs['dis/loss'] == pytest.approx(softplus(fake_d['y'] - real_d['y']).mean(), rel=1e-5)
    assert obs['gen/loss'] == pytest.approx(softplus(real_g['y'] - fake_g['y']).mean(), rel=1e-5)
    assert 'dis/loss_real' not in obs and 'dis/loss_fake' not in obs
    # G's gradient: the relativistic G loss of its z against those reals, by the updated D.
    z = gen_rec.calls[-1]['x']
    loss = RPGAN.gen_loss(F.flatten(updater.dis(gen_before(z))), real_g['y'])
    gen_before.cleargrads()
    loss.backward()
    for (name, p), q in zip(updater.gen.namedparams(), gen_before.params()):
        numpy.testing.assert_allclose(p.grad, q.grad, rtol=1e-4, atol=1e-6, err_msg=name)


def test_rpgan_with_the_g_step_first_takes_the_next_real_batch():
    updater = make_updater(loss='rpgan', order='gen_first')
    dis_rec = Recorder(updater.dis)
    updater.update()
    data = fake_images(40)
    # G step: reals (batch 0) then fakes; D step: reals (batch 1) then fakes.
    numpy.testing.assert_array_equal(dis_rec.calls[0]['x'], data[0:4])
    numpy.testing.assert_array_equal(dis_rec.calls[2]['x'], data[4:8])


class CountingPenalty:
    """R1 that records which D step (counted over the run) it ran in."""

    def __init__(self):
        from gan_trainer.penalties import R1

        self.r1, self.steps, self.updater = R1(2.0), [], None

    def __call__(self, d, x_real, x_fake, rng):
        u = self.updater
        self.steps.append(u.iteration * u.n_dis + u._dis_index)
        return self.r1(d, x_real, x_fake, rng)


@pytest.mark.parametrize('n_dis, every, expected', [
    (1, 3, [0, 3, 6]),                # 8 iterations, one D step each
    (2, 3, [0, 3, 6, 9, 12, 15]),     # 16 D steps, counted across iterations
])
def test_a_lazy_penalty_runs_every_kth_d_step_and_is_scaled_by_k(n_dis, every, expected):
    penalty = CountingPenalty()
    updater = make_updater(n_dis=n_dis, penalty=penalty, penalty_every=every,
                           data=fake_images(80))
    penalty.updater = updater
    dis_step = updater.dis_step

    def tracked(keep_fakes=False, index=0):
        updater._dis_index = index
        return dis_step(keep_fakes=keep_fakes, index=index)

    updater.dis_step = tracked
    for _ in range(8):
        before = len(penalty.steps)
        obs = reported(updater)
        assert ('dis/penalty' in obs) == (len(penalty.steps) > before)
        if n_dis == 1 and 'dis/penalty' in obs:  # dis/loss = its terms + k * penalty
            assert obs['dis/loss'] == pytest.approx(
                obs['dis/loss_real'] + obs['dis/loss_fake'] + every * obs['dis/penalty'],
                rel=1e-5)
    assert penalty.steps == expected


def test_penalty_every_must_be_a_positive_integer():
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match='penalty_every must be an integer >= 1'):
            make_updater(penalty_every=bad)


class Shift:
    """A regularizer: weight * mean(y_real - y_fake), with a counter as state."""

    name = 'shift'

    def __init__(self):
        self.calls = 0

    def __call__(self, discriminate, x_real, x_fake, y_real, y_fake, rng):
        self.calls += 1
        return 0.5 * F.mean(y_real - y_fake)

    def serialize(self, serializer):
        self.calls = int(serializer('calls', self.calls))


def test_regularizers_add_to_the_dis_loss_are_reported_and_saved(tmp_path):
    shift = Shift()
    updater = make_updater(regularizers=[shift])
    recorder = Recorder(updater.dis)
    obs = reported(updater)
    y_real, y_fake = (c['y'].astype(numpy.float64) for c in recorder.calls[:2])
    assert obs['dis/shift'] == pytest.approx(0.5 * (y_real - y_fake).mean(), rel=1e-5)
    assert obs['dis/loss'] == pytest.approx(
        obs['dis/loss_real'] + obs['dis/loss_fake'] + obs['dis/shift'], rel=1e-5)
    chainer.serializers.save_npz(str(tmp_path / 'u.npz'), updater)
    other = Shift()
    chainer.serializers.load_npz(str(tmp_path / 'u.npz'), make_updater(regularizers=[other]))
    assert other.calls == 1


def test_regularizers_need_names_of_their_own():
    with pytest.raises(ValueError, match='needs a name of its own'):
        make_updater(regularizers=[Shift(), Shift()])
