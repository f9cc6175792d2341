"""Losses that return (loss, gradient of the loss with respect to their first argument).

Both are means, like PyTorch's default reduction, so the gradient is already divided by the count.
"""
import numpy as np

from numrnn.module import as_numpy


def cross_entropy(logits, targets):
    """logits [..., V] floats, targets [...] ints in 0..V-1 -> (mean loss over tokens, dlogits [..., V]).
    Same value as torch.nn.functional.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))."""
    logits, targets = as_numpy(logits), as_numpy(targets)
    if not np.issubdtype(logits.dtype, np.floating):
        raise TypeError(f"cross_entropy: logits must be floating-point, got dtype {logits.dtype}")
    if not np.issubdtype(targets.dtype, np.integer):
        raise TypeError(f"cross_entropy: targets must be integers, got dtype {targets.dtype}")
    if logits.shape[:-1] != targets.shape or targets.size == 0:
        raise ValueError(f"cross_entropy: logits [..., V] and targets [...] must agree and be non-empty, "
                         f"got {logits.shape} and {targets.shape}")
    V = logits.shape[-1]
    if targets.min() < 0 or targets.max() >= V:
        raise ValueError(f"cross_entropy: targets must be in 0..{V - 1}, got min {targets.min()}, max {targets.max()}")
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
    pred, target = as_numpy(pred), as_numpy(target)
    if not np.issubdtype(pred.dtype, np.floating):
        raise TypeError(f"mse: pred must be floating-point, got dtype {pred.dtype}")
    if pred.shape != target.shape or pred.size == 0:
        raise ValueError(f"mse: pred and target must have the same non-empty shape, got {pred.shape} and {target.shape}")
    diff = pred - target.astype(pred.dtype, copy=False)
    return float(np.mean(diff * diff)), (2.0 / diff.size) * diff
