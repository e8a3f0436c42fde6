"""/proc/net/tcp{,6}: lines in the kernel's format parse into the sockets they describe.

net/ipv4/tcp_ipv4.c: get_tcp4_sock prints each address as 32-bit words in host byte order
("%08X"), the port in hex and the state of include/net/tcp_states.h; tcp6 prints four such words.
The lines below are copied in that format as a little-endian host prints them.
"""

from __future__ import annotations

import sys

import pytest

from tests.unit.loopback import REREADS, own_address, peer, wait_until
from twload.kernel import procnet
from twload.kernel.procnet import Sock

HEADER = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n")
TCP4 = HEADER + (
    "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4711 1 0 100 0 0 10 0\n"
    "   1: 0100007F:8A3C 0100007F:1F90 06 00000000:00000000 03:00001697 00000000     0        0 0 3 0\n"
    "   2: 0200000A:C350 0900000A:01BB 01 00000000:00000000 02:000AFC7F 00000000  1000        0 4712 2 0 20 4 30 10\n"
    "   3: 0100007F:9C40 0100007F:1F90 0D 00000000:00000000 00:00000000 00000000     0        0 0 1 0\n"
)
TCP6 = HEADER + (
    "   0: 00000000000000000000000001000000:01BB 00000000000000000000000000000000:0000 0A "
    "00000000:00000000 00:00000000 00000000     0        0 4713 1 0 100 0 0 10 0\n"
    "   1: 0000000000000000FFFF00000100000A:D431 0000000000000000FFFF00000900000A:0050 08 "
    "00000000:00000000 00:00000000 00000000     0        0 4714 1 0 20 4 30 10 -1\n"
)

little_endian = pytest.mark.skipif(sys.byteorder != "little", reason="the sample lines are a little-endian host's")


@little_endian
def test_lines_in_the_kernels_format_parse(tmp_path):
    (tmp_path / "tcp").write_text(TCP4, encoding="ascii")
    (tmp_path / "tcp6").write_text(TCP6, encoding="ascii")
    socks = list(procnet.read_socks((str(tmp_path / "tcp"), str(tmp_path / "absent"), str(tmp_path / "tcp6"))))
    assert socks == [
        Sock("LISTEN", "127.0.0.1", 8080, "0.0.0.0", 0),
        Sock("TIME_WAIT", "127.0.0.1", 35388, "127.0.0.1", 8080),
        Sock("ESTABLISHED", "10.0.0.2", 50000, "10.0.0.9", 443),
        Sock("0D", "127.0.0.1", 40000, "127.0.0.1", 8080),  # a state this table does not know: kept, by number
        Sock("LISTEN", "::1", 443, "::", 0),
        Sock("CLOSE_WAIT", "::ffff:10.0.0.1", 54321, "::ffff:10.0.0.9", 80),
    ]


def test_time_wait_by_side_splits_by_who_holds_the_port():
    socks = [
        Sock("TIME_WAIT", "127.0.0.1", 41000, "127.0.0.1", 8080),  # client end: remote port 8080
        Sock("TIME_WAIT", "127.0.0.1", 41001, "127.0.0.1", 8080),
        Sock("TIME_WAIT", "127.0.0.1", 8080, "127.0.0.1", 41002),  # server end: local port 8080
        Sock("ESTABLISHED", "127.0.0.1", 41003, "127.0.0.1", 8080),  # not TIME_WAIT
        Sock("TIME_WAIT", "127.0.0.1", 41004, "127.0.0.1", 9090),  # another port
    ]
    assert procnet.time_wait_by_side(8080, socks) == {"client": 2, "server": 1}
    assert procnet.time_wait_by_side(7070, socks) == {"client": 0, "server": 0}


def test_the_real_proc_files_show_a_real_listener_and_connection():
    address = own_address(salt=7)
    with peer(address) as p:
        client, server = p.connect()
        expected = {
            Sock("LISTEN", address, p.port, "0.0.0.0", 0),
            Sock("ESTABLISHED", *client.getsockname(), address, p.port),
            Sock("ESTABLISHED", address, p.port, *client.getsockname()),
        }
        # /proc/net/tcp is read in pages that resume by position: under other programs' churn a
        # read may skip a socket, so read again (bounded) until all three are seen
        assert wait_until(lambda: expected <= set(procnet.read_socks()), REREADS)
