"""The pieces of chainer-gan-lib's algorithms, computed by hand in NumPy.

Minibatch discrimination, the autoencoder D of BEGAN, G without BatchNorm,
D's wide outputs and features, DRAGAN's penalty and the denoiser of DFM:
values and gradients against formulas written out here on nets of a few
parameters.
"""

import chainer
import chainer.functions as F
import chainer.links as L
import numpy as np
import pytest
from chainer import gradient_check

from gan_trainer.dfm import Denoiser, DenoisingFeatureMatching
from gan_trainer.nets import (
    AutoencoderDiscriminator,
    Discriminator,
    Generator,
    build_discriminator,
    build_generator,
)
from gan_trainer.nets.minibatch import MinibatchDiscrimination
from gan_trainer.penalties import DRAGAN, get_penalty

# ------------------------------------------------------------ minibatch


def test_minibatch_counts_match_numpy():
    rng = np.random.RandomState(0)
    n, a, b, c = 5, 6, 3, 2
    layer = MinibatchDiscrimination(a, kernels=b, kernel_dim=c)
    h = rng.randn(n, a).astype(np.float32)
    m = (h @ layer.T.W.array.T).reshape(n, b, c)
    expected = np.zeros((n, b))
    for i in range(n):
        for j in range(n):
            if i != j:
                expected[i] += np.exp(-np.abs(m[i] - m[j]).sum(axis=1))
    np.testing.assert_allclose(layer.counts(h).array, expected, rtol=1e-5)
    out = layer(h).array
    assert out.shape == (n, a + b)
    np.testing.assert_array_equal(out[:, :a], h)


def test_minibatch_gradient_by_hand():
    # Two images, one feature, one kernel of one dimension: o_1 = o_2 =
    # exp(-|w (h1 - h2)|), so do_1/dw = -exp(-|w d|) sign(w d) d with d = h1 - h2.
    layer = MinibatchDiscrimination(1, kernels=1, kernel_dim=1)
    w = 0.7
    layer.T.W.array[...] = w
    h = np.array([[1.5], [-0.5]], np.float32)
    d = 2.0
    o = layer.counts(h)
    np.testing.assert_allclose(o.array, [[np.exp(-w * d)], [np.exp(-w * d)]], rtol=1e-6)
    layer.cleargrads()
    F.sum(o[0]).backward()
    np.testing.assert_allclose(layer.T.W.grad, [[-np.exp(-w * d) * d]], rtol=1e-5)


def test_minibatch_backward_is_chainers_numeric_gradient():
    rng = np.random.RandomState(1)
    layer = MinibatchDiscrimination(4, kernels=3, kernel_dim=2)
    layer.T.W.array = rng.randn(6, 4)  # float64 for the numeric check
    h = rng.randn(4, 4)
    gy = rng.randn(4, 3)
    gradient_check.check_backward(layer.counts, h, gy, params=(layer.T.W,),
                                  eps=1e-4, atol=1e-5, rtol=1e-4)


def test_discriminator_with_minibatch_discrimination_sees_the_batch():
    dis = Discriminator(size=8, widths=[4, 8], minibatch_kernels=6, minibatch_dim=3)
    assert dis.out.W.shape == (1, 8 * 2 * 2 + 6)
    x = np.random.RandomState(0).uniform(-1, 1, (4, 1, 8, 8)).astype(np.float32)
    with chainer.using_config('train', False):
        alone = dis(x[:1]).array
        together = dis(x).array
    # The same image scores differently beside others: D reads the batch.
    assert not np.allclose(alone[0], together[0])
    rebuilt = Discriminator(**dis.config())
    assert {n for n, _ in rebuilt.namedparams()} == {n for n, _ in dis.namedparams()}


def test_default_discriminator_has_no_new_parameters():
    dis = Discriminator(size=8, widths=[4, 8])
    assert 'out_dim' not in dis.config() and 'minibatch_kernels' not in dis.config()
    assert not any('minibatch' in n for n, _ in dis.namedparams())


def test_wide_outputs_and_features():
    dis = Discriminator(size=8, widths=[4, 8], norm='none', out_dim=5)
    x = np.zeros((3, 1, 8, 8), np.float32)
    y = dis(x)
    assert y.shape == (3, 5)
    y2, features = dis.forward_with_features(x)
    assert features.shape == (3, 8 * 2 * 2)
    np.testing.assert_array_equal(y.array, y2.array)
    # The features are what `out` reads: out(features) is the output.
    np.testing.assert_allclose(dis.out(features).array, y.array, rtol=1e-6)


@pytest.mark.parametrize('value, says', [(0, 'at least 1, got 0'), (-1, 'at least 1, got -1'),
                                         (1.5, 'an integer, got 1.5'),
                                         (True, 'an integer, got True')])
def test_bad_discriminator_widths_are_one_line_errors(value, says):
    with pytest.raises(ValueError, match=f'^out_dim must be {says}$'):
        Discriminator(size=8, widths=[4, 8], out_dim=value)


# ---------------------------------------------------- G without BatchNorm


def test_generator_without_batch_norm():
    gen = Generator(size=8, widths=[4, 8], n_hidden=3, norm='none')
    assert not any('gamma' in n or 'beta' in n for n, _ in gen.namedparams())
    assert gen.config()['norm'] == 'none'
    z = np.random.RandomState(0).randn(2, 3).astype(np.float32)
    # Without batch statistics an image does not depend on the rest of its batch.
    np.testing.assert_allclose(gen(z[:1]).array, gen(z).array[:1], rtol=1e-5, atol=1e-6)
    assert build_generator(gen.config()).config() == gen.config()
    with pytest.raises(ValueError, match='unknown norm'):
        Generator(size=8, widths=[4, 8], norm='layer')


# ------------------------------------------------------ autoencoder D


def test_autoencoder_error_is_the_mean_absolute_reconstruction_error():
    dis = AutoencoderDiscriminator(size=8, channels=2, widths=[4, 8], code_dim=5)
    x = np.random.RandomState(0).uniform(-1, 1, (3, 2, 8, 8)).astype(np.float32)
    error = dis(x)
    reconstruction = dis.reconstruct(x).array
    assert reconstruction.shape == x.shape and np.abs(reconstruction).max() <= 1
    np.testing.assert_allclose(error.array, np.abs(reconstruction - x).mean(axis=(1, 2, 3)),
                               rtol=1e-5)
    rebuilt = build_discriminator(dis.config())
    assert isinstance(rebuilt, AutoencoderDiscriminator)
    assert [p.shape for _, p in sorted(rebuilt.namedparams())] == [
        p.shape for _, p in sorted(dis.namedparams())]
    with pytest.raises(ValueError, match=r'x must have shape \(B, 2, 8, 8\)'):
        dis(x[:, :1])


def test_autoencoder_gradient_reaches_the_image_twice():
    # d error / dx = sign(x - r) / P (directly) - (through r): with the
    # decoder's weights at zero the reconstruction is tanh(bias) = 0 for every
    # x, so only the direct term is left: sign(x) / P.
    dis = AutoencoderDiscriminator(size=8, widths=[4, 8], code_dim=3)
    for link in dis.deconvs:
        link.W.array[...] = 0
    dis.deconv_out.W.array[...] = 0
    x = chainer.Variable(np.random.RandomState(1).uniform(-1, 1, (2, 1, 8, 8)).astype('f'))
    F.sum(dis(x)).backward()
    np.testing.assert_allclose(x.grad, np.sign(x.array) / 64, rtol=1e-6)


# ---------------------------------------------------------------- DRAGAN


class _Quadratic(chainer.Link):
    """``D(x) = 0.5 sum((w x)^2)``: grad_x D = w^2 x, simple enough to differentiate by hand."""

    def __init__(self, w):
        super().__init__()
        with self.init_scope():
            self.w = chainer.Parameter(np.asarray(w, np.float64))

    def forward(self, x):
        return 0.5 * F.sum(F.square(F.broadcast_to(self.w, x.shape) * x), axis=1)


def test_dragan_perturbation_is_half_a_pixel_std_of_uniform_noise():
    x = np.random.RandomState(0).randn(5, 1, 2, 2)
    u = np.random.RandomState(7).uniform(0, 1, x.shape)
    perturbed = DRAGAN(scale=0.5).perturb(x, np.random.RandomState(7))
    np.testing.assert_allclose(perturbed, x + 0.5 * u * x.std(axis=0, keepdims=True),
                               rtol=1e-6)


def test_dragan_penalty_and_gradient_by_hand():
    w = np.array([0.5, -1.5, 2.0])
    d = _Quadratic(w)
    x = np.random.RandomState(0).randn(4, 3)
    penalty = DRAGAN(3.0)
    x_p = penalty.perturb(x, np.random.RandomState(5))
    value = penalty(d, x, None, np.random.RandomState(5))
    g = w**2 * x_p                                     # (B, 3): grad_x D at x_p
    norms = np.sqrt((g**2).sum(axis=1) + 1e-12)
    np.testing.assert_allclose(value.array, 3.0 * np.mean((norms - 1) ** 2), rtol=1e-6)
    d.cleargrads()
    value.backward()
    # d||g_i|| / dw_k = g_ik * (2 w_k x_ik) / ||g_i||
    dnorm = g * 2 * w * x_p / norms[:, None]
    expected = 3.0 * np.mean(2 * (norms - 1)[:, None] * dnorm, axis=0)
    np.testing.assert_allclose(d.w.grad, expected, rtol=1e-6)


def test_dragan_by_name_and_its_errors():
    assert isinstance(get_penalty('dragan', 4.0), DRAGAN)
    assert get_penalty('dragan', 4.0).weight == 4.0
    with pytest.raises(ValueError, match='DRAGAN weight must be >= 0'):
        DRAGAN(-1)
    with pytest.raises(ValueError, match='pass a RandomState'):
        DRAGAN()(lambda x: x, np.zeros((2, 1), np.float32))


# ------------------------------------------------------------------ DFM


def test_denoiser_layers():
    den = Denoiser(6, width=4, depth=3)
    assert [lin.W.shape for lin in den.linears] == [(4, 6), (4, 4), (6, 4)]
    assert len(den.bns) == 2
    assert den(np.zeros((2, 6), np.float32)).shape == (2, 6)
    with pytest.raises(ValueError, match='at least 2 layers'):
        Denoiser(6, depth=1)


def test_dfm_losses_by_hand():
    rng = np.random.RandomState(0)
    den = L.Linear(3, 3)
    den.W.array = rng.randn(3, 3)
    den.b.array = rng.randn(3)
    f = rng.randn(4, 3)
    dfm = DenoisingFeatureMatching(0.5, noise_sigma=2.0)
    noise = np.random.RandomState(9).standard_normal((4, 3))
    loss = dfm.denoiser_loss(den, f, np.random.RandomState(9))
    rec = (f + 2.0 * noise) @ den.W.array.T + den.b.array
    np.testing.assert_allclose(loss.array, np.mean((rec - f) ** 2), rtol=1e-6)
    den.cleargrads()
    loss.backward()
    np.testing.assert_allclose(den.W.grad, 2 * (rec - f).T @ (f + 2.0 * noise) / f.size,
                               rtol=1e-6)

    features = chainer.Variable(f)
    gen_loss = dfm.gen_loss(den, features)
    r = f @ den.W.array.T + den.b.array
    np.testing.assert_allclose(gen_loss.array, 0.5 * np.mean((f - r) ** 2), rtol=1e-6)
    den.cleargrads()
    gen_loss.backward()
    # r(f) is a constant: the gradient is 2 * weight * (f - r) / size, and none reaches r.
    np.testing.assert_allclose(features.grad, 0.5 * 2 * (f - r) / f.size, rtol=1e-6)
    assert den.W.grad is None
    with pytest.raises(ValueError, match='weight must be >= 0'):
        DenoisingFeatureMatching(-1)
