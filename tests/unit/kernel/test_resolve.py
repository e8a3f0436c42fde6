"""A URL resolved into the plan's Target (kernel/resolve.py): taken apart, then getaddrinfo, once."""

import socket

import pytest

from twload.kernel.resolve import parse_target
from twload.plan import PlanError


def test_https_target():
    t = parse_target("https://127.0.0.1/x")
    assert (t.scheme, t.port, t.host_header) == ("https", 443, "127.0.0.1")


def test_target_parsing():
    t = parse_target("http://127.0.0.1:8080/path?q=1")
    assert (t.host, t.port, t.path, t.address) == ("127.0.0.1", 8080, "/path?q=1", ("127.0.0.1", 8080))
    assert t.host_header == "127.0.0.1:8080"
    assert parse_target("http://127.0.0.1").path == "/"
    assert parse_target("http://127.0.0.1/").host_header == "127.0.0.1"
    assert parse_target("http://[::1]:81/").host_header == "[::1]:81"


@pytest.mark.parametrize(
    "url, words",
    [
        ("127.0.0.1:80", "scheme"),
        ("ftp://127.0.0.1/", "unsupported scheme"),
        ("http://127.0.0.1:70000/", "bad port"),
        ("http:///path", "no host"),
    ],
)
def test_bad_urls(url, words):
    with pytest.raises(PlanError, match=words):
        parse_target(url)


def test_unresolvable_host_is_a_user_error():
    def resolver(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(PlanError, match="cannot resolve host 'nowhere.example'"):
        parse_target("http://nowhere.example/", resolve=resolver)
