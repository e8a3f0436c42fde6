"""The dimension the integration tests that load a target run over: the scheme. The compiled core is
the one engine (issue #30); each representative test runs it on http:// and on https:// (its
epoll backend, OpenSSL), against `twload serve` with or without --tls-cert/--tls-key."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.integration.backends import SCHEMES
from tests.integration.peers import RecordingPeer


@pytest.fixture(params=SCHEMES)
def scheme(request) -> str:
    return request.param


@dataclass
class Target:
    """A started target and what a `twload run` against it needs besides its URL."""

    server: object  # EmbeddedServer
    url: str
    port: int
    args: tuple[str, ...]  # for the command line: --cacert for https://

    def stop(self) -> int:
        return self.server.stop()  # type: ignore[attr-defined]


@pytest.fixture
def target(twload_server, tls_certs, scheme):
    """Factory: `twload serve ARGS...` on this test's scheme (https: the good certificate, and the
    run's --cacert in `args`)."""
    def start(*args: str) -> Target:
        tls = tls_certs.serve_args() if scheme == "https" else ()
        server = twload_server(*tls, *args)
        assert server.url.startswith(f"{scheme}://")
        return Target(server, server.url, server.port, ("--cacert", str(tls_certs.ca)) if scheme == "https" else ())
    return start


@pytest.fixture
def nginx_target(request, scheme, tls_certs):
    """nginx on this test's scheme, and the CA file a client trusts it with (None on http://)."""
    server = request.getfixturevalue("nginx_tls" if scheme == "https" else "nginx")
    return server, (str(tls_certs.ca) if scheme == "https" else None)


@pytest.fixture
def two_peers():
    """Two recording loopback peers: a request file's two destinations."""
    a, b = RecordingPeer(), RecordingPeer()
    yield a, b
    a.close()
    b.close()
