"""LeCam and bCR against their formulas computed by hand in NumPy."""

import chainer
import chainer.functions as F
import numpy
import pytest

from gan_trainer.augment import get_augment
from gan_trainer.regularizers import ConsistencyRegularization, LeCam
from gan_trainer.testing import fake_images

Y_REAL = [numpy.array([0.8, 0.3, -0.1], numpy.float32), numpy.array([1.2, 0.9, 0.4], numpy.float32)]
Y_FAKE = [numpy.array([-0.5, 0.6, 0.1], numpy.float32), numpy.array([-0.9, 0.2, -0.3], numpy.float32)]


def lecam_by_hand(weight, decay, steps):
    """The term of each step: averages start at step 1's means, then move by ``decay``."""
    a_real = a_fake = None
    terms = []
    for y_r, y_f in steps:
        y_r, y_f = y_r.astype(numpy.float64), y_f.astype(numpy.float64)
        a_real = y_r.mean() if a_real is None else decay * a_real + (1 - decay) * y_r.mean()
        a_fake = y_f.mean() if a_fake is None else decay * a_fake + (1 - decay) * y_f.mean()
        terms.append(weight * ((numpy.maximum(y_r - a_fake, 0) ** 2).mean()
                               + (numpy.maximum(a_real - y_f, 0) ** 2).mean()))
    return terms, a_real, a_fake


@pytest.mark.parametrize('decay', [0.99, 0.5])
def test_lecam_follows_its_formula_over_two_steps(decay):
    lecam = LeCam(0.3, decay=decay)
    expected, a_real, a_fake = lecam_by_hand(0.3, decay, zip(Y_REAL, Y_FAKE))
    for y_r, y_f, want in zip(Y_REAL, Y_FAKE, expected):
        term = lecam(None, None, None, chainer.Variable(y_r), chainer.Variable(y_f))
        assert float(term.array) == pytest.approx(want, rel=1e-5)
    assert float(lecam.average_real) == pytest.approx(a_real, rel=1e-6)
    assert float(lecam.average_fake) == pytest.approx(a_fake, rel=1e-6)


def test_lecam_gradient_is_the_derivative_by_hand_with_the_averages_held_constant():
    lecam = LeCam(1.0, decay=0.5)
    lecam(None, None, None, chainer.Variable(Y_REAL[0]), chainer.Variable(Y_FAKE[0]))
    y_r, y_f = chainer.Variable(Y_REAL[1].copy()), chainer.Variable(Y_FAKE[1].copy())
    lecam(None, None, None, y_r, y_f).backward()
    a_real, a_fake = float(lecam.average_real), float(lecam.average_fake)
    n = len(Y_REAL[1])
    numpy.testing.assert_allclose(y_r.grad, 2 * numpy.maximum(Y_REAL[1] - a_fake, 0) / n,
                                  rtol=1e-5)
    numpy.testing.assert_allclose(y_f.grad, -2 * numpy.maximum(a_real - Y_FAKE[1], 0) / n,
                                  rtol=1e-5)


def test_lecam_averages_survive_a_snapshot(tmp_path):
    first = LeCam(0.1)
    first(None, None, None, chainer.Variable(Y_REAL[0]), chainer.Variable(Y_FAKE[0]))
    chainer.serializers.save_npz(str(tmp_path / 'lecam.npz'), first)
    second = LeCam(0.1)
    chainer.serializers.load_npz(str(tmp_path / 'lecam.npz'), second)
    a = first(None, None, None, chainer.Variable(Y_REAL[1]), chainer.Variable(Y_FAKE[1]))
    b = second(None, None, None, chainer.Variable(Y_REAL[1]), chainer.Variable(Y_FAKE[1]))
    assert float(a.array) == float(b.array)
    # A fresh one (no snapshot) starts at this step's means: another value.
    c = LeCam(0.1)(None, None, None, chainer.Variable(Y_REAL[1]), chainer.Variable(Y_FAKE[1]))
    assert float(c.array) != pytest.approx(float(a.array))


def test_bcr_compares_d_with_itself_under_the_same_translations():
    # D(x) = w . x per image; T draws its shifts from the rng, so a copy of
    # the rng gives the very same translated images to compute by hand.
    x_real = fake_images(4, seed=0).astype(numpy.float64)
    x_fake = fake_images(4, seed=1).astype(numpy.float64)
    w = numpy.random.RandomState(2).normal(size=x_real.shape[1:])

    def d(x):
        x = x if isinstance(x, chainer.Variable) else chainer.Variable(x)
        return F.sum(x * numpy.broadcast_to(w, x.shape), axis=(1, 2, 3))

    bcr = ConsistencyRegularization(10.0)
    rng = numpy.random.RandomState(7)
    term = bcr(d, x_real, x_fake, d(x_real), d(x_fake), rng)
    twin = numpy.random.RandomState(7)
    shift = get_augment('translation')
    t_real = shift(x_real, twin).array
    t_fake = shift(x_fake, twin).array
    assert not numpy.array_equal(t_real, x_real)

    def by_hand(x, t):
        return (((x * w).sum(axis=(1, 2, 3)) - (t * w).sum(axis=(1, 2, 3))) ** 2).mean()

    expected = 10.0 * (by_hand(x_real, t_real) + by_hand(x_fake, t_fake))
    assert float(term.array) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize('cls', [LeCam, ConsistencyRegularization])
@pytest.mark.parametrize('weight', [-1.0, float('nan'), 'x', True])
def test_a_bad_weight_is_one_line(cls, weight):
    with pytest.raises(ValueError, match='weight must be a finite number >= 0'):
        cls(weight)
