"""`twload watch` rows (twload/watch/rows.py) on a load balancer's sockets: both sides, and --dst."""

from twload.kernel.procnet import Sock
from twload.watch.rows import destination_rows, header_totals, listener_rows, trend

LB, BACKEND = "10.0.0.1", "10.0.1.5"
SOCKS = [
    Sock("LISTEN", LB, 80, "0.0.0.0", 0),
    # clients' connections accepted on :80; the balancer closed first, so it holds their TIME_WAIT
    *[Sock("TIME_WAIT", LB, 80, f"192.0.2.{i % 3 + 1}", 40000 + i) for i in range(7)],
    Sock("ESTABLISHED", LB, 80, "192.0.2.1", 41000),
    # its own connections to the backend
    *[Sock("TIME_WAIT", "10.0.1.1", 50000 + i, BACKEND, 8080) for i in range(4)],
    Sock("ESTABLISHED", "10.0.1.1", 51000, BACKEND, 8080),
    Sock("ESTABLISHED", "10.0.1.1", 52000, "10.0.9.9", 5432),
]


def test_the_listener_side_counts_what_was_accepted_on_each_port():
    rows = listener_rows(SOCKS)
    assert rows == [{"local": "10.0.0.1:80", "time_wait": 7, "established": 1, "other": 0, "peers": 3}]


def test_the_client_side_leaves_accepted_connections_out():
    rows = destination_rows(SOCKS, None, ports=100)
    assert [(r["dst"], r["time_wait"], r["established"]) for r in rows] == [
        (f"{BACKEND}:8080", 4, 1), ("10.0.9.9:5432", 0, 1)]
    assert rows[0]["budget_used"] == 0.05


def test_header_totals_honour_dst():
    assert header_totals(SOCKS, None)["TIME_WAIT"] == 11
    assert dict(header_totals(SOCKS, (BACKEND, 8080))) == {"TIME_WAIT": 4, "ESTABLISHED": 1}
    # the balancer's own listening address: the connections accepted there
    assert dict(header_totals(SOCKS, (LB, 80))) == {"TIME_WAIT": 7, "ESTABLISHED": 1}
    assert listener_rows(SOCKS, (BACKEND, 8080)) == []
    assert destination_rows(SOCKS, (LB, 80), ports=100) == []


def test_trend_per_second():
    row = {"time_wait": 30}
    assert trend(row, {"k": 10}, 2.0, "k") == 10.0
    assert trend(row, {}, 2.0, "k") == 0.0
