"""How many BLAS threads numrnn's own matrix products use (the kernels' products through SciPy's
BLAS, Linear's through NumPy's). Not a general thread-pool manager.

The products of a training step are small (a [B, H] x [H, 4H] product per time step), and
OpenBLAS's default of one thread per core loses badly when the cores are shared: measured in
benchmarks/blas_threads.py and the README. So numrnn runs its products on one BLAS thread by
default, only inside its own calls (the limit is set on entry and restored on exit, so the rest of
a program keeps its BLAS as configured). The default steps aside when the user chose a count:
$NUMRNN_BLAS_THREADS (a number, or "default" for BLAS's own setting), else
$OPENBLAS_NUM_THREADS / $OMP_NUM_THREADS / $MKL_NUM_THREADS (BLAS's own setting then applies);
set_blas_threads() overrides all of them.
"""
import functools
import os

ENV = "NUMRNN_BLAS_THREADS"
_BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _check(n, where):
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{where} must be an integer >= 1 or None (BLAS's own setting), got {n!r}")
    return n


def _from_environment():
    value = os.environ.get(ENV)
    if value is not None:
        if value.strip().lower() == "default":
            return None
        try:
            return _check(int(value), f"${ENV}")
        except ValueError:
            raise ValueError(f"${ENV} must be an integer >= 1 or 'default', got {value!r}") from None
    return None if any(v in os.environ for v in _BLAS_ENV) else 1


_threads = _from_environment()
_pools = None


def set_blas_threads(n):
    """BLAS threads for numrnn's products from now on: an integer >= 1, or None to leave BLAS as
    configured (OpenBLAS: one thread per core unless its environment variables say otherwise)."""
    global _threads
    _threads = _check(n, "set_blas_threads(n)")


def get_blas_threads():
    """The count set_blas_threads or the environment chose (None: BLAS's own setting)."""
    return _threads


def blas_pools():
    """threadpoolctl's handle on the BLAS libraries numrnn's products use (SciPy's, which the kernels
    call, loaded first so that a limit reaches it; NumPy's)."""
    global _pools
    if _pools is None:
        import scipy.linalg.cython_blas  # noqa: F401  the kernels' BLAS: loaded so that the limit reaches it
        from threadpoolctl import ThreadpoolController
        _pools = ThreadpoolController().select(user_api="blas")
    return _pools


def limited(method):
    """Run `method` with numrnn's BLAS thread count (a decorator for the blocks' forward and backward)."""
    @functools.wraps(method)
    def run(*args, **kwargs):
        if _threads is None:
            return method(*args, **kwargs)
        pools = blas_pools()
        # already so (a process that set it, as the CLI and the C interface do): asking costs ~1 us,
        # setting and restoring through threadpoolctl ~15 us, a third of an eval-mode step's call
        if all(pool.num_threads == _threads for pool in pools.lib_controllers):
            return method(*args, **kwargs)
        with pools.limit(limits=_threads):
            return method(*args, **kwargs)
    return run
