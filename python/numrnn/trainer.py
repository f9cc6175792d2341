"""The training loop of a character language model (what `numrnn train` runs): data, model,
optimiser, evaluation, metrics, checkpoints, resume, Ctrl-C and divergence handling.

No autograd: each step is forward, cross-entropy, backward through the blocks, clipping, update.
Not here: argument parsing (cli.py) and text generation (generate.py).
"""
import dataclasses
import json
import math
import os
import signal
import time

from numrnn import data, engine
from numrnn.checkpoint import read_checkpoint, restore, save_checkpoint
from numrnn.language_model import LanguageModel
from numrnn.losses import cross_entropy
from numrnn.optim import SGD, Adam, clip_grad_norm
from numrnn.progress import Progress
from numrnn.schedule import Schedule

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


class Diverged(RuntimeError):
    """The loss or the gradient became NaN or Inf."""


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


def evaluate(model, ids):
    """Mean cross-entropy per character of `ids` [N] read as EVAL_STREAMS parallel streams with the
    state carried, so it equals one pass over each stream whatever the chunking."""
    B = min(EVAL_STREAMS, len(ids) - 1)
    n = (len(ids) - 1) // B
    x = ids[:B * n].reshape(B, n).T            # [n, B]
    y = ids[1:B * n + 1].reshape(B, n).T
    model.eval()
    total, state = 0.0, None
    for t in range(0, n, EVAL_CHUNK):
        logits, state = model(model._xp.from_host(x[t:t + EVAL_CHUNK]), state)
        loss, _ = cross_entropy(logits, model._xp.from_host(y[t:t + EVAL_CHUNK]))
        total += loss * logits.shape[0]
    model.train()
    return total / n


def train_step(model, optimizer, x, y, state, clip):
    """One step on x, y [T, B] host ids from `state` (None: fresh). Returns (loss, gradient norm,
    the state to carry on); when the loss or the norm is not finite the update is skipped and the
    state returned is None. On a GPU the ids are copied in once and everything else stays there:
    only the loss and the norm come back."""
    x, y = model._xp.from_host(x), model._xp.from_host(y)
    logits, state = model(x, state)                # [T, B, V]
    loss, dlogits = cross_entropy(logits, y)
    model.zero_grad()
    model.backward(dlogits)
    norm = clip_grad_norm(model.blocks, clip) if clip else 0.0
    if not (math.isfinite(loss) and math.isfinite(norm)):
        return loss, norm, None
    optimizer.step()
    return loss, norm, state


class _Interrupt:
    """Ctrl-C sets a flag that the loop checks between steps (so a step is never cut in half);
    a second Ctrl-C interrupts at once."""

    def __init__(self):
        self.requested = False

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:          # not the main thread: no handler, Ctrl-C behaves as usual
            self._previous = None
        return self

    def _handle(self, signum, frame):
        self.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def train(cfg, out, metrics=None, resume=None, stream=None):
    """Train per `cfg`, writing checkpoints to `out`; resume from the checkpoint `resume` if given.
    Returns a dict: status ("done", "interrupted", "nothing to do"), step, val_loss, val_ppl,
    elapsed_s. Raises data.DataError for unusable text and Diverged on NaN/Inf (the file at `out`
    then still holds the last good checkpoint)."""
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
    config = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "device"}
    config["data"] = cfg.data if cfg.data == data.BUILTIN else os.path.abspath(cfg.data)
    config["fingerprint"] = data.fingerprint(text)
    schedule = cfg.schedule()
    model.metadata["vocabulary"] = vocab.to_json()

    state = None
    progress = dict(step=0, loss_sum=0.0, loss_count=0, elapsed_s=0.0, val_loss=None)
    if resume is not None:
        state, progress = restore(resume, model, optimizer)
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
    t_start, t_window, window_steps = time.perf_counter(), 0.0, 0
    elapsed0 = progress["elapsed_s"]

    def checkpoint_and_report(evaluate_now):
        nonlocal t_window, window_steps
        if evaluate_now:
            progress["val_loss"] = evaluate(model, val_ids)
        run_s = time.perf_counter() - t_start
        progress["elapsed_s"] = elapsed0 + run_s
        if evaluate_now:
            train_loss = progress["loss_sum"] / progress["loss_count"] if progress["loss_count"] else None
            tok_s = window_steps * tokens_per_step / t_window if window_steps else None
            record = dict(step=progress["step"], train_loss=train_loss, val_loss=progress["val_loss"],
                          val_ppl=_ppl(progress["val_loss"]), tokens_per_s=tok_s,
                          lr=optimizer.lr,
                          elapsed_s=round(progress["elapsed_s"], 3))
            log.log(f"step {record['step']:>{len(str(cfg.steps))}}/{cfg.steps}  "
                    + (f"train loss {train_loss:.4f}  " if train_loss is not None else "")
                    + f"val loss {record['val_loss']:.4f}  val ppl {record['val_ppl']:.3f}  "
                    + (f"lr {record['lr']:.3g}  " if schedule.kind != "constant" or schedule.warmup else "")
                    + (f"{tok_s:,.0f} tok/s  " if tok_s else "") + _times(run_s, elapsed0))
            if metrics:
                with open(metrics, "a") as f:
                    f.write(json.dumps(record) + "\n")
            progress.update(loss_sum=0.0, loss_count=0)
            t_window, window_steps = 0.0, 0
        save_checkpoint(out, model, optimizer, state, progress, config)

    with _Interrupt() as interrupt:
        if resume is None:
            checkpoint_and_report(True)
        elif os.path.abspath(out) != os.path.abspath(resume):
            checkpoint_and_report(False)     # so that `out` holds a good checkpoint from the start
        model.train()
        while progress["step"] < cfg.steps and not interrupt.requested:
            t0 = time.perf_counter()
            x, y, fresh = batches.batch(progress["step"])
            optimizer.lr = schedule(progress["step"])
            loss, norm, new_state = train_step(model, optimizer, x, y, None if fresh else state, cfg.clip)
            if new_state is None:
                log.close()
                what = f"loss became {loss}" if not math.isfinite(loss) else f"gradient norm became {norm}"
                raise Diverged(f"training stopped at step {progress['step'] + 1}: the {what}. {out} still holds "
                               f"the last good checkpoint (step {model.metadata.get('steps', 0)}). "
                               f"Try a smaller --lr (now {cfg.lr}) or --clip (now {cfg.clip}).")
            state = new_state
            progress["step"] += 1
            progress["loss_sum"] += loss
            progress["loss_count"] += 1
            t_window += time.perf_counter() - t0
            window_steps += 1
            log.update(progress["step"], loss, window_steps * tokens_per_step / t_window)
            step = progress["step"]
            if step % cfg.eval_every == 0 or step == cfg.steps:
                checkpoint_and_report(True)
        if interrupt.requested:
            checkpoint_and_report(False)
    log.close()
    status = "interrupted" if interrupt.requested and progress["step"] < cfg.steps else "done"
    if status == "interrupted":
        log.log(f"interrupted at step {progress['step']}: checkpoint saved to {out}; "
                f"continue with --resume {out}")
    return dict(status=status, step=progress["step"], val_loss=progress["val_loss"],
                val_ppl=_ppl(progress["val_loss"]), elapsed_s=progress["elapsed_s"],
                run_s=progress["elapsed_s"] - elapsed0)


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


def _times(run_s, earlier_s):
    """This run's time, and the total when earlier runs (before a resume) trained too."""
    return f"{run_s:.0f}s" + (f" (total {earlier_s + run_s:.0f}s)" if earlier_s else "")


def _ppl(loss):
    return None if loss is None else math.exp(min(loss, 700.0))
