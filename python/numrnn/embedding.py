"""Embedding: torch.nn.Embedding (a lookup table of rows) with an explicit backward; no autograd.

The ids are inputs, not differentiable, so backward returns None and only adds into grads.
"""
import numpy as np

from numrnn.module import Module, as_numpy, check_device, check_dtype, check_positive_int
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
        self._allocate([("weight", (self.num_embeddings, self.embedding_dim))], self.dtype)
        # PyTorch's default: N(0, 1)
        self.flat_params[:] = np.random.default_rng(seed).standard_normal(self.flat_params.size)
        self._ids = None

    def config(self):
        return dict(num_embeddings=self.num_embeddings, embedding_dim=self.embedding_dim,
                    dtype=np.dtype(self.dtype).name)

    def __repr__(self):
        return "numrnn.Embedding(" + ", ".join(f"{k}={v!r}" for k, v in self.config().items()) + ")"

    def __call__(self, ids):
        ids = as_numpy(ids)
        if not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"Embedding: ids must be integers, got dtype {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_embeddings):
            raise ValueError(f"Embedding: ids must be in 0..{self.num_embeddings - 1}, "
                             f"got min {ids.min()}, max {ids.max()}")
        self._ids = ids.copy()                # the caller may reuse its array before backward
        return self.params["weight"][ids]

    def backward(self, de):
        """de [..., embedding_dim]: row ids[k] of the weight gradient gets de[k] added, once per use."""
        if self._ids is None:
            raise RuntimeError("Embedding.backward() called before any forward()")
        de = as_numpy(de).astype(self.dtype, copy=False)
        expected = self._ids.shape + (self.embedding_dim,)
        if de.shape != expected:
            raise ValueError(f"Embedding: de must have shape {expected} (the last forward's output), got {de.shape}")
        np.add.at(self.grads["weight"], self._ids.reshape(-1), de.reshape(-1, self.embedding_dim))
