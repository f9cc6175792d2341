"""Where a block's arrays live: one namespace of array operations per device, so the layers read
the same on the CPU and the GPU (`xp = backend(device)`; `xp.empty(...)`, `xp.kernels.lstm_forward`).

CPU: NumPy arrays and the @njit kernels of numrnn.engine.
CUDA: Numba device arrays and the @cuda.jit kernels of numrnn.engine.cuda_*; host arrays given to
a CUDA layer are copied in, device arrays (anything with __cuda_array_interface__) are used where
they lie. Nothing here validates shapes; the layers do that first.
"""
import functools
import types

import numpy as np


def as_numpy(value):
    """Array-like (numpy, list, a torch tensor, a Numba device array) -> numpy array, without
    copying numpy input."""
    if hasattr(value, "copy_to_host"):
        return value.copy_to_host()
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


class CPU:
    name = "cpu"

    @staticmethod
    def kernels():
        from numrnn import engine
        return engine

    empty = staticmethod(np.empty)
    zeros = staticmethod(np.zeros)

    @staticmethod
    def is_device_array(a):
        return False

    @staticmethod
    def asarray(a):
        return as_numpy(a)

    @staticmethod
    def copy(a, dtype, swap01=False):
        """A new C-contiguous array of dtype holding a (axes 0 and 1 swapped when asked)."""
        return np.array(a.transpose(1, 0, 2) if swap01 else a, dtype=dtype, order="C")

    from_host = staticmethod(np.ascontiguousarray)

    @staticmethod
    def to_host(a):
        return a

    @staticmethod
    def assign(dst, src):
        dst[...] = src

    @staticmethod
    def concat_features(ys):
        """[T, B, F_k] arrays -> a new [T, B, sum F_k]."""
        return np.concatenate(ys, axis=2) if len(ys) > 1 else ys[0].copy()

    @staticmethod
    def take_features(y, start, width):
        """y[:, :, start:start + width] as a C-contiguous array."""
        return np.ascontiguousarray(y[:, :, start:start + width])

    @staticmethod
    def zero_past_lengths(y, lengths):
        """y [T, B, F]: zero every step t >= lengths[b], in place."""
        y *= (np.arange(y.shape[0])[:, None] < lengths[None, :])[:, :, None]

    @staticmethod
    def mul_(a, b):
        a *= b

    @staticmethod
    def add_(a, b):
        a += b

    @staticmethod
    def fill_(a, value):
        a[...] = value

    @staticmethod
    def scale_(a, coef):
        """a *= coef, coef rounded to a's dtype first."""
        a *= a.dtype.type(coef)

    @staticmethod
    def sum_squares(a):
        """sum(a * a) of a 1-D array, as a Python float."""
        return float(np.dot(a, a))

    @staticmethod
    def contiguous(a, dtype):
        """a itself when it is already a C-contiguous array of dtype, else such a copy (for arrays
        that are only read)."""
        return np.ascontiguousarray(a, dtype=dtype)

    @staticmethod
    def matmul(c, a, b, trans_a=False, trans_b=False, accumulate=False):
        """c [M, N] (+)= op(a) [M, K] @ op(b) [K, N], op = transpose when asked."""
        a, b = (a.T if trans_a else a), (b.T if trans_b else b)
        if accumulate:
            c += a @ b
        else:
            np.matmul(a, b, out=c)

    @staticmethod
    def col_sums(out, a):
        """out [N] += sum over the rows of a [M, N]."""
        out += a.sum(axis=0)

    @staticmethod
    def add_rows(y, b):
        """y [M, N] += b [N] on every row."""
        y += b

    @staticmethod
    def gather_rows(w, ids):
        """w [V, E], ids [N] ints in 0..V-1 (checked by the caller) -> w[ids] [N, E]."""
        return w[ids]

    @staticmethod
    def scatter_add_rows(dw, ids, de):
        """dw [V, E] row ids[n] += de [N, E] row n, once per occurrence of an id."""
        np.add.at(dw, ids, de)


def _without_autograd(a):
    """A PyTorch CUDA tensor detached from autograd (same memory): one that requires grad raises
    RuntimeError, not AttributeError, from __cuda_array_interface__, so hasattr would raise too.
    Anything else is returned as it is."""
    return a.detach() if getattr(a, "is_cuda", False) is True and hasattr(a, "detach") else a


class CUDA:
    name = "cuda"

    @staticmethod
    def kernels():
        from numrnn.engine import cuda_gru, cuda_lstm, cuda_rnn
        return types.SimpleNamespace(
            lstm_forward=cuda_lstm.lstm_forward, lstm_backward=cuda_lstm.lstm_backward,
            gru_forward=cuda_gru.gru_forward, gru_backward=cuda_gru.gru_backward,
            rnn_forward=cuda_rnn.rnn_forward, rnn_backward=cuda_rnn.rnn_backward)

    @staticmethod
    def empty(shape, dtype):
        from numba import cuda
        return cuda.device_array(shape, dtype)

    @staticmethod
    def zeros(shape, dtype):
        return CUDA.from_host(np.zeros(shape, dtype))

    @staticmethod
    def is_device_array(a):
        # Numba's device arrays (real or simulated) have copy_to_host; other GPU arrays (CuPy,
        # torch.cuda) announce themselves with __cuda_array_interface__.
        a = _without_autograd(a)
        return hasattr(a, "copy_to_host") or hasattr(a, "__cuda_array_interface__")

    @staticmethod
    def asarray(a):
        """A Numba device array for device input (no copy), a numpy array for host input."""
        view = _without_autograd(a)
        if hasattr(view, "copy_to_host"):
            return view
        if hasattr(view, "__cuda_array_interface__"):
            from numba import cuda
            return cuda.as_cuda_array(view)
        return as_numpy(a)

    @staticmethod
    def copy(a, dtype, swap01=False):
        """A new C-contiguous device array of dtype holding a (axes 0 and 1 of a 3-D array swapped
        when asked): host input is copied in, device input is converted on the device."""
        if not CUDA.is_device_array(a):
            a = np.asarray(a, dtype=dtype)
            return CUDA.from_host(a.transpose(1, 0, 2) if swap01 else a)
        from numrnn.engine.cuda_arrays import convert
        a = CUDA.asarray(a)
        if a.ndim == 3:
            return convert(a, dtype, swap01)
        if not a.is_c_contiguous():
            raise TypeError(f"a device array of shape {a.shape} must be C-contiguous here (3-D ones may have any strides)")
        return convert(a.reshape(1, 1, a.size), dtype).reshape(a.shape)

    @staticmethod
    def from_host(a):
        from numba import cuda
        return cuda.to_device(np.ascontiguousarray(a))

    @staticmethod
    def to_host(a):
        return a.copy_to_host()

    @staticmethod
    def assign(dst, src):
        """dst[...] = src, src on the host (cast to dst's dtype) or a device array of dst's shape."""
        if not CUDA.is_device_array(src):
            src = np.ascontiguousarray(np.broadcast_to(src, dst.shape), dtype=dst.dtype)
        dst.copy_to_device(src)

    @staticmethod
    def concat_features(ys):
        from numrnn.engine.cuda_arrays import copy_features
        T, B = ys[0].shape[:2]
        out = CUDA.empty((T, B, sum(y.shape[2] for y in ys)), ys[0].dtype)
        offset = 0
        for y in ys:
            copy_features(out, offset, y, 0, y.shape[2])
            offset += y.shape[2]
        return out

    @staticmethod
    def take_features(y, start, width):
        if start == 0 and width == y.shape[2]:
            return y
        from numrnn.engine.cuda_arrays import copy_features
        out = CUDA.empty((y.shape[0], y.shape[1], width), y.dtype)
        copy_features(out, 0, y, start, width)
        return out

    @staticmethod
    def zero_past_lengths(y, lengths):
        from numrnn.engine.cuda_arrays import zero_past_lengths
        zero_past_lengths(y, lengths)

    @staticmethod
    def mul_(a, b):
        from numrnn.engine.cuda_arrays import combine
        combine(a, b, True)

    @staticmethod
    def add_(a, b):
        from numrnn.engine.cuda_arrays import combine
        combine(a, b, False)

    @staticmethod
    def fill_(a, value):
        from numrnn.engine.cuda_blocks import fill
        fill(a.reshape(a.size), value)

    @staticmethod
    def scale_(a, coef):
        from numrnn.engine.cuda_blocks import scale
        scale(a.reshape(a.size), coef)

    @staticmethod
    def sum_squares(a):
        from numrnn.engine.cuda_blocks import total
        return total(a, squares=True)

    @staticmethod
    def contiguous(a, dtype):
        a = CUDA.asarray(a)
        if CUDA.is_device_array(a) and a.dtype == dtype and a.is_c_contiguous():
            return a
        return CUDA.copy(a, dtype)

    @staticmethod
    def matmul(c, a, b, trans_a=False, trans_b=False, accumulate=False):
        from numrnn.engine.cuda_steps import gemm
        gemm(c, a, b, trans_a, trans_b, accumulate)

    @staticmethod
    def col_sums(out, a):
        from numrnn.engine.cuda_steps import col_sums
        col_sums(out, a)

    @staticmethod
    def add_rows(y, b):
        from numrnn.engine.cuda_blocks import add_rows
        add_rows(y, b)

    @staticmethod
    def gather_rows(w, ids):
        """Also checks the ids on the device (the caller cannot see them): an id outside 0..V-1
        is a ValueError."""
        from numrnn.engine.cuda_blocks import gather_rows
        out, ok = gather_rows(w, ids)
        if not ok:
            raise ValueError(f"Embedding: ids must be in 0..{w.shape[0] - 1}; some are not")
        return out

    @staticmethod
    def scatter_add_rows(dw, ids, de):
        from numrnn.engine.cuda_blocks import scatter_add_rows
        scatter_add_rows(dw, ids, de)


# The `cuda` extra's CUDA 12 wheels need this driver (CUDA 12.x minor version compatibility).
MIN_DRIVER = "525.60.13"


@functools.lru_cache(maxsize=None)
def cuda_problem():
    """Why device='cuda' cannot run here, fix first, in one short line; None when it can. Compiles
    and launches a one-thread kernel once, so a missing compiler (NVVM, NVRTC) or a driver too old
    for the compiled code shows here, not at a layer's first forward."""
    try:
        import numba_cuda  # noqa: F401  (the maintained CUDA target; numba's built-in one is deprecated)
    except ImportError:
        return "pip install 'numrnn[cuda]' (numba-cuda is not installed)"
    from numba import cuda
    if not cuda.is_available():
        try:
            from numba.cuda.cudadrv.driver import driver
            driver.get_device_count()
            reason = "no CUDA GPU found"
        except Exception as e:  # the driver's own words say what is missing (library, device)
            reason = _first_sentence(e)
        return f"needs an NVIDIA GPU and driver >= {MIN_DRIVER} ({reason})"
    try:
        out = cuda.device_array(1, np.int32)
        _probe_kernel()[1, 1](out)
        out.copy_to_host()            # waits for the kernel: a failed launch raises here
    except Exception as e:  # which piece failed is in the error's text
        text = " ".join(str(e).split()).lower()
        if any(k in text for k in ("nvvm", "nvrtc", "libdevice", "nvjitlink", "cuda toolkit")):
            return f"pip install 'numrnn[cuda]' (the CUDA compiler is missing: {_first_sentence(e)})"
        if any(k in text for k in ("ptx", "insufficient", "unsupported toolchain")):
            return f"update the NVIDIA driver to >= {MIN_DRIVER} (a compiled kernel did not load: {_first_sentence(e)})"
        return f"a test kernel did not run: {_first_sentence(e)}"
    return None


def _probe_kernel():
    from numba import cuda

    @cuda.jit
    def probe(out):
        out[0] = 7
    return probe


def _first_sentence(e, limit=100):
    text = " ".join(str(e).split()).strip(" :.") or type(e).__name__
    text = text.split(". ")[0]
    return text if len(text) <= limit else text[:limit - 3] + "..."


def backend(device):
    """The namespace for 'cpu' or 'cuda'; for 'cuda', fails at once with what is missing."""
    if device == "cpu":
        return CPU
    problem = cuda_problem()
    if problem:
        raise RuntimeError(f"device='cuda': {problem}; or use device='cpu'")
    return CUDA
