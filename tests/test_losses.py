"""GAN losses against hand-computed NumPy values."""

import chainer
import numpy
import pytest

from gan_trainer.losses import (
    HINGE,
    LOSSES,
    LSGAN,
    MINIMAX,
    NONSATURATING,
    WASSERSTEIN,
    GANLoss,
    bce_real,
    check_real_label,
    get_loss,
    soft_real,
)

Y = numpy.array([-3.0, -0.5, 0.0, 0.5, 3.0], numpy.float32)


def sigmoid(y):
    return 1 / (1 + numpy.exp(-y.astype(numpy.float64)))


@pytest.mark.parametrize('loss', [NONSATURATING, MINIMAX])
def test_dis_losses_are_binary_cross_entropy(loss):
    d = sigmoid(Y)
    assert float(loss.dis_real(Y).array) == pytest.approx(-numpy.log(d).mean(), rel=1e-5)
    assert float(loss.dis_fake(Y).array) == pytest.approx(-numpy.log(1 - d).mean(), rel=1e-5)


def test_nonsaturating_gen_maximises_log_d():
    expected = -numpy.log(sigmoid(Y)).mean()
    assert float(NONSATURATING.gen(Y).array) == pytest.approx(expected, rel=1e-5)


def test_minimax_gen_minimises_log_one_minus_d():
    expected = numpy.log(1 - sigmoid(Y)).mean()
    assert float(MINIMAX.gen(Y).array) == pytest.approx(expected, rel=1e-5)


def test_minimax_gradient_saturates_where_nonsaturating_does_not():
    # D confidently rejects a fake (logit -8): the minimax G loss has almost
    # no gradient there, the non-saturating one has a gradient near -1.
    grads = {}
    for name, loss in (('minimax', MINIMAX), ('nonsaturating', NONSATURATING)):
        y = chainer.Variable(numpy.array([-8.0], numpy.float32))
        loss.gen(y).backward()
        grads[name] = float(y.grad[0])
    assert abs(grads['minimax']) < 1e-3
    assert grads['nonsaturating'] == pytest.approx(-1.0, abs=1e-3)


def test_losses_are_stable_for_large_logits():
    y = numpy.array([-200.0, 200.0], numpy.float32)
    for loss in LOSSES.values():
        if loss.dis_output != 'logit':
            continue
        assert numpy.isfinite(float(loss.dis_loss(y, y[::-1])[0].array))
        assert numpy.isfinite(float(loss.gen_loss(y, y[::-1]).array))
    # The Cramér GAN's vectors, large and two fakes equal (a distance of 0).
    h = numpy.array([[-200.0, 300.0], [200.0, 0.0]], numpy.float32)
    cramer = LOSSES['cramer']
    assert numpy.isfinite(float(cramer.dis_loss(h, (h[::-1], h[::-1]))[0].array))
    assert numpy.isfinite(float(cramer.gen_loss((h, h), h[::-1]).array))
    f1 = chainer.Variable(h[::-1].copy())
    cramer.gen_loss((f1, f1), h).backward()  # ||f1 - f1|| = 0: a finite gradient all the same
    assert numpy.isfinite(f1.grad).all()


def test_get_loss_by_name_and_passthrough():
    assert get_loss('minimax') is MINIMAX
    custom = GANLoss(NONSATURATING.dis_real, NONSATURATING.dis_fake, MINIMAX.gen)
    assert get_loss(custom) is custom


def test_unknown_loss_lists_valid_names():
    match = ("unknown loss 'wgan'; valid losses: began, cramer, hinge, lsgan, minimax, "
             "nonsaturating, rpgan, wasserstein")
    with pytest.raises(ValueError, match=match):
        get_loss('wgan')


Y64 = Y.astype(numpy.float64)

# (loss, dis_real, dis_fake, gen) as NumPy functions of the logits, written
# straight from the papers' formulas.
EXPECTED = {
    'hinge': (
        HINGE,
        lambda y: numpy.maximum(0, 1 - y).mean(),
        lambda y: numpy.maximum(0, 1 + y).mean(),
        lambda y: -y.mean(),
    ),
    'lsgan': (
        LSGAN,
        lambda y: 0.5 * ((y - 1) ** 2).mean(),
        lambda y: 0.5 * (y**2).mean(),
        lambda y: 0.5 * ((y - 1) ** 2).mean(),
    ),
    'wasserstein': (
        WASSERSTEIN,
        lambda y: -y.mean(),
        lambda y: y.mean(),
        lambda y: -y.mean(),
    ),
}


@pytest.mark.parametrize('name', sorted(EXPECTED))
@pytest.mark.parametrize('shape', [(5,), (5, 1)])
def test_new_losses_match_numpy(name, shape):
    loss, dis_real, dis_fake, gen = EXPECTED[name]
    assert LOSSES[name] is loss
    y = Y.reshape(shape)
    for fn, expected in zip(loss, (dis_real, dis_fake, gen)):
        out = fn(y)
        assert out.shape == ()
        assert float(out.array) == pytest.approx(expected(Y64), rel=1e-6, abs=1e-7)


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_new_losses_gradients_match_numpy(name):
    # d loss / d y for each half, by hand: every loss is a mean over B = 5.
    n = len(Y64)
    expected = {
        'hinge': (-1.0 * (Y64 < 1) / n, 1.0 * (Y64 > -1) / n, -numpy.ones(n) / n),
        'lsgan': ((Y64 - 1) / n, Y64 / n, (Y64 - 1) / n),
        'wasserstein': (-numpy.ones(n) / n, numpy.ones(n) / n, -numpy.ones(n) / n),
    }[name]
    for fn, grad in zip(LOSSES[name], expected):
        y = chainer.Variable(Y.copy())
        fn(y).backward()
        numpy.testing.assert_allclose(y.grad, grad, rtol=1e-6, atol=1e-7)


def test_hinge_has_no_gradient_beyond_the_margin():
    # Real images scored above 1 and fakes below -1 no longer move D.
    y_real = chainer.Variable(numpy.array([1.5, 3.0, 0.5], numpy.float32))
    y_fake = chainer.Variable(numpy.array([-1.5, -3.0, -0.5], numpy.float32))
    (HINGE.dis_real(y_real) + HINGE.dis_fake(y_fake)).backward()
    numpy.testing.assert_allclose(y_real.grad, [0, 0, -1 / 3], rtol=1e-6)
    numpy.testing.assert_allclose(y_fake.grad, [0, 0, 1 / 3], rtol=1e-6)
    assert float(HINGE.dis_real(numpy.array([2.0, 5.0], numpy.float32)).array) == 0


def test_lsgan_pulls_confident_fakes_back_to_the_boundary():
    # Unlike cross-entropy, LSGAN's G loss does not saturate: a fake that D
    # scores far below 1 gets a gradient proportional to its distance.
    y = chainer.Variable(numpy.array([-8.0], numpy.float32))
    LSGAN.gen(y).backward()
    assert float(y.grad[0]) == pytest.approx(-9.0)


@pytest.mark.parametrize('name', sorted(n for n, loss in LOSSES.items()
                                         if loss.dis_output == 'logit'))
def test_losses_have_finite_gradients_for_large_logits(name):
    loss = LOSSES[name]
    for which in ('dis', 'gen'):
        y = chainer.Variable(numpy.array([-200.0, 200.0], numpy.float32))
        other = chainer.Variable(numpy.array([200.0, -200.0], numpy.float32))
        # Chainer's softplus backward computes 1 / (1 + exp(200)): the exp
        # overflows to inf on the way, but the gradient itself is finite.
        with numpy.errstate(over='ignore'):
            value = loss.dis_loss(y, other)[0] if which == 'dis' else loss.gen_loss(y, other)
            value.backward()
        assert numpy.isfinite(y.grad).all()
        assert other.grad is None or numpy.isfinite(other.grad).all()


# --- the relativistic pairing loss (RpGAN) ---------------------------------

Y_REAL = numpy.array([1.0, -2.0, 0.5, 3.0], numpy.float64)
Y_FAKE = numpy.array([0.0, 1.0, -1.5, 3.5], numpy.float64)


def softplus(x):
    return numpy.log1p(numpy.exp(x))


def test_rpgan_matches_its_formula_by_hand():
    # D: mean softplus(-(y_r - y_f)); G: mean softplus(-(y_f - y_r)), pair i with i.
    loss = LOSSES['rpgan']
    value, real_term, fake_term = loss.dis_loss(Y_REAL.astype('f'), Y_FAKE.astype('f'))
    assert (real_term, fake_term) == (None, None) and loss.coupled and loss.gen_needs_real
    assert float(value.array) == pytest.approx(softplus(Y_FAKE - Y_REAL).mean(), rel=1e-6)
    gen = loss.gen_loss(Y_FAKE.astype('f'), Y_REAL.astype('f'))
    assert float(gen.array) == pytest.approx(softplus(Y_REAL - Y_FAKE).mean(), rel=1e-6)
    # Pairing matters: the same logits in another order give another loss.
    shuffled = loss.dis_loss(Y_REAL[::-1].astype('f'), Y_FAKE.astype('f'))[0]
    assert float(shuffled.array) != pytest.approx(float(value.array), rel=1e-3)


def test_rpgan_gradients_match_the_derivative_by_hand():
    # d/dy_r mean softplus(y_f - y_r) = -sigmoid(y_f - y_r) / B, d/dy_f = +sigmoid(...) / B.
    n = len(Y_REAL)
    sig = 1 / (1 + numpy.exp(-(Y_FAKE - Y_REAL)))
    y_real, y_fake = chainer.Variable(Y_REAL.copy()), chainer.Variable(Y_FAKE.copy())
    LOSSES['rpgan'].dis_loss(y_real, y_fake)[0].backward()
    numpy.testing.assert_allclose(y_real.grad, -sig / n, rtol=1e-12)
    numpy.testing.assert_allclose(y_fake.grad, sig / n, rtol=1e-12)
    sig = 1 / (1 + numpy.exp(-(Y_REAL - Y_FAKE)))
    y_real, y_fake = chainer.Variable(Y_REAL.copy()), chainer.Variable(Y_FAKE.copy())
    LOSSES['rpgan'].gen_loss(y_fake, y_real).backward()
    numpy.testing.assert_allclose(y_fake.grad, -sig / n, rtol=1e-12)
    numpy.testing.assert_allclose(y_real.grad, sig / n, rtol=1e-12)


def test_rpgan_gen_loss_without_reals_is_refused():
    with pytest.raises(ValueError, match='needs y_real'):
        LOSSES['rpgan'].gen_loss(Y_FAKE.astype('f'))


@pytest.mark.parametrize('name', ['nonsaturating', 'lsgan', 'hinge', 'wasserstein', 'minimax'])
def test_dis_loss_of_a_separable_loss_is_its_two_halves(name):
    loss = LOSSES[name]
    value, real_term, fake_term = loss.dis_loss(Y_REAL, Y_FAKE)
    assert float(real_term.array) == float(loss.dis_real(Y_REAL).array)
    assert float(fake_term.array) == float(loss.dis_fake(Y_FAKE).array)
    assert float(value.array) == float(real_term.array) + float(fake_term.array)
    assert float(loss.gen_loss(Y_FAKE, Y_REAL).array) == float(loss.gen(Y_FAKE).array)


# --- soft and noisy real labels (label smoothing) ---------------------------

T = numpy.array([0.7, 0.8, 0.9, 1.0, 0.75], numpy.float32)


@pytest.mark.parametrize('loss', [NONSATURATING, MINIMAX])
def test_soft_cross_entropy_matches_hand_computed_values(loss):
    d = sigmoid(Y)
    expected = -(T * numpy.log(d) + (1 - T) * numpy.log(1 - d)).mean()
    assert float(soft_real(loss)(Y, T).array) == pytest.approx(expected, rel=1e-5)
    # 0.9 for every image: Salimans et al.'s one-sided smoothing.
    expected = -(0.9 * numpy.log(d) + 0.1 * numpy.log(1 - d)).mean()
    assert float(soft_real(loss)(Y, 0.9).array) == pytest.approx(expected, rel=1e-5)


def test_soft_cross_entropy_with_target_one_is_exactly_the_hard_loss():
    y = numpy.linspace(-30, 30, 41).astype(numpy.float32)
    assert soft_real(NONSATURATING)(y, 1.0).array == NONSATURATING.dis_real(y).array
    ones = numpy.ones_like(y)
    assert soft_real(NONSATURATING)(y, ones).array == NONSATURATING.dis_real(y).array


def test_soft_cross_entropy_is_finite_for_large_logits_and_minimal_at_the_target():
    y = chainer.Variable(numpy.array([-200.0, 200.0], numpy.float32))
    loss = soft_real(NONSATURATING)(y, numpy.float32(0.8))
    with numpy.errstate(over='ignore'):  # inside Chainer's softplus backward, as above
        loss.backward()
    assert numpy.isfinite(loss.array) and numpy.isfinite(y.grad).all()
    # The gradient sigmoid(y) - t vanishes where sigmoid(y) = t = 0.8.
    y = chainer.Variable(numpy.array([numpy.log(4.0)], numpy.float32))
    soft_real(NONSATURATING)(y, 0.8).backward()
    assert abs(float(y.grad[0])) < 1e-6


def test_soft_least_squares_matches_hand_computed_values():
    expected = 0.5 * ((Y - T) ** 2).mean()
    assert float(soft_real(LSGAN)(Y, T).array) == pytest.approx(expected, rel=1e-6)
    assert float(soft_real(LSGAN)(Y, 1.0).array) == pytest.approx(
        float(LSGAN.dis_real(Y).array), rel=1e-7)


def test_only_losses_with_targets_have_soft_versions():
    assert soft_real('hinge') is None and soft_real(WASSERSTEIN) is None
    assert soft_real('rpgan') is None
    # Found through dis_real, so a custom loss built from bce_real has one.
    custom = GANLoss(bce_real, NONSATURATING.dis_fake, HINGE.gen)
    assert soft_real(custom) is soft_real('minimax') is soft_real(NONSATURATING)
    assert soft_real(GANLoss(HINGE.dis_real, HINGE.dis_fake, HINGE.gen)) is None


@pytest.mark.parametrize('value, loss, expected', [
    (None, 'hinge', None),
    (0.9, 'nonsaturating', (0.9, 0.9)),
    ((0.7, 1.0), 'minimax', (0.7, 1.0)),
    ([0.7, 1.2], 'lsgan', (0.7, 1.2)),
    (numpy.float32(0.5), LSGAN, (0.5, 0.5)),
])
def test_check_real_label_accepts(value, loss, expected):
    assert check_real_label(value, loss) == expected


@pytest.mark.parametrize('value, loss, message', [
    (0.9, 'hinge', 'real_label is not defined for the hinge loss .*nonsaturating, minimax, lsgan'),
    (0.9, 'wasserstein', 'real_label is not defined for the wasserstein loss'),
    (0.9, 'rpgan', 'real_label is not defined for the rpgan loss'),
    ((0.7, 1.2), 'nonsaturating', r'real_label \(0.7, 1.2\) goes above 1 with the nonsaturating'),
    (1.1, 'minimax', 'goes above 1 with the minimax loss'),
    (0.0, 'lsgan', 'real_label must be a number t > 0 or a range'),
    ((0.9, 0.8), 'lsgan', r'0 < lo <= hi, got \(0.9, 0.8\)'),
    ((0.7, 0.8, 0.9), 'lsgan', '0 < lo <= hi'),
    (float('nan'), 'lsgan', 'real_label must be'),
    (True, 'lsgan', 'real_label must be'),
    ('0.9', 'lsgan', 'real_label must be'),
])
def test_check_real_label_refuses_with_one_line(value, loss, message):
    with pytest.raises(ValueError, match=message) as info:
        check_real_label(value, loss)
    assert '\n' not in str(info.value)


@pytest.mark.filterwarnings('ignore::gan_trainer.updater.NotResumableWarning')
def test_lsgan_counts_d_right_about_its_boundary_of_one_half():
    """D's accuracy is judged about 0.5 for LSGAN (codes 0 and 1), about 0 for logits."""
    from gan_trainer import GANUpdater
    from gan_trainer.testing import fake_images, tiny_discriminator, tiny_generator

    assert (LOSSES['lsgan'].boundary, LOSSES['nonsaturating'].boundary) == (0.5, 0.0)
    lsgan = LOSSES['lsgan']
    assert lsgan.functions == (lsgan.dis_real, lsgan.dis_fake, lsgan.gen) == tuple(lsgan)[:3]
    accuracy = {}
    for name in ('lsgan', 'nonsaturating'):
        gen, dis = tiny_generator(), tiny_discriminator()
        opts = {}
        for key, net in (('gen', gen), ('dis', dis)):
            opts[key] = chainer.optimizers.SGD(0.0)  # D's scores stay those checked below
            opts[key].setup(net)
        it = chainer.iterators.SerialIterator(fake_images(8), 8, shuffle=False)
        updater = GANUpdater(it, opts, device=-1, loss=name, seed=0)
        # D says 0.3 for everything: "fake" for LSGAN, "real" for logits.
        dis.forward = lambda x, *a: chainer.Variable(numpy.full((len(x), 1), 0.3, numpy.float32))
        observation, reporter = {}, chainer.Reporter()
        reporter.add_observer('dis', dis)
        reporter.add_observer('gen', gen)
        with reporter.scope(observation):
            updater.update()
        accuracy[name] = (float(observation['dis/acc_real']), float(observation['dis/acc_fake']))
    assert accuracy == {'lsgan': (0.0, 1.0), 'nonsaturating': (1.0, 0.0)}


# --- The least-squares terms as one node (gan_trainer/ops/least_squares.py) ----------


def _chainer_least_squares(y, target):
    import chainer.functions as F
    return 0.5 * F.mean(F.square(y - target if target else y))


@pytest.mark.parametrize('dtype', [numpy.float16, numpy.float32, numpy.float64])
@pytest.mark.parametrize('n', [1, 7, 50, 64])
@pytest.mark.parametrize('target,fn', [(1.0, LSGAN.dis_real), (0.0, LSGAN.dis_fake)])
@pytest.mark.parametrize('gy', [1.0, 1024.0, 0.37])
def test_lsgan_terms_have_chainers_bits_value_and_gradient(dtype, n, target, fn, gy):
    """``0.5 * F.mean(F.square(y - c))`` in Chainer's nodes and in the one node: the
    same bits forward and backward, for a loss-scaled or weighted output gradient
    and a batch whose 1/n is not a power of two."""
    y0 = (3 * numpy.random.default_rng(n).standard_normal(n)).astype(dtype)
    got, want = chainer.Variable(y0.copy()), chainer.Variable(y0.copy())
    a, b = fn(got), _chainer_least_squares(want, target)
    assert a.array.dtype == b.array.dtype and a.array.shape == b.array.shape == ()
    numpy.testing.assert_array_equal(a.array, b.array)
    for loss in (a, b):
        loss.grad = numpy.asarray(gy, dtype)
        loss.backward()
    numpy.testing.assert_array_equal(got.grad, want.grad)
    # ... and the hand-computed value: 0.5 mean((y - c)^2), gradient gy (y - c) / n
    d = y0.astype(numpy.float64) - target
    assert float(a.array) == pytest.approx(0.5 * numpy.mean(d * d), rel=2e-3)
    numpy.testing.assert_allclose(got.grad, gy * d / n, rtol=2e-3, atol=1e-6)


def test_lsgan_term_is_one_node_and_differentiates_twice():
    from gan_trainer.ops.least_squares import HalfMeanSquare
    y = chainer.Variable(numpy.array([0.5, -1.0, 2.0], numpy.float32))
    loss = LSGAN.gen(y)
    assert isinstance(loss.creator, HalfMeanSquare) and loss.creator.inputs[0] is y.node
    # d/dy of sum(g^2), g = dloss/dy = (y - 1) / n: 2 g / n
    g, = chainer.grad([loss], [y], enable_double_backprop=True)
    gg, = chainer.grad([chainer.functions.sum(g * g)], [y])
    expected_g = (y.array - 1) / 3
    numpy.testing.assert_allclose(g.array, expected_g, rtol=1e-6)
    numpy.testing.assert_allclose(gg.array, 2 * expected_g / 3, rtol=1e-6)
