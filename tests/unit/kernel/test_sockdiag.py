"""sock_diag: the netlink replies decoded by hand must say what the kernel's sockets are.

Real connections on a loopback address of this test's own; the truth is what getsockname()
and getpeername() say, and /proc/net/tcp{,6} read by the other parser.
"""

from __future__ import annotations

import pytest

from tests.unit.loopback import REREADS, ipv6_loopback, own_address, peer, wait_until
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
        assert len(expected) == 7
        netlink_or_skip()
        # A dump is no snapshot: it resumes by position in the kernel's hash table, so while other
        # programs open and close sockets it may skip one. Read again (bounded) until all are seen.
        assert wait_until(lambda: expected <= set(sockdiag.sockets_netlink()), REREADS)
        assert wait_until(lambda: expected <= set(sockdiag.sockets_proc()), REREADS)


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

        # (re-read, bounded, while the closes complete and in case a dump skipped one: see above)
        assert wait_until(lambda: sockdiag.count_time_wait_to(address, p.port) == 4)
        assert wait_until(lambda: sockdiag.count_time_wait_to(address, other.port) == 1)
        assert sockdiag.count_time_wait_to(own_address(salt=2), p.port) == 0  # same port, another address

        def sides() -> dict[str, int]:
            socks, source = sockdiag.sockets(1 << sockdiag.TIME_WAIT)
            assert source == "netlink" and {s.state for s in socks} == {"TIME_WAIT"}
            mine = [s for s in socks if address in (s.src, s.dst) and p.port in (s.sport, s.dport)]
            return procnet.time_wait_by_side(p.port, mine)

        assert wait_until(lambda: sides() == {"client": 4, "server": 2}, REREADS)


def test_the_kernel_applies_the_port_filter():
    """dport_filter's bytecode runs in the kernel (inet_diag_bc_run): only sockets to that port come back."""
    import socket

    netlink_or_skip()
    address = own_address(salt=3)
    with peer(address) as p:
        pairs = [p.connect() for _ in range(3)]
        wanted = {client.getsockname()[1] for client, _ in pairs}
        remote_ports: set[int] = set()

        def all_clients_seen() -> bool:
            replies = list(sockdiag._messages(socket.AF_INET, sockdiag.ALL_STATES, sockdiag.dport_filter(p.port)))
            remote_ports.update(int.from_bytes(data[body + 6: body + 8], "big") for data, body in replies)
            return wanted <= {int.from_bytes(data[body + 4: body + 6], "big") for data, body in replies}

        assert wait_until(all_clients_seen, REREADS)
    assert remote_ports == {p.port}  # not the listener, not the server ends (their remote port differs)


def test_time_left_on_each_time_wait_socket_says_when_it_entered_time_wait():
    """idiag_expires is the TIME_WAIT timer's time left: 60 s less the socket's age, to a jiffy."""
    import time

    netlink_or_skip()
    address = own_address(salt=4)
    with peer(address) as p:
        closing = []  # before each close: the socket entered TIME_WAIT after this
        for n in (1, 2):
            client, server = p.connect()
            closing.append(time.monotonic())
            p.close_first(client, server)  # the client's TIME_WAIT
            # seen in TIME_WAIT before the pause: the next one enters it more than 0.3 s later
            assert wait_until(lambda n=n: sockdiag.states_and_time_wait_left(address, p.port)[0]["TIME_WAIT"] == n)
            time.sleep(0.3)
        p.connect()  # stays ESTABLISHED: counted, no time left
        read = {}

        def both_seen() -> bool:
            read["counts"], read["left"] = sockdiag.states_and_time_wait_left(address, p.port)
            read["after"] = time.monotonic()  # the kernel read each timer before this
            return read["counts"] == {"TIME_WAIT": 2, "ESTABLISHED": 1}

        assert wait_until(both_seen, REREADS)
    older, newer = sorted(read["left"])
    # whole jiffies (at most 10 ms each, HZ=100); read before `after`, so at most that long after each close
    for left, at_close in ((older, closing[0]), (newer, closing[1])):
        age_ms = (read["after"] - at_close) * 1000  # at least the socket's age in TIME_WAIT when read
        assert 60_000 - age_ms - 10 <= left <= 60_000 + 10
    assert newer - older >= 300 - 2 * 10  # the second entered TIME_WAIT 0.3 s after the first
