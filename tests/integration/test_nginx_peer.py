"""Against a real nginx (Debian package), on http:// and https://: twload's count equals nginx's access log."""

import pytest

from tests.conftest import NGINX, time_wait_until
from twload.engine.supervisor import run_to_folder
from twload.kernel.resolve import parse_target
from twload.lab.nginx import LocalNginx, NginxError
from twload.plan import Plan


@pytest.mark.parametrize("close, requests", [("keepalive", 3000), ("server", 1000), ("fin", 500), ("rst", 500)])
def test_requests_equal_access_log(nginx_target, tmp_path, close, requests, scheme):
    nginx, cacert = nginx_target
    plan = Plan(target=parse_target(nginx.url), url=nginx.url, close=close, requests=requests,
                duration_s=None, connections=8, workers=2, cacert=cacert)
    summary = run_to_folder(plan, tmp_path / "run")
    assert summary["errors"] == {}
    assert summary["requests"] == requests
    assert summary["status"] == {"200": requests}
    expected = {"server": {"client": 0, "server": requests}, "rst": {"client": 0, "server": 0}}.get(close)
    tw = time_wait_until(nginx.port, lambda tw: expected is None or tw == expected)
    assert nginx.quit_and_count() == requests
    if expected is not None:
        assert tw == expected


@pytest.mark.parametrize("close", ["keepalive", "server", "fin", "rst"])
def test_duration_bound_run_loses_no_request(nginx_target, tmp_path, close):
    """Every request written yields one result: a stop in the middle of connects (and handshakes)
    and requests must neither write a request it will not count nor drop one in flight (nginx logs
    each request it answered; a quiet loopback nginx answers all within the drain bound)."""
    nginx, cacert = nginx_target
    plan = Plan(target=parse_target(nginx.url), url=nginx.url, close=close, duration_s=2.0,
                connections=32, workers=2, cacert=cacert)
    summary = run_to_folder(plan, tmp_path / "run")
    assert summary["requests"] > 0
    assert summary["errors"] == {}, summary["errors"]
    assert nginx.quit_and_count() == summary["requests"]


@pytest.mark.skipif(NGINX is None, reason="SKIPPED LOUDLY: nginx is not installed (Debian package nginx)")
def test_a_local_nginx_that_cannot_start_says_why_and_leaves_nothing():
    """LocalNginx (the tests' and the benchmarks' nginx): a config nginx refuses is an error in nginx's
    own words, not a wait on a port nobody will open; its process has ended and its folder is gone."""
    server = LocalNginx("twload-nginx-refused-")
    with pytest.raises(NginxError, match='unknown directive "no_such_directive"'):
        server.start("no_such_directive on;\n")
    assert server.proc is not None and server.proc.poll() is not None
    assert not server.dir.exists()
