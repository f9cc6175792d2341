"""numrnn.engine: the compiled kernels (CPU: Numba @njit), one module per cell.

Kernels compile on first use and are cached on disk (cache=True). Numba writes its cache next to
these files; where that folder is read-only (a system-wide install) the cache goes to
$NUMBA_CACHE_DIR, defaulting here to ~/.cache/numrnn/numba.
Numba checks only a kernel's own file before loading it from the cache, so an edit to a helper in
another file (activations.py, steps.py) would leave the kernels running the old machine code;
_stale_cache_check below makes an edit to any file in this folder recompile every kernel, and so
does a change of the constant the kernels take from the CPU (step_product.SMALL_MNK).
"""
import glob
import hashlib
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


def _stale_cache_check(here, build=""):
    """When the sources in `here`, or `build` (the machine-dependent constants the kernels are
    compiled with), differ from those the cached kernels were compiled from, delete the cached
    kernels (Numba's *.nbi index and *.nbc data files) so that they recompile.
    Numba keeps them in __pycache__ beside the sources, or under $NUMBA_CACHE_DIR in a folder it
    names <folder>_<sha1 of the folder's path>. Returns the folders it cleared."""
    digest = hashlib.sha256()
    for path in sorted(glob.glob(os.path.join(here, "*.py"))):
        with open(path, "rb") as f:
            digest.update(f.read())
    digest.update(build.encode())
    digest = digest.hexdigest()
    folders = [os.path.join(here, "__pycache__")]
    if os.environ.get("NUMBA_CACHE_DIR"):
        folders.append(os.path.join(os.environ["NUMBA_CACHE_DIR"], os.path.basename(here) + "_"
                                    + hashlib.sha1(here.encode()).hexdigest()))
    cleared = []
    for folder in folders:
        stamp = os.path.join(folder, "numrnn-sources.sha256")
        try:
            with open(stamp) as f:
                if f.read() == digest:
                    continue
        except OSError:
            pass
        try:
            for old in glob.glob(os.path.join(folder, "*.nbi")) + glob.glob(os.path.join(folder, "*.nbc")):
                os.remove(old)
            os.makedirs(folder, exist_ok=True)
            with open(stamp, "w") as f:
                f.write(digest)
            cleared.append(folder)
        except OSError:     # not ours to write (a read-only install, whose sources do not change)
            pass
    return cleared


_writable_cache()
from .step_product import SMALL_MNK  # noqa: E402  a compile-time constant that depends on the CPU
_stale_cache_check(os.path.dirname(os.path.abspath(__file__)), f"SMALL_MNK={SMALL_MNK}")

from .gru import gru_backward, gru_forward  # noqa: E402
from .lstm import lstm_backward, lstm_forward  # noqa: E402
from .rnn import rnn_backward, rnn_forward  # noqa: E402



def kernels_cached(cell, dtype):
    """Whether the forward and backward kernels of `cell` ("lstm", "gru", "rnn") for `dtype` are
    in the disk cache for this machine, so that their first call loads instead of compiling (about
    15 s). Reads Numba's cache index (an internal of Numba's); when that cannot be read, says True,
    so that a caller never announces a compilation that may not happen."""
    import numba
    want = numba.from_dtype(dtype)
    for kernel in (globals()[f"{cell}_forward"], globals()[f"{cell}_backward"]):
        try:
            index = kernel._cache._cache_file._load_index()
            magic = kernel.targetctx.codegen().magic_tuple()
            if not any(key[0][0].dtype == want and key[1] == magic for key in index):
                return False
        except Exception:   # a Numba whose internals differ
            return True
    return True


__all__ = ["kernels_cached", "lstm_forward", "lstm_backward", "gru_forward", "gru_backward", "rnn_forward", "rnn_backward"]
