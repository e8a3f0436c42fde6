"""--http2 on the compiled core (issue #31 stage 1): h2c against nginx (counts equal its access log)
and hostile HTTP/2 peers (tests/integration/h2_peers.py), each outcome counted by name, the ledger
closed (every request one result), no hang."""

import json

import h2.errors
import pytest

from tests.conftest import NGINX, Nginx, run_cli
from tests.integration.h2_peers import GarbagePeer, GoawayPeer, H2Peer, NoStatusPeer, RstEveryThirdPeer, SilentPeer
from twload.engine.core import available
from twload.engine.supervisor import run_to_folder
from twload.kernel.resolve import parse_target
from twload.plan import Plan

pytestmark = pytest.mark.skipif(not available(), reason="SKIPPED LOUDLY: the compiled core is not built")

# counted by name but no request's result (docs/ARCHITECTURE.md "Every request one result")
OUTSIDE_LEDGER = ("h2_retried_after_goaway", "unsolicited_response")


def results(summary: dict) -> int:
    """Responses plus the errors that are requests' results."""
    errors = {k: v for k, v in summary["errors"].items()
              if k not in OUTSIDE_LEDGER and not k.startswith("h2_goaway_")}
    return summary["requests"] + sum(errors.values())


def run(url, tmp_path, **kw):
    kw.setdefault("timeout_s", 5.0)
    plan = Plan(target=parse_target(url), url=url, workers=1, engine="core", http2=True, **kw)
    return run_to_folder(plan, tmp_path / "run")


@pytest.fixture
def peer():
    peers = []

    def start(cls, *args):
        p = cls(*args)
        peers.append(p)
        return p

    yield start
    for p in peers:
        p.close()


@pytest.fixture
def nginx_h2():
    if NGINX is None:
        pytest.skip("SKIPPED LOUDLY: nginx is not installed (Debian package nginx)")
    server = Nginx(http2=True)
    yield server
    server.stop()


def test_h2c_counts_equal_nginx_log(nginx_h2, tmp_path):
    """-n: every request answered once, as nginx logged it; the connections are the -c asked for,
    well under one per request; the summary carries the HTTP/2 keys."""
    r = run_cli("run", nginx_h2.url, "--http2", "-c", "4", "--streams", "10", "-n", "3000", "-w", "1",
                "--json", "-q", "--out", str(tmp_path / "run"))
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    logged = nginx_h2.quit_and_count()
    assert summary["requests"] == logged
    assert results(summary) == 3000, summary["errors"]
    assert summary["status"] == {"200": 3000}
    assert summary["http2"] is True and summary["streams"] == 10
    # nginx's GOAWAY after keepalive_requests (1000) ends a connection: a new one follows
    assert 4 <= summary["connections_opened"] <= 4 + 3000 // 1000 + 4
    assert summary["http1_ports_needed"] == 3000
    assert "uncounted" not in summary["errors"] and "counted_twice" not in summary["errors"]


@pytest.mark.parametrize("close", ["keepalive", "fin", "rst"])
def test_every_close_strategy_counts_equal_nginx_log(nginx_h2, tmp_path, close):
    """--requests-per-connection ends each connection after its streams (our GOAWAY, then the close the
    strategy says: FIN, or RST under rst); a new one follows. Counts equal nginx's log."""
    summary = run(nginx_h2.url, tmp_path, connections=2, streams=10, requests=500, duration_s=None, close=close,
                  requests_per_connection=50)
    assert summary["requests"] == nginx_h2.quit_and_count() == 500
    assert summary["errors"] == {}
    # 50 streams each, but the last of each slot's connections may carry fewer (the slots share -n)
    assert 10 <= summary["connections_opened"] <= 11


def test_h2c_timed_run_loses_nothing(nginx_h2, tmp_path):
    """A timed run stops with streams in flight: each one nginx answered is counted, once."""
    summary = run(nginx_h2.url, tmp_path, connections=3, streams=20, duration_s=1.0)
    logged = nginx_h2.quit_and_count()
    assert summary["requests"] == logged > 0
    assert set(summary["errors"]) <= {"h2_retried_after_goaway"}, summary["errors"]


def test_text_summary_says_the_ports(nginx_h2, tmp_path):
    r = run_cli("run", nginx_h2.url, "--http2", "-c", "2", "--streams", "5", "-n", "200", "-w", "1", "-q",
                "--out", str(tmp_path / "run"))
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stdout.splitlines() if "HTTP/2:" in x)
    assert "2 connections (ports), 5 streams per connection" in line and "200 ports" in line


def test_rst_stream_on_every_third_is_counted_by_name(peer, tmp_path):
    p = peer(RstEveryThirdPeer)
    summary = run(p.url, tmp_path, connections=2, streams=5, requests=300)
    p.settle()
    assert summary["errors"].get("h2_rst_stream_cancel") == p.reset == 100
    assert summary["requests"] == p.answered == 200
    assert results(summary) == 300


def test_a_response_without_status_is_that_streams_protocol_error(peer, tmp_path):
    p = peer(NoStatusPeer)
    summary = run(p.url, tmp_path, connections=1, streams=4, requests=40)
    p.settle()
    assert summary["errors"] == {"h2_protocol_error": p.malformed} and p.malformed == 20
    assert summary["requests"] == 20
    assert summary["connections_opened"] == 1  # a stream's error, not the connection's
    assert summary["duration_s"] < 5  # ended by its budget: the last reset stream freed its place


def test_a_tiny_initial_window_slows_request_bodies_but_loses_nothing(peer, tmp_path):
    """SETTINGS_INITIAL_WINDOW_SIZE 16: each 1000-byte body goes out 16 bytes per WINDOW_UPDATE (nghttp2
    holds the rest until the peer's update, which the next read brings); no hang, every body whole."""
    p = peer(H2Peer)
    p.window = 16
    summary = run(p.url, tmp_path, connections=2, streams=5, requests=40, method="POST", body=b"x" * 1000)
    p.settle()
    assert summary["requests"] == p.answered == 40 and summary["errors"] == {}
    assert p.body_bytes == 40 * 1000
    assert summary["duration_s"] < 5


def test_goaway_mid_run_retries_what_it_refused(peer, tmp_path):
    """Streams past the GOAWAY's last-stream-id were not processed: retried on a new connection
    (counted), never lost; every request gets one result."""
    p = peer(GoawayPeer)
    summary = run(p.url, tmp_path, connections=1, streams=10, requests=40)
    p.settle()
    assert summary["requests"] == p.answered == 40
    assert results(summary) == 40, summary["errors"]
    assert summary["errors"].get("h2_retried_after_goaway", 0) >= 2 * p.goaways > 0


def test_goaway_with_an_error_is_counted_by_name(peer, tmp_path):
    p = peer(GoawayPeer, h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)
    summary = run(p.url, tmp_path, connections=1, streams=10, requests=12)
    p.settle()
    assert summary["requests"] == p.answered == 12
    assert results(summary) == 12
    assert summary["errors"]["h2_goaway_enhance_your_calm"] == p.goaways > 0


def test_one_concurrent_stream_caps_the_streams(peer, tmp_path):
    """SETTINGS_MAX_CONCURRENT_STREAMS 1: never a second stream at once (the peer's h2 would call it a
    protocol error), and the summary says the server capped --streams."""
    p = peer(H2Peer)
    p.max_streams = 1
    summary = run(p.url, tmp_path, connections=2, streams=10, requests=200)
    p.settle()
    assert p.violations == 0
    assert summary["requests"] == p.answered == 200
    assert summary["errors"] == {}
    assert summary["h2_server_max_streams"] == 1


def test_garbage_after_the_preface_is_a_protocol_error(peer, tmp_path):
    p = peer(GarbagePeer)
    summary = run(p.url, tmp_path, connections=2, streams=10, requests=20)
    assert summary["requests"] == 0
    assert summary["errors"] == {"h2_protocol_error": 20}
    assert "peer_bytes" in summary  # what it sent, said once


def test_client_windows_are_h2loads_not_64k(peer, tmp_path):
    """The client's windows are 2^30 - 1 (h2load's default), not 64 KiB: a large response goes out
    without waiting for WINDOW_UPDATEs."""
    p = peer(H2Peer)
    summary = run(p.url, tmp_path, connections=1, streams=4, requests=20)
    p.settle()
    assert summary["requests"] == 20
    assert p.client_window == 2**30 - 1


def test_streams_never_answered_time_out_and_the_next_ones_go(peer, tmp_path):
    """Each stream has its own --timeout: timed out, it is reset (CANCEL) and the slot's next request
    goes on the same connection; every request gets its one result before the run's end."""
    p = peer(SilentPeer)
    summary = run(p.url, tmp_path, connections=1, streams=2, requests=6, timeout_s=0.3, duration_s=8.0)
    p.settle()
    assert summary["errors"] == {"timeout": 6}
    assert summary["requests"] == 0 and p.requests == 6
    assert summary["duration_s"] < 6  # ended by its budget, not by the duration


def test_open_loop_hands_due_requests_to_free_streams(nginx_h2, tmp_path):
    """--rate: each due request goes to a stream free on an open connection (a new connection only
    when none has one), latency from its intended send time; nginx's count equals ours."""
    summary = run(nginx_h2.url, tmp_path, rate=2000.0, duration_s=1.0, streams=10)
    logged = nginx_h2.quit_and_count()
    assert summary["requests"] == logged
    assert results(summary) == 2000, summary["errors"]
    assert summary["rate_achieved"] > 1000
    # far fewer than one per request; how many depends on the machine: a stall of the loop makes a
    # burst of due requests, and each new connection takes one until the server's SETTINGS come
    assert summary["connections_opened"] < summary["requests"] / 2
    assert summary["service_us"]["p50"] > 0


def test_open_loop_goaway_requeues_with_the_intended_time(peer, tmp_path):
    """Open loop: streams refused by a GOAWAY go on later streams, keeping their intended send times;
    every due request still has one result."""
    p = peer(GoawayPeer)
    summary = run(p.url, tmp_path, rate=300.0, duration_s=1.0, streams=10)
    p.settle()
    assert summary["requests"] == p.answered
    assert results(summary) == 300, summary["errors"]
    assert summary["errors"].get("h2_retried_after_goaway", 0) >= 2 * p.goaways > 0
    # refused ones still waiting for a stream at the stop leave as not_sent (this peer refuses at least
    # 2 of every 5); every other was answered
    assert summary["requests"] + summary["errors"].get("not_sent", 0) == 300
    assert summary["requests"] > 150


def test_against_twload_serve_http2(twload_server, tmp_path):
    """The embedded h2c target: every request it served is counted once, over a handful of connections."""
    server = twload_server("--http2")
    summary = run(server.url, tmp_path, connections=2, streams=10, requests=500, duration_s=None)
    assert summary["requests"] == server.stop() == 500
    assert summary["errors"] == {} and summary["connections_opened"] == 2


def test_twload_serve_http2_close_after_is_a_goaway(twload_server, tmp_path):
    """serve --http2 --close-after N: a GOAWAY after N requests on a connection; the streams past it
    are retried on new connections and every request is answered once."""
    server = twload_server("--http2", "--close-after", "7")
    summary = run(server.url, tmp_path, connections=2, streams=10, requests=200, duration_s=None)
    assert summary["requests"] == server.stop() == 200
    assert results(summary) == 200
    assert summary["connections_opened"] >= 200 // 7
    assert set(summary["errors"]) <= {"h2_retried_after_goaway"}


def test_twload_serve_http2_over_tls(twload_server, certs, tmp_path):
    server = twload_server("--http2", "--tls-cert", str(certs / "good.pem"), "--tls-key", str(certs / "good.key"),
                           "--body-size", "40000")
    summary = run(server.url, tmp_path, connections=2, streams=4, requests=100, duration_s=None,
                  cacert=str(certs / "ca.pem"))
    assert summary["requests"] == server.stop() == 100
    assert summary["errors"] == {}
    assert summary["bytes_in"] > 100 * 40000


@pytest.mark.parametrize("args, words", [
    (["--io", "uring"], "epoll backend"),
    (["--stages", "1s:10"], "--stages only with"),
    (["--engine", "asyncio"], "compiled core"),
    (["--streams", "0"], "--streams must be"),
])
def test_what_http2_does_not_do_yet_is_refused_in_one_line(args, words):
    r = run_cli("run", "http://127.0.0.1:9/", "--http2", "-n", "1", *args)
    assert r.returncode == 2
    assert words in r.stderr and "Traceback" not in r.stderr


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A CA and a certificate for 127.0.0.1 (trustme)."""
    trustme = pytest.importorskip("trustme")
    root = tmp_path_factory.mktemp("certs")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_pem.write_to_path(str(root / "good.key"))
    cert.cert_chain_pems[0].write_to_path(str(root / "good.pem"))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(str(root / "good.pem"), append=True)
    ca.cert_pem.write_to_path(str(root / "ca.pem"))
    return root


@pytest.mark.skipif(NGINX is None, reason="SKIPPED LOUDLY: nginx is not installed (Debian package nginx)")
def test_h2_over_tls_by_alpn_counts_equal_nginx_log(certs, tmp_path):
    server = Nginx(tls=(certs / "good.pem", certs / "good.key"), http2=True)
    try:
        summary = run(server.url, tmp_path, connections=3, streams=10, requests=1500, duration_s=None,
                      cacert=str(certs / "ca.pem"))
        assert summary["requests"] == server.quit_and_count()
        assert results(summary) == 1500, summary["errors"]
        assert summary["status"] == {"200": 1500}
        assert 3 <= summary["connections_opened"] <= 3 + 1500 // 1000 + 3
        assert summary["tls_handshake_us"]["p50"] > 0
    finally:
        server.stop()


def test_https_server_without_h2_is_refused_by_name(twload_server, certs, tmp_path):
    """`twload serve --tls-*` offers http/1.1 alone: no connection runs HTTP/1.1 under --http2's name;
    each is h2_not_negotiated, and the reason is said once."""
    server = twload_server("--tls-cert", str(certs / "good.pem"), "--tls-key", str(certs / "good.key"))
    summary = run(server.url, tmp_path, connections=2, streams=10, requests=20, duration_s=1.0,
                  cacert=str(certs / "ca.pem"))
    assert summary["requests"] == 0
    assert set(summary["errors"]) == {"h2_not_negotiated"}, summary["errors"]
    assert "did not pick h2" in summary["tls_reason"]
