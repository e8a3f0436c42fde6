"""https:// against `twload serve --tls-cert/--tls-key` and against nginx, with trustme certificates."""

import json

import pytest
import trustme

from tests.conftest import NGINX, Nginx, run_cli


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    root = tmp_path_factory.mktemp("certs")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_pem.write_to_path(str(root / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(root / "cert.pem"))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(str(root / "cert.pem"), append=True)
    ca.cert_pem.write_to_path(str(root / "ca.pem"))
    return root


def test_https_against_twload_serve(twload_server, certs, tmp_path):
    server = twload_server("--tls-cert", str(certs / "cert.pem"), "--tls-key", str(certs / "key.pem"))
    assert server.url.startswith("https://")
    for close in ("keepalive", "server"):
        proc = run_cli("run", server.url, "-n", "200", "-c", "4", "-w", "1", "--close", close,
                       "--cacert", str(certs / "ca.pem"), "--json", "--out", str(tmp_path / close))
        assert proc.returncode == 0, proc.stderr
        summary = json.loads(proc.stdout)
        assert summary["requests"] == 200 and summary["errors"] == {}
        assert (summary["engine"], summary["io"]) == ("core", "epoll")  # TLS runs on the core's epoll backend
        assert summary["tls_handshake_us"]["p50"] > 0  # timed apart from the TCP connect
        assert summary["connections_opened"] == (4 if close == "keepalive" else 200)
    assert server.stop() == 400


def test_untrusted_certificate_is_one_line_and_insecure_works(twload_server, certs, tmp_path):
    server = twload_server("--tls-cert", str(certs / "cert.pem"), "--tls-key", str(certs / "key.pem"))
    proc = run_cli("run", server.url, "-n", "10", "-w", "1", cwd=str(tmp_path))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "certificate verify failed" in proc.stderr and "--insecure" in proc.stderr
    proc = run_cli("run", server.url, "-n", "10", "-c", "2", "-w", "1", "--insecure", "--json",
                   "--out", str(tmp_path / "k"))
    assert proc.returncode == 0 and json.loads(proc.stdout)["requests"] == 10


@pytest.mark.skipif(NGINX is None, reason="SKIPPED LOUDLY: nginx is not installed (Debian package nginx)")
def test_https_against_nginx(certs, tmp_path):
    server = Nginx(tls=(certs / "cert.pem", certs / "key.pem"))
    try:
        for close, n in (("keepalive", 1000), ("server", 300)):
            proc = run_cli("run", server.url, "-n", str(n), "-c", "4", "-w", "2", "--close", close,
                           "--cacert", str(certs / "ca.pem"), "--json", "--out", str(tmp_path / close))
            assert proc.returncode == 0, proc.stderr
            assert json.loads(proc.stdout)["requests"] == n
        assert server.access_lines() == 1300
    finally:
        server.stop()


def test_doctor_probes_an_https_target(twload_server, certs):
    server = twload_server("--tls-cert", str(certs / "cert.pem"), "--tls-key", str(certs / "key.pem"))
    report = json.loads(run_cli("doctor", server.url, "--json").stdout)
    assert report["target"]["reachable"] is True
    assert report["target"]["timestamps"] is True and report["target"]["server_closes_first"] is True
