"""Losses that return (loss, gradient of the loss with respect to their first argument).

The losses are means, like PyTorch's default reduction, so the gradient is already divided by the count.
Given GPU arrays (Numba device arrays, or anything with __cuda_array_interface__) they run on the
GPU (engine/cuda_blocks.py) and return a device gradient; only the loss comes back to the host.
masked_cross_entropy (a tagger's loss over sentences of different lengths) runs on the host.
"""
import numpy as np

from numrnn.device import CUDA, as_numpy


def _operands(a, b):
    """(on_device, a, b): device arrays when either one is on the GPU, else numpy arrays."""
    if CUDA.is_device_array(a) or CUDA.is_device_array(b):
        return True, CUDA.asarray(a), CUDA.asarray(b)
    return False, as_numpy(a), as_numpy(b)


def cross_entropy(logits, targets):
    """logits [..., V] floats, targets [...] ints in 0..V-1 -> (mean loss over tokens, dlogits [..., V]).
    Same value as torch.nn.functional.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))."""
    device, logits, targets = _operands(logits, targets)
    if not np.issubdtype(logits.dtype, np.floating):
        raise TypeError(f"cross_entropy: logits must be floating-point, got dtype {logits.dtype}")
    if not np.issubdtype(targets.dtype, np.integer):
        raise TypeError(f"cross_entropy: targets must be integers, got dtype {targets.dtype}")
    if tuple(logits.shape)[:-1] != tuple(targets.shape) or targets.size == 0:
        raise ValueError(f"cross_entropy: logits [..., V] and targets [...] must agree and be non-empty, "
                         f"got {logits.shape} and {targets.shape}")
    V = tuple(logits.shape)[-1]
    if not CUDA.is_device_array(targets) and (targets.min() < 0 or targets.max() >= V):
        raise ValueError(f"cross_entropy: targets must be in 0..{V - 1}, got min {targets.min()}, max {targets.max()}")
    if device:
        from numrnn.engine.cuda_blocks import cross_entropy as on_gpu
        z = CUDA.contiguous(logits, logits.dtype).reshape(-1, V)
        loss, dz, ok = on_gpu(z, CUDA.contiguous(targets, targets.dtype).reshape(-1))
        if not ok:
            raise ValueError(f"cross_entropy: targets must be in 0..{V - 1}; some are not")
        return loss, dz.reshape(logits.shape)
    z = logits.reshape(-1, V)
    t = targets.reshape(-1)
    N = t.size
    shifted = z - z.max(axis=1, keepdims=True)      # softmax is shift-invariant; this keeps exp finite
    exp = np.exp(shifted)
    total = exp.sum(axis=1, keepdims=True)
    rows = np.arange(N)
    loss = float(np.mean(np.log(total[:, 0]) - shifted[rows, t]))
    dz = exp / total
    dz[rows, t] -= 1
    dz /= N
    return loss, dz.reshape(logits.shape)


def mse(pred, target):
    """pred, target same shape -> (mean of (pred - target)^2 over all elements, dpred)."""
    device, pred, target = _operands(pred, target)
    if not np.issubdtype(pred.dtype, np.floating):
        raise TypeError(f"mse: pred must be floating-point, got dtype {pred.dtype}")
    if tuple(pred.shape) != tuple(target.shape) or pred.size == 0:
        raise ValueError(f"mse: pred and target must have the same non-empty shape, got {pred.shape} and {target.shape}")
    if device:
        from numrnn.engine.cuda_blocks import mse as on_gpu
        loss, dpred = on_gpu(CUDA.contiguous(pred, pred.dtype).reshape(-1),
                             CUDA.contiguous(target, pred.dtype).reshape(-1))
        return loss, dpred.reshape(pred.shape)
    diff = pred - target.astype(pred.dtype, copy=False)
    return float(np.mean(diff * diff)), (2.0 / diff.size) * diff


def masked_cross_entropy(scores, targets, lengths):
    """scores [T, B, C], targets [T, B] ints, lengths [B] in 1..T -> (mean loss over the steps t <
    lengths[b], dscores [T, B, C] zero at every other step). Targets past a length are never read,
    so padding may hold anything. Same value as torch's cross_entropy with the padding ignored."""
    scores, targets, lengths = as_numpy(scores), as_numpy(targets), as_numpy(lengths)
    if scores.ndim != 3 or targets.shape != scores.shape[:2] or lengths.shape != scores.shape[1:2]:
        raise ValueError(f"masked_cross_entropy: scores [T, B, C], targets [T, B] and lengths [B] must agree, "
                         f"got {scores.shape}, {targets.shape} and {lengths.shape}")
    T = scores.shape[0]
    if lengths.size and (lengths.min() < 1 or lengths.max() > T):
        raise ValueError(f"masked_cross_entropy: lengths must be in 1..{T} (T), got min {lengths.min()}, "
                         f"max {lengths.max()}")
    valid = np.arange(T)[:, None] < lengths[None, :]        # [T, B]
    loss, dvalid = cross_entropy(scores[valid], targets[valid])
    dscores = np.zeros_like(scores)
    dscores[valid] = dvalid
    return loss, dscores
