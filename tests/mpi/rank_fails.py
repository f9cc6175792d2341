"""Run by tests/test_distributed.py under `mpiexec -n 2`: `numrnn train` (the flags after the first
argument) in which rank 1 fails at its third step, by raising ("raise") or by being killed
("kill"), or fails before training with an unexpected exception ("bug-at-start"). Before failing
at a step it writes the time to $NUMRNN_FAILED_AT, so the test can measure how long the other rank
takes to stop."""
import os
import signal
import sys
import time

from numrnn import cli, distributed, trainer

real_step, real_build, calls = trainer.train_step, trainer.build, 0


def failing_step(*args, **kwargs):
    global calls
    calls += 1
    if distributed.launched_rank() == 1 and calls == 3:
        with open(os.environ["NUMRNN_FAILED_AT"], "w") as f:
            f.write(repr(time.time()))
        if sys.argv[1] == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise OSError(28, "No space left on device (raised by the test)")
    return real_step(*args, **kwargs)


def failing_build(*args, **kwargs):
    if distributed.launched_rank() == 1:
        raise KeyError("a bug on rank 1 (raised by the test)")
    return real_build(*args, **kwargs)


if sys.argv[1] == "bug-at-start":
    trainer.build = failing_build
else:
    trainer.train_step = failing_step
sys.exit(cli.main(sys.argv[2:]))
