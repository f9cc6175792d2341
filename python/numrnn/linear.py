"""Linear: torch.nn.Linear (y = x W^T + b) with an explicit backward; no autograd.

Any number of leading dimensions; forward keeps its input for backward, backward ADDS into grads.
"""
import numpy as np

from numrnn.module import Module, as_numpy, check_device, check_dtype, check_positive_int
from numrnn.serialize import register


@register
class Linear(Module):
    """y = lin(x), x [..., in_features] -> y [..., out_features]; dx = lin.backward(dy)."""

    def __init__(self, in_features, out_features, bias=True, device="cpu", dtype=np.float32, seed=None):
        self.in_features = check_positive_int("in_features", in_features)
        self.out_features = check_positive_int("out_features", out_features)
        self.bias = bool(bias)
        self.device = check_device(device)
        self.dtype = check_dtype(dtype)
        self.seed = seed
        shapes = [("weight", (self.out_features, self.in_features))]
        if self.bias:
            shapes.append(("bias", (self.out_features,)))
        self._allocate(shapes, self.dtype)
        # PyTorch's default: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias alike
        k = 1.0 / np.sqrt(self.in_features)
        self.flat_params[:] = np.random.default_rng(seed).uniform(-k, k, self.flat_params.size)
        self._x = None

    def config(self):
        return dict(in_features=self.in_features, out_features=self.out_features, bias=self.bias,
                    dtype=np.dtype(self.dtype).name)

    def __repr__(self):
        return "numrnn.Linear(" + ", ".join(f"{k}={v!r}" for k, v in self.config().items()) + ")"

    def __call__(self, x):
        x = as_numpy(x)
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(f"Linear: x must be a floating-point array, got dtype {x.dtype}")
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"Linear: x must have shape [..., {self.in_features}], got {x.shape}")
        x = np.array(x, dtype=self.dtype)     # a copy: the caller may reuse its array before backward
        self._x = x
        y = x @ self.params["weight"].T          # [..., out_features]
        if self.bias:
            y += self.params["bias"]
        return y

    def backward(self, dy):
        """dy [..., out_features] -> dx [..., in_features]; adds dW = dy^T x and db = sum dy."""
        if self._x is None:
            raise RuntimeError("Linear.backward() called before any forward()")
        dy = as_numpy(dy).astype(self.dtype, copy=False)
        expected = self._x.shape[:-1] + (self.out_features,)
        if dy.shape != expected:
            raise ValueError(f"Linear: dy must have shape {expected} (the last forward's output), got {dy.shape}")
        x2 = self._x.reshape(-1, self.in_features)       # [N, in]
        dy2 = dy.reshape(-1, self.out_features)          # [N, out]
        self.grads["weight"] += dy2.T @ x2
        if self.bias:
            self.grads["bias"] += dy2.sum(axis=0)
        return dy @ self.params["weight"]
