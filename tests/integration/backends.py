"""The I/O backends the integration tests run the compiled core over (the one engine since issue #30).
io_uring is skipped, with the reason said, where the kernel, a sysctl or seccomp keeps it out."""

import pytest

from twload.engine import core

NEEDS_URING = pytest.mark.skipif(not core.uring_available(),
                                 reason="io_uring not usable here (kernel, sysctl or seccomp)")
BACKENDS = ["epoll", pytest.param("uring", marks=NEEDS_URING)]
ENGINES = [("core", "epoll"), pytest.param(("core", "uring"), marks=NEEDS_URING)]
ENGINE_IDS = ["core-epoll", "core-uring"]
# the same, for a test that runs every usable one in turn (no skipped entries)
USABLE_ENGINES = [("core", "epoll")] + ([("core", "uring")] if core.uring_available() else [])
# The schemes the core runs each representative integration test over (issue #30 "Tests"): https://
# on the epoll backend (TLS over io_uring is not built), with trustme certificates (tests/conftest.py).
SCHEMES = ["http", "https"]


def over_tls(handler, certs, name: str = "good"):
    """A raw_peer handler (tests/conftest.py RawPeer) that first completes a TLS handshake as the
    server, with one of the suite's certificates (tests/conftest.py TlsCerts), then runs `handler`
    on the TLS socket: a hand-made peer for https:// as it is for http://."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*(str(path) for path in certs.pair(name)))

    def serve(conn, stopped) -> None:
        try:
            with context.wrap_socket(conn, server_side=True) as tls:
                handler(tls, stopped)
        except ssl.SSLError:
            pass  # the client gave up on the handshake (a probe, or the run's end)
    return serve
