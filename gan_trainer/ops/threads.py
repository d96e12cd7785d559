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
  convolutions in oneDNN, what is left to BLAS is the small products of the
  linear layers, which gain little from a second thread and lose more to
  the hand-over.

``benchmarks/threads.py`` measures this against passive and active
OpenMP waiting, two OpenBLAS threads, one thread each and both libraries'
defaults on the default network, alternating (benchmarks/RESULTS.md: the
defaults ran at less than half this policy's speed). A setting
the user made (``OMP_WAIT_POLICY``, ``OPENBLAS_NUM_THREADS``,
``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``) is left as it is, and
``GAN_TRAINER_THREADS=0`` leaves everything alone.
"""

from __future__ import annotations

import os

#: Environment variable that turns the policy off (``0``).
ENV_SWITCH = 'GAN_TRAINER_THREADS'
_BLAS_VARS = ('OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS', 'MKL_NUM_THREADS')

#: What :func:`apply_after_load` did to BLAS (None: nothing yet), for reports.
blas_limited_to: int | None = None


def enabled() -> bool:
    return os.environ.get(ENV_SWITCH, '1').strip().lower() not in ('0', 'false', 'no', 'off')


#: Spins of an idle OpenMP thread before it sleeps (libgomp's default is
#: 300,000; OMP_WAIT_POLICY=PASSIVE is 0).
SPINCOUNT = '10000'


def apply_before_load() -> None:
    """Sets the OpenMP wait policy, unless the user set one or the policy is off."""
    if enabled() and 'OMP_WAIT_POLICY' not in os.environ:
        os.environ.setdefault('GOMP_SPINCOUNT', SPINCOUNT)


def apply_after_load(blas_threads: int = 1) -> None:
    """Limits OpenBLAS (and any BLAS NumPy loaded) to ``blas_threads`` threads.

    Does nothing when the policy is off, when the user set a BLAS thread
    count in the environment, or without ``threadpoolctl``.
    """
    global blas_limited_to
    if not enabled() or any(v in os.environ for v in _BLAS_VARS):
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a dependency where oneDNN is
        return
    threadpool_limits(limits=blas_threads, user_api='blas')
    blas_limited_to = blas_threads
