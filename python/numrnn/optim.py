"""Optimisers (SGD, Adam) and gradient clipping over numrnn blocks, with torch.optim's arithmetic.

`modules` is a list of blocks; a composite block (LanguageModel) stands for its `blocks`. Each
block keeps its parameters in one flat buffer, so an update is a few whole-array operations per
block (SGD) or one compiled pass over it (Adam on the CPU, engine/adam.py). Weight decay is L2
added to the gradient (torch's `weight_decay`, not AdamW), and the gradients themselves are left
as they are. A block on device="cuda" is updated by a kernel of
engine/cuda_blocks.py doing the same arithmetic, its optimiser state stays on the device, and
clip_grad_norm brings one number per block back to the host.
"""
import numpy as np

from numrnn.engine.adam import adam_step


def leaf_blocks(modules):
    """The blocks that own flat buffers, in order: composites are replaced by their `blocks`."""
    if hasattr(modules, "flat_params") or hasattr(modules, "blocks"):
        modules = [modules]
    out = []
    for m in modules:
        if hasattr(m, "blocks"):
            out.extend(leaf_blocks(m.blocks))
        elif hasattr(m, "flat_params"):
            out.append(m)
        else:
            raise TypeError(f"expected numrnn blocks, got a {type(m).__name__}")
    if not out:
        raise ValueError("no blocks to optimise")
    return out


def _check(name, value, low, high=None):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not np.isfinite(value) \
            or value < low or (high is not None and value >= high):
        bounds = f">= {low}" if high is None else f"in [{low}, {high})"
        raise ValueError(f"{name} must be a number {bounds}, got {value!r}")
    return float(value)


class Optimizer:
    hyper = ()    # names of the hyperparameters saved in state_dict

    def __init__(self, modules):
        self.blocks = leaf_blocks(modules)
        self.state = [{} for _ in self.blocks]

    def zero_grad(self):
        for b in self.blocks:
            b.zero_grad()

    def _decayed(self, block):
        """The gradient with weight decay added (a new array only when there is decay)."""
        if self.weight_decay:
            return block.flat_grads + self.weight_decay * block.flat_params
        return block.flat_grads

    def state_dict(self):
        """Hyperparameters, and per block a dict of its state ("step" int, buffers as host array copies)."""
        return dict({k: getattr(self, k) for k in self.hyper},
                    state=[{k: (np.array(b._xp.to_host(v)) if hasattr(v, "shape") else v) for k, v in s.items()}
                           for s, b in zip(self.state, self.blocks)])

    def load_state_dict(self, d):
        if len(d["state"]) != len(self.blocks):
            raise ValueError(f"optimizer state has {len(d['state'])} blocks, this optimizer has {len(self.blocks)}")
        for s, b in zip(d["state"], self.blocks):
            for k, v in s.items():
                if isinstance(v, np.ndarray) and v.shape != b.flat_params.shape:
                    raise ValueError(f"optimizer state {k!r} has shape {v.shape}, the block has "
                                     f"{b.flat_params.shape} parameters")
        for k in self.hyper:
            setattr(self, k, tuple(d[k]) if isinstance(d[k], list) else d[k])
        self.state = [{k: (b._xp.from_host(np.array(v, dtype=b.flat_params.dtype)) if isinstance(v, np.ndarray)
                           else v) for k, v in s.items()} for s, b in zip(d["state"], self.blocks)]


class SGD(Optimizer):
    """torch.optim.SGD (no dampening, no Nesterov): buf = momentum * buf + g (buf = g at first), p -= lr * buf."""
    hyper = ("lr", "momentum", "weight_decay")

    def __init__(self, modules, lr, momentum=0.0, weight_decay=0.0):
        super().__init__(modules)
        self.lr = _check("lr", lr, 0.0)
        self.momentum = _check("momentum", momentum, 0.0)
        self.weight_decay = _check("weight_decay", weight_decay, 0.0)

    def step(self):
        for b, s in zip(self.blocks, self.state):
            first = "momentum_buffer" not in s
            if self.momentum and first:
                s["momentum_buffer"] = b._xp.empty(b.flat_params.shape, b.flat_params.dtype)
            if b.device == "cuda":
                from numrnn.engine.cuda_blocks import sgd
                sgd(b.flat_params, b.flat_grads, s.get("momentum_buffer", b.flat_grads), self.lr,
                    self.momentum, self.weight_decay, first)
                continue
            g = self._decayed(b)
            if self.momentum:
                buf = s["momentum_buffer"]
                if first:
                    buf[...] = g
                else:
                    buf *= self.momentum
                    buf += g
                g = buf
            b.flat_params -= self.lr * g


class Adam(Optimizer):
    """torch.optim.Adam (amsgrad off): m, v moving averages of g and g^2, bias-corrected step."""
    hyper = ("lr", "betas", "eps", "weight_decay")

    def __init__(self, modules, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(modules)
        self.lr = _check("lr", lr, 0.0)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = (_check("betas[0]", betas[0], 0.0, 1.0), _check("betas[1]", betas[1], 0.0, 1.0))
        self.eps = _check("eps", eps, 0.0)
        self.weight_decay = _check("weight_decay", weight_decay, 0.0)

    def step(self):
        beta1, beta2 = self.betas
        for b, s in zip(self.blocks, self.state):
            if not s:
                s.update(step=0, exp_avg=b._xp.zeros(b.flat_params.shape, b.flat_params.dtype),
                         exp_avg_sq=b._xp.zeros(b.flat_params.shape, b.flat_params.dtype))
            s["step"] += 1
            m, v = s["exp_avg"], s["exp_avg_sq"]
            bias1 = 1 - beta1 ** s["step"]
            bias2_sqrt = np.sqrt(1 - beta2 ** s["step"])
            if b.device == "cuda":
                from numrnn.engine.cuda_blocks import adam
                adam(b.flat_params, b.flat_grads, m, v, beta1, beta2, self.weight_decay,
                     self.lr / bias1, bias2_sqrt, self.eps)
                continue
            t = b.flat_params.dtype.type
            # m: torch's lerp form of beta1 * m + (1 - beta1) * g
            adam_step(b.flat_params, b.flat_grads, m, v, t(1 - beta1), t(beta2), t(1 - beta2), t(self.weight_decay),
                      float(self.lr / bias1), float(bias2_sqrt), float(self.eps))


def clip_grad_norm(modules, max_norm):
    """Scale every gradient by min(1, max_norm / (norm + 1e-6)), norm being the L2 norm of all
    gradients together (torch.nn.utils.clip_grad_norm_); returns that norm (inf or nan when a
    gradient is not finite)."""
    max_norm = _check("max_norm", max_norm, 0.0)
    blocks = leaf_blocks(modules)
    total = float(np.sqrt(sum(b._xp.sum_squares(b.flat_grads) for b in blocks)))
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        for b in blocks:
            b._xp.scale_(b.flat_grads, coef)
    return total
