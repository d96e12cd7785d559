"""GAN losses against hand-computed NumPy values."""

import chainer
import numpy
import pytest

from gan_trainer.losses import LOSSES, MINIMAX, NONSATURATING, GANLoss, get_loss

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
        for fn in loss:
            assert numpy.isfinite(float(fn(y).array))


def test_get_loss_by_name_and_passthrough():
    assert get_loss('minimax') is MINIMAX
    custom = GANLoss(NONSATURATING.dis_real, NONSATURATING.dis_fake, MINIMAX.gen)
    assert get_loss(custom) is custom


def test_unknown_loss_lists_valid_names():
    with pytest.raises(ValueError, match="unknown loss 'wgan'.*minimax, nonsaturating"):
        get_loss('wgan')
