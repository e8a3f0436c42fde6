"""--http2 over a Dask cluster (issue #31): each shard's plan carries --http2 and --streams, so every
shard speaks h2 (nginx logs each request as HTTP/2.0), h2c and h2 over TLS; the LocalCluster is Dask's
own, on loopback, as in test_distributed.py."""

from __future__ import annotations

import pytest

from tests.conftest import NGINX, Nginx
from tests.integration.test_distributed import assert_folder_adds_up, run_json
from twload.engine.core import available

pytestmark = [pytest.mark.skipif(not available(), reason="SKIPPED LOUDLY: the compiled core is not built"),
              pytest.mark.skipif(NGINX is None, reason="SKIPPED LOUDLY: nginx is not installed (Debian package nginx)")]
pytest.importorskip("distributed", reason="SKIPPED LOUDLY: dask.distributed is not installed")

N = 1000


@pytest.mark.parametrize("scheme", ["h2c", "h2"])
def test_every_shard_speaks_http2(tls_certs, tmp_path, scheme):
    server = Nginx(http2=True, tls=tls_certs.pair("good") if scheme == "h2" else None)
    out = tmp_path / "run"
    try:
        summary, proc = run_json(server.url, "--cluster", "local:2", "--http2", "--streams", "5", "-c", "4",
                                 "-n", str(N), "--out", str(out),
                                 *(["--cacert", str(tls_certs.ca)] if scheme == "h2" else []))
        server.quit()
        lines = server.access_log.read_text().splitlines()
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stderr
    assert summary["requests"] == len(lines) == N
    assert summary["errors"] == {}
    assert all('"GET / HTTP/2.0"' in line for line in lines), lines[:3]  # not one HTTP/1.1 request
    assert summary["http2"] is True and summary["streams"] == 5 and summary["http1_ports_needed"] == N
    assert summary["cluster"] == "local:2" and summary["dask_workers"] == 2
    detail = summary["workers_detail"]
    assert len(detail) == 2 and all(w["requests"] > 0 for w in detail)
    # -c 4 over two shards: 2 connections each, far fewer than a connection per request
    assert 4 <= summary["connections_opened"] <= 8
    assert_folder_adds_up(out, summary)
