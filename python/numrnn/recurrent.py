"""RNN, LSTM and GRU layers: torch.nn.RNN / LSTM / GRU with an explicit backward and no autograd.

A layer validates its input, allocates outputs, and calls the engine once per layer and direction;
the time loop runs inside the compiled kernel. forward saves exactly what backward needs
(self._cache); backward ADDS into self.grads. Parameter names and shapes are PyTorch's, so
state dicts move both ways.
device="cuda" runs the same code on Numba device arrays: self._xp holds the device's array
operations and self._kernels its engine (python/numrnn/device.py). Host input gives host output
(copied); device input gives Numba device arrays, and nothing goes through the host.
"""
import warnings

import numpy as np

from numrnn import inference
from numrnn.blas import limited
from numrnn.device import backend
from numrnn.engine.gates import NONLINEARITIES, layer_suffixes, num_gates, param_shapes
from numrnn.engine.threads import MAX_PARTS
from numrnn.module import Module, check_device, check_dtype, check_positive_int
from numrnn.serialize import register


class Recurrent(Module):
    """Shared by RNN, LSTM and GRU. Subclasses set `cell` and implement _run_forward/_run_backward."""
    cell = None
    # (global batch, slice of its columns) when this layer trains one process's share of each batch
    # (numrnn.distributed): dropout masks are drawn for the global batch and cut, so N processes use
    # the masks one process would and their generators stay in step
    batch_share = None
    inference_threads = 1   # threads one eval-mode call on the CPU runs on (eval(threads=...))

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, nonlinearity="tanh",
                 device="cpu", dtype=np.float32, seed=None, peephole=False, coupled=False):
        self.input_size = check_positive_int("input_size", input_size)
        self.hidden_size = check_positive_int("hidden_size", hidden_size)
        self.num_layers = check_positive_int("num_layers", num_layers)
        self.proj_size = check_positive_int("proj_size", proj_size, minimum=0)
        if self.proj_size and self.cell != "LSTM":
            raise ValueError(f"proj_size is only supported by LSTM, not {self.cell} (got proj_size={proj_size})")
        if self.proj_size >= self.hidden_size:
            raise ValueError(f"proj_size must be smaller than hidden_size, got proj_size={proj_size}, "
                             f"hidden_size={hidden_size}")
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
        if dropout > 0 and self.num_layers == 1:
            warnings.warn(f"{self.cell}: dropout={dropout} has no effect with num_layers=1 (dropout acts "
                          f"between layers, on every layer's output but the last)", stacklevel=3)
        self.nonlinearity = nonlinearity
        self._act = NONLINEARITIES[nonlinearity]
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.bidirectional = bool(bidirectional)
        self.dropout = float(dropout)
        self.peephole = bool(peephole)
        self.coupled = bool(coupled)
        self.device = check_device(device)
        self.dtype = check_dtype(dtype)
        self.seed = seed
        self._xp = backend(self.device)

        H = self.hidden_size
        G = num_gates(self.cell, self.coupled) * H
        self._allocate(list(self.param_shapes(**self.config())), self.dtype)
        init_seq, drop_seq = np.random.SeedSequence(seed).spawn(2)
        k = 1.0 / np.sqrt(H)
        self._xp.assign(self.flat_params, np.random.default_rng(init_seq).uniform(-k, k, self.flat_params.size))
        self._dropout_rng = np.random.default_rng(drop_seq)
        # stand-ins for absent tensors, so every kernel call has the same argument types
        self._no_bias = self._xp.zeros(G, self.dtype)
        self._no_bias_grad = self._xp.zeros(G, self.dtype)
        self._no_proj = self._xp.zeros((0, 0), self.dtype)
        self._no_peep = self._xp.zeros((0, H), self.dtype)
        self._cache = None

    @property
    def _kernels(self):
        """The device's engine; looked up, not stored, so that layers pickle and deepcopy."""
        return self._xp.kernels()

    # -- sizes and configuration ---------------------------------------------------------------
    @property
    def num_directions(self):
        return 2 if self.bidirectional else 1

    @property
    def out_size(self):
        """Size of h: proj_size when projecting, else hidden_size."""
        return self.proj_size or self.hidden_size

    @classmethod
    def param_shapes(cls, input_size, hidden_size, num_layers=1, bias=True, bidirectional=False, proj_size=0,
                     peephole=False, coupled=False, **_):
        """(name, shape) of each parameter of the layer a configuration (config(), or a file's)
        describes, computed lazily and allocating nothing; other configuration keys do not matter."""
        return param_shapes(cls.cell, input_size, hidden_size, num_layers, bidirectional, bias, proj_size,
                            peephole, coupled)

    def config(self):
        cfg = dict(input_size=self.input_size, hidden_size=self.hidden_size, num_layers=self.num_layers,
                   bias=self.bias, batch_first=self.batch_first, dropout=self.dropout,
                   bidirectional=self.bidirectional, dtype=np.dtype(self.dtype).name)
        if self.cell == "LSTM":
            cfg["proj_size"] = self.proj_size
        if self.cell == "RNN":
            cfg["nonlinearity"] = self.nonlinearity
        cfg.update(self._variant_config())
        return cfg

    def _variant_config(self):
        """The LSTM variants, written only when used so that plain layers keep PyTorch's arguments."""
        return {k: True for k in ("peephole", "coupled") if getattr(self, k)}

    def pytorch_incompatibility(self):
        """Why PyTorch cannot hold this block's weights ("" when it can)."""
        reasons = []
        if self.peephole:
            reasons.append("peephole=True adds weight_ci/weight_cf/weight_co, which PyTorch's LSTM has no place for")
        if self.coupled:
            reasons.append("coupled=True (f = 1 - i) has no forget-gate rows, so weight_ih/weight_hh/biases "
                           "have 3*hidden_size rows where PyTorch expects 4*hidden_size")
        return "; ".join(reasons)

    def load_state_dict(self, state, strict=True):
        try:
            super().load_state_dict(state, strict)
        except ValueError as e:
            why = self.pytorch_incompatibility()
            if not why:
                raise
            raise ValueError(f"{e} | note: this {type(self).__name__} cannot take a PyTorch state dict: "
                             f"{why}") from None

    def __repr__(self):
        return f"numrnn.{type(self).__name__}(" + ", ".join(f"{k}={v!r}" for k, v in self.config().items()) + ")"

    def _suffixes(self):
        """Name suffix of each layer/direction, indexed layer * D + direction."""
        return layer_suffixes(self.num_layers, self.bidirectional)

    def _tensors(self, store, idx):
        """(w_ih, w_hh, b_ih, b_hh, w_hr, w_peep) of layer/direction idx = layer * D + direction, from
        self.params or self.grads; absent biases/projection/peepholes come as stand-ins.
        w_peep [NP, H] is one view over the back-to-back weight_ci, (weight_cf,) weight_co."""
        sfx = self._suffixes()[idx]
        grads = store is self.grads
        no_bias = self._no_bias_grad if grads else self._no_bias
        w_peep = self._no_peep
        if self.peephole:
            flat = self.flat_grads if grads else self.flat_params
            start, H = self.offsets["weight_ci" + sfx], self.hidden_size
            rows = 2 if self.coupled else 3
            w_peep = flat[start:start + rows * H].reshape(rows, H)
        return (store["weight_ih" + sfx], store["weight_hh" + sfx],
                store.get("bias_ih" + sfx, no_bias), store.get("bias_hh" + sfx, no_bias),
                store.get("weight_hr" + sfx, self._no_proj), w_peep)

    def eval(self, threads=1):
        """Eval mode (PyTorch's habit; train() goes back). threads: how many threads each CPU call
        runs on, the caller's and threads - 1 helper threads the layer starts once and keeps,
        splitting the hidden units between them (engine/infer_split.py): for batches of up to 8
        sequences and no proj_size; other calls run on the caller's thread alone. Worth it for
        hidden sizes of about 128 and up with a free core per thread (measured in the README's
        "C interface" section)."""
        if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= MAX_PARTS:
            raise ValueError(f"threads must be an integer in 1..{MAX_PARTS}, got {threads!r}")
        self.inference_threads = threads
        return self.train(False)

    # -- input checks --------------------------------------------------------------------------
    def _as_float(self, name, a):
        a = self._xp.asarray(a)
        if a.dtype.kind != "f":     # np.issubdtype's answer at a tenth of its cost (~1 us a check)
            raise TypeError(f"{type(self).__name__}: {name} must be a floating-point array, got dtype {a.dtype}")
        return a

    def _time_major(self, name, a, feature_size):
        a = self._as_float(name, a)
        layout = "[B, T, features]" if self.batch_first else "[T, B, features]"
        if a.ndim != 3:
            raise ValueError(f"{type(self).__name__}: {name} must be 3-D {layout}, got shape {a.shape}")
        if a.shape[2] != feature_size:
            raise ValueError(f"{type(self).__name__}: {name} must have {feature_size} features in its last "
                             f"dimension, got shape {a.shape}")
        if 0 in a.shape:
            raise ValueError(f"{type(self).__name__}: {name} must have T >= 1 and B >= 1, got shape {a.shape}")
        # a copy: forward keeps it for backward, the caller may reuse theirs
        return self._xp.copy(a, self.dtype, swap01=self.batch_first)

    def _state(self, name, a, shape, layout="[num_layers * num_directions, B, size]"):
        if a is None:
            return self._xp.zeros(shape, self.dtype)
        a = self._as_float(name, a)
        if a.shape != shape:
            raise ValueError(f"{type(self).__name__}: {name} must have shape {shape} {layout}, got {a.shape}")
        return self._xp.copy(a, self.dtype)

    def _lengths(self, lengths, T, B):
        if lengths is None:
            return np.full(B, T, np.int64)
        a = self._xp.asarray(lengths)
        a = self._xp.to_host(a) if self._xp.is_device_array(a) else a   # B numbers, checked on the host
        if not np.issubdtype(a.dtype, np.integer):
            raise TypeError(f"{type(self).__name__}: lengths must be integers, got dtype {a.dtype}")
        if a.shape != (B,):
            raise ValueError(f"{type(self).__name__}: lengths must have shape ({B},) (one per sequence), got {a.shape}")
        if a.min() < 1 or a.max() > T:
            raise ValueError(f"{type(self).__name__}: lengths must be in 1..{T} (T), got min {a.min()}, max {a.max()}")
        return a.astype(np.int64)

    # -- forward and backward ------------------------------------------------------------------
    @limited
    def _forward(self, x, h0, c0, lengths):
        xp = self._xp
        to_host = not xp.is_device_array(x)
        x = self._time_major("x", x, self.input_size)
        T, B, _ = x.shape
        L, D, H, P = self.num_layers, self.num_directions, self.hidden_size, self.out_size
        lengths = self._lengths(lengths, T, B)
        ragged = bool((lengths < T).any())
        lengths = xp.from_host(lengths)
        h0 = self._state("h0", h0, (L * D, B, P))
        c0 = self._state("c0", c0, (L * D, B, H)) if self.cell == "LSTM" else None
        if not self.training and self.device == "cpu":
            out, h_n, c_n = inference.layer_forward(self, x, h0, c0, lengths)
            return out.transpose(1, 0, 2).copy() if self.batch_first else out, h_n, c_n
        h_n = xp.empty((L * D, B, P), self.dtype)
        c_n = xp.empty((L * D, B, H), self.dtype) if c0 is not None else None
        inputs, saved, masks = [], [], []
        layer_in = x
        for layer in range(L):
            ys = []
            for direction in range(D):
                idx = layer * D + direction
                hs, cs, keep = self._run_forward(idx, layer_in, h0[idx], None if c0 is None else c0[idx],
                                                 lengths, bool(direction))
                last = 0 if direction else T - 1
                xp.assign(h_n[idx], hs[last])
                if c_n is not None:
                    xp.assign(c_n[idx], cs[last])
                ys.append(hs)
                saved.append(keep)
            inputs.append(layer_in)
            y = xp.concat_features(ys)   # [T, B, D * P]
            if ragged:
                xp.zero_past_lengths(y, lengths)
            mask = None
            if layer < L - 1 and self.training and self.dropout > 0:
                # drawn on the host from the layer's generator, so every device gives the same masks
                keep_p = 1.0 - self.dropout
                if self.batch_share is None:
                    draw = self._dropout_rng.random(y.shape)
                else:   # data-parallel: the global batch's mask, this process's columns of it
                    global_B, columns = self.batch_share
                    draw = self._dropout_rng.random((y.shape[0], global_B, y.shape[2]))[:, columns]
                mask = xp.from_host((draw < keep_p).astype(self.dtype) / self.dtype(keep_p))
                xp.mul_(y, mask)
            masks.append(mask)
            layer_in = y
        self._cache = dict(inputs=inputs, saved=saved, masks=masks, h0=h0, c0=c0, lengths=lengths)
        out = xp.copy(layer_in, self.dtype, swap01=True) if self.batch_first else layer_in
        return self._deliver(to_host, out, h_n, c_n)

    def _deliver(self, to_host, *arrays):
        """Host input gets host arrays back (copied from a device); device input gets device arrays."""
        if not to_host:
            return arrays
        return tuple(None if a is None else self._xp.to_host(a) for a in arrays)

    @limited
    def _backward(self, dout, dh_n, dc_n):
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward() called before any forward()" +
                               ("" if self.training else ": in eval mode forward keeps nothing for backward; "
                                "call .train() before the forward"))
        cache = self._cache
        xp = self._xp
        L, D, H, P = self.num_layers, self.num_directions, self.hidden_size, self.out_size
        T, B, _ = cache["inputs"][0].shape
        to_host = not xp.is_device_array(dout)
        dy = self._time_major("dout", dout, D * P)
        if dy.shape[:2] != (T, B):
            raise ValueError(f"{type(self).__name__}: dout must match the last forward's output "
                             f"(T={T}, B={B}), got shape {np.shape(dout)}")
        dh_n = self._state("dh_n", dh_n, (L * D, B, P))
        dc_n = self._state("dc_n", dc_n, (L * D, B, H)) if self.cell == "LSTM" else None
        dh0 = xp.empty((L * D, B, P), self.dtype)
        dc0 = xp.empty((L * D, B, H), self.dtype) if dc_n is not None else None
        for layer in range(L - 1, -1, -1):
            x = cache["inputs"][layer]
            dx = None
            for direction in range(D):
                idx = layer * D + direction
                dhs = xp.take_features(dy, direction * P, P)
                dx_d = xp.empty(x.shape, self.dtype)
                self._run_backward(idx, dx_d, dh0[idx], None if dc0 is None else dc0[idx], dhs, dh_n[idx],
                                   None if dc_n is None else dc_n[idx], x, cache["h0"][idx],
                                   None if cache["c0"] is None else cache["c0"][idx],
                                   cache["saved"][idx], cache["lengths"], bool(direction))
                if dx is None:
                    dx = dx_d
                else:
                    xp.add_(dx, dx_d)
            if layer > 0 and cache["masks"][layer - 1] is not None:
                xp.mul_(dx, cache["masks"][layer - 1])
            dy = dx
        dx = xp.copy(dy, self.dtype, swap01=True) if self.batch_first else dy
        return self._deliver(to_host, dx, dh0, dc0)


@register
class RNN(Recurrent):
    """Elman RNN, torch.nn.RNN. out, h_n = rnn(x, h0=None, lengths=None); dx, dh0 = rnn.backward(dout, dh_n=None)"""
    cell = "RNN"

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, device="cpu", dtype=np.float32,
                 seed=None, proj_size=0):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, nonlinearity, device, dtype, seed)

    def __call__(self, x, h0=None, lengths=None):
        out, h_n, _ = self._forward(x, h0, None, lengths)
        return out, h_n

    def backward(self, dout, dh_n=None):
        dx, dh0, _ = self._backward(dout, dh_n, None)
        return dx, dh0

    def _run_forward(self, idx, x, h0, c0, lengths, reverse):
        w_ih, w_hh, b_ih, b_hh, _, _ = self._tensors(self.params, idx)
        hs = self._xp.empty((x.shape[0], x.shape[1], self.hidden_size), self.dtype)
        self._kernels.rnn_forward(hs, x, h0, w_ih, w_hh, b_ih, b_hh, self._act, lengths, reverse)
        return hs, None, hs

    def _run_backward(self, idx, dx, dh0, dc0, dhs, dhn, dcn, x, h0, c0, hs, lengths, reverse):
        w_ih, w_hh, _, _, _, _ = self._tensors(self.params, idx)
        dw_ih, dw_hh, db_ih, db_hh, _, _ = self._tensors(self.grads, idx)
        self._kernels.rnn_backward(dx, dh0, dw_ih, dw_hh, db_ih, db_hh, dhs, dhn, x, h0, w_ih, w_hh, hs,
                                   self._act, lengths, reverse)


@register
class GRU(Recurrent):
    """GRU, torch.nn.GRU. out, h_n = gru(x, h0=None, lengths=None); dx, dh0 = gru.backward(dout, dh_n=None)"""
    cell = "GRU"

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, device="cpu", dtype=np.float32, seed=None, proj_size=0):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, "tanh", device, dtype, seed)

    __call__ = RNN.__call__
    backward = RNN.backward

    def _run_forward(self, idx, x, h0, c0, lengths, reverse):
        w_ih, w_hh, b_ih, b_hh, _, _ = self._tensors(self.params, idx)
        T, B, H = x.shape[0], x.shape[1], self.hidden_size
        hs = self._xp.empty((T, B, H), self.dtype)
        acts = self._xp.empty((T, B, 3 * H), self.dtype)
        hn_pre = self._xp.empty((T, B, H), self.dtype)
        self._kernels.gru_forward(hs, acts, hn_pre, x, h0, w_ih, w_hh, b_ih, b_hh, lengths, reverse)
        return hs, None, (hs, acts, hn_pre)

    def _run_backward(self, idx, dx, dh0, dc0, dhs, dhn, dcn, x, h0, c0, saved, lengths, reverse):
        w_ih, w_hh, _, _, _, _ = self._tensors(self.params, idx)
        dw_ih, dw_hh, db_ih, db_hh, _, _ = self._tensors(self.grads, idx)
        hs, acts, hn_pre = saved
        self._kernels.gru_backward(dx, dh0, dw_ih, dw_hh, db_ih, db_hh, dhs, dhn, x, h0, w_ih, w_hh,
                                   hs, acts, hn_pre, lengths, reverse)


@register
class LSTM(Recurrent):
    """LSTM, torch.nn.LSTM. out, (h_n, c_n) = lstm(x, state=None, lengths=None);
    dx, (dh0, dc0) = lstm.backward(dout, dstate=None)"""
    cell = "LSTM"

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, device="cpu", dtype=np.float32, seed=None,
                 peephole=False, coupled=False):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, "tanh", device, dtype, seed, peephole, coupled)

    def __call__(self, x, state=None, lengths=None):
        h0, c0 = (None, None) if state is None else self._pair("state", state)
        out, h_n, c_n = self._forward(x, h0, c0, lengths)
        return out, (h_n, c_n)

    def backward(self, dout, dstate=None):
        dh_n, dc_n = (None, None) if dstate is None else self._pair("dstate", dstate)
        dx, dh0, dc0 = self._backward(dout, dh_n, dc_n)
        return dx, (dh0, dc0)

    def _pair(self, name, value):
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            raise TypeError(f"{type(self).__name__}: {name} must be a pair (h, c) or None, got {type(value).__name__}")
        return value

    def _run_forward(self, idx, x, h0, c0, lengths, reverse):
        w_ih, w_hh, b_ih, b_hh, w_hr, w_peep = self._tensors(self.params, idx)
        T, B, H = x.shape[0], x.shape[1], self.hidden_size
        hs = self._xp.empty((T, B, self.out_size), self.dtype)
        cs = self._xp.empty((T, B, H), self.dtype)
        acts = self._xp.empty((T, B, w_ih.shape[0]), self.dtype)
        self._kernels.lstm_forward(hs, cs, acts, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, w_peep, lengths,
                                   reverse, self.coupled)
        return hs, cs, (hs, cs, acts)

    def _run_backward(self, idx, dx, dh0, dc0, dhs, dhn, dcn, x, h0, c0, saved, lengths, reverse):
        w_ih, w_hh, _, _, w_hr, w_peep = self._tensors(self.params, idx)
        dw_ih, dw_hh, db_ih, db_hh, dw_hr, dw_peep = self._tensors(self.grads, idx)
        hs, cs, acts = saved
        self._kernels.lstm_backward(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dw_hr, dw_peep, dhs, dhn, dcn,
                                    x, h0, c0, w_ih, w_hh, w_hr, w_peep, hs, cs, acts, lengths, reverse,
                                    self.coupled)
