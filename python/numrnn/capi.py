"""The Python half of libnumrnn.so: what runs behind capi/numrnn.h (the C half is capi/numrnn.c).

capi/init.py calls bind(ffi, lib) once inside the embedded interpreter. The C half has already
checked every pointer and sign; this half checks what needs the model (sizes, states, token ids),
runs it, and maps exceptions to NUMRNN_E_* codes with a message. Caller memory is reached through
numpy views of it: x and tokens are read in place, and the outputs are copied once, into y, after
every check has passed. Not for use from Python programs: they call the blocks directly.
A float32 model on "cpu" is run by the C half itself (compiled_path): before the model's first
forward call this half hands it the model's description, its weights and the compiled entry
points' addresses, and keeps them alive with the Model; forward() here then serves only float64
and "cuda" models.
"""
import json
import math
import threading
import warnings

import numpy as np

import numrnn
from numrnn.blas import blas_pools
from numrnn.module import DEVICES
from numrnn import inference
from numrnn.engine.matvec import SMALL_ROWS
from numrnn.engine.threads import MAX_PARTS
from numrnn.cells import Cell
from numrnn.recurrent import GRU, LSTM, RNN, Recurrent
from numrnn.serialize import WeightsFileError, load


LAYERS = {"RNN": RNN, "LSTM": LSTM, "GRU": GRU}
F32, I32 = np.dtype(np.float32), np.dtype(np.int32)   # the C types of x and y, and of tokens


class ArgError(ValueError):
    """The call's arguments do not fit the model: NUMRNN_E_ARG."""


class DeviceError(RuntimeError):
    """NUMRNN_E_DEVICE."""


def vocabulary(model):
    """A LanguageModel's or Tagger's token texts, index = token id, from the "vocabulary" metadata
    (a JSON list of strings, checked when the file was read: file_check.check_vocabulary); None
    when the file has none."""
    text = model.metadata.get("vocabulary")
    return None if text is None else json.loads(text)


def as_layer(block):
    """A cell file runs as the one-layer layer it is a step of (the same weights, named with _l0):
    the C interface then takes whole sequences and carries state as for a layer, and no cell tape
    grows with every call."""
    if not isinstance(block, Cell):
        return block
    layer = LAYERS[block.cell](**block.config())
    layer.load_state_dict({name + "_l0": value for name, value in block.state_dict().items()})
    return layer


class Model:
    """An open model file as the C interface sees it: the block, its sizes, and a lock, because
    blocks keep what backward needs on themselves during a forward, so two threads must not run
    the same block at once."""

    def __init__(self, block):
        self.block = block.eval()
        self.lock = threading.Lock()
        token_models = tuple(getattr(numrnn, name) for name in ("LanguageModel", "Tagger") if hasattr(numrnn, name))
        if isinstance(block, token_models):
            rnn = block.rnn
            self.tokens, self.vocab = True, vocabulary(block)
            # a Tagger's head scores labels: O = num_labels, V = its words
            self.input_size, self.output_size, self.vocab_size = 0, block.head.out_features, block.vocab_size
            self.batch_first = False
        elif isinstance(block, Recurrent):
            block = self.block = as_layer(block).eval()
            rnn = block
            self.tokens, self.vocab = False, None
            self.input_size, self.vocab_size = block.input_size, 0
            self.output_size = block.num_directions * block.out_size
            self.batch_first = block.batch_first
        else:
            raise WeightsFileError(f"the file holds a {type(block).__name__}; the C interface runs "
                                   f"RNN, LSTM and GRU layers and cells, LanguageModels and Taggers")
        self.bidirectional = rnn.bidirectional


def compiled_path(model):
    """(meta, weights, engine.infer_c) for the C half's compiled path, or None when the model runs
    through Python (float64, "cuda", a Tagger: the compiled entry points know a LanguageModel's
    one-direction head only). weights: the layer's flat buffer, then for a LanguageModel
    the embedding, head weight and head bias, then the transposed weights (and the head's), at
    the offsets meta records. Runs the block once on
    one step: the first matrix product in compiled code looks up SciPy's BLAS, taking the GIL to
    do so, and that happens here rather than on a host thread's first call.
    It also sets this process's BLAS to one thread, as the CLI does: a host runs its calls in
    parallel on states, and a threaded BLAS's spinning helpers slow small-batch calls (measured:
    LSTM T=100 B=1 H=128, median 1.6 ms with one thread against 4.2 ms with two)."""
    rnn = model.block.rnn if model.tokens else model.block
    if rnn.device != "cpu" or rnn.dtype != np.float32 or (model.tokens and not isinstance(model.block, numrnn.LanguageModel)):
        return None
    from numrnn.engine import infer_c
    blas_pools().limit(limits=1)     # for the process, not a block: kept after this call returns
    if model.tokens:
        lm = model.block
        parts = [rnn.flat_params, lm.embedding.params["weight"], lm.head.params["weight"], lm.head.params["bias"]]
        starts = np.cumsum([0] + [p.size for p in parts])
        meta = inference.describe(rnn, lm.vocab_size, lm.embedding_dim, tuple(int(v) for v in starts[1:4]))
        parts += [inference.transposed(rnn, meta), lm.head.params["weight"].T]
        model.block(np.zeros((1, 1), np.int64))
    else:
        meta = inference.describe(rnn)
        parts = [rnn.flat_params, inference.transposed(rnn, meta)]
        model.block(np.zeros((1, 1, rnn.input_size), np.float32))
    weights = np.concatenate([p.ravel() for p in parts])
    return meta, weights, infer_c


class State:
    """The state carried between calls: None (zeros) until the first call, then whatever the
    block returned as its final state. team and split: its threads, when it has more than one."""

    def __init__(self, model, batch):
        self.model, self.batch, self.value = model, batch, None
        self.team = self.split = self.kept = None


def state_split(state, threads):
    """Give the state `threads` threads for its compiled calls (numrnn_state_set_threads):
    starts its team of helper threads and returns the SP_* description the C half passes to
    engine/infer_c.c_forward_split (kept by the state), or None for one thread."""
    if isinstance(threads, bool) or not 1 <= threads <= MAX_PARTS:
        raise ArgError(f"threads must be in 1..{MAX_PARTS}, got {threads}")
    model = state.model
    if threads > 1 and (model.tokens or model.block.device != "cpu" or model.block.dtype != np.float32):
        raise ArgError("threads > 1 are for float32 RNN, LSTM and GRU layers on \"cpu\" (the compiled path); "
                       "this model " + ("takes token ids" if model.tokens else "runs through Python"))
    if threads > 1 and not inference.can_split(model.block, state.batch, threads):
        raise ArgError(f"threads > 1 need a batch of at most {SMALL_ROWS}, no proj_size and a hidden size "
                       f">= threads; this state has batch {state.batch}, proj_size {model.block.proj_size}, "
                       f"hidden size {model.block.hidden_size}")
    # every check has passed: only now is the state's current team let go
    if state.team is not None:
        state.team.stop()
        state.team = state.split = None
    if threads == 1:
        return None
    from numrnn.engine import infer_c
    block = model.block
    meta = inference.describe(block)
    flat_s, meta_s = inference.split(block, meta, threads)
    team = inference.Team(threads, np.float32)
    if not team.ok:
        raise RuntimeError(f"the system would not start {threads - 1} more threads")
    split = np.zeros(infer_c.SPLIT_FIELDS, np.int64)
    split[infer_c.SP_FORWARD] = infer_c.entry(infer_c.c_forward_split).address
    split[infer_c.SP_SIZE] = infer_c.entry(infer_c.c_split_workspace_size).address
    split[infer_c.SP_TEAM], split[infer_c.SP_ARGS] = team.team.ctypes.data, team.args.ctypes.data
    split[infer_c.SP_FLATS], split[infer_c.SP_METAS] = flat_s.ctypes.data, meta_s.ctypes.data
    split[infer_c.SP_NFLATS], split[infer_c.SP_NPARTS] = flat_s.size, threads
    state.team, state.split, state.kept = team, split, (flat_s, meta_s)
    return split


def open_model(path, device):
    if device not in DEVICES:
        raise DeviceError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda":
        from numba import cuda
        if not cuda.is_available():
            raise DeviceError("device 'cuda': no usable CUDA GPU in this process; use 'cpu'")
    try:
        with warnings.catch_warnings():   # a library does not print on its host's stderr
            warnings.simplefilter("ignore")
            return Model(load(path, device=device))
    except RuntimeError as e:
        if device == "cuda":
            raise DeviceError(f"device 'cuda': {e}") from None
        raise


def run(model, state, inputs, y_len):
    """Check a call against the model and run it. inputs: [T, B, I] float32 features or [T, B]
    int32 token ids (views of the caller's memory). Returns the outputs [T, B, O]; the caller
    writes them out, then stores `final` in the state, so a failed call changes nothing."""
    T, B = inputs.shape[:2]
    if model.tokens != (inputs.ndim == 2):
        raise ArgError(f"this model is a {type(model.block).__name__}: it takes token ids, call numrnn_forward_tokens"
                       if model.tokens else
                       "this model is a layer: it takes features, call numrnn_forward")
    need = T * B * model.output_size
    if y_len < need:
        raise ArgError(f"y_len is {y_len} floats, the output needs seq_len * batch * output_size = "
                       f"{T} * {B} * {model.output_size} = {need}")
    if state is not None:
        if state.model is not model:
            raise ArgError("the state was made for another model")
        if state.batch != B:
            raise ArgError(f"the state was made for batch {state.batch}, the call has batch {B}")
    if model.tokens:
        if inputs.min() < 0 or inputs.max() >= model.vocab_size:
            t, b = np.argwhere((inputs < 0) | (inputs >= model.vocab_size))[0]
            raise ArgError(f"token ids must be in 0..{model.vocab_size - 1} (the vocabulary), got "
                           f"{inputs[t, b]} at tokens[{t}][{b}]")
    value = None if state is None else state.value
    if model.batch_first:
        inputs = inputs.transpose(1, 0, 2)
    with model.lock:
        out, final = model.block(inputs, value)
    if model.batch_first:
        out = out.transpose(1, 0, 2)
    return out, final


def bind(ffi, lib):
    """Define the `extern "Python"` functions that capi/numrnn.c calls."""
    codes = ((ArgError, lib.NUMRNN_E_ARG), (DeviceError, lib.NUMRNN_E_DEVICE),
             (WeightsFileError, lib.NUMRNN_E_FORMAT), (OSError, lib.NUMRNN_E_IO))
    live = {}   # the handles given to C, kept alive until closed/freed

    def extern(fn):
        """Register fn as numrnn_py_<name>; an exception becomes a code and a message."""
        public = "numrnn_" + fn.__name__

        def call(*args):
            try:
                return fn(*args)
            except Exception as e:
                code = next((c for cls, c in codes if isinstance(e, cls)), lib.NUMRNN_E_RUNTIME)
                what = str(e) if code != lib.NUMRNN_E_RUNTIME else f"unexpected {type(e).__name__}: {e}"
                lib.numrnn_set_error_(f"{public}: {what}".encode("utf-8", "replace"))
                return code
        def escaped(kind, value, trace):
            """What `call` does not catch (SystemExit, KeyboardInterrupt): cffi returns `error`."""
            lib.numrnn_set_error_(f"{public}: interrupted by {kind.__name__}: {value}".encode("utf-8", "replace"))

        ffi.def_extern(name="numrnn_py_" + fn.__name__, error=lib.NUMRNN_E_RUNTIME, onerror=escaped)(call)

    def keep(obj, out):
        handle = ffi.new_handle(obj)
        live[handle] = obj
        out[0] = handle
        obj.handle = handle
        return lib.NUMRNN_OK

    def release(handle):
        live.pop(ffi.from_handle(handle).handle, None)
        return lib.NUMRNN_OK

    def view(ptr, dtype, shape):
        # math.prod, not np.prod: this runs twice per call and np.prod costs ~5 us on a tuple
        return np.frombuffer(ffi.buffer(ptr, math.prod(shape) * dtype.itemsize), dtype).reshape(shape)

    @extern
    def model_open(path, device, out, info):
        path = ffi.string(path).decode("utf-8", "surrogateescape")
        model = open_model(path, ffi.string(device).decode("utf-8", "replace"))
        rnn = model.block.rnn if model.tokens else model.block
        LD = rnn.num_layers * rnn.num_directions
        info.input_size, info.output_size, info.vocab_size = model.input_size, model.output_size, model.vocab_size
        info.h_size, info.c_size = LD * rnn.out_size, LD * rnn.hidden_size if rnn.cell == "LSTM" else 0
        return keep(model, out)

    @extern
    def model_compiled(handle, info):
        """Asked by the C half before a model's first forward call."""
        model = ffi.from_handle(handle)
        model.compiled = compiled_path(model)
        if model.compiled is not None:
            meta, weights, entries = model.compiled
            info.meta = ffi.cast("const int64_t *", meta.ctypes.data)
            info.weights = ffi.cast("const float *", weights.ctypes.data)
            run = entries.c_forward_tokens if model.tokens else entries.c_forward
            setattr(info, "forward_tokens" if model.tokens else "forward",
                    ffi.cast("void *", entries.entry(run).address))
            info.workspace_size = ffi.cast("void *", entries.entry(entries.c_workspace_size).address)
        return lib.NUMRNN_OK

    @extern
    def model_close(handle):
        return release(handle)

    @extern
    def model_sizes(handle, input_size, output_size, vocab_size):
        model = ffi.from_handle(handle)
        for ptr, value in ((input_size, model.input_size), (output_size, model.output_size),
                           (vocab_size, model.vocab_size)):
            if ptr != ffi.NULL:
                ptr[0] = value
        return lib.NUMRNN_OK

    @extern
    def state_new(handle, batch, out):
        model = ffi.from_handle(handle)
        if model.bidirectional:
            raise ArgError("a bidirectional model cannot stream (its reverse direction needs the whole "
                           "sequence): call numrnn_forward with state NULL")
        return keep(State(model, batch), out)

    @extern
    def state_free(handle):
        state = ffi.from_handle(handle)
        if state.team is not None:      # its threads end now, not when the collector finds the state
            state.team.stop()
        return release(handle)

    @extern
    def state_set_threads(handle, threads, out):
        """numrnn_state_set_threads: out[0] = the state's split description (engine/infer_c.py's
        SP_* fields), or NULL for one thread, written whether or not the change succeeded."""
        state = ffi.from_handle(handle)
        try:
            state_split(state, threads)
        finally:   # what the state holds now, also after a failure (refused: unchanged; no threads: one)
            out[0] = ffi.NULL if state.split is None else ffi.cast("const int64_t *", state.split.ctypes.data)
        return lib.NUMRNN_OK

    def forward_into(handle, state, inputs, dtype, seq_len, batch, y, y_len):
        """inputs: x (float32, [T, B, I]) or tokens (int32, [T, B])."""
        model = ffi.from_handle(handle)
        state = None if state == ffi.NULL else ffi.from_handle(state)
        shape = (seq_len, batch, model.input_size) if dtype == F32 else (seq_len, batch)
        out, final = run(model, state, view(inputs, dtype, shape), y_len)
        view(y, F32, out.shape)[...] = out
        if state is not None:
            state.value = final
        return lib.NUMRNN_OK

    @extern
    def forward(handle, state, x, seq_len, batch, y, y_len):
        return forward_into(handle, state, x, F32, seq_len, batch, y, y_len)

    @extern
    def forward_tokens(handle, state, tokens, seq_len, batch, y, y_len):
        return forward_into(handle, state, tokens, I32, seq_len, batch, y, y_len)

    @extern
    def token_text(handle, token, text, text_len):
        model = ffi.from_handle(handle)
        if not model.tokens:
            raise ArgError("this model is a layer: it has no vocabulary")
        if model.vocab is None:
            raise ArgError("this LanguageModel's file has no vocabulary (the \"vocabulary\" metadata "
                           "that numrnn train saves), so its tokens have no text")
        if not 0 <= token < model.vocab_size:
            raise ArgError(f"token must be in 0..{model.vocab_size - 1}, got {token}")
        data = model.vocab[token].encode("utf-8")
        if len(data) + 1 > text_len:
            raise ArgError(f"text_len is {text_len} bytes, token {token} needs {len(data) + 1}")
        ffi.memmove(text, data + b"\0", len(data) + 1)
        return lib.NUMRNN_OK
