"""https:// from the command line's side: the untrusted certificate's one line and --insecure, and the
doctor's probe of an https target. The runs over https:// are the scheme dimension of the integration
tests (tests/integration/conftest.py) and test_tls_core.py."""

import json

from tests.conftest import run_cli


def test_untrusted_certificate_is_one_line_and_insecure_works(twload_server, tls_certs, tmp_path):
    server = twload_server(*tls_certs.serve_args())
    proc = run_cli("run", server.url, "-n", "10", "-w", "1", cwd=str(tmp_path))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "certificate verify failed" in proc.stderr and "--insecure" in proc.stderr
    proc = run_cli("run", server.url, "-n", "10", "-c", "2", "-w", "1", "--insecure", "--json",
                   "--out", str(tmp_path / "k"))
    assert proc.returncode == 0 and json.loads(proc.stdout)["requests"] == 10


def test_doctor_probes_an_https_target(twload_server, tls_certs):
    server = twload_server(*tls_certs.serve_args())
    report = json.loads(run_cli("doctor", server.url, "--json").stdout)
    assert report["target"]["reachable"] is True
    assert report["target"]["timestamps"] is True and report["target"]["server_closes_first"] is True
