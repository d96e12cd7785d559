"""Gradient penalties: closed forms, finite differences, graph hygiene."""

import chainer
import chainer.functions as F
import chainer.links as L
import numpy
import pytest

from gan_trainer.penalties import (
    PENALTIES,
    R1,
    R2,
    WGANGP,
    PenaltySum,
    get_penalty,
    penalty_weight,
    set_penalty_weight,
)
from gan_trainer.testing import fake_images, tiny_discriminator

B = 4
SHAPE = (B, 1, 8, 8)


class LinearD(chainer.Chain):
    """``D(x) = w . x + b``: ``grad_x D = w`` for every x, logits (B, 1)."""

    def __init__(self, w, b=0.5):
        super().__init__()
        with self.init_scope():
            self.l = L.Linear(w.size, 1, initialW=w.reshape(1, -1), initial_bias=b)

    def forward(self, x):
        return self.l(x)


def linear_d(seed=0, scale=0.05):
    w = numpy.random.RandomState(seed).normal(0, scale, size=SHAPE[1:])
    with chainer.using_config('dtype', numpy.float64):
        return LinearD(w)


def dcgan_d():
    # float64 parameters so that finite differences are accurate to ~1e-8.
    with chainer.using_config('dtype', numpy.float64):
        return tiny_discriminator(seed=1)


def batches(dtype=numpy.float64):
    x_real = fake_images(B, seed=0).astype(dtype)
    x_fake = numpy.random.RandomState(1).uniform(-1, 1, SHAPE).astype(dtype)
    return x_real, x_fake


def evaluate(penalty, d, seed=0):
    x_real, x_fake = batches()
    return penalty(d, x_real, x_fake, numpy.random.RandomState(seed))


@pytest.mark.parametrize('seed', [0, 1, 2])
@pytest.mark.parametrize('weight', [1.0, 10.0])
def test_wgangp_closed_form_for_linear_d(seed, weight):
    # grad_x D = w at every x_hat, so the interpolation weights do not matter.
    d = linear_d()
    w = d.l.W.array.ravel()
    norm = numpy.linalg.norm(w)
    assert norm != pytest.approx(1.0, abs=0.1)
    value = evaluate(WGANGP(weight), d, seed=seed)
    assert value.shape == ()
    assert float(value.array) == pytest.approx(weight * (norm - 1) ** 2, rel=1e-10)


@pytest.mark.parametrize('target', [0.0, 1.0, 2.0])
def test_wgangp_target(target):
    d = linear_d()
    norm = numpy.linalg.norm(d.l.W.array)
    value = evaluate(WGANGP(10.0, target=target), d)
    # With target 0, the 1e-12 inside the square root shows up at ~1e-12 / norm.
    assert float(value.array) == pytest.approx(10 * (norm - target) ** 2, rel=1e-10)


@pytest.mark.parametrize('gamma', [0.1, 10.0])
def test_r1_closed_form_for_linear_d(gamma):
    d = linear_d()
    w = d.l.W.array.ravel()
    x_real, _ = batches()
    value = R1(gamma)(d, x_real, None, None)
    assert float(value.array) == pytest.approx(gamma / 2 * w @ w, rel=1e-12)


def test_parameter_gradients_closed_form_for_linear_d():
    d = linear_d()
    w = d.l.W.array.copy()
    norm = numpy.linalg.norm(w)

    d.cleargrads()
    evaluate(WGANGP(10.0), d).backward()
    numpy.testing.assert_allclose(d.l.W.grad, 2 * 10 * (norm - 1) * w / norm, rtol=1e-9)
    # The bias does not enter grad_x D: no gradient (None or zeros).
    assert d.l.b.grad is None or not d.l.b.grad.any()

    d.cleargrads()
    evaluate(R1(3.0), d).backward()
    numpy.testing.assert_allclose(d.l.W.grad, 3.0 * w, rtol=1e-12)


def _central_differences(f, param, indices, h=1e-6):
    grads = []
    for index in indices:
        original = param.array[index]
        param.array[index] = original + h
        plus = f()
        param.array[index] = original - h
        minus = f()
        param.array[index] = original
        grads.append((plus - minus) / (2 * h))
    return numpy.array(grads)


@pytest.mark.parametrize(
    'make_penalty', [lambda: WGANGP(10.0), lambda: R1(10.0)], ids=['wgan-gp', 'r1']
)
def test_parameter_gradients_match_finite_differences(make_penalty):
    # The DCGAN D in train mode: convolutions, LeakyReLU and BatchNorm all
    # have to pass the second-order gradient through for this to hold.
    penalty = make_penalty()
    d = dcgan_d()
    assert chainer.config.train

    def f():
        return float(evaluate(penalty, d, seed=3).array)

    d.cleargrads()
    evaluate(penalty, d, seed=3).backward()
    params = dict(d.namedparams())
    checked = 0
    for name in ('/convs/0/W', '/convs/1/W', '/bns/0/gamma', '/out/W'):
        param = params[name]
        assert param.dtype == numpy.float64
        flat = numpy.random.RandomState(0).choice(param.size, 3, replace=False)
        indices = [numpy.unravel_index(i, param.shape) for i in flat]
        expected = _central_differences(f, param, indices)
        actual = numpy.array([param.grad[i] for i in indices])
        numpy.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-8)
        checked += numpy.count_nonzero(actual)
    assert checked >= 6  # the check is not vacuous


def test_wgangp_interpolates_with_eps_from_rng():
    x_real, x_fake = batches()
    seen = []

    def d(x):
        seen.append(x.array.copy())
        return F.sum(x, axis=(1, 2, 3))

    rng = numpy.random.RandomState(5)
    WGANGP()(d, x_real, x_fake, rng)
    reference = numpy.random.RandomState(5)
    eps = reference.uniform(0, 1, size=(B, 1, 1, 1))
    numpy.testing.assert_allclose(seen[0], eps * x_real + (1 - eps) * x_fake, rtol=1e-12)
    # Exactly B numbers were drawn: the next draw matches the reference's.
    assert rng.uniform() == reference.uniform()


@pytest.mark.parametrize('penalty', [WGANGP(), R1()], ids=repr)
def test_penalty_is_repeatable_for_the_same_rng_state(penalty):
    d = dcgan_d()
    first = float(evaluate(penalty, d, seed=7).array)
    assert float(evaluate(penalty, d, seed=7).array) == first
    if isinstance(penalty, WGANGP):
        assert float(evaluate(penalty, d, seed=8).array) != first


@pytest.mark.parametrize('penalty', [WGANGP(), R1()], ids=repr)
def test_penalty_leaves_inputs_and_generator_alone(penalty):
    d = dcgan_d()
    x_real_array, x_fake_array = batches()
    x_real = chainer.Variable(x_real_array)
    # x_fake as G would hand it over: the output of a graph from z.
    z = chainer.Variable(x_fake_array.copy())
    x_fake = z * 1.0

    d.cleargrads()
    value = penalty(d, x_real, x_fake, numpy.random.RandomState(0))
    # Building the penalty sets no gradient anywhere ...
    assert all(p.grad is None for p in d.params())
    value.backward()
    # ... and its backward pass reaches D's parameters, not the images or G.
    assert x_real.grad is None and x_fake.grad is None and z.grad is None
    assert any(p.grad is not None and p.grad.any() for p in d.params())
    numpy.testing.assert_array_equal(x_real.array, x_real_array)


@pytest.mark.parametrize('penalty', [WGANGP(), R1()], ids=repr)
def test_penalty_works_under_no_backprop_mode(penalty):
    # E.g. in the evaluator: the input gradient needs a graph regardless.
    d = dcgan_d()
    expected = float(evaluate(penalty, d).array)
    with chainer.no_backprop_mode():
        assert float(evaluate(penalty, d).array) == pytest.approx(expected, rel=1e-12)


def test_penalty_float32_and_logits_of_shape_b1():
    d = tiny_discriminator()

    def d_b1(x):
        return F.reshape(d(x), (-1, 1))

    x_real, x_fake = batches(numpy.float32)
    for penalty in (WGANGP(), R1()):
        value = penalty(d_b1, x_real, x_fake, numpy.random.RandomState(0))
        assert value.dtype == numpy.float32 and value.shape == ()
        flat = penalty(d, x_real, x_fake, numpy.random.RandomState(0))
        assert float(value.array) == pytest.approx(float(flat.array), rel=1e-6)


def test_wgangp_gradient_is_finite_at_zero_input_gradient():
    # A D with zero weights has grad_x D = 0, where sqrt has no derivative;
    # the 1e-12 inside the square root keeps the parameter gradient finite.
    d = linear_d(scale=0.0)
    d.cleargrads()
    value = evaluate(WGANGP(10.0), d)
    value.backward()
    assert float(value.array) == pytest.approx(10.0, rel=1e-5)
    assert numpy.isfinite(d.l.W.grad).all()


def test_get_penalty():
    assert get_penalty(None) is None
    assert get_penalty('none') is None
    assert get_penalty('none', 5.0) is None
    assert repr(get_penalty('wgan-gp')) == 'WGANGP(weight=10, target=1)'
    assert repr(get_penalty('r1', 0.5)) == 'R1(gamma=0.5)'
    assert get_penalty('wgan-gp', 2.0).weight == 2.0
    custom = WGANGP(1.0, target=0.5)
    assert get_penalty(custom) is custom
    assert set(PENALTIES) == {'wgan-gp', 'r1', 'r2', 'dragan'}
    both = get_penalty('r1,r2', 0.1)
    assert isinstance(both, PenaltySum) and repr(both) == 'R1(gamma=0.1) + R2(gamma=0.1)'


def test_unknown_penalty_lists_valid_names():
    with pytest.raises(
        ValueError, match="unknown penalty 'gp'; valid penalties: dragan, r1, r2, wgan-gp, none"
    ):
        get_penalty('gp')
    with pytest.raises(ValueError, match="unknown penalty 'r3'"):
        get_penalty('r1,r3')
    with pytest.raises(ValueError, match="names a penalty twice"):
        get_penalty('r1,r1')


@pytest.mark.parametrize('cls', [WGANGP, R1, R2])
def test_negative_weight_is_rejected(cls):
    with pytest.raises(ValueError, match='must be >= 0'):
        cls(-1.0)


@pytest.mark.gpu
def test_wgangp_on_cupy_matches_numpy():
    cupy = pytest.importorskip('cupy')
    d = tiny_discriminator()
    x_real, x_fake = batches(numpy.float32)
    expected = float(WGANGP()(d, x_real, x_fake, numpy.random.RandomState(0)).array)
    d.to_device('@cupy:0')
    value = WGANGP()(d, cupy.asarray(x_real), cupy.asarray(x_fake), numpy.random.RandomState(0))
    assert isinstance(value.array, cupy.ndarray)
    assert float(value.array) == pytest.approx(expected, rel=1e-4)


class QuadraticD(chainer.Chain):
    """``D(x) = a sum(x^2) + b sum(x)`` per image: two parameters, ``grad_x D = 2 a x + b``."""

    def __init__(self, a=0.3, b=-0.2):
        super().__init__()
        with self.init_scope():
            self.a = chainer.Parameter(numpy.array(a, numpy.float64))
            self.b = chainer.Parameter(numpy.array(b, numpy.float64))

    def forward(self, x):
        axes = tuple(range(1, x.ndim))
        return (F.broadcast_to(self.a, (len(x),)) * F.sum(x * x, axis=axes)
                + F.broadcast_to(self.b, (len(x),)) * F.sum(x, axis=axes))


def zero_centred_by_hand(x, a, b, gamma):
    """R1/R2 of QuadraticD at x, and its derivatives in a and b, from the formula."""
    g = 2 * a * x + b                                     # grad_x D, per pixel
    value = gamma / 2 * (g ** 2).sum(axis=(1, 2, 3)).mean()
    d_a = gamma / 2 * (2 * g * 2 * x).sum(axis=(1, 2, 3)).mean()
    d_b = gamma / 2 * (2 * g).sum(axis=(1, 2, 3)).mean()
    return value, d_a, d_b


@pytest.mark.parametrize('name', ['r1', 'r2', 'r1,r2'])
@pytest.mark.parametrize('gamma', [0.05, 10.0])
def test_zero_centred_penalties_match_their_formula_and_its_derivatives(name, gamma):
    # R1 at the reals, R2 at the fakes, the sum of both: values and both
    # parameters' gradients against the derivative written by hand.
    x_real, x_fake = batches()
    d = QuadraticD()
    value = get_penalty(name, gamma)(d, x_real, x_fake, None)
    value.backward()
    expected = numpy.zeros(3)
    for part, x in (('r1', x_real), ('r2', x_fake)):
        if part in name.split(','):
            expected += zero_centred_by_hand(x, 0.3, -0.2, gamma)
    assert float(value.array) == pytest.approx(expected[0], rel=1e-10)
    assert float(d.a.grad) == pytest.approx(expected[1], rel=1e-10)
    assert float(d.b.grad) == pytest.approx(expected[2], rel=1e-10)


def test_r2_looks_at_the_fakes_only():
    x_real, x_fake = batches()
    r2 = R2(1.0)
    one = float(r2(QuadraticD(), x_real, x_fake).array)
    assert float(r2(QuadraticD(), x_real * 5, x_fake).array) == one
    assert float(r2(QuadraticD(), x_real, x_fake * 5).array) != pytest.approx(one)


def test_penalty_weight_is_read_and_set_on_every_term():
    both = get_penalty('r1,r2', 2.0)
    assert penalty_weight(both) == 2.0
    set_penalty_weight(both, 0.5)
    assert [p.gamma for p in both.penalties] == [0.5, 0.5]
    gp = get_penalty('wgan-gp')
    set_penalty_weight(gp, 3.0)
    assert penalty_weight(gp) == gp.weight == 3.0
