import pytest
from hypothesis import given
from hypothesis import strategies as st

from twload.kernel.resolve import parse_target
from twload.plan import Plan, PlanError, parse_duration, parse_header


def test_durations():
    assert parse_duration("10s") == 10
    assert parse_duration("1m") == 60
    assert parse_duration("500ms") == 0.5
    assert parse_duration("2h") == 7200
    assert parse_duration("30") == 30
    for bad in ("", "s", "10x", "-1s", "0s", "1.2.3s"):
        with pytest.raises(PlanError):
            parse_duration(bad)


def test_headers():
    assert parse_header("X-Test: a: b ") == ("X-Test", "a: b")
    for bad in ("nocolon", ": v", "bad name: v", "X: a\r\nInjected: 1"):
        with pytest.raises(PlanError):
            parse_header(bad)


def plan(**kw):
    return Plan(target=parse_target("http://127.0.0.1:9/"), url="http://127.0.0.1:9/", **kw)


def test_plan_validation():
    with pytest.raises(PlanError, match="--close"):
        plan(close="linger")
    with pytest.raises(PlanError):
        plan(connections=0)
    with pytest.raises(PlanError):
        plan(duration_s=None, requests=None)


@given(
    connections=st.integers(1, 500),
    workers=st.integers(1, 16),
    requests=st.one_of(st.none(), st.integers(1, 10_000)),
)
def test_worker_shares_add_up(connections, workers, requests):
    p = plan(connections=connections, workers=workers, requests=requests, duration_s=None if requests else 1.0)
    shares = p.worker_shares()
    assert 1 <= len(shares) <= workers
    assert all(c >= 1 for c, _ in shares)
    if requests is None:
        assert sum(c for c, _ in shares) == connections
    else:
        assert sum(r for _, r in shares) == requests
        assert all(c <= r for c, r in shares)
        assert sum(c for c, _ in shares) <= connections


def test_sources():
    from twload.plan import parse_sources

    assert parse_sources("10.0.0.2, 10.0.0.3") == ("10.0.0.2", "10.0.0.3")
    assert parse_sources("10.0.0.2-10.0.0.5") == ("10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5")
    assert parse_sources("10.0.0.0/29") == tuple(f"10.0.0.{i}" for i in range(1, 7))
    assert parse_sources("10.0.0.7/32,10.0.0.7") == ("10.0.0.7",)
    assert parse_sources("fd00::1-fd00::3") == ("fd00::1", "fd00::2", "fd00::3")
    assert parse_sources("::1-::2") == ("::1", "::2")
    for bad in ("", "10.0.0.300", "10.0.0.9-10.0.0.2", "nope", "10.0.0.0-10.1.0.0", "10.0.0.1-::1", "::1-10.0.0.1"):
        with pytest.raises(PlanError):
            parse_sources(bad)


def test_requests_per_connection_defaults():
    assert plan(close="keepalive").per_connection is None
    assert plan(close="fin").per_connection == 1
    assert plan(close="server", requests_per_connection=5).per_connection == 5
    with pytest.raises(PlanError):
        plan(requests_per_connection=0)
