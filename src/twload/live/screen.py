"""The terminal side of the view: rich's Live on the alternate screen, redrawn a few times a second,
and the keys: `q` stops the run as Ctrl-C does (the process sends itself SIGINT, so the supervisor
stops its workers and writes the summary as for any SIGINT; exit 130)."""

from __future__ import annotations

import os
import select
import signal
import sys
import termios
import threading
import tty
from collections.abc import Callable

from rich.console import Console, RenderableType
from rich.live import Live

REFRESH_PER_S = 4
STOP_KEYS = (b"q", b"Q")


class Keys:
    """stdin in cbreak mode (keys arrive one by one, unechoed; Ctrl-C still signals), read on a thread;
    the terminal's settings are put back on close. Nothing happens when stdin is not a terminal."""

    def __init__(self, on_stop: Callable[[], None]) -> None:
        self.on_stop = on_stop
        self.fd = sys.stdin.fileno() if sys.stdin is not None and sys.stdin.isatty() else None
        self.saved: list | None = None
        self.done = threading.Event()
        self.thread: threading.Thread | None = None

    @property
    def reading(self) -> bool:
        """Keys are read (stdin is a terminal)."""
        return self.fd is not None

    def start(self) -> None:
        if self.fd is None:
            return
        try:
            self.saved = termios.tcgetattr(self.fd)
            tty.setcbreak(self.fd)
        except termios.error:
            self.fd = None
            return
        self.thread = threading.Thread(target=self._read, name="twload-keys", daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.fd is not None
        while not self.done.is_set():
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if not ready:
                continue
            try:
                key = os.read(self.fd, 1)
            except OSError:
                return
            if not key:
                return
            if key in STOP_KEYS:
                self.on_stop()

    def close(self) -> None:
        self.done.set()
        if self.thread is not None:
            self.thread.join(timeout=1)
        if self.fd is not None and self.saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)


def stop_as_sigint() -> None:
    """What `q` does: the same as Ctrl-C (the supervisor's SIGINT handler, its summary and exit 130)."""
    os.kill(os.getpid(), signal.SIGINT)


class Screen:
    """The full-screen view: `draw(width, height)` gives what to show; shown until close(), then the
    terminal's own screen comes back for the summary."""

    def __init__(self, console: Console, draw: Callable[[int, int], RenderableType],
                 on_stop: Callable[[], None] = stop_as_sigint) -> None:
        self.console = console
        self.draw = draw
        self.live = Live(console=console, screen=True, auto_refresh=False, transient=True,
                         redirect_stdout=False, redirect_stderr=False)
        self.keys = Keys(on_stop)
        self.lock = threading.Lock()

    def start(self) -> None:
        self.live.start()
        self.keys.start()
        self.refresh()

    def refresh(self) -> None:
        with self.lock:
            width, height = self.console.size
            self.live.update(self.draw(width, height), refresh=True)

    def close(self) -> None:
        self.keys.close()
        self.live.stop()
