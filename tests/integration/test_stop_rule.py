"""The stop rule: every request written yields one result, even when the run ends first (on
http:// and on https://)."""

from tests.integration.backends import over_tls
from twload.engine.supervisor import run_to_folder
from twload.kernel.resolve import parse_target
from twload.plan import Plan


def silent(conn, stopped) -> None:
    """Read the request, never answer (until the peer is closed)."""
    conn.settimeout(0.2)
    while not stopped.is_set():
        try:
            if not conn.recv(4096):
                return
        except TimeoutError:
            continue


def test_requests_without_response_at_the_end_are_abandoned_at_stop(raw_peer, tmp_path, scheme, tls_certs):
    peer = raw_peer(over_tls(silent, tls_certs) if scheme == "https" else silent)
    url = f"{scheme}://127.0.0.1:{peer.port}/"
    plan = Plan(target=parse_target(url), url=url, duration_s=1.0, connections=4, workers=1,
                timeout_s=30.0, cacert=str(tls_certs.ca) if scheme == "https" else None)
    summary = run_to_folder(plan, tmp_path / "run")
    assert summary["requests"] == 0
    # one request per connection was written and never answered: each is counted once
    assert summary["errors"] == {"abandoned_at_stop": 4}
