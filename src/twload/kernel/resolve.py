"""A URL's host name resolved, once, before any worker starts: the plan's Target (getaddrinfo).

Taking the URL apart is pure (plan.parse.split_url); asking the resolver is I/O, so it lives
here, with the other adapters over this host's network stack.
"""

from __future__ import annotations

from collections.abc import Callable
from socket import IPPROTO_TCP, SOCK_STREAM, gaierror, getaddrinfo
from typing import Any

from twload.plan.errors import PlanError
from twload.plan.model import Target
from twload.plan.parse import split_url


def parse_target(url: str, resolve: Callable[..., list[Any]] = getaddrinfo) -> Target:
    """Split and resolve a URL once, before any worker starts."""
    scheme, host, port, path = split_url(url)
    try:
        infos = resolve(host, port, type=SOCK_STREAM, proto=IPPROTO_TCP)
    except (gaierror, UnicodeError) as exc:
        raise PlanError(f"cannot resolve host {host!r}: {getattr(exc, 'strerror', None) or exc}") from None
    family, _, _, _, address = infos[0]
    return Target(scheme, host, port, path, address, family)
