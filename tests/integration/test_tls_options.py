"""The core's TLS options and what it names (issue #30 stage 2): the peer's TLS alerts by name, --tls-min,
--ciphers, --ciphersuites, --tls-resume with its counts, ALPN, against nginx with TLS and hand-made TLS peers
(the certificates and peers of test_tls_core.py)."""

import json
import re
import shutil
import socket
import ssl
import subprocess
import sys

import pytest

from tests.conftest import NGINX, Nginx, run_cli
from tests.integration.test_tls_core import (  # noqa: F401  (certs: a fixture)
    RESPONSE,
    FaultyTlsPeer,
    certs,
    core_run,
    run,
    server_context,
)
from twload.engine import core
from twload.engine.core import _core

needs_nginx = pytest.mark.skipif(NGINX is None, reason="SKIPPED LOUDLY: nginx is not installed (Debian package nginx)")


def refused_then_drained(context: ssl.SSLContext):
    """A fault: a handshake with this context, which the server refuses with an alert; then the server
    reads what the client still sends until the client closes, so its close is a FIN, not the RST that
    unread bytes would make (net/ipv4/tcp.c: __tcp_close) and that could overtake the alert."""
    def fault(conn: socket.socket) -> None:
        raw = conn.dup()  # stays open after the TLS socket closes its own descriptor
        try:
            with context.wrap_socket(conn, server_side=True) as tls:
                while tls.recv(4096):
                    tls.sendall(RESPONSE)
        except (ssl.SSLError, OSError):
            pass
        try:
            raw.settimeout(2)
            while raw.recv(4096):
                pass
        except OSError:
            pass
        finally:
            raw.close()
    return fault


@pytest.mark.parametrize("version, alert", [
    # TLS 1.3: the server reads the client's Finished, then refuses the missing certificate with
    # certificate_required (RFC 8446 section 4.4.2.4): the client's handshake is done by then
    (ssl.TLSVersion.TLSv1_3, "tls_alert_certificate_required"),
    # TLS 1.2: the refusal comes within the handshake, as handshake_failure (OpenSSL's
    # ssl/statem/statem_srvr.c: tls_process_client_certificate)
    (ssl.TLSVersion.TLSv1_2, "tls_alert_handshake_failure"),
])
def test_core_names_the_alert_a_server_sends(raw_peer, certs, tmp_path, version, alert):  # noqa: F811
    """A server that wants a client certificate, which the client has not, says so with an alert: each
    connection's error is that alert's name."""
    context = server_context(certs, "good")
    context.minimum_version = context.maximum_version = version
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(str(certs / "ca.pem"))
    peer = FaultyTlsPeer(raw_peer, certs, refused_then_drained(context))
    proc = core_run(peer.url, tmp_path, "--cacert", str(certs / "ca.pem"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    summary = json.loads(proc.stdout)
    assert set(summary["errors"]) == {alert}, summary["errors"]


def test_tls_alert_names_are_bounded_and_distinct():
    """The names come from one fixed table in C (tls.c ALERTS); every slot has one, and the last is unknown."""
    names = core.error_names()
    alerts = [names[slot] for slot in range(_core.E_TLS_ALERT, _core.E_TLS_ALERT + len(_core.tls_alert_names()))]
    assert _core.E_TLS_ALERT + len(alerts) <= _core.E_H2_PROTOCOL  # the HTTP/2 slots come after them
    assert len(alerts) == len(set(alerts)) == len(_core.tls_alert_names())
    assert alerts[-1] == "tls_alert_unknown"
    assert {"tls_alert_handshake_failure", "tls_alert_protocol_version", "tls_alert_unknown_ca"} <= set(alerts)
    assert all(re.fullmatch(r"tls_alert_[a-z0-9_]+", name) for name in alerts)


NGINX_TLS12 = "ssl_protocols TLSv1.2;"


def nginx_with(certs, extra: str) -> Nginx:  # noqa: F811
    return Nginx(tls=(certs / "good.pem", certs / "good.key"), tls_extra=extra)


@needs_nginx
def test_tls_min_13_against_a_tls12_only_server_is_alert_protocol_version(certs, tmp_path):  # noqa: F811
    """nginx with ssl_protocols TLSv1.2 answers a ClientHello that offers 1.3 alone with the alert
    protocol_version (RFC 8446 appendix D.2): each connection is that error, by name; nginx logs no request."""
    server = nginx_with(certs, NGINX_TLS12)
    try:
        summary = run(server.url, tmp_path, certs, tls_min="1.3", requests=20, duration_s=None, connections=2)
        assert summary["requests"] == 0
        assert summary["errors"] == {"tls_alert_protocol_version": 20}, summary["errors"]
        assert summary["tls_handshakes"] == 0
        assert server.quit_and_count() == 0
    finally:
        server.stop()


@needs_nginx
def test_tls_min_13_against_a_tls12_only_server_is_one_line_at_the_cli(certs, tmp_path):  # noqa: F811
    """From the command line the pre-flight's handshake, which offers what the core's will, meets it first."""
    server = nginx_with(certs, NGINX_TLS12)
    try:
        proc = run_cli("run", server.url, "-n", "10", "-c", "2", "-w", "1", "--engine", "core", "--cacert",
                       str(certs / "ca.pem"), "--tls-min", "1.3", cwd=str(tmp_path))
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "PROTOCOL_VERSION" in lines[0], proc.stderr
        # and 1.2 at least (the default) talks to it
        proc = run_cli("run", server.url, "-n", "10", "-c", "2", "-w", "1", "--engine", "core", "--cacert",
                       str(certs / "ca.pem"), "--json", "--out", str(tmp_path / "ok"))
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["requests"] == 10
    finally:
        server.stop()


@pytest.mark.parametrize("args, words", [
    (["--tls-min", "1.1"], "--tls-min must be one of 1.2, 1.3, not '1.1'"),
    (["--ciphers", "NOT-A-CIPHER"], "--ciphers: NOT-A-CIPHER matches no TLS 1.2 cipher"),
    (["--ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256:TYPO-SHA"], "--ciphers: TYPO-SHA matches no TLS 1.2 cipher"),
    (["--ciphersuites", "TLS_AES_128_GCM_SHA256:TLS_NOPE"], "--ciphersuites: TLS_NOPE is no TLS 1.3 suite"),
    (["--tls-min", "1.3", "--ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256"], "use --ciphersuites"),
    (["--tls-min", "1.3", "--engine", "asyncio"], "--engine asyncio was retired"),
])
def test_bad_tls_options_are_one_line_before_any_request(raw_peer, args, words, tmp_path):
    """Refused as the plan is made (exit 2): the peer sees no connection, not even the pre-flight's."""
    seen = []
    peer = raw_peer(lambda conn, stopped: seen.append(conn))
    url = f"https://127.0.0.1:{peer.port}/"
    proc = run_cli("run", url, "-n", "10", "-w", "1", *args, cwd=str(tmp_path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and words in lines[0], proc.stderr
    assert seen == []


def test_tls_options_on_http_are_refused(tmp_path):
    proc = run_cli("run", "http://127.0.0.1:9/", "-n", "1", "--tls-min", "1.3", cwd=str(tmp_path))
    assert proc.returncode == 2 and "--tls-min: for https:// URLs only" in proc.stderr, proc.stderr


NGINX_RESUMES = "ssl_session_cache shared:twload:1m; ssl_session_tickets on;"


@needs_nginx
@pytest.mark.parametrize("version", ["TLSv1.2", "TLSv1.3"])
@pytest.mark.parametrize("close, resume", [("fin", False), ("fin", True), ("server", True), ("rst", True)])
def test_tls_resume_reuses_sessions_only_when_asked(certs, tmp_path, version, close, resume):  # noqa: F811
    """nginx keeps sessions and gives tickets; one connection at a time, closed after each request by each
    strategy: with --tls-resume every handshake after the first resumes (TLS 1.2: the session from the
    handshake's end; TLS 1.3: the ticket read after it, with the response), whoever closed and however;
    without it none does."""
    server = nginx_with(certs, f"ssl_protocols {version}; {NGINX_RESUMES}")
    try:
        summary = run(server.url, tmp_path, certs, close=close, requests=30, duration_s=None, connections=1,
                      tls_resume=resume)
        assert summary["requests"] == 30 and summary["errors"] == {}, summary["errors"]
        assert summary["tls_handshakes"] == summary["connections_opened"] == 30
        assert summary["tls_resumed"] == (29 if resume else 0)
        assert server.quit_and_count() == 30
    finally:
        server.stop()


def recording(context: ssl.SSLContext, seen: list):
    """A fault that is none: a whole handshake, then answers; what was agreed is kept in `seen`."""
    def serve(conn: socket.socket) -> None:
        try:
            with context.wrap_socket(conn, server_side=True) as tls:
                seen.append((tls.version(), tls.cipher()[0], tls.selected_alpn_protocol()))
                while tls.recv(4096):
                    tls.sendall(RESPONSE)
        except (ssl.SSLError, OSError):
            pass
    return serve


@pytest.mark.parametrize("args, agreed", [
    ([], ("TLSv1.3", "TLS_AES_256_GCM_SHA384", "http/1.1")),
    (["--ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"], ("TLSv1.3", "TLS_CHACHA20_POLY1305_SHA256", "http/1.1")),
    (["--tls-min", "1.3", "--ciphersuites", "TLS_AES_128_GCM_SHA256"],
     ("TLSv1.3", "TLS_AES_128_GCM_SHA256", "http/1.1")),
])
def test_core_offers_alpn_http11_and_the_suites_asked(raw_peer, certs, tmp_path, args, agreed):  # noqa: F811
    """The server picks from what the ClientHello offers: ALPN http/1.1 always (the server has h2 first on
    its list, and gets http/1.1), and the one TLS 1.3 suite pinned."""
    context = server_context(certs, "good")
    context.set_alpn_protocols(["h2", "http/1.1"])
    seen: list = []
    peer = FaultyTlsPeer(raw_peer, certs, recording(context, seen))
    proc = core_run(peer.url, tmp_path, "--cacert", str(certs / "ca.pem"), *args)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["errors"] == {}
    assert seen and set(seen) == {agreed}, set(seen)


def test_core_pins_tls12_ciphers(raw_peer, certs, tmp_path):  # noqa: F811
    """--ciphers: a TLS 1.2 server takes the one cipher offered; one it does not have is its
    handshake_failure alert, by name."""
    context = server_context(certs, "good")
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305")
    context.set_alpn_protocols(["http/1.1"])
    seen: list = []
    peer = FaultyTlsPeer(raw_peer, certs, recording(context, seen))
    proc = core_run(peer.url, tmp_path, "--cacert", str(certs / "ca.pem"), "--ciphers", "ECDHE-ECDSA-CHACHA20-POLY1305")
    assert proc.returncode == 0, proc.stderr
    assert seen and set(seen) == {("TLSv1.2", "ECDHE-ECDSA-CHACHA20-POLY1305", "http/1.1")}, set(seen)
    peer = FaultyTlsPeer(raw_peer, certs, refused_then_drained(context))
    proc = core_run(peer.url, tmp_path / "refused", "--cacert", str(certs / "ca.pem"),
                    "--ciphers", "ECDHE-ECDSA-AES256-GCM-SHA384")
    assert proc.returncode == 1, proc.stderr
    assert set(json.loads(proc.stdout)["errors"]) == {"tls_alert_handshake_failure"}


@needs_nginx
@pytest.mark.skipif(shutil.which("strace") is None,
                    reason="SKIPPED LOUDLY: strace is not installed (Debian package strace)")
def test_the_request_after_a_handshake_is_not_held_by_nagle(certs, tmp_path):  # noqa: F811
    """After a (resumed) handshake the client's Finished is a small segment not yet acknowledged, and the
    request a small one behind it: without TCP_NODELAY it waited for the server's delayed ACK (p50 45 ms
    against 10 ms). Every TLS connection sets it once its handshake is done: one setsockopt each."""
    server = nginx_with(certs, NGINX_RESUMES)
    try:
        out = tmp_path / "strace.txt"
        subprocess.run(["strace", "-f", "-e", "trace=setsockopt", "-o", str(out), sys.executable, "-m", "twload", "run",
                        server.url, "-n", "60", "-c", "3", "-w", "1", "--close", "server", "--tls-resume", "--engine",
                        "core", "--cacert", str(certs / "ca.pem"), "--out", str(tmp_path / "run")],
                       check=True, capture_output=True, timeout=120)
        nodelay = [line for line in out.read_text().splitlines() if "TCP_NODELAY" in line]
        assert len(nodelay) >= 60, len(nodelay)
        assert server.quit_and_count() == 60
    finally:
        server.stop()


def test_a_broken_record_after_the_handshake_is_tls_error(raw_peer, certs, tmp_path):  # noqa: F811
    """A peer that completes the handshake, reads the request, then sends a record that does not
    decrypt (application data with a wrong MAC): a TLS failure after the handshake is tls_error, its
    reason said once; not tls_handshake_failed."""
    context = server_context(certs, "good")

    def fault(conn: socket.socket) -> None:
        raw = conn.dup()
        try:
            with context.wrap_socket(conn, server_side=True) as tls:
                tls.recv(4096)
                raw.sendall(b"\x17\x03\x03\x00\x20" + bytes(32))  # an application data record of zeros
                tls.settimeout(2)
                tls.recv(4096)  # the client's alert, or its close
        except (ssl.SSLError, OSError):
            pass
        finally:
            raw.close()
    peer = FaultyTlsPeer(raw_peer, certs, fault)
    proc = core_run(peer.url, tmp_path, "--cacert", str(certs / "ca.pem"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    summary = json.loads(proc.stdout)
    assert set(summary["errors"]) == {"tls_error"}, summary["errors"]
    assert summary["tls_reason"].startswith("TLS error after the handshake: "), summary["tls_reason"]
