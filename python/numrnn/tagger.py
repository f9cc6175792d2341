"""Tagger: Embedding -> RNN/LSTM/GRU (bidirectional by default) -> Linear over the labels, one
label score vector per step; no autograd. Sequence labelling (entities, parts of speech, the
classes of a program's characters), where a bidirectional layer sees both sides of each token.

A composite block built like LanguageModel (same submodule names `embedding`, `rnn`, `head`, so
the weights file rebuilds in PyTorch) and borrowing its methods that only walk the three blocks
(as GRU borrows RNN's), but not a language model: its head reads every step of both directions,
and a batch of sentences of different lengths goes through `lengths`: the layer stops each
sequence at its length, and masked_cross_entropy (losses.py) gives its padded steps no loss and
no gradient.
Not here: reading CoNLL files and scoring (conll.py), the training loop (tag_trainer.py).
"""
import numpy as np

from numrnn.device import backend
from numrnn.embedding import Embedding
from numrnn.language_model import CELLS, LanguageModel
from numrnn.linear import Linear
from numrnn.module import check_device, check_dtype, check_positive_int
from numrnn.serialize import register


@register
class Tagger:
    """scores, state = tagger(tokens [T, B] ints, state=None, lengths=None) -> scores [T, B, num_labels];
    tagger.backward(dscores) adds into every block's grads. Steps past a sequence's length get the
    head's bias as scores (their RNN output is zero) and must be left out of the loss."""

    def __init__(self, vocab_size, num_labels, embedding_dim=32, cell="lstm", hidden_size=64, num_layers=1,
                 bidirectional=True, dropout=0.0, proj_size=0, device="cpu", dtype=np.float32, seed=None):
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}, got {cell!r}")
        self.vocab_size = check_positive_int("vocab_size", vocab_size)
        self.num_labels = check_positive_int("num_labels", num_labels)
        self.embedding_dim = check_positive_int("embedding_dim", embedding_dim)
        self.cell = cell
        self.device = check_device(device)
        self._xp = backend(self.device)
        self.dtype = check_dtype(dtype)
        self.seed = seed
        emb_seed, rnn_seed, head_seed = (int(s) for s in np.random.SeedSequence(seed).generate_state(3))
        self.embedding = Embedding(vocab_size, embedding_dim, device=device, dtype=dtype, seed=emb_seed)
        rnn_args = dict(num_layers=num_layers, dropout=dropout, bidirectional=bidirectional, device=device,
                        dtype=dtype, seed=rnn_seed)
        if proj_size:
            rnn_args["proj_size"] = proj_size
        self.rnn = CELLS[cell](embedding_dim, hidden_size, **rnn_args)
        self.head = Linear(self.rnn.num_directions * self.rnn.out_size, num_labels, device=device, dtype=dtype,
                           seed=head_seed)
        self.metadata = {}
        self.params, self.grads = {}, {}
        for prefix, block in self.named_blocks():
            self.params.update({f"{prefix}.{k}": v for k, v in block.params.items()})
            self.grads.update({f"{prefix}.{k}": v for k, v in block.grads.items()})

    named_blocks = LanguageModel.named_blocks
    blocks = LanguageModel.blocks
    hidden_size = LanguageModel.hidden_size
    num_layers = LanguageModel.num_layers
    dropout = LanguageModel.dropout
    proj_size = LanguageModel.proj_size
    training = LanguageModel.training
    num_parameters = LanguageModel.num_parameters
    train = LanguageModel.train
    eval = LanguageModel.eval
    zero_grad = LanguageModel.zero_grad
    state_dict = LanguageModel.state_dict
    load_state_dict = LanguageModel.load_state_dict
    backward = LanguageModel.backward

    @property
    def bidirectional(self):
        return self.rnn.bidirectional

    @staticmethod
    def param_shapes(vocab_size, num_labels, embedding_dim=32, cell="lstm", hidden_size=64, num_layers=1,
                     bidirectional=True, proj_size=0, **_):
        """(name, shape) of each parameter a configuration (config(), or a file's) describes, with
        the blocks' prefixes; computed lazily, nothing allocated."""
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}, got {cell!r}")
        directions = 2 if bidirectional else 1
        blocks = (("embedding", Embedding.param_shapes(vocab_size, embedding_dim)),
                  ("rnn", CELLS[cell].param_shapes(embedding_dim, hidden_size, num_layers,
                                                   bidirectional=bidirectional, proj_size=proj_size)),
                  ("head", Linear.param_shapes(directions * (proj_size or hidden_size), num_labels)))
        for prefix, shapes in blocks:
            for name, shape in shapes:
                yield f"{prefix}.{name}", shape

    def config(self):
        return dict(vocab_size=self.vocab_size, num_labels=self.num_labels, embedding_dim=self.embedding_dim,
                    cell=self.cell, hidden_size=self.hidden_size, num_layers=self.num_layers,
                    bidirectional=self.bidirectional, dropout=self.dropout, proj_size=self.proj_size,
                    dtype=np.dtype(self.dtype).name)

    def __repr__(self):
        return "numrnn.Tagger(" + ", ".join(f"{k}={v!r}" for k, v in self.config().items()) + ")"

    def __call__(self, tokens, state=None, lengths=None):
        """lengths [B] ints in 1..T (None: all T). `state` is the RNN's initial state, for the C
        interface's streaming of a unidirectional tagger; training passes None."""
        xp = self._xp
        tokens = xp.asarray(tokens)
        if tokens.ndim != 2:
            raise ValueError(f"Tagger: tokens must be 2-D [T, B], got shape {tokens.shape}")
        to_host = not xp.is_device_array(tokens)
        if to_host and self.device == "cuda":
            self.embedding.check_ids(tokens)
            tokens = xp.from_host(tokens)
        x = self.embedding(tokens)                      # [T, B, E]
        out, state = self.rnn(x, state, lengths)        # [T, B, D * P]
        scores = self.head(out)                         # [T, B, num_labels]
        if to_host:
            scores = xp.to_host(scores)
            state = tuple(xp.to_host(s) for s in state) if isinstance(state, tuple) else xp.to_host(state)
        return scores, state
