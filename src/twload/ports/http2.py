"""HTTP/2 (--http2) and the port wall: what summary.json says about the run's streams and
connections against the ports HTTP/1.1 short connections would hold (docs/ARCHITECTURE.md "HTTP/2")."""

from __future__ import annotations

import math
from collections import deque

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



class Http1PortsWindow:
    """samples.jsonl's http1_ports_needed, second by second: the ports the requests so far would hold
    now as HTTP/1.1 short connections the client closes, each port in TIME_WAIT for TIME_WAIT_S after
    its close: the requests of the last TIME_WAIT_S seconds (at the run's end the summary's count for a
    run shorter than that; beyond it, the last minute's where the summary takes the run's mean rate)."""

    def __init__(self) -> None:
        self._seconds: deque[tuple[int, int]] = deque()  # (tick, requests), the last TIME_WAIT_S seconds
        self._held = 0

    def add(self, tick: int, requests: int) -> int:
        """Second `tick`'s requests in; the ports they and the earlier ones within TIME_WAIT_S hold."""
        self._seconds.append((tick, requests))
        self._held += requests
        while self._seconds and self._seconds[0][0] <= tick - TIME_WAIT_S:
            self._held -= self._seconds.popleft()[1]
        return self._held


def sample_keys(plan: Plan, server_max_streams: int, connections_open: int, streams_open: int,
                http1_ports: int) -> dict:
    """An HTTP/2 run's keys in each samples.jsonl row (docs/ARCHITECTURE.md "The run folder"):
      streams               --streams asked for, per connection
      h2_server_max_streams present once a server's SETTINGS_MAX_CONCURRENT_STREAMS capped them (the
                            smallest so far)
      connections_open      the workers' connections open (connecting or connected) at the second's end
      streams_open          their streams in flight then
      http1_ports_needed    Http1PortsWindow: the ports the same requests would hold as HTTP/1.1 short
                            connections
    beside connections_opened, the ports this second opened."""
    keys: dict = {"streams": plan.streams}
    if server_max_streams:
        keys["h2_server_max_streams"] = server_max_streams
    keys.update(connections_open=connections_open, streams_open=streams_open, http1_ports_needed=http1_ports)
    return keys
