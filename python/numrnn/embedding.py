"""Embedding: torch.nn.Embedding (a lookup table of rows) with an explicit backward; no autograd.

The ids are inputs, not differentiable, so backward returns None and only adds into grads.
On device="cuda" the lookup and its gradient run on the GPU (python/numrnn/device.py); NumPy ids
give a NumPy output, device ids a device array.
"""
import numpy as np

from numrnn.device import backend
from numrnn.module import Module, check_device, check_dtype, check_positive_int
from numrnn.serialize import register


@register
class Embedding(Module):
    """e = emb(ids), ids int [...] -> e [..., embedding_dim]; emb.backward(de) adds into grads["weight"]."""

    def __init__(self, num_embeddings, embedding_dim, device="cpu", dtype=np.float32, seed=None):
        self.num_embeddings = check_positive_int("num_embeddings", num_embeddings)
        self.embedding_dim = check_positive_int("embedding_dim", embedding_dim)
        self.device = check_device(device)
        self.dtype = check_dtype(dtype)
        self.seed = seed
        self._xp = backend(self.device)
        self._allocate(list(self.param_shapes(**self.config())), self.dtype)
        # PyTorch's default: N(0, 1)
        self._xp.assign(self.flat_params, np.random.default_rng(seed).standard_normal(self.flat_params.size))
        self._ids = None

    @staticmethod
    def param_shapes(num_embeddings, embedding_dim, **_):
        """(name, shape) of each parameter a configuration (config(), or a file's) describes."""
        yield "weight", (num_embeddings, embedding_dim)

    def config(self):
        return dict(num_embeddings=self.num_embeddings, embedding_dim=self.embedding_dim,
                    dtype=np.dtype(self.dtype).name)

    def __repr__(self):
        return "numrnn.Embedding(" + ", ".join(f"{k}={v!r}" for k, v in self.config().items()) + ")"

    def __call__(self, ids):
        xp = self._xp
        ids = xp.asarray(ids)
        if not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"Embedding: ids must be integers, got dtype {ids.dtype}")
        to_host = not xp.is_device_array(ids)
        if to_host:
            self.check_ids(ids)
        shape = tuple(ids.shape)
        ids = xp.copy(ids, ids.dtype).reshape(-1)   # [N]; a copy: the caller may reuse its array before backward
        e = xp.gather_rows(self.params["weight"], ids).reshape(shape + (self.embedding_dim,))
        self._ids, self._shape = ids, shape
        return xp.to_host(e) if to_host else e

    def check_ids(self, ids):
        """ids: a host int array; ValueError unless every id is in 0..num_embeddings-1 (device ids
        are checked on the device, in the lookup itself)."""
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_embeddings):
            raise ValueError(f"Embedding: ids must be in 0..{self.num_embeddings - 1}, "
                             f"got min {ids.min()}, max {ids.max()}")

    def backward(self, de):
        """de [..., embedding_dim]: row ids[k] of the weight gradient gets de[k] added, once per use."""
        if self._ids is None:
            raise RuntimeError("Embedding.backward() called before any forward()")
        xp = self._xp
        de = xp.asarray(de)
        expected = self._shape + (self.embedding_dim,)
        if tuple(de.shape) != expected:
            raise ValueError(f"Embedding: de must have shape {expected} (the last forward's output), got {de.shape}")
        de = xp.contiguous(de, self.dtype).reshape(-1, self.embedding_dim)      # [N, E]
        xp.scatter_add_rows(self.grads["weight"], self._ids, de)
