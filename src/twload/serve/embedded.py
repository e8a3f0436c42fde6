"""`twload serve --port 0` as a child process, for the demo, the tests and the benchmarks."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time

SERVE_START_TIMEOUT_S = 15.0
LINE_LIMIT = 4096  # a first line longer than this is not the one we wait for


def read_first_line(stream, timeout_s: float) -> str:
    """A child's next line from its pipe, waiting at most timeout_s ("" on timeout or EOF).

    Reads byte by byte from the descriptor, so nothing after the line is taken from the
    stream's own buffer (the caller may communicate() later); a line is ~100 bytes.
    """
    fd = stream.fileno()
    deadline = time.monotonic() + timeout_s
    data = bytearray()
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while len(data) < LINE_LIMIT:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                break
            byte = os.read(fd, 1)
            if not byte:
                break
            data += byte
            if byte == b"\n":
                break
    return data.decode("utf-8", "replace")


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
        # "twload serve listening on URL (...)", within a bound: a stuck child must not hang us
        line = read_first_line(self.proc.stdout, SERVE_START_TIMEOUT_S)
        if "listening on" not in line:
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
            self.proc.wait(timeout=10)  # the pipes may stay open in its own children: do not read to EOF
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()
            return -1
        for line in out.splitlines():
            if "served" in line:
                return int(line.split("served", 1)[1].split()[0])
        return -1

    def __exit__(self, *exc) -> None:
        self.stop()
