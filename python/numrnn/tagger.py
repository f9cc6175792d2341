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

from numrnn.language_model import LanguageModel
from numrnn.module import check_positive_int
from numrnn.serialize import register


@register
class Tagger:
    """scores, state = tagger(tokens [T, B] ints, state=None, lengths=None) -> scores [T, B, num_labels];
    tagger.backward(dscores) adds into every block's grads. Steps past a sequence's length get the
    head's bias as scores (their RNN output is zero) and must be left out of the loss."""

    def __init__(self, vocab_size, num_labels, embedding_dim=32, cell="lstm", hidden_size=64, num_layers=1,
                 bidirectional=True, dropout=0.0, proj_size=0, device="cpu", dtype=np.float32, seed=None):
        self.num_labels = check_positive_int("num_labels", num_labels)
        self._build(vocab_size, embedding_dim, cell, hidden_size, proj_size, num_labels, device, dtype, seed,
                    num_layers=num_layers, dropout=dropout, bidirectional=bidirectional)

    _build = LanguageModel._build
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
        return LanguageModel._shapes(vocab_size, embedding_dim, cell, hidden_size, num_layers, proj_size, num_labels,
                                     bidirectional)

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
