"""Learning-rate schedules: the rate of each optimiser update as a pure function of the step, so a
resumed run needs nothing but the step to continue bit for bit. Set `optimizer.lr = schedule(step)`
before each `optimizer.step()`. Not an optimiser wrapper, and not tied to the trainer.

Step numbers count updates from 0 (update 0 is the first). `start` is the step at which the
schedule takes over (0 for a fresh run; the resume step when fine-tuning starts a new schedule);
before it a schedule is not asked.

- warmup W: update k = step - start uses lr * (k + 1) / W for k < W (torch's LinearLR with
  start_factor 1/W over W - 1 steps), then the schedule below, counted from k = W:
- "constant": lr.
- "step": lr * gamma ** ((k - W) // step_size)   (torch's StepLR).
- "cosine": lr * (1 + cos(pi * (k - W) / (cosine_steps - W))) / 2 down to 0 at k = cosine_steps
  (torch's CosineAnnealingLR with T_max = cosine_steps - W, eta_min 0); 0 after it.
"""
import math

KINDS = ("constant", "cosine", "step")


class Schedule:
    def __init__(self, lr, kind="constant", warmup=0, start=0, cosine_steps=None, step_size=None, gamma=0.1):
        if kind not in KINDS:
            raise ValueError(f"schedule must be one of {KINDS}, got {kind!r}")
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be a number > 0, got {lr!r}")
        if warmup < 0 or start < 0:
            raise ValueError(f"warmup and start must be >= 0, got warmup={warmup}, start={start}")
        if kind == "cosine" and (cosine_steps is None or cosine_steps <= warmup):
            raise ValueError(f"a cosine schedule needs cosine_steps > warmup, got cosine_steps={cosine_steps}, "
                             f"warmup={warmup}")
        if kind == "step" and (step_size is None or step_size < 1):
            raise ValueError(f"a step schedule needs step_size >= 1, got {step_size!r}")
        self.lr, self.kind, self.warmup, self.start = float(lr), kind, warmup, start
        self.cosine_steps, self.step_size, self.gamma = cosine_steps, step_size, float(gamma)

    def __call__(self, step):
        """The rate of update number `step` (>= start)."""
        k = step - self.start
        if k < 0:
            raise ValueError(f"step {step} comes before the schedule's start ({self.start})")
        if k < self.warmup:
            return self.lr * (k + 1) / self.warmup
        k -= self.warmup
        if self.kind == "step":
            return self.lr * self.gamma ** (k // self.step_size)
        if self.kind == "cosine":
            span = self.cosine_steps - self.warmup
            return self.lr * (1 + math.cos(math.pi * k / span)) / 2 if k < span else 0.0
        return self.lr
