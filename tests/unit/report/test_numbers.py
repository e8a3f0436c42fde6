"""The report's numbers from small run folders: a normal run, a run at the wall, a killed run, two compared."""

from __future__ import annotations

import csv
import io
import re

import pytest

from tests.unit.run_folders import Second, plan_json, summary_of, write_run
from twload.report import numbers
from twload.report.compare_text import render_comparison
from twload.report.csv import render_csv
from twload.report.html import render_html

NORMAL = [
    Second(latencies_us=[100 + i for i in range(200)], connect_us=[50, 60, 70, 80], connections_opened=4,
           time_wait=0),
    Second(latencies_us=[150 + 3 * i for i in range(300)], time_wait=0),
    Second(latencies_us=[120] * 250 + [9000], time_wait=4),
]
# 500 ports, --close fin, tcp_tw_reuse=0: 500 connections in the first second, then only EADDRNOTAVAIL
WALL = [
    Second(latencies_us=[3000] * 500, connect_us=[1000] * 500, connections_opened=500,
           errors={"EADDRNOTAVAIL": 1400}, time_wait=500),
    Second(errors={"EADDRNOTAVAIL": 2100}, time_wait=500),
    Second(errors={"EADDRNOTAVAIL": 2050}, time_wait=500),
]
WALL_FIRST = {"EADDRNOTAVAIL": {"at_s": 0.365, "connection": 507, "worker": 0}}
WALL_BUDGET = {"ports": 500, "reuse_after_s": 60.0, "sustainable_new_conn_per_s": 8.2, "exhausted_at_connection": 501}


def numbers_of(folder) -> dict:
    return numbers.run_numbers(numbers.read_run(folder))


@pytest.fixture
def normal(tmp_path):
    return write_run(tmp_path / "normal", NORMAL, summary=summary_of(NORMAL), plan=plan_json())


@pytest.fixture
def at_wall(tmp_path):
    summary = summary_of(WALL, close="fin", first_errors=WALL_FIRST, budget=WALL_BUDGET, advice=["a", "a", "b"])
    return write_run(tmp_path / "wall", WALL, summary=summary, plan=plan_json(close="fin"))


def test_normal_run_series_follow_the_samples_and_the_log(normal):
    r = numbers_of(normal)
    s = r["series"]
    assert s["t"] == [1, 2, 3]
    assert s["requests"] == [200, 300, 251]
    assert s["connections_opened"] == [4, 0, 0]
    assert s["time_wait"] == [0, 0, 4]
    # second 3: 250 fast responses and one slow one; p99.9 and max see it, p50 does not
    assert s["latency_p50"][2] == 120
    assert s["latency_max"][2] >= 9000 and s["latency_p99_9"][2] >= 9000
    assert s["connect_p99"][0] == 80 and s["connect_p50"][1] is None
    assert r["verdict"]["level"] == "ok"
    assert "751 requests" in r["verdict"]["text"] and "no errors" in r["verdict"]["text"]
    assert r["run"]["url"] == "http://127.0.0.1:8080/" and r["run"]["kernel"] == "6.18.0"
    assert r["context"]["sysctls"]["net.ipv4.tcp_tw_reuse"] == 0


def test_percentiles_missing_from_older_samples_come_from_the_same_seconds_histograms(tmp_path):
    full = numbers_of(write_run(tmp_path / "full", NORMAL, summary=summary_of(NORMAL)))
    short = numbers_of(write_run(tmp_path / "short", NORMAL, summary=summary_of(NORMAL), short_samples=True))
    assert short["series"]["latency_p90"] == full["series"]["latency_p90"]
    assert short["series"]["latency_p99_9"] == full["series"]["latency_p99_9"]
    assert short["series"]["connect_p99"] == full["series"]["connect_p99"]


def test_distribution_is_the_whole_runs_histogram(normal):
    r = numbers_of(normal)
    points = r["distribution"]
    percentiles = [p["percentile"] for p in points]
    values = [p["latency_us"] for p in points]
    assert percentiles == sorted(percentiles) and values == sorted(values)
    assert percentiles[-1] < 100.0  # drawn at 1/(1-q): 100 % has no place on that axis
    assert values[-1] == r["totals"]["latency_us"]["max"]
    # the summary's p99 (the same histogram) lies on the curve, between the steps around 99 %
    p99 = r["totals"]["latency_us"]["p99"]
    below = max(p["latency_us"] for p in points if p["percentile"] <= 99.0)
    above = min(p["latency_us"] for p in points if p["percentile"] >= 99.0)
    assert below <= p99 <= above


def test_run_at_the_wall_says_so_with_the_summarys_numbers(at_wall):
    r = numbers_of(at_wall)
    v = r["verdict"]
    assert v["level"] == "wall"
    # a summary without the run's own sentence gets the same sentence (twload.ports.wall) from the folder
    assert v["text"].startswith(
        "At the port wall from 0.36s, after 500 connections: no free local port towards 127.0.0.1:8080 "
        "(EADDRNOTAVAIL x5550); the budget: 500 ports, each unusable for 60 s after the client closes; ")
    assert "server was not the limit" in v["text"]
    w = r["wall"]
    assert w["first_eaddrnotavail_s"] == 0.365 and w["first_eaddrnotavail_connection"] == 507
    assert w["predicted_connection"] == 501 and w["ports"] == 500 and w["time_wait_peak"] == 500
    assert w["predicted_at_s"] is None  # a closed loop has no rate: the prediction is a connection number
    assert "connection 501" in r["readings"]["ports"] and "connection 507" in r["readings"]["ports"]
    assert r["series"]["errors"]["EADDRNOTAVAIL"] == [1400, 2100, 2050]
    assert r["series"]["latency_p99"][1] is None  # no response in second 2: no latency, not 0
    assert r["series"]["connect_p99"] == [1000, None, None]  # nor a connect time of 0
    assert r["context"]["advice"] == ["a", "b"]  # each advice line once


def test_the_runs_own_wall_line_is_the_verdict(tmp_path):
    line = "ended at the port wall: 500 ports to 127.0.0.1:8080 in TIME_WAIT since 0.37 s"
    summary = summary_of(WALL, close="fin", first_errors=WALL_FIRST, budget=WALL_BUDGET, wall=line)
    r = numbers_of(write_run(tmp_path / "w", WALL, summary=summary))
    assert r["verdict"]["text"].startswith("Ended at the port wall: 500 ports")


def test_killed_run_without_summary_is_rebuilt_from_its_streams(tmp_path):
    folder = write_run(tmp_path / "killed", NORMAL, log="legacy", plan=plan_json(close="rst", connections=8))
    files = numbers.read_run(folder)
    assert files.finished is False
    r = numbers.run_numbers(files)
    assert r["verdict"]["text"].startswith("The run did not finish (no summary.json)")
    assert r["totals"]["requests"] == 751
    assert r["run"]["close"] == "rst" and r["run"]["connections"] == 8  # from plan.json
    assert r["distribution"][-1]["latency_us"] >= 9000  # the legacy latency.hdr log was read
    assert r["series"]["latency_p90"][0] is not None


def test_a_folder_that_is_not_a_run_is_one_clear_error(tmp_path):
    with pytest.raises(numbers.ReportError, match="not a twload run folder"):
        numbers.read_run(tmp_path)
    with pytest.raises(numbers.ReportError, match="not a folder"):
        numbers.read_run(tmp_path / "missing")


def test_two_runs_compared_with_differences_to_the_first(normal, at_wall):
    runs = [numbers_of(normal), numbers_of(at_wall)]
    comparison = numbers.compare(runs)
    rows = {row["figure"]: row for row in comparison["rows"]}
    assert rows["requests"]["values"] == [751, 500]
    assert rows["requests"]["vs_first"] == ["", "-33%"]
    assert rows["errors"]["vs_first"] == ["", "new"]
    assert rows["TIME_WAIT peak"]["values"] == [4, 500] and rows["TIME_WAIT peak"]["vs_first"][1] == "x125"
    assert comparison["readings"]["throughput"].startswith("requests/s: normal 250; wall 167 (-33%)")
    text = render_comparison(comparison)
    assert all(len(line) <= 80 for line in text.splitlines()), text
    assert "A = normal" in text and "B = wall" in text


@pytest.mark.parametrize(("base", "value", "shown"), [(100, 100, "="), (100, 150, "+50%"), (100, 40, "-60%"),
                                                      (0, 0, "="), (0, 5, "new"), (10, 1000, "x100"),
                                                      (None, 3, "")])
def test_difference(base, value, shown):
    assert numbers.difference(base, value) == shown


def test_csv_has_one_row_per_second_per_run(normal, at_wall):
    text = render_csv([numbers_of(normal), numbers_of(at_wall)])
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 6
    assert [r["run"] for r in rows] == ["normal"] * 3 + ["wall"] * 3
    assert rows[3]["error_EADDRNOTAVAIL"] == "1400" and rows[3]["errors"] == "1400"
    assert rows[0]["error_EADDRNOTAVAIL"] == "0"
    assert rows[4]["latency_p99_us"] == ""  # no response that second
    assert rows[2]["latency_p50_us"] == "120" and rows[2]["time_wait"] == "4"


def test_html_is_self_contained_with_a_plot_per_section(normal):
    page = render_html([numbers_of(normal)])
    assert page.count('class="plot"') == 4
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", page)  # nothing to fetch
    assert "Plotly.newPlot" in page and "751 requests" in page


def test_killed_run_with_interval_logs_has_its_percentiles_and_peak(tmp_path):
    r = numbers_of(write_run(tmp_path / "killed", NORMAL, plan=plan_json()))
    assert r["finished"] is False
    assert r["totals"]["latency_us"]["max"] >= 9000 and r["totals"]["latency_us"]["p50"] > 0
    assert r["totals"]["connect_us"]["p99"] == 80
    assert r["wall"]["time_wait_peak"] == 4  # from the samples, as the summary would have said


def test_killed_mid_line_the_report_reads_the_whole_seconds(tmp_path):
    """SIGKILL while the last second was written: samples.jsonl and both interval logs end in a cut
    line. The report is made from the two whole seconds (not "damaged", not a traceback)."""
    folder = write_run(tmp_path / "killed", NORMAL, plan=plan_json())
    for name in ("samples.jsonl", "hdrh.log", "hdrh-connect.log"):
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[:-20])
    r = numbers_of(folder)
    assert r["totals"]["requests"] == 500  # seconds 1 and 2 of NORMAL
    assert r["totals"]["latency_us"]["max"] < 9000  # the third second's 9 ms was in the cut line


def test_log_axis_ticks_are_labelled_in_full():
    from twload.report.html import log_ticks_ms

    assert log_ticks_ms([0.5, 200]) == [0.5, 1, 2, 5, 10, 20, 50, 100, 200]
    assert log_ticks_ms([0.3, 0.4]) == [0.2, 0.3, 0.4, 0.5, 0.6]  # less than a decade: finer steps
    assert log_ticks_ms([None, 0]) == []


def test_a_damaged_file_is_one_clear_error(normal):
    (normal / "summary.json").write_text('{"requests": ')
    with pytest.raises(numbers.ReportError, match="damaged"):
        numbers.read_run(normal)


def test_open_loop_wall_time_is_the_preflights_own(tmp_path):
    budget = WALL_BUDGET | {"exhausted_after_s": 2.25}  # what preflight.budget_block wrote at a planned rate
    summary = summary_of(WALL, close="fin", first_errors=WALL_FIRST, budget=budget, rate_target=200.0)
    r = numbers_of(write_run(tmp_path / "open", WALL, summary=summary))
    assert r["wall"]["predicted_at_s"] == 2.25
    assert "the wall at 2.25 s at the planned rate" in r["readings"]["ports"]


# #36: a --close server run right after a --close fin run towards the same port. The fin run's
# TIME_WAIT is still there at the server run's start; the server run leaves none of its own and
# its connects take over most of the fin run's (tcp_tw_reuse on loopback).
FIN = [Second(latencies_us=[900] * 7000, connections_opened=7000, time_wait=7000, time_wait_found=0,
              time_wait_found_reused=0),
       Second(latencies_us=[900] * 7619, connections_opened=7619, time_wait=14619, time_wait_found=0,
              time_wait_found_reused=0)]
SERVER = [Second(latencies_us=[700] * 9000, connections_opened=9000, time_wait=0, time_wait_found=5564,
                 time_wait_found_reused=9000),
          Second(latencies_us=[700] * 9000, connections_opened=9000, time_wait=0, time_wait_found=500,
                 time_wait_found_reused=14064)]
OWN_KEYS = ("time_wait_at_start", "time_wait_found", "time_wait_found_reused")


@pytest.fixture
def fin_then_server(tmp_path):
    fin = write_run(tmp_path / "fin", FIN, plan=plan_json(close="fin"), summary=summary_of(
        FIN, close="fin", time_wait_at_start=0, time_wait_found=0, time_wait_found_reused=0))
    server = write_run(tmp_path / "server", SERVER, plan=plan_json(close="server"), summary=summary_of(
        SERVER, close="server", time_wait_at_start=14564, time_wait_found=500, time_wait_found_reused=14064))
    return fin, server


def test_a_run_shows_its_own_time_wait_and_what_earlier_connections_left_beside_it(fin_then_server):
    r = numbers_of(fin_then_server[1])
    assert r["wall"]["time_wait_peak"] == 0
    assert r["wall"]["time_wait_at_start"] == 14564 and r["wall"]["time_wait_found_reused"] == 14064
    assert r["series"]["time_wait_found"] == [5564, 500]
    reading = r["readings"]["ports"]
    assert "The run's own client TIME_WAIT towards the target peaked at 0 of 500 ports" in reading
    assert "at its start 14,564 were left by earlier connections; 14,064 of them were reused" in reading
    page = render_html([r])
    assert "client TIME_WAIT, the run&#x27;s own" in page or "client TIME_WAIT, the run's own" in page
    assert "left by earlier connections" in page
    assert "time_wait_found" in render_csv([r]).splitlines()[0]


def test_compared_runs_show_each_runs_own_time_wait_and_what_each_found(fin_then_server):
    comparison = numbers.compare([numbers_of(folder) for folder in fin_then_server])
    rows = {row["figure"]: row for row in comparison["rows"]}
    assert rows["TIME_WAIT peak"]["values"] == [14619, 0] and rows["TIME_WAIT peak"]["vs_first"][1] == "-100%"
    assert rows["TIME_WAIT at start"]["values"] == [0, 14564]
    assert rows["  of them reused"]["values"] == [0, 14064]
    ports = comparison["readings"]["ports"]
    assert ports.startswith("Each run's own TIME_WAIT peak: fin 14,619; server 0 (-100%).")
    assert "At the start of server, 14,564 were left by earlier connections; 14,064 of them were reused." in ports
    text = render_comparison(comparison)
    assert all(len(line) <= 80 for line in text.splitlines()), text
    assert re.search(r"TIME_WAIT at start +0 +14,564", text)


def test_a_killed_run_has_what_it_found_from_plan_json_and_its_last_second(tmp_path):
    plan = plan_json(close="server")
    plan["preflight"]["time_wait_at_start"] = 14564
    r = numbers_of(write_run(tmp_path / "killed", SERVER, plan=plan))
    assert r["wall"]["time_wait_peak"] == 0
    assert r["wall"]["time_wait_at_start"] == 14564 and r["wall"]["time_wait_found_reused"] == 14064


def test_an_older_run_folder_keeps_its_one_time_wait_figure(normal):
    r = numbers_of(normal)
    assert r["wall"]["time_wait_at_start"] is None and r["wall"]["time_wait_found_reused"] is None
    assert r["readings"]["ports"].startswith("Client TIME_WAIT towards the target peaked at 4 of 500 ports;")
    assert "own" not in r["readings"]["ports"]


def test_html_shows_the_targets_slowest_first_and_the_destinations(tmp_path):
    def lat(p50: int, p99: int) -> dict:
        return {"p50": p50, "p90": p99, "p99": p99, "p99_9": p99, "max": p99, "mean": float(p50)}

    targets = [{"name": "GET http://127.0.0.1:8081/fast", "requests": 500, "status": {"200": 500}, "errors": {},
                "latency_us": lat(90, 200)},
               {"name": "slow-search", "requests": 251, "status": {"200": 250}, "errors": {"timeout": 1},
                "latency_us": lat(4000, 9000)}]
    dests = [{"destination": "127.0.0.1:8081", "connections_opened": 3, "ports_in_use_at_end": 3,
              "time_wait_at_end": 2, "budget": {"sustainable_new_conn_per_s": 470.5}},
             {"destination": "127.0.0.1:8082", "connections_opened": 1}]
    folder = write_run(tmp_path / "t", NORMAL, summary=summary_of(NORMAL, targets=targets, destinations=dests),
                       plan=plan_json())
    page = render_html([numbers_of(folder)])
    section = page[page.index("7. Targets"):]
    assert section.index("slow-search") < section.index("GET http://127.0.0.1:8081/fast")  # slowest first
    assert "9.00 ms" in section and "<td class=n>1</td>" in section  # its p99, its one error
    assert section.index("127.0.0.1:8081</td>") < section.index("127.0.0.1:8082</td>")  # the file's order
    assert "470 new connections/s" in section or "471 new connections/s" in section
    assert "7. Targets" not in render_html([numbers_of(write_run(tmp_path / "n", NORMAL, summary=summary_of(NORMAL),
                                                                  plan=plan_json()))])
