"""An HTTP/2 run's streams and connections in everything it writes (issue #31): the text summary, the HTML
report (its file's text) and samples.jsonl, against nginx capping the streams (http2_max_concurrent_streams)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import NGINX, Nginx, run_cli
from twload.engine.core import available

pytestmark = [pytest.mark.skipif(not available(), reason="SKIPPED LOUDLY: the compiled core is not built"),
              pytest.mark.skipif(NGINX is None, reason="SKIPPED LOUDLY: nginx is not installed (Debian package nginx)")]

CAP = 4  # nginx's SETTINGS_MAX_CONCURRENT_STREAMS, below --streams 10


@pytest.fixture
def capped_nginx():
    server = Nginx(http2=True, server_extra=f"http2_max_concurrent_streams {CAP};")
    yield server
    server.stop()


def test_text_html_and_samples_show_streams_and_connections(capped_nginx, tmp_path):
    out = tmp_path / "run"
    r = run_cli("run", capped_nginx.url, "--http2", "-c", "2", "--streams", "10", "-d", "2s", "-w", "1", "-q",
                "--report", "--out", str(out))
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["requests"] == capped_nginx.quit_and_count() > 0
    assert summary["h2_server_max_streams"] == CAP and summary["streams"] == 10
    opened, ports = summary["connections_opened"], summary["http1_ports_needed"]
    assert ports == summary["requests"]  # a run shorter than TIME_WAIT's 60 s: every request a port

    # the text summary: one line with all four
    line = next(x for x in r.stdout.splitlines() if "HTTP/2:" in x)
    assert f"{opened} connection" in line and f"10 streams per connection (the server capped them at {CAP})" in line
    assert f"would hold {ports} ports" in line

    # the HTML report: its section, table and plot
    html = (out / "report.html").read_text()
    assert "HTTP/2 streams and connections" in html and 'data-plot="http2"' in html
    assert f"the server capped them at {CAP}" in html
    assert "ports the same rate would hold as HTTP/1.1 short connections" in html
    assert f"{summary['requests']:,} requests over {opened:,} connections" in html

    # samples.jsonl: each second's streams and connections
    rows = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert len(rows) >= 2
    assert all(row["streams"] == 10 for row in rows)
    assert all(row["h2_server_max_streams"] == CAP for row in rows if row["requests"])
    assert 1 <= max(row["connections_open"] for row in rows) <= 2  # -c 2: a slot's next after its close
    assert 0 < max(row["streams_open"] for row in rows) <= 2 * CAP  # never past the server's cap
    assert rows[-1]["http1_ports_needed"] == ports == sum(row["requests"] for row in rows)
    assert [row["http1_ports_needed"] for row in rows] == sorted(row["http1_ports_needed"] for row in rows)


@pytest.mark.parametrize("io", ["auto", "epoll"])
def test_io_auto_runs_http2_on_epoll_and_the_summary_says_so(capped_nginx, tmp_path, io):
    """--io auto never fails for --http2: it picks epoll, as for https://, and the summary's io says so."""
    r = run_cli("run", capped_nginx.url, "--http2", "--io", io, "-c", "2", "-n", "200", "-w", "2", "--json", "-q",
                "--out", str(tmp_path / "run"))
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["io"] == "epoll"
    assert summary["requests"] == capped_nginx.quit_and_count() == 200 and summary["errors"] == {}


def test_io_uring_with_http2_is_refused_in_one_line():
    r = run_cli("run", "http://127.0.0.1:9/", "--http2", "--io", "uring", "-n", "1")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--http2 runs on the epoll backend" in r.stderr and "--io epoll or auto" in r.stderr
