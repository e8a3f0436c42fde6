"""The rows `twload watch` shows, as pure functions of a socket snapshot (kernel.procnet.Sock list).

Two views of one host: the client side (sockets this host opened, by destination, against the
ephemeral-port budget) and the listener side (sockets accepted on its listening ports: what a load
balancer or a server sees, TIME_WAIT included when it closes first). The header totals count the
same sockets as the rows, so with --dst they count that destination only.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Protocol


class Sock(Protocol):
    """One socket as kernel.procnet.Sock and kernel.sockdiag read it (kept as a shape: no import
    from the kernel adapters into a pure module)."""

    state: str
    src: str
    sport: int
    dst: str
    dport: int


def listening_ports(socks: Iterable[Sock]) -> set[int]:
    return {s.sport for s in socks if s.state == "LISTEN"}


def is_client_side(s: Sock, listening: set[int]) -> bool:
    """Opened by this host: not a listener, and not accepted on a listener's port."""
    return s.state != "LISTEN" and s.sport not in listening


def matches(s: Sock, dst_filter: tuple[str, int] | None) -> bool:
    return dst_filter is None or (s.dst, s.dport) == dst_filter


def destination_rows(socks: list[Sock], dst_filter: tuple[str, int] | None, ports: int) -> list[dict]:
    """One row per (local address, remote address:port) with client-side sockets, TIME_WAIT first."""
    listening = listening_ports(socks)
    states: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for s in socks:
        # server-side sockets use the listener's port, not the ephemeral budget
        if is_client_side(s, listening) and matches(s, dst_filter):
            states[(s.src, f"{s.dst}:{s.dport}")][s.state] += 1
    rows = []
    for (src, dst), counts in states.items():
        held = sum(counts.values())  # every state but LISTEN holds its ephemeral port
        rows.append({
            "src": src, "dst": dst, "time_wait": counts.get("TIME_WAIT", 0),
            "established": counts.get("ESTABLISHED", 0),
            "other": held - counts.get("TIME_WAIT", 0) - counts.get("ESTABLISHED", 0),
            "budget_used": round(held / ports, 4) if ports else 1.0,
        })
    rows.sort(key=lambda r: (-r["time_wait"], -r["established"], r["dst"]))
    return rows


def accepted_on(s: Sock, listening: set[int], local: tuple[str, int] | None) -> bool:
    """Accepted on a listener's port (with `local`: on that address:port only)."""
    return (s.state != "LISTEN" and s.sport in listening
            and (local is None or (s.src, s.sport) == local))


def listener_rows(socks: list[Sock], local: tuple[str, int] | None = None) -> list[dict]:
    """One row per local address:port that listens, with the sockets accepted on it, TIME_WAIT first."""
    listening = listening_ports(socks)
    states: dict[str, Counter] = defaultdict(Counter)
    peers: dict[str, set[str]] = defaultdict(set)
    for s in socks:
        if accepted_on(s, listening, local):
            key = f"{s.src}:{s.sport}"
            states[key][s.state] += 1
            peers[key].add(s.dst)
    rows = []
    for key, counts in states.items():
        total = sum(counts.values())
        rows.append({
            "local": key, "time_wait": counts.get("TIME_WAIT", 0), "established": counts.get("ESTABLISHED", 0),
            "other": total - counts.get("TIME_WAIT", 0) - counts.get("ESTABLISHED", 0), "peers": len(peers[key]),
        })
    rows.sort(key=lambda r: (-r["time_wait"], -r["established"], r["local"]))
    return rows


def header_totals(socks: list[Sock], dst_filter: tuple[str, int] | None) -> Counter:
    """State counts for the header: every socket; with --dst, the same sockets as the rows: the client
    side towards it, and (when it is a local listening address) the connections accepted on it."""
    if dst_filter is None:
        return Counter(s.state for s in socks)
    listening = listening_ports(socks)
    return Counter(s.state for s in socks if (is_client_side(s, listening) and matches(s, dst_filter))
                   or accepted_on(s, listening, dst_filter))


def trend(row: dict, previous: dict, interval_s: float, key) -> float:
    """TIME_WAIT change per second since the previous reading (0 for a new row)."""
    return (row["time_wait"] - previous.get(key, row["time_wait"])) / interval_s
