"""Module: the base of every numrnn block (RNN/LSTM/GRU, Linear, Embedding, ...).

A block keeps all its parameters in one flat buffer and all its gradients in a second one of the
same layout; `params` and `grads` are dicts of named views into them (PyTorch's names), so the
optimiser, clipping and serialisation each loop over one array per block.
backward() ADDS into grads; zero_grad() clears them.
On device="cuda" both buffers and their views are device arrays (self._xp says which device,
python/numrnn/device.py); state_dict and load_state_dict copy to and from the host.
"""
import numpy as np

from numrnn.device import CPU, as_numpy

DTYPES = (np.float32, np.float64)
DEVICES = ("cpu", "cuda")


def check_dtype(dtype):
    dt = np.dtype(dtype)
    if dt not in [np.dtype(d) for d in DTYPES]:
        raise TypeError(f"dtype must be numpy.float32 or numpy.float64, got {dtype!r}")
    return dt.type


def check_device(device):
    """'cpu' or 'cuda' (whether a GPU is usable is python/numrnn/device.py's check)."""
    if device not in DEVICES:
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    return device


def check_positive_int(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class Module:
    training = True
    _xp = CPU    # array namespace of the block's device

    def _allocate(self, shapes, dtype):
        """shapes: list of (name, shape) in serialisation order."""
        sizes = [int(np.prod(shape)) for _, shape in shapes]
        self.flat_params = self._xp.zeros(sum(sizes), dtype)    # [N] every parameter, back to back
        self.flat_grads = self._xp.zeros(sum(sizes), dtype)     # [N] same layout
        self.offsets = {}                                   # name -> start in the flat buffers
        self._shapes = dict(shapes)
        offset = 0
        for (name, _), size in zip(shapes, sizes):
            self.offsets[name] = offset
            offset += size
        self._make_views()

    def _make_views(self):
        def views(flat):
            return {name: flat[off:off + int(np.prod(self._shapes[name]))].reshape(self._shapes[name])
                    for name, off in self.offsets.items()}
        self.params, self.grads = views(self.flat_params), views(self.flat_grads)

    def __getstate__(self):
        # pickle and copy.deepcopy copy arrays one by one, which would cut the named views loose
        # from the flat buffers; they are rebuilt from the copied buffers instead. What eval mode
        # derives (numrnn.inference: weight copies, workspaces, the helper threads of
        # eval(threads=N), whose copy would have no threads behind it) is made again on first use.
        state = {k: v for k, v in self.__dict__.items() if not k.startswith("_infer_")}
        del state["params"], state["grads"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._make_views()

    def zero_grad(self):
        self._xp.fill_(self.flat_grads, 0)

    def train(self, mode=True):
        self.training = bool(mode)
        self._forget_derived()
        return self

    def _forget_derived(self):
        """Drop the weight copies eval mode derives (numrnn.inference: transposes), so that
        eval() after the weights changed starts from the new ones."""
        self.__dict__.pop("_infer_t", None)
        self.__dict__.pop("_infer_split", None)

    def eval(self):
        return self.train(False)

    def num_parameters(self):
        return self.flat_params.size

    def state_dict(self):
        return {name: np.array(self._xp.to_host(p)) for name, p in self.params.items()}

    def load_state_dict(self, state, strict=True):
        """Copy tensors in by name (numpy arrays, or torch tensors). All checks run before any
        copy, so a failed load changes nothing."""
        state = {k: as_numpy(v) for k, v in state.items()}
        missing = [k for k in self.params if k not in state]
        unexpected = [k for k in state if k not in self.params]
        wrong = [f"{k}: expected {self.params[k].shape}, got {state[k].shape}"
                 for k in self.params if k in state and state[k].shape != self.params[k].shape]
        not_numbers = [k for k in self.params if k in state and not np.issubdtype(state[k].dtype, np.number)]
        problems = []
        if not_numbers:
            problems.append("not numeric: " + ", ".join(not_numbers))
        if strict and missing:
            problems.append("missing: " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected: " + ", ".join(unexpected))
        if wrong:
            problems.append("wrong shape: " + "; ".join(wrong))
        if problems:
            raise ValueError(f"load_state_dict into {type(self).__name__}: " + " | ".join(problems))
        for k, v in state.items():
            if k in self.params:
                self._xp.assign(self.params[k], v)
        self._forget_derived()
