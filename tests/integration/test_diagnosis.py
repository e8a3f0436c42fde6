"""Diagnosis at the wall, on loopback: connect failures back off, errors are named and bounded."""

from __future__ import annotations

import json

from tests.conftest import free_port, run_cli
from tests.integration.backends import over_tls
from twload.engine.supervisor import run_to_folder
from twload.kernel.resolve import parse_target
from twload.metrics import escaped
from twload.plan import Plan


def test_a_refusing_target_gets_tens_of_connects_per_slot_not_thousands(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/"  # nothing listens: every connect is ECONNREFUSED at once
    plan = Plan(target=parse_target(url), url=url, connections=20, workers=1, duration_s=1.0)
    summary = run_to_folder(plan, tmp_path / "run")
    refused = summary["errors"]["ECONNREFUSED"]
    # 20 slots, each waiting up to 100 ms between tries: about 10 a second each after a short
    # ramp. Retrying after a fixed 1 ms gave thousands; spinning, tens of thousands.
    assert 20 <= refused <= 20 * 25
    assert summary["requests"] == 0


BANNER = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"  # 40 bytes, then binary: 64 are kept


def ssh_banner(conn, stopped) -> None:
    conn.sendall(BANNER + bytes(range(40)))
    while not stopped.is_set() and conn.recv(4096):
        pass


def test_a_peer_that_does_not_speak_http_is_shown_once_escaped(raw_peer, tmp_path):
    peer = raw_peer(ssh_banner)
    proc = run_cli("run", peer.url, "-d", "1s", "-c", "2", "-w", "1", "--out", str(tmp_path / "run"),
                   cwd=str(tmp_path))
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 1  # nothing succeeded
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["peer_bytes"] == escaped(BANNER + bytes(range(24)))
    assert summary["peer_bytes"].startswith("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\\r\\n\\x00\\x01")
    assert summary["requests"] == 0 and summary["errors"]["protocol_error"] >= 1
    assert proc.stdout.count("SSH-2.0-OpenSSH_9.2p1") == 1
    assert "Latency  (none: no response completed)" in proc.stdout
    assert "0us" not in proc.stdout.split("Connect")[0]  # no latency row made of zeros


def test_bytes_from_the_network_are_escaped():
    assert escaped(b"\x00\xffab\r\n\\") == "\\x00\\xffab\\r\\n\\\\"


def test_the_port_probe_counts_every_client_socket_towards_the_target():
    import socket

    from twload.engine.preflight import PortProbe

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", free_port()))
        listener.listen(8)
        port = listener.getsockname()[1]
        url = f"http://127.0.0.1:{port}/"
        probe = PortProbe(Plan(target=parse_target(url), url=url))
        assert probe() == 0 and probe.in_use == 0  # the listener holds no client port
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        accepted = [listener.accept()[0] for _ in clients]
        try:
            assert probe() == 0 and probe.in_use == 3  # the accepted ends are the server's, not counted
        finally:
            for s in clients + accepted:
                s.close()


def test_max_errors_stops_the_run_and_says_so(raw_peer, tmp_path, scheme, tls_certs):
    peer = raw_peer(over_tls(ssh_banner, tls_certs) if scheme == "https" else ssh_banner)
    tls = ("--cacert", str(tls_certs.ca)) if scheme == "https" else ()
    proc = run_cli("run", f"{scheme}://127.0.0.1:{peer.port}/", "-d", "30s", "-c", "2", "-w", "1", "--max-errors", "5",
                   *tls, "--out", str(tmp_path / "run"), cwd=str(tmp_path))
    assert proc.returncode == 1, proc.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["stopped_by"] == "max_errors" and summary["max_errors"] == 5
    assert summary["errors"]["protocol_error"] > 5
    assert summary["duration_s"] < 30  # stopped, not run out
    assert "more than 5 errors (--max-errors)" in proc.stdout
    assert proc.stdout.startswith("No request got a response.")


def test_https_against_plain_http_is_one_line_that_says_try_http(twload_server, tmp_path):
    server = twload_server()
    url = server.url.replace("http://", "https://")
    for extra in ((), ("-k",)):
        proc = run_cli("run", url, "-d", "1s", "-w", "1", *extra, cwd=str(tmp_path))
        assert proc.returncode == 1
        lines = proc.stderr.strip().splitlines()
        assert lines == [f"twload: the server at 127.0.0.1:{server.port} did not answer TLS "
                         f"(WRONG_VERSION_NUMBER): is it plain HTTP? try {server.url}"]


def test_a_peer_that_closes_during_the_handshake_gets_the_same_hint():
    import ssl

    from twload.engine.preflight import tls_failure

    url = "https://127.0.0.1:8443/x"
    plan = Plan(target=parse_target(url), url=url)
    line = tls_failure(ssl.SSLEOFError(8, "EOF occurred in violation of protocol"), plan)
    assert line == ("the server at 127.0.0.1:8443 closed the connection during the TLS handshake: "
                    "is it plain HTTP? try http://127.0.0.1:8443/x")


def test_watch_shows_the_listener_side_and_its_header_honours_dst():
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", free_port()))
        listener.listen(8)
        port = listener.getsockname()[1]
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        accepted = [listener.accept()[0] for _ in clients]
        try:
            proc = run_cli("watch", "--dst", f"127.0.0.1:{port}", "--count", "1", "--json")
        finally:
            for s in clients + accepted:
                s.close()
    assert proc.returncode == 0, proc.stderr
    reading = json.loads(proc.stdout)
    assert reading["listeners"] == [{"local": f"127.0.0.1:{port}", "time_wait": 0, "established": 3,
                                     "other": 0, "peers": 1}]
    assert reading["destinations"][0]["established"] == 3
    assert reading["states"] == {"ESTABLISHED": 6}  # both ends of the 3 connections, nothing else on the host
