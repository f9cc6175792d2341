"""Timing contenders each in its own process, asked in turn for a block of calls with a short
pause between blocks (used by benchmarks/cpu.py and benchmarks/capi.py).

Why separate processes: in one process the libraries' thread pools (OpenBLAS, PyTorch's,
ONNX Runtime's) spin after a call and slow the next library's millisecond calls several-fold.
Why in turn: the machine's load drifts, so each contender's blocks are spread over the same
stretch of time. A contender is a worker speaking a line protocol on stdin/stdout: it prints
"ready" once set up and warmed, then answers each line "N" by running N calls and printing the
seconds they took ("quit" ends it). A Python worker is `python interleave.py MODULE FUNCTION ARGS`
(FUNCTION(*ARGS) returns the zero-argument call); a C host (numrnn-bench serve) speaks the same.
"""
import importlib
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def python_worker(module, function, *args):
    """The command line of a Python worker; args are JSON-encoded."""
    return [sys.executable, os.path.join(HERE, "interleave.py"), module, function] + [json.dumps(a) for a in args]


class Worker:
    def __init__(self, command):
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            self.proc.kill()
            raise RuntimeError(f"{command}: expected 'ready', got {line!r}")

    def block(self, n):
        self.proc.stdin.write(f"{n}\n")
        return float(self.proc.stdout.readline())

    def close(self):
        self.proc.stdin.write("quit\n")
        self.proc.stdin.close()
        self.proc.wait()


def interleaved(commands, rounds=15, block_s=0.1, pause_s=0.05):
    """{name: median seconds per call} of the workers {name: command}, started one after another,
    then asked in turn, `rounds` times, for a block of about block_s seconds of calls."""
    workers = {name: Worker(cmd) for name, cmd in commands.items()}
    try:
        calls = {}
        for name, w in workers.items():
            n = 1
            while w.block(n) < block_s / 4:
                n *= 2
            calls[name] = max(1, int(n * block_s / w.block(n)))
        samples = {name: [] for name in workers}
        for _ in range(rounds):
            for name, w in workers.items():
                time.sleep(pause_s)
                samples[name].append(w.block(calls[name]) / calls[name])
        return {name: statistics.median(s) for name, s in samples.items()}
    finally:
        for w in workers.values():
            w.close()


def serve(call):
    """The worker's side: warm up, then answer blocks."""
    for _ in range(3):
        call()
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "quit":
            break
        n = int(line)
        t0 = time.perf_counter()
        for _ in range(n):
            call()
        print(time.perf_counter() - t0, flush=True)


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    serve(getattr(importlib.import_module(sys.argv[1]), sys.argv[2])(*(json.loads(a) for a in sys.argv[3:])))
