"""LanguageModel: Embedding -> RNN/LSTM/GRU -> Linear head over a vocabulary; no autograd.

A composite block: its three blocks keep their own flat buffers, and `blocks` lists them for the
optimiser and clipping. params/grads/state_dict use the dotted names PyTorch gives a module with
submodules `embedding`, `rnn`, `head`, so the weights file rebuilds in PyTorch from its config.
On device="cuda" all three blocks live on the GPU: NumPy tokens give NumPy logits, device tokens
(what the trainer passes) keep everything, logits included, on the device.
A model trained by `numrnn train` carries its vocabulary (metadata["vocabulary"], a JSON list of
characters, index = token id): encode, decode and generate use it.
"""
import json

import numpy as np

from numrnn import inference
from numrnn.blas import limited
from numrnn.device import backend
from numrnn.data import Vocabulary
from numrnn.embedding import Embedding
from numrnn.generate import DEFAULT_TEMPERATURE, sample
from numrnn.linear import Linear
from numrnn.module import check_device, check_dtype, check_positive_int
from numrnn.recurrent import GRU, LSTM, RNN
from numrnn.serialize import register

CELLS = {"lstm": LSTM, "gru": GRU, "rnn": RNN}


@register
class LanguageModel:
    """logits, state = lm(tokens [T, B] ints, state=None) -> logits [T, B, vocab_size];
    lm.backward(dlogits) adds into every block's grads. `state` is the RNN's (h for RNN/GRU,
    (h, c) for LSTM); pass it back in to carry it across batches (it is not differentiated
    through: truncated BPTT)."""

    def __init__(self, vocab_size, embedding_dim, cell="lstm", hidden_size=256, num_layers=1,
                 dropout=0.0, proj_size=0, device="cpu", dtype=np.float32, seed=None):
        self._build(vocab_size, embedding_dim, cell, hidden_size, proj_size, vocab_size, device, dtype, seed,
                    num_layers=num_layers, dropout=dropout)

    def _build(self, vocab_size, embedding_dim, cell, hidden_size, proj_size, out_size, device, dtype, seed,
               **rnn_args):
        """The three blocks and the dotted views over their buffers, here and in Tagger: an embedding
        of vocab_size ids, the RNN (rnn_args: num_layers, dropout, bidirectional), and a head from the
        RNN's output (each direction's) to out_size scores."""
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}, got {cell!r}")
        self.vocab_size = check_positive_int("vocab_size", vocab_size)
        self.embedding_dim = check_positive_int("embedding_dim", embedding_dim)
        self.cell = cell
        self.device = check_device(device)
        self._xp = backend(self.device)
        self.dtype = check_dtype(dtype)
        self.seed = seed
        # one seed each, derived from `seed`, so the three blocks do not draw the same numbers
        emb_seed, rnn_seed, head_seed = (int(s) for s in np.random.SeedSequence(seed).generate_state(3))
        self.embedding = Embedding(vocab_size, embedding_dim, device=device, dtype=dtype, seed=emb_seed)
        if proj_size:
            rnn_args["proj_size"] = proj_size
        self.rnn = CELLS[cell](embedding_dim, hidden_size, device=device, dtype=dtype, seed=rnn_seed, **rnn_args)
        self.head = Linear(self.rnn.num_directions * self.rnn.out_size, out_size, device=device, dtype=dtype,
                           seed=head_seed)
        self.metadata = {}
        self.params, self.grads = {}, {}
        for prefix, block in self.named_blocks():
            self.params.update({f"{prefix}.{k}": v for k, v in block.params.items()})
            self.grads.update({f"{prefix}.{k}": v for k, v in block.grads.items()})

    def named_blocks(self):
        return [("embedding", self.embedding), ("rnn", self.rnn), ("head", self.head)]

    @property
    def blocks(self):
        return [self.embedding, self.rnn, self.head]

    @property
    def hidden_size(self):
        return self.rnn.hidden_size

    @property
    def num_layers(self):
        return self.rnn.num_layers

    @property
    def dropout(self):
        return self.rnn.dropout

    @property
    def proj_size(self):
        return self.rnn.proj_size

    @property
    def training(self):
        return self.rnn.training

    @staticmethod
    def param_shapes(vocab_size, embedding_dim, cell="lstm", hidden_size=256, num_layers=1, proj_size=0, **_):
        """(name, shape) of each parameter a configuration (config(), or a file's) describes: the
        three blocks' own, with their prefixes; computed lazily, nothing allocated."""
        return LanguageModel._shapes(vocab_size, embedding_dim, cell, hidden_size, num_layers, proj_size, vocab_size)

    @staticmethod
    def _shapes(vocab_size, embedding_dim, cell, hidden_size, num_layers, proj_size, out_size, bidirectional=False):
        """param_shapes of the blocks _build makes, here and in Tagger."""
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}, got {cell!r}")
        directions = 2 if bidirectional else 1
        blocks = (("embedding", Embedding.param_shapes(vocab_size, embedding_dim)),
                  ("rnn", CELLS[cell].param_shapes(embedding_dim, hidden_size, num_layers,
                                                   bidirectional=bidirectional, proj_size=proj_size)),
                  ("head", Linear.param_shapes(directions * (proj_size or hidden_size), out_size)))
        for prefix, shapes in blocks:
            for name, shape in shapes:
                yield f"{prefix}.{name}", shape

    def config(self):
        return dict(vocab_size=self.vocab_size, embedding_dim=self.embedding_dim, cell=self.cell,
                    hidden_size=self.hidden_size, num_layers=self.num_layers, dropout=self.dropout,
                    proj_size=self.proj_size, dtype=np.dtype(self.dtype).name)

    def __repr__(self):
        return "numrnn.LanguageModel(" + ", ".join(f"{k}={v!r}" for k, v in self.config().items()) + ")"

    def num_parameters(self):
        return sum(b.num_parameters() for b in self.blocks)

    def train(self, mode=True):
        for b in self.blocks:
            b.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self):
        for b in self.blocks:
            b.zero_grad()

    def state_dict(self):
        return {f"{prefix}.{k}": v for prefix, block in self.named_blocks() for k, v in block.state_dict().items()}

    def load_state_dict(self, state, strict=True):
        """Dotted names (embedding.weight, rnn.weight_ih_l0, head.bias, ...). A failed load
        changes nothing."""
        parts = {prefix: {} for prefix, _ in self.named_blocks()}
        unexpected = []
        for k, v in state.items():
            prefix, _, name = k.partition(".")
            if prefix in parts and name:
                parts[prefix][name] = v
            else:
                unexpected.append(k)
        if strict and unexpected:
            raise ValueError("load_state_dict into LanguageModel: unexpected: " + ", ".join(unexpected))
        before = [np.array(b._xp.to_host(b.flat_params)) for b in self.blocks]
        try:
            for prefix, block in self.named_blocks():
                try:
                    block.load_state_dict(parts[prefix], strict=strict)
                except ValueError as e:
                    raise ValueError(f"load_state_dict into LanguageModel.{prefix}: {e}") from None
        except ValueError:
            for b, p in zip(self.blocks, before):
                b._xp.assign(b.flat_params, p)
            raise

    def __call__(self, tokens, state=None):
        xp = self._xp
        tokens = xp.asarray(tokens)
        if tokens.ndim != 2:
            raise ValueError(f"LanguageModel: tokens must be 2-D [T, B], got shape {tokens.shape}")
        to_host = not xp.is_device_array(tokens)
        if to_host and self.device == "cuda":   # checked on the host, then everything stays on the device
            self.embedding.check_ids(tokens)
            tokens = xp.from_host(tokens)
        if not self.training and self.device == "cpu":
            return self._infer(tokens, state)
        x = self.embedding(tokens)          # [T, B, E]
        out, state = self.rnn(x, state)     # [T, B, P]
        logits = self.head(out)             # [T, B, V]
        if to_host:
            logits = xp.to_host(logits)
            state = tuple(xp.to_host(s) for s in state) if isinstance(state, tuple) else xp.to_host(state)
        return logits, state

    @limited
    def _infer(self, tokens, state):
        """Eval mode on the CPU: the whole model in one compiled call (numrnn.inference)."""
        if not np.issubdtype(tokens.dtype, np.integer):
            raise TypeError(f"Embedding: ids must be integers, got dtype {tokens.dtype}")
        self.embedding.check_ids(tokens)
        rnn = self.rnn
        T, B = tokens.shape
        if rnn.cell == "LSTM":
            h0, c0 = (None, None) if state is None else rnn._pair("state", state)
        else:
            h0, c0 = state, None
        if T == 0 or B == 0:
            raise ValueError(f"LanguageModel: tokens must have T >= 1 and B >= 1, got shape {tokens.shape}")
        h0 = rnn._state("h0", h0, (rnn.num_layers, B, rnn.out_size))
        c0 = rnn._state("c0", c0, (rnn.num_layers, B, rnn.hidden_size)) if rnn.cell == "LSTM" else None
        logits = inference.lm_forward(self, tokens, h0, c0)
        return logits, (h0, c0) if c0 is not None else h0

    @property
    def vocabulary(self):
        """The saved vocabulary (numrnn.data.Vocabulary: .chars, index = token id). ValueError when
        the model has none or it does not fit vocab_size."""
        text = self.metadata.get("vocabulary")
        if text is None:
            raise ValueError("this LanguageModel has no vocabulary (models trained by `numrnn train` have one); "
                             "set lm.metadata['vocabulary'] = json.dumps(chars), chars[i] being token i")
        try:
            chars = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"the LanguageModel's vocabulary metadata is damaged ({e})") from None
        if not isinstance(chars, list) or len(chars) != self.vocab_size or not all(isinstance(c, str) for c in chars):
            raise ValueError(f"the LanguageModel's vocabulary metadata is not a list of {self.vocab_size} strings")
        return Vocabulary(chars)

    def encode(self, text):
        """Text -> token ids [len(text)] (int64). ValueError naming the characters the vocabulary lacks.

        >>> lm = numrnn.load("model.safetensors")      # from `numrnn train --steps 500`
        >>> lm.encode("def ")
        array([69, 70, 71,  1])"""
        return self.vocabulary.encode(text)

    def decode(self, ids):
        """Token ids -> text; ValueError for an id outside 0..vocab_size-1.

        >>> lm.decode([69, 70, 71, 1])
        'def '"""
        ids = np.asarray(ids)
        if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
            raise ValueError(f"decode: ids must be a 1-D sequence of integers, got shape {ids.shape}, dtype {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"decode: token ids must be in 0..{self.vocab_size - 1}, got min {ids.min()}, max {ids.max()}")
        return self.vocabulary.decode(ids.tolist())

    def generate(self, prompt, length, temperature=DEFAULT_TEMPERATURE, top_k=0, top_p=1.0, seed=None):
        """The `length` characters the model writes after `prompt` (returned without the prompt).
        temperature 0 is greedy (argmax at every step); otherwise the next character is drawn from
        softmax(logits / temperature), restricted to the top_k likeliest (0 = all) and then to the
        nucleus: the smallest set of likeliest characters whose probability adds up to >= top_p
        (1 = all). The same seed gives the same text. Puts the model in eval mode (no dropout).
        `numrnn generate` runs the same sampler (numrnn.generate.sample).

        >>> lm = numrnn.load("model.safetensors")      # from `numrnn train --steps 500`
        >>> lm.generate("import ", 40, temperature=0)
        'in the string the string the string the '
        >>> lm.generate("def ", 40, top_p=0.9, seed=1)
        'node = debug(self, exception(self, ther)'"""
        return "".join(sample(self, self.vocabulary, prompt, length, temperature, top_k, top_p, seed))

    def backward(self, dlogits):
        """dlogits [T, B, V]: backward through head, rnn and embedding, in reverse order."""
        dout = self.head.backward(dlogits)
        dx, _ = self.rnn.backward(dout)
        self.embedding.backward(dx)
