"""The full-screen view in a real terminal (tmux, at 80x24 and 120x40): what it shows mid-run agrees
with the run's samples and summary.json, nothing is wider than the terminal, the screen gives way to
the usual summary at the end, and `q` stops the run as Ctrl-C does (exit 130, a valid run folder).
Without a terminal the output is as before: no screen, no escape codes."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time

import pytest

from tests.conftest import run_cli
from twload.live.view import short_us

TMUX = shutil.which("tmux")


class Tmux:
    """A tmux server of its own (socket under tmp, no config) running one command in a WxH window."""

    def __init__(self, tmp, width: int, height: int, argv: list[str]) -> None:
        self.socket = str(tmp / "tmux.sock")
        self.exit_file = tmp / "exit_code"
        inner = (f"env -u COLUMNS -u LINES {shlex.join(argv)}; echo $? > {shlex.quote(str(self.exit_file))}; "
                 "sleep 120")
        self.tmux("new-session", "-d", "-s", "t", "-x", str(width), "-y", str(height), inner)

    def tmux(self, *args: str) -> str:
        return subprocess.run([TMUX, "-S", self.socket, "-f", "/dev/null", *args], capture_output=True, text=True,
                              timeout=10, check=True).stdout

    def screen(self) -> list[str]:
        return self.tmux("capture-pane", "-p", "-t", "t").rstrip("\n").split("\n")

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "t", *keys)

    def exit_code(self, timeout_s: float) -> int:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.exit_file.exists() and self.exit_file.read_text().strip():
                return int(self.exit_file.read_text())
            time.sleep(0.1)
        raise AssertionError(f"the run did not end within {timeout_s} s; screen:\n" + "\n".join(self.screen()))

    def kill(self) -> None:
        subprocess.run([TMUX, "-S", self.socket, "kill-server"], capture_output=True, timeout=10)


@pytest.fixture
def tmux(tmp_path):
    if TMUX is None:
        pytest.skip("SKIPPED LOUDLY: tmux is not installed (Debian package tmux): the live view needs a terminal")
    started = []

    def start(width: int, height: int, argv: list[str]) -> Tmux:
        session = Tmux(tmp_path, width, height, argv)
        started.append(session)
        return session

    yield start
    for session in started:
        session.kill()


def twload(*args: str) -> list[str]:
    return [sys.executable, "-m", "twload", *args]


def samples_in(out, at_least: int, timeout_s: float = 30) -> list[dict]:
    path = out / "samples.jsonl"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists():
            lines = path.read_text().splitlines()
            if len(lines) >= at_least:
                return [json.loads(line) for line in lines]
        time.sleep(0.1)
    raise AssertionError(f"fewer than {at_least} samples within {timeout_s} s")


def number(text: str) -> int:
    return int(text.replace(",", ""))


@pytest.mark.parametrize("width, height", [(80, 24), (120, 40)])
def test_the_screen_mid_run_agrees_with_the_run_and_gives_way_to_the_summary(twload_server, tmux, tmp_path,
                                                                              width, height):
    server = twload_server()
    out = tmp_path / "run"
    session = tmux(width, height, twload("run", server.url, "-d", "5s", "-c", "4", "-w", "1", "--out", str(out)))
    samples_in(out, 2)
    time.sleep(0.6)  # the screen is redrawn four times a second: it has the second just written
    screen = session.screen()
    assert session.exit_code(60) == 0
    summary = json.loads((out / "summary.json").read_text())
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]

    assert len(screen) <= height and all(len(line) <= width for line in screen)
    text = "\n".join(screen)
    # rows in their places: a line wider than the terminal would have wrapped and pushed them down
    assert screen[0].startswith(f"twload {server.url}"), text
    assert screen[1].rstrip().endswith("q or Ctrl-C: stop"), text
    assert screen[2].startswith("requests/s now "), text
    now = re.search(r"requests/s now ([\d,]+)", text).group(1)
    shown = [s for s in samples if f"{s['rps']:,.0f}" == now]
    assert shown, f"requests/s {now} on screen is no second's in samples.jsonl"
    last_1s = re.search(r"^last 1s +(\S+) +(\S+) +(\S+)", text, re.M)
    p50, p99 = last_1s.group(1), last_1s.group(3)
    assert any(p50 == short_us(s["latency_us"]["p50"]) and p99 == short_us(s["latency_us"]["p99"]) for s in shown), \
        (last_1s.group(0), shown)
    status = number(re.search(r"status 200 ([\d,]+)", text).group(1))
    through = max(s["t"] for s in shown)
    assert sum(s["requests"] for s in samples if s["t"] <= through) <= status <= summary["status"]["200"]
    ports = re.search(r"^ports .* ([\d,]+)/([\d,]+)", text, re.M)
    assert number(ports.group(2)) == summary["budget"]["ports"]
    assert re.search(r"^wall +none predicted", text, re.M)  # keep-alive: nothing close to the wall

    after = "\n".join(session.screen())
    assert "Requests/sec:" in after and "q or Ctrl-C: stop" not in after  # the screen gave way to the summary
    assert f"{summary['requests']} requests in" in after


def test_q_stops_the_run_like_ctrl_c(twload_server, tmux, tmp_path):
    server = twload_server()
    out = tmp_path / "run"
    session = tmux(80, 24, twload("run", server.url, "-d", "60s", "-c", "4", "-w", "2", "--out", str(out)))
    samples_in(out, 1)
    session.keys("q")
    assert session.exit_code(30) == 130
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] == "SIGINT" and summary["duration_s"] < 30 and summary["requests"] > 0
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert sum(s["requests"] for s in samples) == summary["requests"]
    assert (out / "plan.json").exists()
    assert "stopped early by SIGINT" in "\n".join(session.screen())


def test_no_tui_keeps_the_one_line(twload_server, tmux, tmp_path):
    server = twload_server()
    out = tmp_path / "run"
    session = tmux(80, 24, twload("run", server.url, "-d", "3s", "-c", "2", "-w", "1", "--no-tui", "--out", str(out)))
    samples_in(out, 1)
    time.sleep(0.5)
    screen = [line for line in session.screen() if line.strip()]
    assert session.exit_code(30) == 0
    assert len(screen) == 1 and "req/s" in screen[0] and "requests/s now" not in screen[0]


def test_without_a_terminal_the_output_is_as_before(twload_server, tmp_path):
    server = twload_server()
    result = run_cli("run", server.url, "-d", "1s", "-c", "2", "-w", "1", "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\x1b" not in result.stderr  # no screen, no colours
    assert result.stdout.startswith("twload @ ")
    assert result.stderr.strip() == f"results: {tmp_path / 'run'}"


def test_watch_full_screen_until_q(tmux, tmp_path):
    session = tmux(80, 24, twload("watch", "--interval", "200ms"))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and "client TIME_WAIT" not in "\n".join(session.screen()):
        time.sleep(0.1)
    screen = session.screen()
    assert screen[0].startswith("twload watch TCP sockets"), screen
    assert len(screen) <= 24 and all(len(line) <= 80 for line in screen)
    session.keys("q")
    assert session.exit_code(10) == 0
    assert os.path.exists(session.exit_file)
