"""Learning-rate schedules (python/numrnn/schedule.py) against torch.optim.lr_scheduler, step by
step: StepLR, LinearLR warmup followed by CosineAnnealingLR or StepLR (SequentialLR)."""
import math

import pytest
import torch

from numrnn.schedule import Schedule


def torch_rates(make, steps, lr=0.01):
    """The rate torch's scheduler gives each of `steps` optimiser updates."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = make(opt)
    rates = []
    for _ in range(steps):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return rates


def warmup_then(after, warmup):
    lin = torch.optim.lr_scheduler.LinearLR
    return lambda opt: torch.optim.lr_scheduler.SequentialLR(
        opt, [lin(opt, start_factor=1 / warmup, total_iters=warmup - 1), after(opt)], milestones=[warmup])


@pytest.mark.parametrize("step_size,gamma", [(1, 0.9), (3, 0.5), (7, 0.1)])
def test_step_matches_steplr(step_size, gamma):
    ours = Schedule(0.01, "step", step_size=step_size, gamma=gamma)
    ref = torch_rates(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size, gamma), 30)
    assert [ours(k) for k in range(30)] == pytest.approx(ref, rel=1e-12)


@pytest.mark.parametrize("warmup,total", [(1, 10), (5, 40), (10, 11)])
def test_cosine_with_warmup_matches_torch_and_the_formula(warmup, total):
    ours = Schedule(0.01, "cosine", warmup=warmup, cosine_steps=total)
    cos = torch.optim.lr_scheduler.CosineAnnealingLR
    ref = torch_rates(warmup_then(lambda o: cos(o, T_max=total - warmup), warmup), total)
    got = [ours(k) for k in range(total)]
    assert got == pytest.approx(ref, rel=1e-9, abs=1e-15)
    direct = [0.01 * (k + 1) / warmup if k < warmup else
              0.01 * (1 + math.cos(math.pi * (k - warmup) / (total - warmup))) / 2 for k in range(total)]
    assert got == pytest.approx(direct, rel=1e-15)
    assert ours(total) == ours(total + 5) == 0.0


def test_step_with_warmup_and_a_start_matches_torch():
    ours = Schedule(0.01, "step", warmup=4, start=100, step_size=3, gamma=0.5)
    ref = torch_rates(warmup_then(lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.5), 4), 20)
    assert [ours(100 + k) for k in range(20)] == pytest.approx(ref, rel=1e-12)
    with pytest.raises(ValueError, match="step 99 comes before the schedule's start"):
        ours(99)


@pytest.mark.parametrize("kwargs,match", [
    (dict(kind="linear"), "schedule must be one of"),
    (dict(kind="cosine", warmup=5, cosine_steps=5), "cosine_steps > warmup"),
    (dict(kind="step"), "step_size >= 1"),
    (dict(lr=0.0), "lr must be a number > 0"),
])
def test_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Schedule(**dict(dict(lr=0.01), **kwargs))
