"""The API's records and its argument handling that need no target: simulate, doctor without a URL,
read_run over a written folder, the errors, the `twload run` line a call records."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import pytest

import twload
from tests.unit.run_folders import Second, plan_json, summary_of, write_run
from twload.api.runs import _targets_text, command_line
from twload.results import redact_command
from twload.sim.run import run_scenario


def test_simulate_returns_the_command_lines_document_typed():
    result = twload.simulate("client-close-exhaustion", ports=10, rate=1, duration=15)
    assert result.to_dict() == run_scenario("client-close-exhaustion", {"ports": "10", "rate": "1", "duration": "15"})
    assert (result.attempted, result.established, result.failed) == (15, 10, {"EADDRNOTAVAIL": 5})
    assert repr(result) == ("SimResult(client-close-exhaustion on 6.x: 10/15 established, failed: EADDRNOTAVAIL 5, "
                            "first failure at 10 s)")


def test_simulate_takes_booleans_and_the_kernel_as_the_command_line_does():
    on = twload.simulate("tw-reuse-lb-no-timestamps", server_timestamps=True)
    off = twload.simulate("tw-reuse-lb-no-timestamps", server_timestamps=False)
    assert on.params["server_timestamps"] is True and off.params["server_timestamps"] is False
    assert twload.simulate("ts-offsets-4.10", kernel="4.4").kernel == "4.4"


@pytest.mark.parametrize("call, message", [
    (lambda: twload.simulate("nope"), "unknown scenario 'nope': see `twload simulate list`"),
    (lambda: twload.simulate("tw-reuse", bogus=1), "unknown parameter 'bogus' for tw-reuse"),
    (lambda: twload.simulate("tw-reuse", server_timestamps="maybe"), "server_timestamps takes on/off"),
])
def test_simulate_mistakes_are_plan_errors(call, message):
    with pytest.raises(twload.PlanError) as caught:
        call()
    assert str(caught.value).startswith(message)


def test_simulate_says_what_the_command_says():
    cli = subprocess.run([sys.executable, "-m", "twload", "simulate", "run", "tw-reuse", "--set", "ports=20",
                          "--json"], capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout) == twload.simulate("tw-reuse", ports=20).to_dict()


def test_doctor_without_a_target_reads_this_host():
    found = twload.doctor(close="fin", rate=100, connections=10)
    assert found.url is None and found.target is None
    assert found.to_dict()["target"] is None
    assert [f["id"] for f in found.to_dict()["findings"]] == [f.id for f in found.findings]
    assert found.ok == (not any(f.level == "problem" for f in found.findings))
    assert repr(found).startswith(f"Diagnosis(kernel {found.kernel.kernel_release}, no target, close=fin: ")


@pytest.mark.parametrize("kwargs, message", [
    ({"close": "nope"}, "--close must be one of keepalive, fin, server, rst, not 'nope'"),
    ({"connections": 0}, "--source needs at least one address, --connections at least 1, --rate positive"),
    ({"source": "10.0.0.9-10.0.0.1"}, "bad --source '10.0.0.9-10.0.0.1'"),
])
def test_doctor_mistakes_are_plan_errors(kwargs, message):
    with pytest.raises(twload.PlanError) as caught:
        twload.doctor(**kwargs)
    assert str(caught.value).startswith(message)


def test_doctor_refuses_a_url_without_a_scheme_before_reading_anything():
    with pytest.raises(twload.PlanError, match="give a scheme"):
        twload.doctor("127.0.0.1:8080")


def test_read_run_gives_the_summary_samples_and_histograms(tmp_path):
    seconds = [Second(latencies_us=[100, 200, 300]), Second(latencies_us=[400], errors={"ECONNRESET": 1})]
    folder = write_run(tmp_path / "run", seconds, summary=summary_of(seconds), plan=plan_json(url="http://h/"))
    run = twload.read_run(folder)
    assert run.finished and run.folder == folder
    assert run.summary.to_dict() == json.loads((folder / "summary.json").read_text())
    assert [s["t"] for s in run.samples] == [1, 2]
    assert sorted(run.latency) == [1, 2] and run.histogram().get_total_count() == 4
    assert run.histogram("latency").get_max_value() >= 400
    assert run.to_dict()["summary"] == run.summary.to_dict()
    assert repr(run).startswith(f"Run({folder}, 2 s, finished: Summary(")
    with pytest.raises(ValueError, match="latency or connect"):
        run.histogram("p99")


def test_read_run_of_a_killed_run_rebuilds_its_summary(tmp_path):
    seconds = [Second(latencies_us=[100, 200])]
    run = twload.read_run(write_run(tmp_path / "run", seconds, plan=plan_json(url="http://h/")))
    assert not run.finished and run.summary.rebuilt_from_samples and run.summary.requests == 2
    assert "unfinished, rebuilt" in repr(run)


def test_read_run_of_something_else_is_one_line(tmp_path):
    with pytest.raises(twload.RunFolderError, match="is not a twload run folder"):
        twload.read_run(tmp_path)
    with pytest.raises(twload.RunFolderError, match="is not a folder"):
        twload.read_run(tmp_path / "missing")


def test_summary_repr_names_the_key_figures():
    summary = twload.Summary(url="http://h/", close="fin", requests=10, rps=5.0, errors={"ECONNRESET": 2},
                             latency_us=twload.Percentiles(p50=1500, p99=2_500_000))
    assert repr(summary) == "Summary(http://h/: requests=10, rps=5, errors=2, p50=1.50ms, p99=2.50s, close=fin)"


def test_the_recorded_command_is_the_twload_run_line_that_does_the_same():
    argv = command_line("http://h/", None, {"connections": 50, "duration": "3s", "close": "fin", "headers":
                                            ["Authorization: Bearer x", "Accept: y"], "open_loop": False,
                                            "workers": None, "thresholds": ["p99<5ms"], "body": b"\x00\x01"})
    assert argv == ["twload", "run", "http://h/", "--duration", "3s", "--close", "fin", "-H",
                    "Authorization: Bearer x", "-H", "Accept: y", "--threshold", "p99<5ms", "--body", "<2 bytes>"]
    assert "Authorization: <redacted, 8 bytes>" in redact_command(argv)  # plan.json holds it redacted


def test_a_list_of_targets_becomes_a_request_file():
    text = _targets_text(["http://h/a", "POST http://h/b\nX-A: 1"], "http")
    assert text == b"GET http://h/a\n\nPOST http://h/b\nX-A: 1\n"
    assert _targets_text(['{"method": "GET", "url": "http://h/"}'], "json") == b'{"method": "GET", "url": "http://h/"}\n'


@pytest.mark.parametrize("kwargs, message", [
    ({"close": "nope"}, "--close must be one of keepalive, fin, server, rst, not 'nope'"),
    ({"duration": "soon"}, "bad duration 'soon': use e.g. 10s, 1m, 500ms"),
    ({"connections": 0}, "--connections must be at least 1"),
    ({"thresholds": ["p99<"]}, "bad threshold 'p99<'"),
    ({"body": "x", "headers": ["no colon"]}, "bad header 'no colon'"),
])
def test_run_mistakes_are_the_command_lines_plan_errors(kwargs, message):
    # 127.0.0.1:9 (discard): nothing is sent, the plan is refused before any connection
    with pytest.raises(twload.PlanError) as caught:
        twload.run("http://127.0.0.1:9/", **kwargs)
    assert str(caught.value).startswith(message)


def test_a_url_without_a_scheme_is_refused_as_the_command_line_refuses_it():
    cli = subprocess.run([sys.executable, "-m", "twload", "run", "127.0.0.1:9"], capture_output=True, text=True,
                         timeout=60)
    assert cli.returncode == 2
    with pytest.raises(twload.PlanError) as caught:
        twload.run("127.0.0.1:9")
    assert cli.stderr.strip() == f"twload: {caught.value}"


def test_importing_a_room_does_not_import_the_api():
    code = "import sys, twload.plan, twload.engine.worker; print('twload.api' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
    code = "import sys, twload; twload.run; print('twload.api' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "True", out.stderr


def test_the_root_package_lists_the_api():
    import twload.api

    assert set(twload.__all__) == set(twload.api.__all__) | {"__version__"}
    for name in twload.api.__all__:
        if name in ("doctor", "serve"):  # the root's own (their rooms share the names): the same parameters
            ours, api = inspect.signature(getattr(twload, name)), inspect.signature(getattr(twload.api, name))
            assert ours.parameters == api.parameters, name
        else:
            assert getattr(twload, name) is getattr(twload.api, name)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        twload.nope  # noqa: B018


def test_run_interrupted_is_a_keyboard_interrupt_that_pickles_whole(tmp_path):
    import pickle

    summary = twload.Summary(url="http://h/", interrupted="SIGINT", requests=3)
    caught = pickle.loads(pickle.dumps(twload.RunInterrupted(summary, tmp_path)))
    assert isinstance(caught, KeyboardInterrupt)
    assert (caught.summary, caught.folder) == (summary, tmp_path)
    assert str(caught).startswith(f"the run was interrupted (SIGINT); partial results in {tmp_path}: Summary(")


def test_run_cancelled_is_a_cancelled_error_that_pickles_whole(tmp_path):
    import asyncio
    import pickle

    summary = twload.Summary(url="http://h/", interrupted="SIGINT", requests=3)
    caught = pickle.loads(pickle.dumps(twload.RunCancelled(summary, tmp_path)))
    assert isinstance(caught, asyncio.CancelledError)
    assert (caught.summary, caught.folder) == (summary, tmp_path)
