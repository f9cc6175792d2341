"""Single-step cells: RNNCell, LSTMCell, GRUCell (torch.nn.*Cell), with backward on a tape.

A cell step is a one-step sequence through a one-layer, one-direction layer, so the cells run
the layers' engine calls with T = 1 and have no math of their own. Each call pushes what its
backward needs onto the cell's tape; backward() pops the most recent step. A Python loop of T
calls followed by T backward calls (each fed that step's dh plus the dh the later step returned)
is BPTT, the min-char-rnn loop without autograd; gradients accumulate into cell.grads.
Parameter names are PyTorch's cell names: weight_ih, weight_hh, bias_ih, bias_hh (and, for the
LSTM variants, weight_ci, weight_cf, weight_co).
"""
import numpy as np

from numrnn import inference
from numrnn.blas import limited
from numrnn.engine.gates import direction_param_shapes
from numrnn.recurrent import GRU, LSTM, RNN, Recurrent
from numrnn.serialize import register


class Cell(Recurrent):
    """Shared by the three cells. Subclasses take _run_forward/_run_backward from their layer.
    On device="cuda" the tape holds device arrays; a step given host arrays returns host arrays
    (and so does its backward), one given device arrays returns device arrays."""

    def __init__(self, input_size, hidden_size, bias, nonlinearity, device, dtype, seed,
                 peephole=False, coupled=False):
        super().__init__(input_size, hidden_size, 1, bias, False, 0.0, False, 0, nonlinearity,
                         device, dtype, seed, peephole, coupled)
        self._tape = []

    def _suffixes(self):
        return [""]

    @classmethod
    def param_shapes(cls, input_size, hidden_size, bias=True, peephole=False, coupled=False, **_):
        """(name, shape) of each parameter of the cell a configuration describes (see Recurrent's)."""
        return direction_param_shapes(cls.cell, "", input_size, hidden_size, bias, 0, peephole, coupled)

    def config(self):
        cfg = dict(input_size=self.input_size, hidden_size=self.hidden_size, bias=self.bias,
                   dtype=np.dtype(self.dtype).name)
        if self.cell == "RNN":
            cfg["nonlinearity"] = self.nonlinearity
        cfg.update(self._variant_config())
        return cfg

    def reset(self):
        """Drop the tape: the steps taken so far can no longer be undone."""
        self._tape.clear()

    @limited
    def _step(self, x, h, c):
        """One step; returns (h, c) (c None for RNN/GRU)."""
        x = self._as_float("x", x)
        if x.ndim != 2 or x.shape[1] != self.input_size or x.shape[0] == 0:
            raise ValueError(f"{type(self).__name__}: x must be [B, {self.input_size}] (B >= 1), "
                             f"got shape {x.shape}")
        B, H = x.shape[0], self.hidden_size
        xp = self._xp
        to_host = not xp.is_device_array(x)
        # h, c and x are copies, so the caller editing its arrays in place cannot change the tape
        h = self._state("h", h, (B, H), "[B, hidden_size]")
        c = self._state("c", c, (B, H), "[B, hidden_size]") if self.cell == "LSTM" else None
        x = xp.copy(x, self.dtype).reshape(1, B, self.input_size)   # [1, B, I]
        if not self.training and self.device == "cpu":    # no tape: the inference path
            _, h, c = inference.layer_forward(self, x, h[None], None if c is None else c[None], np.ones(B, np.int64))
            return h[0], None if c is None else c[0]
        hs, cs, saved = self._run_forward(0, x, h, c, xp.from_host(np.ones(B, np.int64)), False)
        self._tape.append((x, h, c, saved, to_host))
        return self._deliver(to_host, xp.copy(hs[0], self.dtype), None if cs is None else xp.copy(cs[0], self.dtype))

    @limited
    def _unstep(self, dh, dc):
        """Backward through the most recent step not yet undone; returns (dx, dh, dc)."""
        name = type(self).__name__
        if not self._tape:
            raise RuntimeError(f"{name}.backward(): the tape is empty; every backward undoes one earlier "
                               f"call, and all were undone already (or reset() dropped them, or there "
                               f"were none, or they ran in eval mode, which keeps no tape)")
        x, h, c, saved, to_host = self._tape[-1]
        B, H = h.shape
        dh = self._state("dh", dh, (B, H), "[B, hidden_size] (the batch of the step being undone)")
        dc = self._state("dc", dc, (B, H), "[B, hidden_size] (the batch of the step being undone)") \
            if c is not None else None
        self._tape.pop()
        xp = self._xp
        dx = xp.empty(x.shape, self.dtype)
        dh0 = xp.empty(h.shape, self.dtype)
        dc0 = xp.empty(c.shape, self.dtype) if c is not None else None
        self._run_backward(0, dx, dh0, dc0, xp.zeros((1, B, H), self.dtype), dh, dc, x, h, c, saved,
                           xp.from_host(np.ones(B, np.int64)), False)
        return self._deliver(to_host, dx[0], dh0, dc0)


@register
class RNNCell(Cell):
    """Elman cell, torch.nn.RNNCell. h = cell(x, h=None); dx, dh = cell.backward(dh)
    x [B, I], h [B, H]; None means zeros (for dh: no gradient from above)."""
    cell = "RNN"

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device="cpu",
                 dtype=np.float32, seed=None):
        super().__init__(input_size, hidden_size, bias, nonlinearity, device, dtype, seed)

    def __call__(self, x, h=None):
        return self._step(x, h, None)[0]

    def backward(self, dh):
        dx, dh0, _ = self._unstep(dh, None)
        return dx, dh0

    _run_forward = RNN._run_forward
    _run_backward = RNN._run_backward


@register
class GRUCell(Cell):
    """GRU cell, torch.nn.GRUCell. h = cell(x, h=None); dx, dh = cell.backward(dh)"""
    cell = "GRU"

    def __init__(self, input_size, hidden_size, bias=True, device="cpu", dtype=np.float32, seed=None):
        super().__init__(input_size, hidden_size, bias, "tanh", device, dtype, seed)

    __call__ = RNNCell.__call__
    backward = RNNCell.backward
    _run_forward = GRU._run_forward
    _run_backward = GRU._run_backward


@register
class LSTMCell(Cell):
    """LSTM cell, torch.nn.LSTMCell, plus numrnn's variants (peephole, coupled; see numrnn.LSTM).
    h, c = cell(x, state=None); dx, (dh, dc) = cell.backward((dh, dc))"""
    cell = "LSTM"

    def __init__(self, input_size, hidden_size, bias=True, device="cpu", dtype=np.float32, seed=None,
                 peephole=False, coupled=False):
        super().__init__(input_size, hidden_size, bias, "tanh", device, dtype, seed, peephole, coupled)

    def __call__(self, x, state=None):
        h, c = (None, None) if state is None else self._pair("state", state)
        return self._step(x, h, c)

    def backward(self, dstate):
        dh, dc = (None, None) if dstate is None else self._pair("dstate", dstate)
        dx, dh0, dc0 = self._unstep(dh, dc)
        return dx, (dh0, dc0)

    _pair = LSTM._pair
    _run_forward = LSTM._run_forward
    _run_backward = LSTM._run_backward
