"""chainer-gan-lib's algorithms in the one GANUpdater, checked by hand.

BEGAN (its k_t), the Cramér GAN (two fake batches, its critic's penalty),
DRAGAN, DFM (the denoiser beside D) and the 'simultaneous' step order, each
on nets of a few float64 parameters whose losses and gradients are written
out in NumPy here (by formula, or for the Cramér penalty by central
differences of a NumPy function), and each resumed from a snapshot exactly.
"""

import copy

import chainer
import chainer.functions as F
import chainer.links as L
import numpy as np
import pytest
from chainer import training

from gan_trainer import GANUpdater, cramer
from gan_trainer.dfm import Denoiser, DenoisingFeatureMatching
from gan_trainer.iterators import train_iterator
from gan_trainer.losses import get_loss
from gan_trainer.nets import AutoencoderDiscriminator, Discriminator, Generator
from gan_trainer.penalties import DRAGAN, WGANGP
from gan_trainer.testing import fake_images

B, P = 4, 4  # batch, pixels (1x2x2 images)


class QueueG(chainer.Link):
    """``G(z) = W z`` as 1x2x2 images; z from a list (``make_hidden``), so tests know it."""

    n_hidden = 2

    def __init__(self, w, zs):
        super().__init__()
        with self.init_scope():
            self.W = chainer.Parameter(np.array(w, np.float64))
        self.zs = [np.array(z, np.float64) for z in zs]

    def make_hidden(self, batchsize):
        return self.zs.pop(0)

    def forward(self, z):
        return F.reshape(F.matmul(z, self.W, transb=True), (len(z), 1, 2, 2))


def flat(x):
    return np.asarray(x).reshape(len(x), -1)


class AffineAE(chainer.Link):
    """An 'autoencoder' of two parameters: reconstructs ``v`` as ``a v + b``."""

    output_kind = 'reconstruction_error'

    def __init__(self, a, b):
        super().__init__()
        with self.init_scope():
            self.a = chainer.Parameter(np.array(a, np.float64))
            self.b = chainer.Parameter(np.array(b, np.float64))

    def forward(self, x):
        r = F.broadcast_to(self.a, x.shape) * x + F.broadcast_to(self.b, x.shape)
        return F.mean(F.reshape(F.absolute(r - x), (len(x), -1)), axis=1)


class LinearD(chainer.Link):
    """``h(x) = V x``: one logit (K=1, flattened) or K outputs per image."""

    def __init__(self, v, *, features=None):
        super().__init__()
        with self.init_scope():
            self.V = chainer.Parameter(np.array(v, np.float64))
            if features is not None:  # DFM: features U x, logit w . (U x)
                self.U = chainer.Parameter(np.array(features, np.float64))
        self.out_dim = len(self.V.array) if features is None else 1
        self.calls = []

    def forward_with_features(self, x):
        f = F.matmul(F.reshape(x, (len(x), -1)), self.U, transb=True)
        return F.flatten(F.matmul(f, self.V, transb=True)), f

    def forward(self, x):
        self.calls.append(np.array(getattr(x, 'array', x)))
        if hasattr(self, 'U'):
            return self.forward_with_features(x)[0]
        y = F.matmul(F.reshape(x, (len(x), -1)), self.V, transb=True)
        return F.flatten(y) if self.out_dim == 1 else y


def recording(optimizer, log):
    update = optimizer.update

    def recorded(*args, **kwargs):
        log.append({n: p.grad.copy() for n, p in optimizer.target.namedparams()})
        return update(*args, **kwargs)

    optimizer.update = recorded


def make(gen, dis, data, *, den=None, **options):
    """An updater on SGD(0.1) optimizers that record their gradients, and the logs."""
    links = {'gen': gen, 'dis': dis, **({'den': den} if den is not None else {})}
    optimizers, logs = {}, {}
    for name, link in links.items():
        optimizers[name] = chainer.optimizers.SGD(lr=0.1)
        optimizers[name].setup(link)
        logs[name] = []
        recording(optimizers[name], logs[name])
    it = chainer.iterators.SerialIterator(data, B, shuffle=False)
    return GANUpdater(it, optimizers, device=-1, seed=0, **options), logs


def observe(updater):
    reporter = chainer.Reporter()
    for name, optimizer in updater.get_all_optimizers().items():
        reporter.add_observer(name, optimizer.target)
    observation = {}
    with reporter.scope(observation):
        updater.update()
    return {k: float(getattr(v, 'array', v)) for k, v in observation.items()}


def numeric_grad(f, w, eps=1e-6):
    """Central differences of the NumPy function ``f`` at ``w``."""
    grad = np.zeros_like(w)
    for i in np.ndindex(w.shape):
        up, down = w.copy(), w.copy()
        up[i] += eps
        down[i] -= eps
        grad[i] = (f(up) - f(down)) / (2 * eps)
    return grad


def data(n=16, seed=0):
    return np.random.RandomState(seed).uniform(-1, 1, (n, 1, 2, 2))


def zs(n, seed=1):
    rng = np.random.RandomState(seed)
    return [rng.randn(B, 2) for _ in range(n)]


W0 = np.array([[0.3, -0.2], [0.5, 0.1], [-0.4, 0.6], [0.2, 0.2]])


# ------------------------------------------------------------------ BEGAN


def _errors(v, a, b):
    return np.abs((a - 1) * flat(v) + b).mean(axis=1)


def _error_grads(v, a, b):
    """d mean_i e_i / d(a, b) for the affine autoencoder."""
    s = np.sign((a - 1) * flat(v) + b)
    return (s * flat(v)).mean(), s.mean()


@pytest.mark.parametrize('order', ['dis_first', 'simultaneous'])
def test_began_step_k_t_and_measure_by_hand(order):
    x, z = data(), zs(2)
    loss = get_loss('began', gamma=0.6)
    loss.state.k = 0.2
    updater, logs = make(QueueG(W0, z), AffineAE(0.7, 0.05), x, loss=loss, order=order)
    seen = observe(updater)
    real, fake = x[:B], (z[0] @ W0.T).reshape(B, 1, 2, 2)
    a, b = 0.7, 0.05
    e_r, e_f = _errors(real, a, b), _errors(fake, a, b)
    np.testing.assert_allclose(seen['dis/loss'], e_r.mean() - 0.2 * e_f.mean(), rtol=1e-12)
    (ra, rb), (fa, fb) = _error_grads(real, a, b), _error_grads(fake, a, b)
    np.testing.assert_allclose(logs['dis'][0]['/a'], ra - 0.2 * fa, rtol=1e-12)
    np.testing.assert_allclose(logs['dis'][0]['/b'], rb - 0.2 * fb, rtol=1e-12)
    balance = 0.6 * e_r.mean() - e_f.mean()
    np.testing.assert_allclose(loss.state.k, np.clip(0.2 + 0.001 * balance, 0, 1), rtol=1e-12)
    assert seen['dis/k_t'] == loss.state.k
    np.testing.assert_allclose(seen['dis/measure'], e_r.mean() + abs(balance), rtol=1e-12)
    assert 'dis/acc_real' not in seen  # reconstruction errors have no boundary
    # G's step: 'dis_first' on fresh z against the updated D; 'simultaneous' on the
    # D step's fakes against D before its update (chainer-gan-lib's step).
    if order == 'dis_first':
        a, b = float(updater.dis.a.array), float(updater.dis.b.array)
        z_g = z[1]
    else:
        z_g = z[0]
    x_g = z_g @ W0.T
    g_x = np.sign((a - 1) * x_g + b) * (a - 1) / x_g.size
    np.testing.assert_allclose(logs['gen'][0]['/W'], g_x.T @ z_g, rtol=1e-12)
    np.testing.assert_allclose(seen['gen/loss'], _errors(x_g, a, b).mean(), rtol=1e-12)


def test_began_k_t_stays_in_zero_one():
    loss = get_loss('began', gamma=1.0)
    assert loss.state.observe(np.array([5.0]), np.array([0.0]))['k_t'] == pytest.approx(0.005)
    loss.state.k = 0.9995
    assert loss.state.observe(np.array([5.0]), np.array([0.0]))['k_t'] == 1.0
    loss.state.k = 0.0001
    assert loss.state.observe(np.array([0.0]), np.array([5.0]))['k_t'] == 0.0
    # Each call of get_loss gets its own k_t: two runs never share one.
    assert get_loss('began').state is not get_loss('began').state


def test_began_needs_an_autoencoder_and_an_autoencoder_needs_began():
    gen = QueueG(W0, [])
    with pytest.raises(ValueError, match='began loss needs an autoencoder D'):
        make(gen, LinearD(np.ones((1, 4))), data(), loss='began')
    with pytest.raises(ValueError, match="reconstruction errors, not logits.*loss 'began'"):
        make(gen, AffineAE(1.0, 0.0), data(), loss='lsgan')


# ------------------------------------------------------------------ Cramér


def _norm(a):
    return np.sqrt((a**2).sum(axis=1) + 1e-12)


def _critic(h, o):
    return _norm(h - o) - _norm(h)


def _critic_gradient(h, o):
    """df/dh of the critic, by formula."""
    return (h - o) / _norm(h - o)[:, None] - h / _norm(h)[:, None]


@pytest.mark.parametrize('penalty_kind', ['exact', 'ganlib'])
def test_cramer_two_fake_batches_its_penalty_and_energy_distance_by_hand(penalty_kind):
    x, z = data(), zs(4)
    v0 = np.random.RandomState(3).randn(3, 4) * 0.5
    dis = LinearD(v0)
    loss = 'cramer' if penalty_kind == 'ganlib' else get_loss('cramer', penalty='exact')
    updater, logs = make(QueueG(W0, z), dis, x, loss=loss, penalty=WGANGP(2.0))
    seen = observe(updater)
    real = flat(x[:B])
    f1, f2 = z[0] @ W0.T, z[1] @ W0.T
    np.testing.assert_allclose(dis.calls[1], f1.reshape(B, 1, 2, 2))
    np.testing.assert_allclose(dis.calls[2], f2.reshape(B, 1, 2, 2))
    x_hat = flat(dis.calls[3])  # the penalty's interpolates, between reals and the first fakes
    o = f2 @ v0.T  # the second fakes' outputs: a constant in the penalty's critic
    c0 = _critic_gradient(x_hat @ v0.T, o)  # df/dh at the interpolates, at D's weights v0

    def dis_loss(v):
        return -np.mean(_critic(real @ v.T, f2 @ v.T) - _critic(f1 @ v.T, f2 @ v.T))

    def penalty(v, c=None):
        """The penalty at weights v; with c given, df/dh held at c (chainer-gan-lib's)."""
        c = _critic_gradient(x_hat @ v.T, o) if c is None else c
        grad_x = c @ v  # (B, pixels): the critic's gradient in the image
        return 2.0 * np.mean((np.sqrt((grad_x**2).sum(axis=1) + 1e-12) - 1) ** 2)

    # The value is the same either way: only its gradient w.r.t. D's weights differs.
    np.testing.assert_allclose(seen['dis/penalty'], penalty(v0), rtol=1e-10)
    np.testing.assert_allclose(seen['dis/loss'], dis_loss(v0) + penalty(v0), rtol=1e-10)
    exact = numeric_grad(penalty, v0)
    # chainer-gan-lib's, by formula: d/dV 2 mean_i (n_i - 1)^2 with g_i = V^T c_i, c constant,
    # n_i = ||g_i||, is 2 * (2 / B) sum_i (n_i - 1) / n_i c_i g_i^T.
    g = c0 @ v0
    n = np.sqrt((g**2).sum(axis=1) + 1e-12)
    held = 2.0 * 2 / B * np.einsum('i,ik,ip->kp', (n - 1) / n, c0, g)
    np.testing.assert_allclose(held, numeric_grad(lambda v: penalty(v, c0), v0), rtol=1e-6)
    assert np.abs(held - exact).max() > 0.1 * np.abs(exact).max()  # the two differ here
    expected = exact if penalty_kind == 'exact' else held
    np.testing.assert_allclose(logs['dis'][0]['/V'], numeric_grad(dis_loss, v0) + expected,
                               rtol=1e-6, atol=1e-9)
    # G's step: two fresh fake batches against the updated D, whose outputs on the
    # D step's real batch are constants.
    v1 = dis.V.array.copy()
    h_r = real @ v1.T
    z3, z4 = z[2], z[3]

    def gen_loss(w):
        g1, g2 = z3 @ w.T @ v1.T, z4 @ w.T @ v1.T
        return np.mean(_norm(h_r - g1) + _norm(h_r - g2) - _norm(g1 - g2))

    np.testing.assert_allclose(seen['gen/loss'], gen_loss(W0), rtol=1e-10)
    np.testing.assert_allclose(logs['gen'][0]['/W'], numeric_grad(gen_loss, W0),
                               rtol=1e-6, atol=1e-9)


def test_cramer_linearised_critic_keeps_f_value_and_input_gradient():
    """The linearised critic is f to first order: f's value and df/dh, and no curvature."""
    rng = np.random.RandomState(5)
    a, o = rng.randn(3, 4), rng.randn(3, 4)
    h = chainer.Variable(a.copy())
    value = cramer.linearised_critic(h, (None, o))
    np.testing.assert_allclose(value.array, _critic(a, o), rtol=1e-12)
    (grad,) = chainer.grad([F.sum(value)], [h], enable_double_backprop=True)
    np.testing.assert_allclose(grad.array, _critic_gradient(a, o), rtol=1e-12)
    # The exact critic's gradient moves with h; the linearised one's is a constant.
    (second,) = chainer.grad([F.sum(grad * grad)], [h])
    assert second is None or not np.any(second.array)
    exact = cramer.penalty_critic(h, (None, chainer.Variable(o)))
    (grad,) = chainer.grad([F.sum(exact)], [h], enable_double_backprop=True)
    (second,) = chainer.grad([F.sum(grad * grad)], [h])
    assert np.abs(second.array).max() > 0.01


def test_cramer_penalty_option_is_checked():
    assert get_loss('cramer').critic is cramer.linearised_critic  # chainer-gan-lib's, the default
    assert get_loss('cramer', penalty='exact').critic is cramer.penalty_critic
    with pytest.raises(ValueError, match="cramer loss's penalty must be one of ganlib, exact, "
                                         "got 'exakt'"):
        get_loss('cramer', penalty='exakt')


def test_cramer_needs_vector_outputs():
    with pytest.raises(ValueError, match='cramer loss compares vectors'):
        make(QueueG(W0, []), Discriminator(size=8, widths=[4, 8]), data(), loss='cramer')
    with pytest.raises(ValueError, match='outputs 3 numbers per image.*logit'):
        make(QueueG(W0, []), LinearD(np.ones((3, 4))), data(), loss='lsgan')


# ------------------------------------------------------------------ DRAGAN


def _sigmoid(a):
    return 1 / (1 + np.exp(-a))


def test_dragan_in_the_d_step_by_hand():
    # A linear D has the gradient w everywhere: the penalty is
    # lambda (||w|| - 1)^2 wherever the perturbation puts the images.
    x, z = data(), zs(2)
    w = np.array([[0.6, -0.9, 0.3, 0.2]])
    updater, logs = make(QueueG(W0, z), LinearD(w), x, loss='nonsaturating',
                         penalty=DRAGAN(3.0))
    seen = observe(updater)
    real, fake = flat(x[:B]), z[0] @ W0.T
    n = np.linalg.norm(w)
    np.testing.assert_allclose(seen['dis/penalty'], 3.0 * (n - 1) ** 2, rtol=1e-10)
    y_r, y_f = real @ w[0], fake @ w[0]
    grad = (-_sigmoid(-y_r)[:, None] * real).mean(0) + (_sigmoid(y_f)[:, None] * fake).mean(0)
    grad += 3.0 * 2 * (n - 1) * w[0] / n
    np.testing.assert_allclose(logs['dis'][0]['/V'][0], grad, rtol=1e-10)


# --------------------------------------------------------------------- DFM


def test_dfm_trains_the_denoiser_beside_d_and_guides_g_by_hand():
    x, z = data(), zs(2)
    rng = np.random.RandomState(4)
    u0, w0 = rng.randn(3, 4) * 0.5, rng.randn(1, 3) * 0.5
    den = L.Linear(3, 3)
    den.W.array, den.b.array = rng.randn(3, 3) * 0.5, rng.randn(3) * 0.1
    wd0, bd0 = den.W.array.copy(), den.b.array.copy()
    dfm = DenoisingFeatureMatching(0.5, noise_sigma=2.0)
    updater, logs = make(QueueG(W0, z), LinearD(w0, features=u0), x, den=den,
                         loss='nonsaturating', dfm=dfm)
    noise = copy.deepcopy(updater.rng).standard_normal((B, 3))
    seen = observe(updater)
    f_r = flat(x[:B]) @ u0.T
    rec = (f_r + 2.0 * noise) @ wd0.T + bd0
    np.testing.assert_allclose(seen['den/loss'], np.mean((rec - f_r) ** 2), rtol=1e-10)
    np.testing.assert_allclose(logs['den'][0]['/W'], 2 * (rec - f_r).T @ (f_r + 2.0 * noise)
                               / rec.size, rtol=1e-10)
    # D's gradient is the cross-entropy's alone: the denoiser's loss reads constants.
    fake = z[0] @ W0.T
    y_r, y_f = f_r @ w0[0], fake @ u0.T @ w0[0]
    g_u = (np.outer(w0[0], (-_sigmoid(-y_r)[:, None] * flat(x[:B])).mean(0))
           + np.outer(w0[0], (_sigmoid(y_f)[:, None] * fake).mean(0)))
    np.testing.assert_allclose(logs['dis'][0]['/U'], g_u, rtol=1e-10)
    # G: the cross-entropy on the updated D plus 0.5 mean((f - r(f))^2), r(f) a constant
    # from the updated denoiser.
    u1, w1 = updater.dis.U.array, updater.dis.V.array[0]
    wd1, bd1 = den.W.array, den.b.array
    x_g = z[1] @ W0.T
    f_g = x_g @ u1.T
    r = f_g @ wd1.T + bd1
    y_g = f_g @ w1
    g_f = -_sigmoid(-y_g)[:, None] * w1 / B + 0.5 * 2 * (f_g - r) / f_g.size
    np.testing.assert_allclose(logs['gen'][0]['/W'], (g_f @ u1).T @ z[1], rtol=1e-10)
    np.testing.assert_allclose(seen['gen/dfm'], 0.5 * np.mean((f_g - r) ** 2), rtol=1e-10)


def test_dfm_needs_its_denoiser_and_a_d_with_features():
    gen = QueueG(W0, [])
    with pytest.raises(ValueError, match="dfm needs the denoiser's optimizer"):
        make(gen, LinearD(np.ones((1, 4)), features=np.ones((3, 4))), data(),
             dfm=DenoisingFeatureMatching())
    class NoFeatures(LinearD):
        forward_with_features = None

    with pytest.raises(ValueError, match='dfm needs a D with forward_with_features'):
        make(gen, NoFeatures(np.ones((1, 4))), data(), den=L.Linear(3, 3),
             dfm=DenoisingFeatureMatching())
    with pytest.raises(ValueError, match="optimizer 'den' without dfm"):
        make(gen, LinearD(np.ones((1, 4))), data(), den=L.Linear(3, 3))


# -------------------------------------------------------- simultaneous step


def test_simultaneous_step_is_chainer_gan_libs_by_hand():
    # Iteration: D step 1 with G's step on its forward pass (both gradients at the
    # starting weights), then D step 2 on a new batch against the updated G.
    x, z = data(), zs(2)
    w = np.array([[0.6, -0.9, 0.3, 0.2]])
    updater, logs = make(QueueG(W0, z), LinearD(w), x, loss='nonsaturating', n_dis=2,
                         order='simultaneous')
    observe(updater)
    assert [len(logs['gen']), len(logs['dis'])] == [1, 2]
    real, fake = flat(x[:B]), z[0] @ W0.T
    y_r, y_f = real @ w[0], fake @ w[0]
    g_d = (-_sigmoid(-y_r)[:, None] * real).mean(0) + (_sigmoid(y_f)[:, None] * fake).mean(0)
    np.testing.assert_allclose(logs['dis'][0]['/V'][0], g_d, rtol=1e-10)
    g_x = -_sigmoid(-y_f)[:, None] * w[0] / B
    np.testing.assert_allclose(logs['gen'][0]['/W'], g_x.T @ z[0], rtol=1e-10)
    w1, w_g = (w - 0.1 * g_d)[0], W0 - 0.1 * g_x.T @ z[0]
    # D step 2: the next batch, fakes of the updated G; D's weights of after step 1.
    real2, fake2 = flat(x[B:2 * B]), z[1] @ w_g.T
    y_r, y_f = real2 @ w1, fake2 @ w1
    g_d2 = (-_sigmoid(-y_r)[:, None] * real2).mean(0) + (_sigmoid(y_f)[:, None] * fake2).mean(0)
    np.testing.assert_allclose(logs['dis'][1]['/V'][0], g_d2, rtol=1e-10)
    np.testing.assert_allclose(updater.dis.V.array[0], w1 - 0.1 * g_d2, rtol=1e-10)


def test_simultaneous_refuses_reused_fakes():
    with pytest.raises(ValueError, match="reuse_fakes needs order='dis_first'"):
        make(QueueG(W0, []), LinearD(np.ones((1, 4))), data(), order='simultaneous',
             reuse_fakes=True)


# ------------------------------------------------------------------ resume


def _algorithms():
    size, widths = 8, [4, 8]

    def gen(**kw):
        return Generator(size=size, widths=widths, n_hidden=4, **kw)

    def dis(**kw):
        return Discriminator(size=size, widths=widths, **kw)

    return {
        'began': lambda: {'gen': gen(norm='none'), 'dis': AutoencoderDiscriminator(
            size=size, widths=widths, code_dim=3), 'loss': get_loss('began', gamma=0.5),
            'order': 'simultaneous'},
        'cramer': lambda: {'gen': gen(), 'dis': dis(norm='none', out_dim=4), 'loss': 'cramer',
                           'penalty': WGANGP(10.0), 'n_dis': 2},
        'cramer-exact': lambda: {'gen': gen(), 'dis': dis(norm='none', out_dim=4),
                                 'loss': get_loss('cramer', penalty='exact'),
                                 'penalty': WGANGP(10.0), 'n_dis': 2},
        'dragan': lambda: {'gen': gen(), 'dis': dis(norm='none'), 'loss': 'nonsaturating',
                           'penalty': DRAGAN(10.0), 'n_dis': 2, 'order': 'simultaneous'},
        'dfm': lambda: {'gen': gen(), 'dis': dis(), 'loss': 'nonsaturating',
                        'dfm': DenoisingFeatureMatching(), 'den': Denoiser(32, width=6, depth=3)},
        'minibatch': lambda: {'gen': gen(), 'dis': dis(minibatch_kernels=3, bn_gamma=False),
                              'loss': 'nonsaturating', 'order': 'simultaneous'},
    }


def _resumable(name, *, seed, shuffle_seed, net_seed):
    with chainer.using_config('dtype', np.float32):
        np.random.seed(net_seed)
        options = _algorithms()[name]()
    links = {k: options.pop(k) for k in ('gen', 'dis', 'den') if k in options}
    optimizers = {}
    for key, link in links.items():
        optimizers[key] = chainer.optimizers.Adam(alpha=1e-3, beta1=0.5)
        optimizers[key].setup(link)
    it = train_iterator(fake_images(24, size=8), B, seed=shuffle_seed)
    return GANUpdater(it, optimizers, device=-1, seed=seed, **options)


def _trainer(updater, stop, out, snapshot_at=None):
    trainer = training.Trainer(updater, (stop, 'iteration'), out=str(out))
    if snapshot_at:
        trainer.extend(training.extensions.snapshot(filename='snap'),
                       trigger=(snapshot_at, 'iteration'))
    return trainer


@pytest.mark.parametrize('name', ['began', 'cramer', 'cramer-exact', 'dragan', 'dfm',
                                  'minibatch'])
def test_interrupted_and_resumed_equals_uninterrupted(name, tmp_path):
    straight = _resumable(name, seed=0, shuffle_seed=1, net_seed=0)
    _trainer(straight, 6, tmp_path / 'a').run()
    first = _resumable(name, seed=0, shuffle_seed=1, net_seed=0)
    _trainer(first, 3, tmp_path / 'b', snapshot_at=3).run()
    resumed = _resumable(name, seed=9, shuffle_seed=5, net_seed=9)
    trainer = _trainer(resumed, 6, tmp_path / 'c')
    chainer.serializers.load_npz(str(tmp_path / 'b' / 'snap'), trainer)
    trainer.run()
    for key, optimizer in straight.get_all_optimizers().items():
        other = dict(resumed.get_optimizer(key).target.namedparams())
        for param_name, param in optimizer.target.namedparams():
            np.testing.assert_array_equal(param.array, other[param_name].array,
                                          err_msg=f'{key}{param_name}')
    if name == 'began':
        assert 0 < straight.loss.state.k == resumed.loss.state.k
        assert first.loss.state.k != straight.loss.state.k  # k_t moved after the snapshot
