"""A run's random streams: the z and the data order are not the initial weights again."""

import numpy
import pytest

from gan_trainer.streams import random_state


def test_each_purpose_has_its_own_repeatable_stream():
    draws = {p: random_state(3, p).uniform(size=1000) for p in ('step', 'order')}
    numpy.testing.assert_array_equal(draws['step'], random_state(3, 'step').uniform(size=1000))
    plain = numpy.random.RandomState(3).uniform(size=1000)
    for a, b in ((draws['step'], draws['order']), (draws['step'], plain),
                 (draws['order'], plain), (draws['step'], random_state(4, 'step').uniform(
                     size=1000))):
        assert abs(numpy.corrcoef(a, b)[0, 1]) < 0.1
    # An unseeded one draws from the system's entropy: two differ.
    assert not numpy.array_equal(random_state(None, 'step').uniform(size=8),
                                 random_state(None, 'step').uniform(size=8))


def test_the_state_saves_and_restores():
    rng = random_state(0, 'order')
    rng.uniform(size=5)
    state = rng.get_state()
    first = rng.permutation(10)
    rng.set_state(state)
    numpy.testing.assert_array_equal(rng.permutation(10), first)


@pytest.mark.parametrize('seed, purpose, message', [
    (-1, 'step', 'non-negative integer, got -1'),
    (1.5, 'step', 'non-negative integer, got 1.5'),
    (True, 'step', 'non-negative integer, got True'),
    (0, 'z', "unknown random stream 'z'"),
])
def test_bad_seeds_and_purposes_are_refused(seed, purpose, message):
    with pytest.raises(ValueError, match=message):
        random_state(seed, purpose)


def test_a_runs_z_and_data_order_are_not_its_initial_weights(tmp_path):
    # Until the streams were split, the updater's RandomState(seed) and the
    # nets' initialisation under numpy.random.seed(seed) drew the same
    # numbers: the first z batch was G's first-layer weights over their
    # scale (correlation 1.0), and the data order came from the same stream.
    from gan_trainer.run import PRESETS, build_trainer

    config = PRESETS['keras-dcgan'].replace(out=str(tmp_path / 'run'), progress=False,
                                            seed=0, widths=(4, 8), gen_fc=16, dis_fc=8)
    updater = build_trainer(config, log=None).updater
    weights = updater.gen.fc.W.array.ravel()
    z = numpy.asarray(updater.make_hidden(config.batchsize)).ravel()
    n = min(len(z), len(weights))
    assert abs(numpy.corrcoef(z[:n], weights[:n])[0, 1]) < 0.1
    # The data order: the first epoch's permutation is not RandomState(0)'s.
    first = updater.next_real_batch()[0]
    images = updater.get_iterator('main').dataset
    same = numpy.stack([images[i][0] for i in numpy.random.RandomState(0).permutation(
        len(images))[:config.batchsize]])
    assert first.shape == same.shape and not numpy.array_equal(first, same)


def test_seed_for_gives_a_repeatable_seed_of_its_own():
    from gan_trainer.streams import seed_for

    assert seed_for(5, 'denoiser') == seed_for(5, 'denoiser')
    assert seed_for(5, 'denoiser') not in (5, seed_for(6, 'denoiser'))
    assert 0 <= seed_for(0, 'denoiser') < 2**32
    assert seed_for(None, 'denoiser') is None
    with pytest.raises(ValueError, match="unknown random stream 'x'"):
        seed_for(1, 'x')


def test_the_dfm_denoiser_does_not_repeat_gs_initial_weights(tmp_path):
    # Built under numpy.random.seed(seed) like G, its first layer's weights were
    # G's first weights again (the same initializer drawing the same numbers).
    from gan_trainer.run import PRESETS, build_trainer

    config = PRESETS['dfm'].replace(out=str(tmp_path / 'run'), progress=False, seed=0,
                                    widths=(4, 8), dfm_width=16)
    updater = build_trainer(config, log=None).updater
    den = updater.get_optimizer('den').target
    nets = [*updater.gen.namedparams(), *updater.dis.namedparams()]
    for name, w in den.namedparams():
        for other, v in nets:
            a, b = w.array.ravel(), v.array.ravel()
            n = min(a.size, b.size)
            if w.ndim == v.ndim == 2 and n >= 256:  # (denoiser /linears/0/W, G /project/W: 1.0)
                assert abs(numpy.corrcoef(a[:n], b[:n])[0, 1]) < 0.2, (name, other)
    again = build_trainer(config.replace(out=str(tmp_path / 'again')), log=None).updater
    for a, b in zip(den.params(), again.get_optimizer('den').target.params()):
        numpy.testing.assert_array_equal(a.array, b.array)
