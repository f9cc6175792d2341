"""numrnn.engine: the compiled kernels (CPU: Numba @njit), one module per cell.

Kernels compile on first use and are cached on disk (cache=True). Numba writes its cache next to
these files; where that folder is read-only (a system-wide install) the cache goes to
$NUMBA_CACHE_DIR, defaulting here to ~/.cache/numrnn/numba.
"""
import os


def _writable_cache():
    here = os.path.dirname(os.path.abspath(__file__))
    if os.environ.get("NUMBA_CACHE_DIR") or os.access(os.path.join(here, "__pycache__"), os.W_OK) \
            or os.access(here, os.W_OK):
        return
    fallback = os.path.join(os.path.expanduser("~"), ".cache", "numrnn", "numba")
    os.environ["NUMBA_CACHE_DIR"] = fallback
    import numba
    numba.config.CACHE_DIR = fallback


_writable_cache()

from .gru import gru_backward, gru_forward  # noqa: E402
from .lstm import lstm_backward, lstm_forward  # noqa: E402
from .rnn import rnn_backward, rnn_forward  # noqa: E402

__all__ = ["lstm_forward", "lstm_backward", "gru_forward", "gru_backward", "rnn_forward", "rnn_backward"]
