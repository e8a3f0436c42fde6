"""What the core names over TLS (issue #30 stage 2): the peer's TLS alerts by name, against hand-made TLS
peers (the certificates and peers of test_tls_core.py)."""

import json
import re
import socket
import ssl

import pytest

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
    alerts = [names[slot] for slot in range(_core.E_TLS_ALERT, _core.N_ERRORS)]
    assert len(alerts) == len(set(alerts)) == len(_core.tls_alert_names())
    assert alerts[-1] == "tls_alert_unknown"
    assert {"tls_alert_handshake_failure", "tls_alert_protocol_version", "tls_alert_unknown_ca"} <= set(alerts)
    assert all(re.fullmatch(r"tls_alert_[a-z0-9_]+", name) for name in alerts)
