"""The compiled engine core (C, _core): whether it is built and which backends it may use, and the
names of its error slots and histogram slots. One worker process drives it: worker.py (CoreWorker).
"""

from __future__ import annotations

import errno

try:
    from twload.engine.core import _core
except ImportError:  # not built (see setup.py): a run stops at once with NOT_BUILT
    _core = None

NOT_BUILT = "the compiled core is not built: `make core` builds it (it needs gcc and libssl-dev)"


def available() -> bool:
    return _core is not None


def uring_available() -> bool:
    """io_uring is compiled in and this process may use it (sysctl kernel.io_uring_disabled, seccomp)."""
    return _core is not None and bool(_core.HAVE_URING) and _core.uring_available()


def uring_makes_sockets() -> bool:
    """The uring backend makes its sockets through the ring (IORING_OP_SOCKET, Linux 5.19); without
    it, with socket() (and always with --source, whose bind needs the fd before the connect)."""
    return uring_available() and _core.uring_sockets()


def choose_io(requested: str, scheme: str = "http", http2: bool = False) -> str:
    """The backend a worker runs: https:// and --http2 run on epoll (TLS and HTTP/2 over the ring are
    not built yet, issues #30 and #31)."""
    if scheme == "https" or http2:
        return "epoll"
    if requested == "auto":
        return "uring" if uring_available() else "epoll"
    return requested


H2_ERROR_CODES = ("no_error", "protocol_error", "internal_error", "flow_control_error", "settings_timeout",
                  "stream_closed", "frame_size_error", "refused_stream", "cancel", "compression_error",
                  "connect_error", "enhance_your_calm", "inadequate_security", "http_1_1_required", "other")


def error_names() -> dict[int, str]:
    """Error slot (core.h: errno 1..255, then E_*) -> the name counted
    (docs/ARCHITECTURE.md "Error names")."""
    names = {code: errno.errorcode.get(code, f"errno_{code}") for code in range(1, 256)}
    names.update({
        _core.E_CONNECT_TIMEOUT: "connect_timeout", _core.E_TIMEOUT: "timeout",
        _core.E_NO_SERVER_CLOSE: "no_server_close", _core.E_PROTOCOL: "protocol_error",
        _core.E_HEAD_TOO_LARGE: "response_head_too_large", _core.E_EOF_BEFORE_RESPONSE: "eof_before_response",
        _core.E_NOT_SENT: "not_sent", _core.E_ABANDONED: "abandoned_at_stop", _core.E_OTHER_ERRNO: "errno_other",
        _core.E_UNSOLICITED: "unsolicited_response", _core.E_UNEXPECTED_UPGRADE: "unexpected_upgrade",
        _core.E_TLS_HANDSHAKE_FAILED: "tls_handshake_failed", _core.E_TLS_CERT_VERIFY_FAILED: "tls_cert_verify_failed",
        _core.E_TLS_UNEXPECTED_EOF: "tls_unexpected_eof", _core.E_TLS_ON_PLAIN_HTTP: "tls_on_plain_http",
        _core.E_TLS_ERROR: "tls_error",
        _core.E_H2_PROTOCOL: "h2_protocol_error", _core.E_H2_RETRIED: "h2_retried_after_goaway",
        _core.E_H2_NOT_NEGOTIATED: "h2_not_negotiated",
    })
    for i, code in enumerate(H2_ERROR_CODES):  # RFC 9113 section 7, lower snake case; then any other
        names[_core.E_H2_RST + i] = f"h2_rst_stream_{code}"
        names[_core.E_H2_GOAWAY + i] = f"h2_goaway_{code}"
    # the peer's TLS alert by its name; the table is tls.c's (ALERTS), its last entry "unknown"
    names.update({_core.E_TLS_ALERT + i: f"tls_alert_{name}" for i, name in enumerate(_core.tls_alert_names())})
    return names


def tls_options_problem(tls_min: str | None, ciphers: str | None, ciphersuites: str | None) -> str:
    """Why the core's OpenSSL refuses these TLS options (one line), or "": checked before any worker starts."""
    return _core.tls_check(tls_min=tls_min, ciphers=ciphers, ciphersuites=ciphersuites)
