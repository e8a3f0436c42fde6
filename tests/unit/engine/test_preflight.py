"""The pre-flight's lines when connect() finds no free port (engine/preflight.py: no_free_port)."""

from collections import Counter

from twload.engine.preflight import no_free_port
from twload.kernel.resolve import parse_target
from twload.plan import Plan

URL = "http://10.250.1.2:8080/"
PLAN = Plan(target=parse_target(URL), url=URL)


def test_every_port_in_time_wait_is_counted_and_points_at_doctor():
    line = no_free_port(PLAN, Counter({"TIME_WAIT": 500}), 500)
    assert line == ("cannot connect to 10.250.1.2:8080: no free local port (EADDRNOTAVAIL): 500 client sockets "
                    "towards it are in TIME_WAIT (up to 60 s each), of 500 ephemeral ports. Wait for them to "
                    "expire, or see `twload doctor http://10.250.1.2:8080/`")


def test_open_sockets_and_mixed_states():
    assert ": 20 client sockets towards it are open, of 20" in no_free_port(PLAN, Counter({"ESTABLISHED": 20}), 20)
    mixed = no_free_port(PLAN, Counter({"TIME_WAIT": 15, "ESTABLISHED": 5}), 20)
    assert "15 client sockets towards it are in TIME_WAIT (up to 60 s each) and 5 in other states" in mixed
