"""Training a character language model (what `numrnn train` runs): data, model, optimiser, learning
rate schedule, evaluation, checkpoints and resume, run by the loop the tagger shares (train_loop.py:
steps, evaluation cadence, metrics, Ctrl-C and divergence handling). Given a communicator
(numrnn.distributed) it trains data-parallel: each rank runs its columns of every global batch and
its share of the evaluation streams, and the gradients and losses are averaged over the ranks.

No autograd: each step is forward, cross-entropy, backward through the blocks, clipping, update.
Not here: argument parsing (cli.py) and text generation (generate.py).
"""
import contextlib
import dataclasses
import hashlib
import io
import json
import math
import os

from numrnn import data, engine, train_loop
from numrnn.checkpoint import read_checkpoint, restore, save_checkpoint
from numrnn.language_model import LanguageModel
from numrnn.losses import cross_entropy
from numrnn.optim import SGD, Adam, clip_grad_norm
from numrnn.progress import Progress
from numrnn.schedule import Schedule
from numrnn.train_loop import new_progress

EVAL_STREAMS = 32     # validation text is read as this many parallel streams, state carried
EVAL_CHUNK = 256      # time steps per evaluation forward call


@dataclasses.dataclass
class TrainConfig:
    data: str = data.BUILTIN
    cell: str = "lstm"
    hidden_size: int = 256
    num_layers: int = 1
    embedding_dim: int = 32
    dropout: float = 0.0
    proj_size: int = 0
    seq_len: int = 64
    batch_size: int = 32
    steps: int = 1500
    lr: float = None             # None: 3e-3 for adam, 1.0 for sgd
    lr_schedule: str = "constant"   # constant, cosine or step (schedule.py)
    warmup: int = 0              # steps of linear warmup
    lr_step: int = None          # step schedule: multiply the rate by lr_gamma every lr_step steps
    lr_gamma: float = 0.1
    cosine_steps: int = None     # cosine schedule: steps from lr_start to a rate of 0; None: steps - lr_start
    lr_start: int = 0            # the step the rate settings took effect (a fine-tuning resume moves it)
    optimizer: str = "adam"
    clip: float = 1.0            # 0 turns clipping off
    sampling: str = "random"
    eval_every: int = 250
    device: str = "cpu"
    seed: int = 0

    # the rate settings; a resumed run that changes one fine-tunes: a new schedule from the resume step
    LR_SETTINGS = ("lr", "lr_schedule", "warmup", "lr_step", "lr_gamma", "cosine_steps")
    # what a resumed run may change (steps and eval_every default to the checkpoint's); everything
    # else must match the checkpoint, the text included (compared by its hash, whatever its path)
    RESUMABLE = ("steps", "eval_every", "device", "data") + LR_SETTINGS

    def __post_init__(self):
        if self.lr is None:
            self.lr = 3e-3 if self.optimizer == "adam" else 1.0
        if self.lr_schedule == "cosine" and self.cosine_steps is None:
            self.cosine_steps = self.steps - self.lr_start

    def schedule(self):
        return Schedule(self.lr, self.lr_schedule, self.warmup, self.lr_start, self.cosine_steps,
                        self.lr_step, self.lr_gamma)


def build(cfg, vocab_size):
    model = LanguageModel(vocab_size, cfg.embedding_dim, cell=cfg.cell, hidden_size=cfg.hidden_size,
                          num_layers=cfg.num_layers, dropout=cfg.dropout, proj_size=cfg.proj_size,
                          device=cfg.device, seed=cfg.seed)
    if cfg.optimizer == "adam":
        optimizer = Adam(model.blocks, lr=cfg.lr)
    elif cfg.optimizer == "sgd":
        optimizer = SGD(model.blocks, lr=cfg.lr)
    else:
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {cfg.optimizer!r}")
    return model, optimizer


def evaluate(model, ids, comm=None):
    """Mean cross-entropy per character of `ids` [N] read as EVAL_STREAMS parallel streams with the
    state carried, so it equals one pass over each stream whatever the chunking. With a
    communicator each rank reads its share of the streams and the sums are added up."""
    B = min(EVAL_STREAMS, len(ids) - 1)
    n = (len(ids) - 1) // B
    streams = comm.share(B) if comm else slice(None)
    x = ids[:B * n].reshape(B, n)[streams].T            # [n, b] this rank's streams
    y = ids[1:B * n + 1].reshape(B, n)[streams].T
    model.eval()
    total, state = 0.0, None
    for t in range(0, n if x.shape[1] else 0, EVAL_CHUNK):
        logits, state = model(model._xp.from_host(x[t:t + EVAL_CHUNK]), state)
        loss, _ = cross_entropy(logits, model._xp.from_host(y[t:t + EVAL_CHUNK]))
        total += loss * logits.shape[0] * logits.shape[1]      # the mean over the chunk times its size
    model.train()
    if comm:
        total = comm.sum([total])[0]
    return total / (n * B)


def train_step(model, optimizer, x, y, state, clip, comm=None):
    """One step on x, y [T, B] host ids from `state` (None: fresh). Returns (loss, gradient norm,
    the state to carry on); when the loss or the norm is not finite the update is skipped and the
    state returned is None. On a GPU the ids are copied in once and everything else stays there:
    only the loss and the norm come back. With a communicator x, y are this rank's columns of the
    global batch, and the gradients and the loss are averaged over the ranks before clipping, so
    every rank takes the same step."""
    x, y = model._xp.from_host(x), model._xp.from_host(y)
    logits, state = model(x, state)                # [T, B, V]
    loss, dlogits = cross_entropy(logits, y)
    model.zero_grad()
    model.backward(dlogits)
    if comm:
        comm.average_gradients(model.blocks)
        loss = comm.sum([loss])[0] / comm.size
    norm = clip_grad_norm(model.blocks, clip) if clip else 0.0
    if not (math.isfinite(loss) and math.isfinite(norm)):
        return loss, norm, None
    optimizer.step()
    return loss, norm, state


def train(cfg, out, metrics=None, resume=None, stream=None, comm=None):
    """Train per `cfg`, writing checkpoints to `out`; resume from the checkpoint `resume` if given.
    Returns a dict: status ("done", "interrupted", "nothing to do"), step, val_loss, val_ppl,
    elapsed_s, run_s. Raises data.DataError for unusable text and train_loop.Diverged on NaN/Inf
    (the file at `out` then still holds the last good checkpoint).
    comm: a numrnn.distributed.Communicator to train data-parallel (every rank calls train with the
    same arguments; cfg.batch_size must divide by the number of ranks); rank 0 alone prints, writes
    the metrics and the checkpoints, which hold the global batch's state and so resume on any number
    of ranks."""
    text = data.read_text(cfg.data)
    vocab = data.Vocabulary.from_text(text)
    if resume is not None:
        _check_same_text(resume, cfg.data, text, vocab)
    train_ids, val_ids = data.split(vocab.encode(text))
    if len(val_ids) < 2:
        raise data.DataError(f"the text ({len(text)} characters) is too short to hold out a validation "
                             f"split of {data.VAL_FRACTION:.0%}; use a longer text")
    batches = data.SAMPLING[cfg.sampling](train_ids, cfg.seq_len, cfg.batch_size, cfg.seed)
    model, optimizer = build(cfg, len(vocab))
    columns = slice(None)     # the columns of every global batch this rank runs
    if comm:
        if cfg.batch_size % comm.size:
            raise ValueError(f"batch_size {cfg.batch_size} does not divide over {comm.size} processes")
        columns = comm.share(cfg.batch_size)
        model.rnn.batch_share = (cfg.batch_size, columns)    # dropout masks drawn for the global batch
        if comm.rank != 0:
            stream, metrics = io.StringIO(), None     # rank 0 alone prints and writes metrics
    config = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "device"}
    config["data"] = cfg.data if cfg.data == data.BUILTIN else os.path.abspath(cfg.data)
    config["fingerprint"] = data.fingerprint(text)
    schedule = cfg.schedule()
    model.metadata["vocabulary"] = vocab.to_json()

    state = None
    progress = new_progress()
    if resume is not None:
        state, progress = restore(resume, model, optimizer)
        state = _columns(state, columns)
    if comm:
        # the text by its hash, not its path, which may differ from machine to machine
        comm.start(dict({k: v for k, v in config.items() if k != "data"},
                        resume=None if resume is None else _file_hash(resume)))
    optimizer.lr = schedule(progress["step"])   # reported at step 0 as the rate of the first update
    log = Progress(cfg.steps, progress["step"], stream)
    if progress["step"] >= cfg.steps:
        log.log(f"{resume} has already trained {progress['step']} steps; pass --steps above that to continue")
        return dict(status="nothing to do", step=progress["step"], val_loss=progress["val_loss"],
                    val_ppl=_ppl(progress["val_loss"]), elapsed_s=progress["elapsed_s"], run_s=0.0)

    log.log(f"{'resuming' if resume else 'training'} {model!r}: {model.num_parameters():,} parameters, "
            f"{len(train_ids):,} training / {len(val_ids):,} validation characters, {len(vocab)} symbols")
    if cfg.lr_schedule != "constant" or cfg.warmup or cfg.lr_start:
        log.log(f"learning rate: {_describe(cfg)}")
    if cfg.device == "cpu" and not engine.kernels_cached(model.rnn.cell.lower(), model.dtype):
        log.log("compiling kernels (first run only)...")
    tokens_per_step = cfg.seq_len * cfg.batch_size
    elapsed0 = progress["elapsed_s"]

    def step(i):
        nonlocal state
        x, y, fresh = batches.batch(i)
        optimizer.lr = schedule(i)
        loss, norm, new_state = train_step(model, optimizer, x[:, columns], y[:, columns], None if fresh else state,
                                           cfg.clip, comm)
        if new_state is not None:
            state = new_state
        return loss, norm, tokens_per_step

    def measure(tok_s):
        progress["val_loss"] = evaluate(model, val_ids, comm)
        fields = dict(val_loss=progress["val_loss"], val_ppl=_ppl(progress["val_loss"]), tokens_per_s=tok_s,
                      lr=optimizer.lr)
        return fields, (f"val loss {fields['val_loss']:.4f}  val ppl {fields['val_ppl']:.3f}  "
                        + (f"lr {fields['lr']:.3g}  " if schedule.kind != "constant" or schedule.warmup else "")
                        + (f"{tok_s:,.0f} tok/s  " if tok_s else ""))

    def save():
        if not comm:
            return save_checkpoint(out, model, optimizer, state, progress, config)
        comm.check_identical(model.blocks)
        whole = comm.gather_columns(state)
        if comm.rank == 0:
            save_checkpoint(out, model, optimizer, whole, progress, config)

    model.train()
    with comm.lockstep(passes=train_loop.Diverged) if comm else contextlib.nullcontext():
        if comm:
            comm.broadcast_parameters(model.blocks)
        status = train_loop.run(cfg, out, resume, progress, log, step, measure, save, metrics, comm)
    return dict(status=status, step=progress["step"], val_loss=progress["val_loss"],
                val_ppl=_ppl(progress["val_loss"]), elapsed_s=progress["elapsed_s"],
                run_s=progress["elapsed_s"] - elapsed0)


def _columns(state, columns):
    """This rank's columns of a carried state [L, B, H] (or of each of LSTM's h, c) from a checkpoint."""
    if state is None or columns == slice(None):
        return state
    if isinstance(state, tuple):
        return tuple(_columns(s, columns) for s in state)
    return state[:, columns].copy()


def _file_hash(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _check_same_text(resume, path, text, vocab):
    """A resumed run must read the text its checkpoint was trained on: compared by hash, so any
    path to the same text will do."""
    meta = read_checkpoint(resume)
    saved = json.loads(meta["training_config"])
    if saved["fingerprint"] == data.fingerprint(text):
        return
    old = data.Vocabulary.from_json(meta["vocabulary"])
    if old.chars != vocab.chars:
        new, gone = sorted(set(vocab.chars) - set(old.chars)), sorted(set(old.chars) - set(vocab.chars))
        listed = "; ".join(f"{what}: {_chars(cs)}" for what, cs in (("new", new), ("gone", gone)) if cs)
        raise data.DataError(f"--data {path}: the vocabulary of the data changed: {len(vocab)} symbols now vs "
                             f"{len(old)} in the checkpoint {resume} ({listed}); a model's vocabulary is fixed, "
                             f"so train a new model on this text")
    raise data.DataError(f"--data {path} differs from the text {resume} was trained on ({saved['data']}, "
                         f"sha256 {saved['fingerprint'][:12]}..., now {data.fingerprint(text)[:12]}...); "
                         f"resume with that text, or train a new model")


def _chars(chars, most=10):
    return ", ".join(repr(c) for c in chars[:most]) + (f" and {len(chars) - most} more" if len(chars) > most else "")


def _describe(cfg):
    """The rate settings in words, e.g. "cosine from 0.003 to 0 over 1500 steps after 100 warmup steps"."""
    what = {"constant": f"{cfg.lr:g}",
            "cosine": f"cosine from {cfg.lr:g} to 0 over {cfg.cosine_steps} steps",
            "step": f"{cfg.lr:g}, times {cfg.lr_gamma:g} every {cfg.lr_step} steps"}[cfg.lr_schedule]
    return what + (f" after {cfg.warmup} warmup steps" if cfg.warmup else "") \
        + (f", from step {cfg.lr_start} (fine-tuning)" if cfg.lr_start else "")


def _ppl(loss):
    return None if loss is None else math.exp(min(loss, 700.0))
