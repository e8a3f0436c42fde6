"""sock_diag: the netlink replies decoded by hand must say what the kernel's sockets are.

Real connections on a loopback address of this test's own; the truth is what getsockname()
and getpeername() say, and /proc/net/tcp{,6} read by the other parser.
"""

from __future__ import annotations

import pytest

from tests.unit.loopback import ipv6_loopback, own_address, peer, wait_until
from twload.kernel import procnet, sockdiag
from twload.kernel.procnet import Sock


def netlink_or_skip() -> list[Sock]:
    try:
        return sockdiag.sockets_netlink()
    except OSError as exc:  # a sandbox without NETLINK_SOCK_DIAG: watch falls back to /proc
        pytest.skip(f"sock_diag netlink unavailable here: {exc}")


def expected_socks(p) -> set[Sock]:
    wildcard = "::" if ":" in p.address else "0.0.0.0"
    out = {Sock("LISTEN", p.address, p.port, wildcard, 0)}
    for client, server in p.pairs:
        out.add(Sock("ESTABLISHED", *client.getsockname()[:2], *client.getpeername()[:2]))
        out.add(Sock("ESTABLISHED", *server.getsockname()[:2], *server.getpeername()[:2]))
    return out


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_netlink_and_proc_report_the_same_live_sockets(family):
    address = own_address() if family == "ipv4" else ipv6_loopback()
    with peer(address) as p:
        for _ in range(3):
            p.connect()
        expected = expected_socks(p)
        mine = {s for s in netlink_or_skip() if p.port in (s.sport, s.dport) and p.address in (s.src, s.dst)}
        from_proc = {s for s in sockdiag.sockets_proc() if p.port in (s.sport, s.dport) and p.address in (s.src, s.dst)}
    assert expected <= mine
    assert expected <= from_proc
    assert len(expected) == 7


def test_time_wait_is_counted_per_destination_and_only_on_the_client_side():
    netlink_or_skip()
    address = own_address(salt=1)
    with peer(address) as p, peer(address) as other:
        for _ in range(4):
            client, server = p.connect()
            p.close_first(client, server)  # the client closes first: the client keeps TIME_WAIT
        for _ in range(2):
            client, server = p.connect()
            p.close_first(server, client)  # the server closes first: TIME_WAIT on the server side
        client, server = other.connect()
        other.close_first(client, server)  # another port on the same address

        assert wait_until(lambda: sockdiag.count_time_wait_to(address, p.port) >= 4)
        assert sockdiag.count_time_wait_to(address, p.port) == 4
        assert sockdiag.count_time_wait_to(address, other.port) == 1
        assert sockdiag.count_time_wait_to(own_address(salt=2), p.port) == 0  # same port, another address

        socks, source = sockdiag.sockets(1 << sockdiag.TIME_WAIT)
        assert source == "netlink" and {s.state for s in socks} == {"TIME_WAIT"}
        mine = [s for s in socks if address in (s.src, s.dst) and p.port in (s.sport, s.dport)]
        assert procnet.time_wait_by_side(p.port, mine) == {"client": 4, "server": 2}


def test_the_kernel_applies_the_port_filter():
    """dport_filter's bytecode runs in the kernel (inet_diag_bc_run): only sockets to that port come back."""
    import socket

    netlink_or_skip()
    address = own_address(salt=3)
    with peer(address) as p:
        pairs = [p.connect() for _ in range(3)]
        replies = list(sockdiag._messages(socket.AF_INET, sockdiag.ALL_STATES, sockdiag.dport_filter(p.port)))
        remote_ports = {int.from_bytes(data[body + 6: body + 8], "big") for data, body in replies}
        client_ports = {int.from_bytes(data[body + 4: body + 6], "big") for data, body in replies}
        assert client_ports >= {client.getsockname()[1] for client, _ in pairs}
    assert remote_ports == {p.port}  # not the listener, not the server ends (their remote port differs)
