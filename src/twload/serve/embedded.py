"""`twload serve --port 0` as a child process, for the demo, the tests and the benchmarks."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

SERVE_START_TIMEOUT_S = 15.0


class EmbeddedServer:
    """`twload serve --port 0` in a child process; stopped by PID on exit."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def __enter__(self) -> EmbeddedServer:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "twload", "serve", "--port", "0", *self.args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        deadline = time.monotonic() + SERVE_START_TIMEOUT_S
        line = self.proc.stdout.readline()  # "twload serve listening on URL (...)"
        if "listening on" not in line or time.monotonic() > deadline:
            self.__exit__()
            raise RuntimeError(f"twload serve did not start: {line.strip() or 'no output'}")
        self.url = line.split("listening on ", 1)[1].split()[0]
        return self

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1].strip("/"))

    def stop(self) -> int:
        """Stop the server; return how many requests it served (its own count)."""
        if self.proc is None or self.proc.poll() is not None:
            return -1
        self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            return -1
        for line in out.splitlines():
            if "served" in line:
                return int(line.split("served", 1)[1].split()[0])
        return -1

    def __exit__(self, *exc) -> None:
        self.stop()
