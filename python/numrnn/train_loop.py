"""The loop both trainers run (trainer.py for language models, tag_trainer.py for taggers): steps up
to cfg.steps, an evaluation with a checkpoint every cfg.eval_every steps and at the end, Ctrl-C
handled between steps (a checkpoint, never half a step), Diverged on a loss or gradient norm that
is not finite, the progress lines and the metrics file.

Not here: what a step computes, what an evaluation measures and what a checkpoint holds; the
trainers pass those in as functions.
"""
import json
import math
import os
import signal
import time


class Diverged(RuntimeError):
    """The loss or the gradient became NaN or Inf."""


class Interrupt:
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


def new_progress():
    """What a checkpoint records of a run besides the model and optimizer (checkpoint.py)."""
    return dict(step=0, loss_sum=0.0, loss_count=0, elapsed_s=0.0, val_loss=None)


def run(cfg, out, resume, progress, log, step, measure, save, metrics=None, comm=None):
    """Train from progress["step"] to cfg.steps, updating `progress` in place; returns "done" or
    "interrupted". The caller's functions:
      step(i) -> (loss, gradient norm, tokens): the update of step i (counted from 0); when the loss
          or the norm is not finite the update must be skipped (the loop then raises Diverged);
      measure(tokens_per_s) -> (fields, words): evaluates the model; `fields` go into the metrics
          record between train_loss and elapsed_s, `words` into the progress line after the loss;
      save(): writes the checkpoint at `out` from `progress` and the model.
    A fresh run is evaluated and saved before the first step; a resumed run writing to another
    file is saved there, so that `out` holds a good checkpoint from the start.
    comm (numrnn.distributed, data-parallel training): Ctrl-C seen by any rank stops every rank
    after the same step (the ranks take the decision together before each step), so that none is
    left waiting in a collective the others never reach."""
    t_start, elapsed0 = time.perf_counter(), progress["elapsed_s"]
    window_s, window_tokens = 0.0, 0
    saved_step = progress["step"]

    def checkpoint_and_report(evaluate_now):
        nonlocal window_s, window_tokens, saved_step
        if evaluate_now:
            fields, words = measure(window_tokens / window_s if window_tokens else None)
        run_s = time.perf_counter() - t_start
        progress["elapsed_s"] = elapsed0 + run_s
        if evaluate_now:
            train_loss = progress["loss_sum"] / progress["loss_count"] if progress["loss_count"] else None
            record = dict(step=progress["step"], train_loss=train_loss, **fields,
                          elapsed_s=round(progress["elapsed_s"], 3))
            log.log(f"step {record['step']:>{len(str(cfg.steps))}}/{cfg.steps}  "
                    + (f"train loss {train_loss:.4f}  " if train_loss is not None else "")
                    + words + _times(run_s, elapsed0))
            if metrics:
                with open(metrics, "a") as f:
                    f.write(json.dumps(record) + "\n")
            progress.update(loss_sum=0.0, loss_count=0)
            window_s, window_tokens = 0.0, 0
        save()
        saved_step = progress["step"]

    def stop_requested():
        return comm.any(interrupt.requested) if comm else interrupt.requested

    with Interrupt() as interrupt:
        if resume is None:
            checkpoint_and_report(True)
        elif os.path.abspath(out) != os.path.abspath(resume):
            checkpoint_and_report(False)
        stop = stop_requested()
        while progress["step"] < cfg.steps and not stop:
            t0 = time.perf_counter()
            loss, norm, tokens = step(progress["step"])
            if not (math.isfinite(loss) and math.isfinite(norm)):
                log.close()
                what = f"loss became {loss}" if not math.isfinite(loss) else f"gradient norm became {norm}"
                raise Diverged(f"training stopped at step {progress['step'] + 1}: the {what}. {out} still holds "
                               f"the last good checkpoint (step {saved_step}). "
                               f"Try a smaller --lr (now {cfg.lr}) or --clip (now {cfg.clip}).")
            progress["step"] += 1
            progress["loss_sum"] += loss
            progress["loss_count"] += 1
            window_s += time.perf_counter() - t0
            window_tokens += tokens
            log.update(progress["step"], loss, window_tokens / window_s)
            if progress["step"] % cfg.eval_every == 0 or progress["step"] == cfg.steps:
                checkpoint_and_report(True)
            stop = stop_requested()
        if stop:
            checkpoint_and_report(False)
    log.close()
    if stop and progress["step"] < cfg.steps:
        log.log(f"interrupted at step {progress['step']}: checkpoint saved to {out}; "
                f"continue with --resume {out}")
        return "interrupted"
    return "done"


def _times(run_s, earlier_s):
    """This run's time, and the total when earlier runs (before a resume) trained too."""
    return f"{run_s:.0f}s" + (f" (total {earlier_s + run_s:.0f}s)" if earlier_s else "")
