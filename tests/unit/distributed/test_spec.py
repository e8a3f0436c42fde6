"""The cluster options (twload.distributed.spec, pure): local:N, a scheduler, and its TLS."""

import pytest

from twload.distributed.spec import parse_cluster
from twload.plan import PlanError


def test_cluster_options():
    assert parse_cluster(None, None) is None
    assert parse_cluster("local:3", None).local_workers == 3
    spec = parse_cluster(None, "tls://10.0.0.1:8786", "ca.pem", "c.pem", "k.pem")
    assert (spec.scheduler, spec.tls_ca_file, spec.plain_beyond_loopback) == ("tls://10.0.0.1:8786", "ca.pem", False)
    assert parse_cluster(None, "tcp://10.0.0.1:8786", allow_insecure=True).plain_beyond_loopback
    assert not parse_cluster(None, "tcp://127.0.0.1:8786").plain_beyond_loopback
    assert not parse_cluster(None, "tcp://localhost:8786").plain_beyond_loopback
    assert not parse_cluster(None, "tcp://[::1]:8786").plain_beyond_loopback


@pytest.mark.parametrize("address", ["tcp://10.0.0.1:8786", "tcp://192.0.2.7:8786", "tcp://dask.example:8786",
                                     "tcp://[2001:db8::1]:8786", "tcp://0.0.0.0:8786"])
def test_plain_tcp_scheduler_beyond_loopback_is_refused_unless_allowed(address):
    """Whoever reaches a plain tcp:// scheduler runs code on its workers (and on the client): refused,
    in one line that names the way out, unless the user says so with --allow-insecure-scheduler."""
    with pytest.raises(PlanError) as refused:
        parse_cluster(None, address)
    message = str(refused.value)
    assert "\n" not in message and "tls://" in message and "--allow-insecure-scheduler" in message
    assert parse_cluster(None, address, allow_insecure=True).scheduler == address
    tls = address.replace("tcp://", "tls://")
    assert parse_cluster(None, tls, "ca.pem").scheduler == tls  # tls:// needs no flag
    for bad in [("local:0", None), ("local:x", None), ("remote:2", None), ("local:2", "tcp://127.0.0.1:1"),
                (None, "http://127.0.0.1:8786"), (None, "tcp://127.0.0.1:port"), (None, "tls://127.0.0.1:1")]:
        with pytest.raises(PlanError):
            parse_cluster(*bad)
    with pytest.raises(PlanError):
        parse_cluster(None, None, "ca.pem")  # TLS options without a scheduler
    with pytest.raises(PlanError):
        parse_cluster(None, "tcp://127.0.0.1:8786", "ca.pem")  # TLS options on a plain scheduler
    with pytest.raises(PlanError):
        parse_cluster(None, "tls://127.0.0.1:8786", "ca.pem", "c.pem")  # a cert without its key
