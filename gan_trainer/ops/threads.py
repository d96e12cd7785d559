"""One thread policy for oneDNN's OpenMP threads and NumPy's OpenBLAS threads.

With oneDNN loaded, a training step alternates between two thread pools on
the same cores: oneDNN's OpenMP team (the convolutions, batch
normalization) and OpenBLAS's (the linear layers' products, through
NumPy). By default both keep their threads spinning for a while after each
call, so each pool's spinning threads take the cores from the other's work:
on the 2-core machine, small oneDNN calls took milliseconds right after a
NumPy product, and the default network's step varied between 115 and 1,400
images per second. The policy, applied once, when oneDNN is first loaded
(:func:`apply_before_load`, :func:`apply_after_load`):

* OpenMP threads spin :data:`SPINCOUNT` times after
  a oneDNN call and then sleep (``GOMP_SPINCOUNT``; libgomp's default is
  300,000): the next call of a step, usually right behind, still finds
  them awake, and a longer stretch of NumPy or Python gets the cores back.
  It must be in the environment before ``libgomp`` starts, i.e. before the
  library loads.
* OpenBLAS gets one thread (through ``threadpoolctl``): with the
  convolutions and the float32 linear layers in oneDNN
  (:mod:`.onednn_matmul`), what is left to BLAS is float64 and the
  fallbacks, which gain little from a second thread and lose more to the
  hand-over.

* OpenMP's team gets the cores the process may use (its CPU affinity),
  divided among the processes of the run on this machine
  (:func:`share_cores`: the data-parallel ranks, and optionally the
  image-loader workers of each): an OpenMP team waits at every barrier for
  its slowest thread, so a team with more threads than the cores left to
  it runs a layer slower than one thread would.
  :func:`~gan_trainer.run.build_trainer` calls it with the ranks only:
  loader workers wait for most of an iteration, and counting them made
  folder runs slower (``benchmarks/folder_speed.py``). A process that never
  calls it uses all the cores it may. A oneDNN primitive keeps the team it was built
  with (:func:`current_team`), so :func:`gan_trainer.ops.dnnl.cached` keeps
  one per team size and a changed team takes effect at the next call.

``benchmarks/threads.py`` measures this against passive and active
OpenMP waiting, two OpenBLAS threads, one thread each and both libraries'
defaults on the default network, alternating, alone or beside a busy
process (benchmarks/RESULTS.md: the defaults ran at less than half this
policy's speed); ``benchmarks/onednn_layers.py --contention`` times the
layers with each team size, alone and beside a busy process. A setting
the user made (``OMP_WAIT_POLICY``, ``OPENBLAS_NUM_THREADS``,
``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``) is left as it is, and
``GAN_TRAINER_THREADS=0`` leaves everything alone.
"""

from __future__ import annotations

import ctypes
import os

#: Environment variable that turns the policy off (``0``).
ENV_SWITCH = 'GAN_TRAINER_THREADS'
_BLAS_VARS = ('OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS', 'MKL_NUM_THREADS')

#: What :func:`apply_after_load` did to BLAS (None: nothing yet), for reports.
blas_limited_to: int | None = None
#: OpenMP threads :func:`share_cores` asked for (None: not called, or left alone).
team: int | None = None
_LOADED = False  # oneDNN (and so libgomp) is loaded: a team size applies at once


def enabled() -> bool:
    return os.environ.get(ENV_SWITCH, '1').strip().lower() not in ('0', 'false', 'no', 'off')


#: Spins of an idle OpenMP thread before it sleeps (libgomp's default is
#: 300,000; OMP_WAIT_POLICY=PASSIVE is 0).
SPINCOUNT = '10000'


def apply_before_load() -> None:
    """Sets the OpenMP wait policy, unless the user set one or the policy is off."""
    if enabled() and 'OMP_WAIT_POLICY' not in os.environ:
        os.environ.setdefault('GOMP_SPINCOUNT', SPINCOUNT)


def available_cores() -> int:
    """The CPUs this process may run on (its affinity mask; the CPU count without one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def team_size(processes: int = 1, cores: int | None = None) -> int:
    """OpenMP threads for one of ``processes`` busy processes sharing ``cores``
    (this process's available cores by default): at least 1."""
    cores = available_cores() if cores is None else cores
    return max(1, cores // max(1, processes))


def share_cores(*, ranks: int = 1, loaders: int = 0) -> int | None:
    """Sizes oneDNN's OpenMP team for a run's processes on this machine.

    Args:
        ranks: Processes of a data-parallel run on this machine (MPI ranks).
        loaders: Image-loader worker processes of each rank.

    Returns:
        The team size asked for, or None when the user's ``OMP_NUM_THREADS``
        (or ``GAN_TRAINER_THREADS=0``) decides.
    """
    global team
    if not enabled() or 'OMP_NUM_THREADS' in os.environ:
        return None
    team = team_size(ranks * (1 + loaders))
    if _LOADED:
        _set_omp_threads(team)
    return team


def onednn_loaded() -> bool:
    """Whether oneDNN (and with it libgomp) is loaded in this process."""
    return _LOADED


def set_team(n: int) -> None:
    """Sets oneDNN's OpenMP team to ``n`` threads from now on (once oneDNN is loaded;
    :class:`gan_trainer.extensions.TeamTuner` uses it). Leaves :data:`team` as it is."""
    if _LOADED:
        _set_omp_threads(n)


_GOMP = None


def _gomp():
    # The libgomp oneDNN was loaded with (the same soname: dlopen returns it).
    global _GOMP
    if _GOMP is None:
        _GOMP = ctypes.CDLL('libgomp.so.1')
    return _GOMP


_CHOSEN: int | None = None  # the team last set through this module, from any thread


def _set_omp_threads(n: int) -> None:
    global _CHOSEN
    try:
        _gomp().omp_set_num_threads(int(n))
    except (OSError, AttributeError):  # pragma: no cover - oneDNN loaded it
        return
    _CHOSEN = int(n)


def current_team() -> int:
    """The OpenMP team a oneDNN primitive built now would use (``omp_get_max_threads``).

    A primitive splits its work for the team it was built with and keeps
    that split: a oneDNN kernel asks OpenMP for its own thread count at every
    call, so ``omp_set_num_threads`` after the build changes nothing for it
    (measured: a convolution built for 2 threads ran at the 2-thread speed
    after the team was set to 1). :func:`gan_trainer.ops.dnnl.cached` therefore
    keeps primitives per team size. 1 before oneDNN is loaded.

    OpenMP keeps the setting per thread: a Python thread other than the one
    that set the team (a server's request thread, a loader thread) would
    build with all the cores. Such a thread is given the team this module
    set last (:func:`share_cores`, :func:`set_team`) before it answers.
    """
    if not _LOADED:
        return 1
    try:
        n = int(_gomp().omp_get_max_threads())
        if _CHOSEN is not None and n != _CHOSEN:
            _gomp().omp_set_num_threads(_CHOSEN)
            n = _CHOSEN
        return n
    except (OSError, AttributeError):  # pragma: no cover - oneDNN loaded it
        return 1


def apply_after_load(blas_threads: int = 1) -> None:
    """Applies the OpenMP team size (:func:`share_cores`) and limits OpenBLAS
    (and any BLAS NumPy loaded) to ``blas_threads`` threads.

    The BLAS limit is not set when the policy is off, when the user set a
    BLAS thread count in the environment, or without ``threadpoolctl``.
    """
    global blas_limited_to, _LOADED
    _LOADED = True
    if team is not None:
        _set_omp_threads(team)
    if not enabled() or any(v in os.environ for v in _BLAS_VARS):
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a dependency where oneDNN is
        return
    threadpool_limits(limits=blas_threads, user_api='blas')
    blas_limited_to = blas_threads
