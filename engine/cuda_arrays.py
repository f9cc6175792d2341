"""Array operations the layers do between kernel calls, on the GPU (Numba CUDA): layout and
dtype conversion, feature concatenation, masks. The CPU versions are one NumPy line each
(python/numrnn/device.py); these keep device data on the device.
"""
from numba import cuda

from .cuda_config import FASTMATH
from .cuda_steps import grid_1d


@cuda.jit(cache=True, fastmath=FASTMATH)
def _convert(dst, src, swap):
    """dst [A, C, F] C-contiguous = src [A, C, F] (or src [C, A, F] when swap), any strides,
    cast to dst's dtype."""
    i = cuda.grid(1)
    A, C, F = dst.shape
    if i >= A * C * F:
        return
    a = i // (C * F)
    c = (i // F) % C
    f = i % F
    dst[a, c, f] = src[c, a, f] if swap else src[a, c, f]


def convert(src, dtype, swap01=False):
    """A new C-contiguous 3-D device array of `dtype` from any 3-D device array; axes 0 and 1
    swapped when asked (batch_first <-> time-major)."""
    shape = (src.shape[1], src.shape[0], src.shape[2]) if swap01 else tuple(src.shape)
    dst = cuda.device_array(shape, dtype)
    if dst.size:
        blocks, threads = grid_1d(dst.size)
        _convert[blocks, threads](dst, src, swap01)
    return dst


@cuda.jit(cache=True, fastmath=FASTMATH)
def _copy_features(dst, dst_offset, src, src_offset, width):
    """dst [T, B, F1][..., dst_offset + k] = src [T, B, F2][..., src_offset + k], k < width."""
    i = cuda.grid(1)
    T, B, _ = dst.shape
    if i >= T * B * width:
        return
    t = i // (B * width)
    b = (i // width) % B
    k = i % width
    dst[t, b, dst_offset + k] = src[t, b, src_offset + k]


def copy_features(dst, dst_offset, src, src_offset, width):
    blocks, threads = grid_1d(dst.shape[0] * dst.shape[1] * width)
    _copy_features[blocks, threads](dst, dst_offset, src, src_offset, width)


@cuda.jit(cache=True, fastmath=FASTMATH)
def _zero_past_lengths(y, lengths):
    """y [T, B, F]: zero where t >= lengths[b]."""
    i = cuda.grid(1)
    T, B, F = y.shape
    if i >= T * B * F:
        return
    t = i // (B * F)
    b = (i // F) % B
    if t >= lengths[b]:
        y[t, b, i % F] = 0.0


def zero_past_lengths(y, lengths):
    blocks, threads = grid_1d(y.size)
    _zero_past_lengths[blocks, threads](y, lengths)


@cuda.jit(cache=True, fastmath=FASTMATH)
def _combine(a, b, multiply):
    """a [N] *= b [N] (multiply) or a += b, in place."""
    i = cuda.grid(1)
    if i >= a.size:
        return
    if multiply:
        a[i] *= b[i]
    else:
        a[i] += b[i]


def combine(a, b, multiply):
    blocks, threads = grid_1d(a.size)
    _combine[blocks, threads](a.reshape(a.size), b.reshape(b.size), multiply)
