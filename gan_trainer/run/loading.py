"""A run's networks, rebuilt anywhere from its snapshots and config.json.

A run writes ``gen_iter_N.npz`` / ``dis_iter_N.npz`` (parameters and
BatchNorm statistics) beside ``config.json``; with both, :func:`load_generator`
rebuilds the generator in ``gan-trainer generate``, a notebook, or another
project::

    from gan_trainer.run import load_generator
    gen, record = load_generator('result/gen_iter_2500.npz')
    images = gan_trainer.sampling.generate(gen, record.sampler(rng, 16, gen.n_hidden))

A snapshot holding a NaN or an infinity (a run that diverged before the
NaN guard existed, a damaged copy) is refused in one line rather than
drawn as a black picture.
"""

from __future__ import annotations

from gan_trainer.checkpoint import SnapshotError, check_exists, load_params
from gan_trainer.extensions.nan_guard import named_arrays
from gan_trainer.finite import first_nonfinite
from gan_trainer.nets import build_discriminator, build_generator
from gan_trainer.run.record import record_beside


def _rebuild(record, key: str, build, snapshot: str):
    config = getattr(record, key)
    if config.get('arch') == 'custom':
        raise SnapshotError(
            f"'{snapshot}' belongs to a run with its own {key} class "
            f"({config.get('class', '?')}), which gan_trainer cannot rebuild: build it "
            'yourself and load the file with gan_trainer.run.load_params')
    try:
        return build(config)
    except (TypeError, ValueError) as e:
        raise SnapshotError(f"cannot rebuild the {key} of '{snapshot}' from its config: {e}"
                            ) from None


def _finite(net, snapshot: str, key: str):
    """``net``, unless a number it was loaded with is NaN or infinite."""
    found = first_nonfinite(named_arrays(key, net))
    if found is not None:
        name, what = found
        raise SnapshotError(f"'{snapshot}' holds {'NaN' if what == 'nan' else 'infinite'} "
                            f'values ({name}): the run diverged before it was saved; use an '
                            'earlier snapshot')
    return net


def load_generator(snapshot: str, config_path: str | None = None):
    """Rebuilds the generator of a run and loads ``snapshot`` into it.

    Args:
        snapshot: ``gen_iter_N.npz``, ``gen_ema_iter_N.npz``, ``gen_best.npz``.
        config_path: The run's ``config.json``; by default the one beside
            the snapshot.

    Returns:
        ``(gen, record)``: the generator on the CPU and the run's
        :class:`~gan_trainer.run.RunRecord`.
    """
    # Checked first: a missing snapshot would otherwise be reported as a
    # missing config.json beside it.
    check_exists(snapshot)
    record = record_beside(snapshot, config_path)
    gen = _rebuild(record, 'gen', build_generator, snapshot)
    return _finite(load_params(snapshot, gen), snapshot, 'gen'), record


def load_discriminator(snapshot: str, config_path: str | None = None):
    """Rebuilds the discriminator of a run and loads ``snapshot`` into it."""
    check_exists(snapshot)
    record = record_beside(snapshot, config_path)
    dis = _rebuild(record, 'dis', build_discriminator, snapshot)
    return _finite(load_params(snapshot, dis), snapshot, 'dis')
