"""Training progress on the terminal: a one-line bar redrawn in place on a TTY, plain log lines
otherwise (files, pipes, CI logs). Not a general-purpose progress library."""
import math
import sys
import time


def _clock(seconds):
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    WIDTH = 24
    REDRAW_S = 0.2

    def __init__(self, total, start=0, stream=None):
        self.stream = stream or sys.stdout
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.total, self.start = total, start
        self.t0 = time.perf_counter()
        self._drawn = 0.0
        self._bar = ""

    def update(self, step, loss, tokens_per_s, force=False):
        """Redraw the bar (TTY only; at most every REDRAW_S seconds unless forced)."""
        now = time.perf_counter()
        if not self.tty or (not force and now - self._drawn < self.REDRAW_S):
            return
        self._drawn = now
        done = step / self.total if self.total else 1.0
        rate = (step - self.start) / (now - self.t0) if step > self.start else 0.0
        eta = _clock((self.total - step) / rate) if rate else "?"
        fill = int(self.WIDTH * done)
        self._bar = (f"\r{step:>{len(str(self.total))}}/{self.total} [{'#' * fill}{'.' * (self.WIDTH - fill)}] "
                     f"loss {loss:.3f} ppl {math.exp(min(loss, 700.0)):.2f} | {tokens_per_s / 1000:.1f}k tok/s | ETA {eta}")
        self.stream.write(self._bar + "\x1b[K")
        self.stream.flush()

    def log(self, line):
        """A permanent line (evaluations, messages), printed above the bar on a TTY."""
        if self.tty and self._bar:
            self.stream.write("\r\x1b[K")
        self.stream.write(line + "\n")
        if self.tty and self._bar:
            self.stream.write(self._bar + "\x1b[K")
        self.stream.flush()

    def close(self):
        """Clear the bar: the evaluation lines above it hold the figures."""
        if self.tty and self._bar:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._bar = ""
