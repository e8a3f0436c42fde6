"""Against a real nginx (Debian package): twload's count equals nginx's access log."""

import time

import pytest

from twload.engine.supervisor import run_to_folder
from twload.kernel.procnet import time_wait_by_side
from twload.plan import Plan, parse_target


@pytest.mark.parametrize("close, requests", [("keepalive", 3000), ("server", 1000), ("fin", 500), ("rst", 500)])
def test_requests_equal_access_log(nginx, tmp_path, engine, close, requests):
    plan = Plan(target=parse_target(nginx.url), url=nginx.url, close=close, requests=requests,
                duration_s=None, connections=8, workers=2, engine=engine)
    summary = run_to_folder(plan, tmp_path / "run")
    assert summary["errors"] == {}
    assert summary["requests"] == requests
    assert summary["status"] == {"200": requests}
    assert nginx.access_lines() == requests
    time.sleep(0.2)
    tw = time_wait_by_side(nginx.port)
    if close == "server":
        assert tw["client"] == 0 and tw["server"] == requests
    elif close == "rst":
        assert tw == {"client": 0, "server": 0}
