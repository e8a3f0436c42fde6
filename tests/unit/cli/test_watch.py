"""`twload watch` rows: client-side sockets per (source, destination), TIME_WAIT first."""

from __future__ import annotations

from twload.cli.watch import destination_rows, parse_dst
from twload.kernel.procnet import Sock

PORTS = 1000

SOCKS = [
    Sock("LISTEN", "127.0.0.1", 8080, "0.0.0.0", 0),
    # server ends use the listener's port, not the ephemeral budget: not rows
    Sock("ESTABLISHED", "127.0.0.1", 8080, "127.0.0.1", 40001),
    Sock("TIME_WAIT", "127.0.0.1", 8080, "127.0.0.1", 40002),
    # client ends towards 10.0.0.9:80
    Sock("TIME_WAIT", "10.0.0.2", 40010, "10.0.0.9", 80),
    Sock("TIME_WAIT", "10.0.0.2", 40011, "10.0.0.9", 80),
    Sock("ESTABLISHED", "10.0.0.2", 40012, "10.0.0.9", 80),
    Sock("FIN_WAIT2", "10.0.0.2", 40013, "10.0.0.9", 80),
    # the same destination from another source address: its own row (its own port range)
    Sock("TIME_WAIT", "10.0.0.3", 40010, "10.0.0.9", 80),
    # another destination, busier in ESTABLISHED, none in TIME_WAIT
    Sock("ESTABLISHED", "10.0.0.2", 40020, "10.0.0.7", 443),
    Sock("ESTABLISHED", "10.0.0.2", 40021, "10.0.0.7", 443),
]


def test_rows_count_client_sockets_per_source_and_destination_time_wait_first():
    rows = destination_rows(SOCKS, None, PORTS)
    assert [(r["src"], r["dst"], r["time_wait"], r["established"], r["other"]) for r in rows] == [
        ("10.0.0.2", "10.0.0.9:80", 2, 1, 1),
        ("10.0.0.3", "10.0.0.9:80", 1, 0, 0),
        ("10.0.0.2", "10.0.0.7:443", 0, 2, 0),
    ]
    assert rows[0]["budget_used"] == round(4 / PORTS, 4)  # every state but LISTEN holds its port


def test_rows_for_one_destination():
    rows = destination_rows(SOCKS, parse_dst("10.0.0.7:443"), PORTS)
    assert [(r["dst"], r["established"]) for r in rows] == [("10.0.0.7:443", 2)]
    assert destination_rows(SOCKS, parse_dst("[::1]:80"), PORTS) == []
    assert parse_dst("[::1]:80") == ("::1", 80)


def test_no_ports_left_reads_as_a_full_budget():
    assert {r["budget_used"] for r in destination_rows(SOCKS, None, 0)} == {1.0}
