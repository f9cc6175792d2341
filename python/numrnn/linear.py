"""Linear: torch.nn.Linear (y = x W^T + b) with an explicit backward; no autograd.

Any number of leading dimensions; forward keeps a copy of its input for backward, backward ADDS
into grads. On device="cuda" the products run on the GPU (python/numrnn/device.py); NumPy input
gives NumPy output, device arrays give device arrays.
"""
import numpy as np

from numrnn.blas import limited
from numrnn.device import backend
from numrnn.module import Module, check_device, check_dtype, check_positive_int
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
        self._xp = backend(self.device)
        self._allocate(list(self.param_shapes(**self.config())), self.dtype)
        # PyTorch's default: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias alike
        k = 1.0 / np.sqrt(self.in_features)
        self._xp.assign(self.flat_params, np.random.default_rng(seed).uniform(-k, k, self.flat_params.size))
        self._x = None

    @staticmethod
    def param_shapes(in_features, out_features, bias=True, **_):
        """(name, shape) of each parameter a configuration (config(), or a file's) describes."""
        yield "weight", (out_features, in_features)
        if bias:
            yield "bias", (out_features,)

    def config(self):
        return dict(in_features=self.in_features, out_features=self.out_features, bias=self.bias,
                    dtype=np.dtype(self.dtype).name)

    def __repr__(self):
        return "numrnn.Linear(" + ", ".join(f"{k}={v!r}" for k, v in self.config().items()) + ")"

    @limited
    def __call__(self, x):
        xp = self._xp
        x = xp.asarray(x)
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(f"Linear: x must be a floating-point array, got dtype {x.dtype}")
        if x.ndim < 1 or tuple(x.shape)[-1] != self.in_features:
            raise ValueError(f"Linear: x must have shape [..., {self.in_features}], got {x.shape}")
        to_host = not xp.is_device_array(x)
        x = xp.copy(x, self.dtype)     # a copy: the caller may reuse its array before backward
        self._x = x
        y = xp.empty(tuple(x.shape)[:-1] + (self.out_features,), self.dtype)      # [..., out_features]
        y2 = y.reshape(-1, self.out_features)                               # [N, out]
        xp.matmul(y2, x.reshape(-1, self.in_features), self.params["weight"], trans_b=True)
        if self.bias:
            xp.add_rows(y2, self.params["bias"])
        return xp.to_host(y) if to_host else y

    @limited
    def backward(self, dy):
        """dy [..., out_features] -> dx [..., in_features]; adds dW = dy^T x and db = sum dy."""
        if self._x is None:
            raise RuntimeError("Linear.backward() called before any forward()")
        xp = self._xp
        dy = xp.asarray(dy)
        expected = tuple(self._x.shape)[:-1] + (self.out_features,)
        if tuple(dy.shape) != expected:
            raise ValueError(f"Linear: dy must have shape {expected} (the last forward's output), got {dy.shape}")
        to_host = not xp.is_device_array(dy)
        dy2 = xp.contiguous(dy, self.dtype).reshape(-1, self.out_features)    # [N, out]
        x2 = self._x.reshape(-1, self.in_features)                            # [N, in]
        xp.matmul(self.grads["weight"], dy2, x2, trans_a=True, accumulate=True)
        if self.bias:
            xp.col_sums(self.grads["bias"], dy2)
        dx = xp.empty(self._x.shape, self.dtype)                              # [..., in_features]
        xp.matmul(dx.reshape(-1, self.in_features), dy2, self.params["weight"])
        return xp.to_host(dx) if to_host else dx
