"""twload.run() against the embedded target: the summary and the run folder as the command line makes
them, from a script, a coroutine, another thread; Ctrl-C and `stop` give the partial summary."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import twload
from tests.conftest import free_port, run_cli
from twload.serve.embedded import read_first_line

QUICK = {"connections": 2, "workers": 1}


def test_run_returns_the_summary_its_folder_holds(twload_server, tmp_path):
    server = twload_server()
    out = tmp_path / "run"
    summary = twload.run(server.url, requests=300, out=out, **QUICK)
    assert isinstance(summary, twload.Summary)
    assert summary.requests == 300 and summary.errors == {}
    assert server.stop() == 300  # the server's own count: each request sent once
    assert summary.to_dict() == json.loads((out / "summary.json").read_text())
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert stat.S_IMODE((out / "summary.json").stat().st_mode) == 0o600
    plan = json.loads((out / "plan.json").read_text())
    assert plan["command"] == ["twload", "run", server.url, "--connections", "2", "--requests", "300", "--workers",
                               "1", "--out", str(out)]
    assert repr(summary).startswith(f"Summary({server.url}: requests=300, rps=")


def test_the_api_and_the_command_line_plan_the_same_run(twload_server, tmp_path):
    server = twload_server()
    proc = run_cli("run", server.url, "-n", "200", "-c", "3", "-w", "1", "--close", "fin", "--json",
                   "--out", str(tmp_path / "cli"))
    assert proc.returncode == 0, proc.stderr
    summary = twload.run(server.url, requests=200, connections=3, workers=1, close="fin", out=tmp_path / "api")
    cli = json.loads(proc.stdout)
    assert set(summary.to_dict()) == set(cli)
    assert (summary.requests, summary.close, summary.connections) == (cli["requests"], "fin", 3)
    plans = [json.loads((tmp_path / name / "plan.json").read_text()) for name in ("cli", "api")]
    assert plans[0]["plan"] == plans[1]["plan"]  # same defaults: every field of the plan alike


def test_runs_without_out_each_claim_a_private_folder(twload_server, tmp_path, monkeypatch):
    server = twload_server()
    monkeypatch.chdir(tmp_path)
    first = twload.run(server.url, requests=20, **QUICK)
    second = twload.run(server.url, requests=20, **QUICK)
    folders = sorted((tmp_path / "twload-runs").iterdir())
    assert len(folders) == 2  # never the same folder, even within one second
    for folder, summary in zip(folders, (first, second), strict=True):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert json.loads((folder / "summary.json").read_text()) == summary.to_dict()


def test_a_folder_that_holds_a_run_is_refused_before_any_request(twload_server, tmp_path):
    server = twload_server()
    twload.run(server.url, requests=10, out=tmp_path / "run", **QUICK)
    with pytest.raises(twload.RunFolderError, match="already holds a run"):
        twload.run(server.url, requests=10, out=tmp_path / "run", **QUICK)
    assert server.stop() == 10


def test_an_unreachable_target_is_a_run_error_with_the_command_lines_line(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/"  # nothing listens there
    proc = run_cli("run", url, "-n", "10", "-c", "1", "-w", "1", "-q", "--out", str(tmp_path / "cli"))
    assert proc.returncode == 1
    with pytest.raises(twload.RunError) as caught:
        twload.run(url, requests=10, out=tmp_path / "api", **QUICK)
    assert f"twload: {caught.value}" in proc.stderr


def test_a_list_of_targets_is_a_request_file(twload_server, tmp_path):
    server = twload_server()
    summary = twload.run([f"{server.url}a", f"GET {server.url}b"], requests=40, out=tmp_path / "run", **QUICK)
    assert summary.targets is not None
    assert {row["name"]: row["requests"] for row in summary.targets} == {f"GET {server.url}a": 20,
                                                                       f"GET {server.url}b": 20}


def test_thresholds_are_judged_into_the_summary(twload_server, tmp_path):
    server = twload_server()
    summary = twload.run(server.url, requests=50, thresholds=["p99<10s", "rps>1000000000"], out=tmp_path / "run",
                         **QUICK)
    assert [(t["threshold"], t["passed"]) for t in summary.thresholds or ()] == [("p99<10s", True),
                                                                                ("rps>1000000000", False)]


def test_a_running_event_loop_in_the_callers_thread_is_no_obstacle(twload_server, tmp_path):
    server = twload_server()

    async def in_a_coroutine() -> twload.Summary:
        asyncio.get_running_loop()  # as in a notebook cell, or any async code
        return twload.run(server.url, requests=30, out=tmp_path / "sync", **QUICK)

    async def in_a_thread() -> twload.Summary:
        return await asyncio.to_thread(twload.run, server.url, requests=30, out=tmp_path / "thread", **QUICK)

    assert asyncio.run(in_a_coroutine()).requests == 30
    assert asyncio.run(in_a_thread()).requests == 30  # outside the main thread: no signal handler is set


def test_stop_from_another_thread_ends_the_run_with_its_partial_summary(twload_server, tmp_path):
    server = twload_server()
    stop = threading.Event()

    def after_the_first_second(row: dict) -> None:
        stop.set()

    with ThreadPoolExecutor(1) as pool:  # the run in a worker thread, as a web app or a test runner may do
        future = pool.submit(twload.run, server.url, duration="60s", out=tmp_path / "run",
                             on_second=after_the_first_second, stop=stop, **QUICK)
        caught = future.exception(timeout=40)
    assert isinstance(caught, twload.RunInterrupted) and isinstance(caught, KeyboardInterrupt)
    assert caught.summary.interrupted == "SIGINT" and caught.summary.requests > 0
    assert caught.summary.duration_planned_s == 60.0
    assert caught.folder == tmp_path / "run"
    assert json.loads((caught.folder / "summary.json").read_text()) == caught.summary.to_dict()


def test_arun_leaves_the_loop_free_and_stops_the_run_when_cancelled(twload_server, tmp_path):
    server = twload_server()

    async def main() -> tuple[twload.Summary, int, twload.RunCancelled]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        summary = await twload.arun(server.url, requests=200, out=tmp_path / "whole", **QUICK)
        loop, first = asyncio.get_running_loop(), asyncio.Event()
        task = asyncio.create_task(twload.arun(server.url, duration="60s", out=tmp_path / "cut", **QUICK,
                                               on_second=lambda row: loop.call_soon_threadsafe(first.set)))
        await first.wait()
        task.cancel()  # what asyncio.run() does to its task on Ctrl-C
        try:
            await task
        except twload.RunCancelled as exc:  # a CancelledError: the task ends cancelled, with what was measured
            cut = exc
        ticker.cancel()
        return summary, ticks, cut

    summary, ticks, cut = asyncio.run(main())
    assert summary.requests == 200
    assert ticks > 0  # the loop ran other tasks while the run went on
    assert cut.summary.interrupted == "SIGINT" and cut.summary.requests > 0 and cut.folder == tmp_path / "cut"
    assert json.loads((cut.folder / "summary.json").read_text()) == cut.summary.to_dict()


SCRIPT = """
import asyncio
import signal
import sys

import twload

if __name__ == "__main__":
    # Ctrl-C as a terminal sends it to a script started there. Started in the background (`cmd &` in a
    # shell without job control, as a CI job may be), a process inherits SIGINT ignored, Python keeps
    # it so, and asyncio.run() then installs no handler of its own (asyncio/runners.py).
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def seen(row):
        print("second", row["t"], flush=True)

    async def in_async_code():
        await twload.arun(sys.argv[1], duration="60s", connections=2, workers=1, out=sys.argv[2], on_second=seen)

    try:
        if sys.argv[4] == "async":  # asyncio.run() cancels its task on Ctrl-C: arun stops the run
            asyncio.run(in_async_code())
        else:
            twload.run(sys.argv[1], duration="60s", connections=2, workers=1, out=sys.argv[2], on_second=seen)
    except twload.RunInterrupted as exc:
        if sys.argv[3] == "raise":
            raise
        print("interrupted", exc.summary.interrupted, exc.summary.requests, exc.folder, flush=True)
    except KeyboardInterrupt:  # asyncio.run()'s own, once arun stopped the run: the folder has the summary
        print("interrupted under asyncio.run", flush=True)
"""


def interrupt_script(url: str, tmp_path, caught: bool, how: str, interrupt) -> tuple[subprocess.Popen, str, str]:
    """SCRIPT run against url until its first second, then `interrupt(proc)`; its stdout and stderr
    once it ended (killed if it has not within 30 s)."""
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), url, str(tmp_path / "run"), "catch" if caught else "raise",
                             how], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert read_first_line(proc.stdout, 30).startswith("second "), "no second within 30 s"
        interrupt(proc)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc, stdout, stderr


@pytest.mark.parametrize("caught, how", [(True, "sync"), (False, "sync"), (True, "async")])
def test_ctrl_c_in_a_script_stops_the_run_and_hands_over_the_partial_summary(twload_server, tmp_path, caught, how):
    out = tmp_path / "run"
    # the script's process only: Ctrl-C as the run's own handler sees it
    proc, stdout, stderr = interrupt_script(twload_server().url, tmp_path, caught, how,
                                            lambda proc: os.kill(proc.pid, signal.SIGINT))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] == "SIGINT" and summary["requests"] > 0
    if how == "async":
        assert proc.returncode == 0, stderr
        assert stdout.splitlines()[-1] == "interrupted under asyncio.run"
    elif caught:
        assert proc.returncode == 0, stderr
        assert stdout.splitlines()[-1] == f"interrupted SIGINT {summary['requests']} {out}"
    else:  # uncaught, it ends the script as a KeyboardInterrupt does; CPython exits 1 for a subclass of it
        # (Python/pythonrun.c: run_eval_code_obj marks an unhandled interrupt for the exact type only)
        assert proc.returncode == 1, stderr
        assert "twload.api.runs.RunInterrupted: the run was interrupted (SIGINT)" in stderr


def test_ctrl_c_taken_by_the_runs_thread_still_stops_an_async_run(twload_server, tmp_path):
    """The kernel may hand a process's SIGINT to any of its threads that does not block it. Sent to the
    thread that runs the run (kill() with its thread id: the kernel tries that thread first), the handler
    still runs in the main thread, whose event loop must wake to run it: asyncio.run()'s handler cancels
    arun's task, which stops the run."""

    def to_the_runs_thread(proc: subprocess.Popen) -> None:
        others = [int(tid) for tid in os.listdir(f"/proc/{proc.pid}/task") if int(tid) != proc.pid]
        assert others, "the run goes on in a thread of its own"
        os.kill(max(others), signal.SIGINT)

    proc, stdout, stderr = interrupt_script(twload_server().url, tmp_path, True, "async", to_the_runs_thread)
    assert proc.returncode == 0, stderr
    assert stdout.splitlines()[-1] == "interrupted under asyncio.run"
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["interrupted"] == "SIGINT"


def test_a_script_without_the_main_guard_is_told_what_to_do(twload_server, tmp_path):
    """spawn imports the main script again in each worker: an unguarded call there is refused by name."""
    server = twload_server()
    script = tmp_path / "unguarded.py"
    script.write_text(f"import twload\nprint(twload.run({server.url!r}, requests=5, connections=1, workers=1, "
                      f"out={str(tmp_path / 'run')!r}))\n")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.returncode != 0
    assert "put the call under `if __name__ == \"__main__\":`" in proc.stderr


def test_read_run_reads_what_run_wrote(twload_server, tmp_path):
    server = twload_server()
    summary = twload.run(server.url, duration="1500ms", out=tmp_path / "run", **QUICK)
    run = twload.read_run(tmp_path / "run")
    assert run.finished and run.summary == summary
    assert sum(row["requests"] for row in run.samples) == summary.requests
    assert run.histogram("latency").get_total_count() == summary.requests
    assert run.histogram("connect").get_total_count() == summary.connections_opened


def test_serve_stops_its_server_when_the_block_ends():
    with twload.serve() as url:
        port = int(url.rsplit(":", 1)[1].strip("/"))
        assert url == f"http://127.0.0.1:{port}/"
        socket.create_connection(("127.0.0.1", port), timeout=2).close()  # it listens
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_serve_refuses_a_bad_option_in_one_line():
    with pytest.raises(twload.PlanError, match="bad duration 'soon'"), twload.serve(delay="soon"):
        pass
