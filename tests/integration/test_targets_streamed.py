"""A request file too large to hold is streamed (issue #32, engine/spool.py): compiled as it is read, then
walked by each worker's core a page at a time, in the file's order, round-robin. A recording peer
checks that exactly the file's requests arrive in its order across the pages and around the end of
the file, from a file and from standard input; a file of a few hundred MB runs with each process's
memory far below the file's size (peak RSS read from /proc while it runs)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.integration.peers import RecordingPeer
from twload.engine.spool import SPOOL_OVER

N = SPOOL_OVER + 4_000  # over the threshold, and over four of the core's pages (engine/spool.py PAGE)


@pytest.fixture
def peer():
    p = RecordingPeer()
    yield p
    p.close()


def request_file(url: str, n: int) -> tuple[str, list[str]]:
    """n targets: every 1000th weighted 2, every 7th with a templated id; and the request lines in the
    order one round of the file sends them (a weight is that many in a row when streamed)."""
    parts, cycle = [], []
    for i in range(n):
        weight = 2 if i % 1000 == 999 else 1
        query = "?id={{seq}}" if i % 7 == 0 else ""
        parts.append(f"# name: g{i % 10}\n" + (f"# weight: {weight}\n" if weight > 1 else "")
                     + f"GET {url}items/{i}{query}\nX-N: {i}\n")
        cycle += [f"GET /items/{i} HTTP/1.1"] * weight
    return "\n".join(parts), cycle


def run(tmp_path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "twload", "run", "-q", "--out", str(tmp_path / "run"), *args],
                          input=stdin, capture_output=True, text=True, timeout=240, cwd=tmp_path,
                          env={**os.environ, "COLUMNS": "200"})


@pytest.mark.parametrize("source", ["file", "stdin"])
def test_a_large_file_arrives_in_its_order_across_pages_and_around_its_end(tmp_path, peer, source):
    text, cycle = request_file(peer.url, N)
    sent = len(cycle) + 3_000  # once round the file, and on into its start again
    if source == "file":
        (tmp_path / "t").write_text(text)
        proc = run(tmp_path, "--targets", "t", "-n", str(sent), "-c", "1", "-w", "1")
    else:
        proc = run(tmp_path, "--targets", "-", "-n", str(sent), "-c", "1", "-w", "1", stdin=text)
    assert proc.returncode == 0, proc.stderr
    got = [re.sub(r"\?id=\d+", "", line) for _, line, _, _ in peer.requests]
    assert got == [cycle[i % len(cycle)] for i in range(sent)]
    ids = [int(line.split("id=")[1].split()[0]) for _, line, _, _ in peer.requests if "id=" in line]
    assert len(ids) == len(set(ids)) > 0  # {{seq}} filled per request, unique
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    rows = {row["name"]: row["requests"] for row in summary["targets"]}
    assert list(rows) == [f"g{i}" for i in range(10)] and sum(rows.values()) == sent
    assert summary["targets_page_repeats"] == 0  # one connection: each page was free when its turn came
    plan = json.loads((tmp_path / "run" / "plan.json").read_text())
    assert plan["plan"]["targets"]["count"] == N and plan["plan"]["targets"]["streamed"] is True


def test_a_page_held_by_a_request_in_flight_is_walked_again_and_said(tmp_path):
    """The first request (the first page's first target) is held until 36,000 more have been answered
    on the other connection: the first page cannot be loaded anew while a request of it is in flight,
    so past the second page the core walks the second page again, and the summary and the text
    report say so (the file's order did not hold)."""
    peer = RecordingPeer(hold_first=36_000)
    try:
        text, _ = request_file(peer.url, N)
        (tmp_path / "t").write_text(text)
        proc = subprocess.run([sys.executable, "-m", "twload", "run", "--out", str(tmp_path / "run"), "--targets",
                               "t", "-n", "40000", "-c", "2", "-w", "1"], capture_output=True, text=True,
                              timeout=240, cwd=tmp_path, env={**os.environ, "COLUMNS": "200"})
        assert proc.returncode == 0, proc.stderr
    finally:
        peer.close()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["requests"] == 40_000 and summary["errors"] == {}
    assert summary["targets_page_repeats"] >= 1
    assert f"{summary['targets_page_repeats']} page" in proc.stdout and "walked again" in proc.stdout
    # the second page's targets came round more often than the file's order gives them
    paths = [line.split()[1] for _, line, _, _ in peer.requests]
    second_page = sum(1 for path in paths if 16_384 <= int(path.split("/")[2].split("?")[0]) < 32_768)
    assert second_page > 16_384 + 16  # its 16,384 targets (and their weights) once, and more


@pytest.mark.parametrize("args, words", [
    (["--targets-order", "random"], "--targets-order random draws from the whole file"),
    (["--io", "uring"], "--io uring: a request file over 65,536 targets is streamed on the epoll backend"),
])
def test_what_a_streamed_file_cannot_do_is_one_line_and_sends_nothing(tmp_path, peer, args, words):
    (tmp_path / "t").write_text(request_file(peer.url, N)[0])
    proc = run(tmp_path, "--targets", "t", "-n", "10", *args)
    assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr
    assert peer.connections == 0


def process_tree(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, ppid in parents.items() if ppid in tree} - tree
        tree |= more
        grew = bool(more)
    return sorted(tree)


def peak_rss_kb(pid: int) -> int:
    """VmHWM: the process's peak resident set so far (proc(5))."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


FILE_MB = 300
MEMORY_BOUND_MB = 250  # each process, against a file of FILE_MB MB: held whole it would be several times that


def test_a_file_of_hundreds_of_mb_runs_in_bounded_memory(tmp_path, peer):
    path = tmp_path / "big.txt"
    pad = "x" * 2000
    count = FILE_MB * 2**20 // (len(pad) + 60)
    try:
        with open(path, "w") as f:
            for i in range(count):
                f.write(f"# name: g{i % 10}\nGET {peer.url}i/{i}\nX-Pad: {pad}\n\n")
        assert path.stat().st_size > (FILE_MB - 10) * 2**20
        proc = subprocess.Popen([sys.executable, "-m", "twload", "run", "-q", "--out", str(tmp_path / "run"),
                                 "--targets", str(path), "-n", "40000", "-c", "4", "-w", "2"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path)
        peaks: dict[int, int] = {}
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                for pid in process_tree(proc.pid):
                    peaks[pid] = max(peaks.get(pid, 0), peak_rss_kb(pid))
                time.sleep(0.05)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        _, stderr = proc.communicate(timeout=280)
        done.set()
        watcher.join(5)
        assert proc.returncode == 0, stderr.decode()
        assert len(peer.requests) == 40_000
        summary = json.loads((tmp_path / "run" / "summary.json").read_text())
        assert summary["requests"] == 40_000 and summary["errors"] == {}
        workers = [pid for pid in peaks if pid != proc.pid]
        assert workers, "no worker process was seen"
        worst = max(peaks.values()) / 1024
        assert worst < MEMORY_BOUND_MB, f"peak RSS {worst:.0f} MB (by process: {peaks})"
    finally:
        path.unlink(missing_ok=True)
