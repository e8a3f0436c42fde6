"""Against a real nginx (Debian package): twload's count equals nginx's access log."""

import pytest

from tests.conftest import time_wait_until
from twload.engine.supervisor import run_to_folder
from twload.kernel.resolve import parse_target
from twload.plan import Plan


@pytest.mark.parametrize("close, requests", [("keepalive", 3000), ("server", 1000), ("fin", 500), ("rst", 500)])
def test_requests_equal_access_log(nginx, tmp_path, engine, close, requests):
    plan = Plan(target=parse_target(nginx.url), url=nginx.url, close=close, requests=requests,
                duration_s=None, connections=8, workers=2, engine=engine)
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
def test_duration_bound_run_loses_no_request(nginx, tmp_path, close, engine):
    """Every request written yields one result: a stop in the middle of connects and requests
    must neither write a request it will not count nor drop one in flight (nginx logs each
    request it answered; a quiet loopback nginx answers all within the drain bound)."""
    plan = Plan(target=parse_target(nginx.url), url=nginx.url, close=close, duration_s=2.0,
                connections=32, workers=2, engine=engine)
    summary = run_to_folder(plan, tmp_path / "run")
    assert summary["requests"] > 0
    assert summary["errors"] == {}, summary["errors"]
    assert nginx.quit_and_count() == summary["requests"]
