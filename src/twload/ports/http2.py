"""HTTP/2 (--http2) and the port wall: what summary.json says about the run's streams and
connections against the ports HTTP/1.1 short connections would hold (docs/ARCHITECTURE.md "HTTP/2")."""

from __future__ import annotations

import math

from twload.plan import Plan
from twload.ports.budget import TIME_WAIT_S


def http1_ports_needed(requests: int, duration_s: float) -> int:
    """Ports the same requests would hold as HTTP/1.1 short connections the client closes: one
    connection each, each port held in TIME_WAIT for TIME_WAIT_S after its close, so at the
    run's rate at most rate * TIME_WAIT_S at once (all of them in a run shorter than that)."""
    if requests <= 0 or duration_s <= 0:
        return 0
    return min(requests, math.ceil(requests / duration_s * TIME_WAIT_S))


def summary_keys(plan: Plan, requests: int, duration_s: float, server_max_streams: int) -> dict:
    """summary.json's HTTP/2 keys (docs/ARCHITECTURE.md "summary.json"):
      http2                     true
      streams                   --streams asked for, per connection
      h2_server_max_streams     present when a server's SETTINGS_MAX_CONCURRENT_STREAMS was below
                                --streams: the smallest it sent, which capped the streams
      http1_ports_needed        ports (connections) the same requests at the same rate would hold as
                                HTTP/1.1 short connections the client closes (TIME_WAIT 60 s)
    beside connections_opened, the ports this run used."""
    keys: dict = {"http2": True, "streams": plan.streams,
                  "http1_ports_needed": http1_ports_needed(requests, duration_s)}
    if server_max_streams:
        keys["h2_server_max_streams"] = server_max_streams
    return keys

