"""Parsing the command line's values: pure, each raises PlanError with a one-line message.

split_url takes a URL apart; resolving its host name (I/O) is twload.kernel.resolve's.
"""

from __future__ import annotations

import ipaddress
import os
import re
from urllib.parse import urlsplit

from twload.plan.errors import PlanError

MAX_SOURCES = 4096

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str) -> float:
    """'10s', '1m', '500ms', '2h', bare '30' (seconds) -> seconds."""
    match = _DURATION.match(text)
    if not match:
        raise PlanError(f"bad duration {text!r}: use e.g. 10s, 1m, 500ms")
    value = float(match.group(1)) * _UNIT_S[match.group(2)]
    if value <= 0:
        raise PlanError(f"bad duration {text!r}: must be positive")
    return value


def parse_header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    name = name.strip()
    if not sep or not name or any(c in name for c in " \t\r\n"):
        raise PlanError(f"bad header {text!r}: use 'Name: value'")
    if "\r" in value or "\n" in value:
        raise PlanError(f"bad header {text!r}: no line breaks in a value")
    return name, value.strip()


def split_url(url: str) -> tuple[str, str, int, str]:
    """A URL's scheme, host, port and path (with its query), before the host is resolved."""
    if "://" not in url:
        raise PlanError(f"bad URL {url!r}: give a scheme, e.g. http://127.0.0.1:8080/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise PlanError(f"unsupported scheme {parts.scheme!r} in {url!r}: use http:// or https://")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise PlanError(f"bad port in URL {url!r}") from None
    host = parts.hostname
    if not host:
        raise PlanError(f"bad URL {url!r}: no host")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.scheme, host, port, path


def parse_sources(text: str) -> tuple[str, ...]:
    """'10.0.0.2,10.0.0.5-10.0.0.9,10.0.1.0/30' -> each address once, in order."""
    out: list[str] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            if "/" in item:
                network = ipaddress.ip_network(item, strict=False)
                hosts = list(network.hosts()) or [network.network_address]
            elif "-" in item:
                first, last = (ipaddress.ip_address(x.strip()) for x in item.split("-", 1))
                if first.version != last.version:
                    raise ValueError("a range is IPv4 or IPv6, not both")
                if int(last) < int(first) or int(last) - int(first) >= MAX_SOURCES:
                    raise ValueError("empty or too large range")
                # first + n keeps the address family (ip_address(1) would be IPv4 0.0.0.1 even for ::1)
                hosts = [first + n for n in range(int(last) - int(first) + 1)]
            else:
                hosts = [ipaddress.ip_address(item)]
        except ValueError as exc:
            raise PlanError(f"bad --source {item!r}: {exc}") from None
        out.extend(str(h) for h in hosts if str(h) not in out)
        if len(out) > MAX_SOURCES:
            raise PlanError(f"--source: more than {MAX_SOURCES} addresses")
    if not out:
        raise PlanError("--source: no address given")
    return tuple(out)


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)
