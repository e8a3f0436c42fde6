"""--http2 with each --close strategy (issue #31): counts equal nginx's access log over h2c and h2 (TLS),
and the TIME_WAIT lands where the strategy says, measured on the kernel and in the summary.

Each connection carries --requests-per-connection 50 streams, then:
  keepalive, fin  the client ends it: our GOAWAY, then FIN: the client keeps the TIME_WAIT
  server          the server ends it (nginx `keepalive_requests 50`: its GOAWAY after the 50th, then its
                  close); the client reads to EOF and sends no GOAWAY: the server keeps the TIME_WAIT
  rst             SO_LINGER {1,0}: RST, no TIME_WAIT anywhere
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import NGINX, Nginx, run_cli, time_wait_until
from twload.engine.core import available

pytestmark = [pytest.mark.skipif(not available(), reason="SKIPPED LOUDLY: the compiled core is not built"),
              pytest.mark.skipif(NGINX is None, reason="SKIPPED LOUDLY: nginx is not installed (Debian package nginx)")]

# One slot: its connections follow each other, each carries 50 streams (10 at once). With more slots
# sharing -n, two slots' last connections may carry fewer, and under server nginx never ends those: the
# client does at the end, as keepalive's.
N, PER_CONNECTION, SLOTS = 500, 50, 1
CONNECTIONS = N // PER_CONNECTION
# who keeps the TIME_WAIT of each connection: (client, server)
TIME_WAIT_SIDE = {"keepalive": ("client", 0), "fin": ("client", 0), "server": (0, "server"), "rst": (0, 0)}


def run_h2(url: str, folder, close: str, *extra: str) -> dict:
    r = run_cli("run", url, "--http2", "-c", str(SLOTS), "--streams", "10", "-n", str(N), "--requests-per-connection",
                str(PER_CONNECTION), "--close", close, "-w", "1", "--json", "-q", "--out", str(folder), *extra)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    return json.loads(r.stdout)


@pytest.mark.parametrize("scheme", ["h2c", "h2"])
@pytest.mark.parametrize("close", ["keepalive", "fin", "server", "rst"])
def test_every_close_strategy_counts_equal_nginx_log_and_keeps_time_wait_where_it_says(
        tls_certs, tmp_path, scheme, close):
    # under server the server ends each connection at its 50th stream; else the client does at its own 50th
    extra = f"keepalive_requests {PER_CONNECTION};" if close == "server" else ""
    server = Nginx(http2=True, tls=tls_certs.pair("good") if scheme == "h2" else None, server_extra=extra)
    try:
        summary = run_h2(server.url, tmp_path / "run", close,
                         *(["--cacert", str(tls_certs.ca)] if scheme == "h2" else []))
        opened = summary["connections_opened"]
        client, side = TIME_WAIT_SIDE[close]
        want = {"client": opened if client else 0, "server": opened if side else 0}
        tw = time_wait_until(server.port, lambda tw: tw == want)
        logged = server.quit_and_count()
    finally:
        server.stop()
    assert summary["requests"] == logged == N
    assert summary["errors"] == {}, summary["errors"]  # no no_server_close, no retried stream
    assert summary["status"] == {"200": N}
    assert opened == CONNECTIONS
    assert tw == want
    # the summary's own reading of the client's TIME_WAIT says the same side
    if client:
        assert 0 < summary["time_wait_peak"] <= opened
    else:
        assert summary["time_wait_peak"] == 0


def test_server_close_against_twload_serve_http2_leaves_time_wait_on_the_server(twload_server, tmp_path):
    """The embedded h2c target: --close-after 50 is its GOAWAY after the 50th stream, then its close."""
    server = twload_server("--http2", "--close-after", str(PER_CONNECTION))
    summary = run_h2(server.url, tmp_path / "run", "server")
    opened = summary["connections_opened"]
    tw = time_wait_until(server.port, lambda tw: tw == {"client": 0, "server": opened})
    assert summary["requests"] == server.stop() == N
    assert summary["errors"] == {}, summary["errors"]
    assert opened == CONNECTIONS
    assert tw == {"client": 0, "server": opened}
    assert summary["time_wait_peak"] == 0


def test_server_close_that_never_comes_is_no_server_close(tmp_path):
    """--close server over h2 and a server that keeps the connection open (nginx's keepalive_requests
    1000 > 50): each connection done with its streams waits --timeout for the close, then says so by
    name, outside the ledger; every request still has its one answer."""
    server = Nginx(http2=True)
    try:
        r = run_cli("run", server.url, "--http2", "-c", "1", "--streams", "5", "-n", "20",
                    "--requests-per-connection", "10", "--close", "server", "--timeout", "0.5", "-w", "1",
                    "--json", "-q", "--out", str(tmp_path / "run"))
        assert r.returncode == 0, r.stderr
        summary = json.loads(r.stdout)
        logged = server.quit_and_count()
    finally:
        server.stop()
    assert summary["requests"] == logged == 20
    assert summary["errors"] == {"no_server_close": 2}
