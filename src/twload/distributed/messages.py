"""What a shard (the twload run on one Dask worker) tells the coordinator, through Dask's event stream.

The messages are data, carried as JSON and checked field by field on receipt: anyone who can reach
the scheduler can put events on the run's topic, so what arrives is never unpickled or otherwise
executed. Anything that is not one of these messages, in its exact shape, raises MalformedEvent and
is counted by the coordinator, never acted on.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass
from typing import Any

from twload.merge.summary import Summary
from twload.metrics import HISTOGRAMS, Snapshot, check_encoded

MAX_EVENT_BYTES = 8 << 20  # a busy second of one shard's engine processes is tens of KiB
MAX_NAMES = 4096  # error names, status codes, keys of a dict in one message
MAX_TEXT = 64 << 10  # one string
# The largest whole number a message holds: the core's counters are 64-bit. JSON allows any size, and a
# Python int beyond a float's range raises OverflowError in the coordinator's arithmetic (go_at + tick).
MAX_WHOLE = (1 << 63) - 1


class MalformedEvent(ValueError):
    """An event that is not a shard message (its shape, types or values); the message says what."""


@dataclass(frozen=True, slots=True)
class ShardReady:
    """The shard's engine processes are up; `detail` is its host and its own pre-flight."""

    shard: int
    detail: dict


@dataclass(frozen=True, slots=True)
class ShardTick:
    """One second of the shard: its engine processes' snapshots, unmerged (the coordinator adds them).

    `time_wait` is the shard's own count of client TIME_WAIT sockets towards the target.
    """

    shard: int
    tick: int
    snapshots: list[Snapshot]
    time_wait: int | None


@dataclass(frozen=True, slots=True)
class ShardDone:
    """The shard has stopped; `summary` is its own (its merger's, as a local run's)."""

    shard: int
    summary: Summary


@dataclass(frozen=True, slots=True)
class ShardError:
    """The shard could not start or run; the message is for the user."""

    shard: int
    error: str


ShardMessage = ShardReady | ShardTick | ShardDone | ShardError


# -- encoding --------------------------------------------------------------------------------------
def encode(message: ShardMessage) -> bytes:
    """JSON bytes for the event stream. A snapshot's bytes (its encoded histograms, already base64
    text, and the peer's raw bytes, base64 here) become strings; its int status codes, string keys."""
    match message:
        case ShardReady(shard, detail):
            body: dict[str, Any] = {"kind": "ready", "shard": shard, "detail": detail}
        case ShardTick(shard, tick, snapshots, time_wait):
            body = {"kind": "tick", "shard": shard, "tick": tick, "time_wait": time_wait,
                    "snapshots": [_snapshot_out(s) for s in snapshots]}
        case ShardDone(shard, summary):
            body = {"kind": "done", "shard": shard, "summary": summary.to_dict()}
        case ShardError(shard, error):
            body = {"kind": "error", "shard": shard, "error": error}
    return json.dumps(body, separators=(",", ":")).encode()


def _snapshot_out(snap: Snapshot) -> dict:
    out = snap.to_dict()
    out["status"] = {str(code): n for code, n in snap.status.items()}
    for name in HISTOGRAMS:
        out[name] = snap.histogram(name).decode("ascii")
    if snap.peer_bytes:
        out["peer_bytes"] = base64.b64encode(snap.peer_bytes).decode("ascii")
    if snap.targets:  # a request file: each target group's counts (group indexes become JSON keys)
        out["targets"] = {str(group): {**part, "status": {str(code): n for code, n in part["status"].items()},
                                       "latency": part["latency"].decode("ascii")}
                          for group, part in snap.targets.items()}
    return out


# -- decoding and checking -------------------------------------------------------------------------
def decode(payload: object, shards: int | None = None) -> ShardMessage:
    """The message in an event's payload, checked; MalformedEvent for anything else (a pickle, other
    JSON, a shard index outside 0..shards-1, a field of the wrong type or range)."""
    if not isinstance(payload, bytes | bytearray | str):
        raise MalformedEvent(f"payload is {type(payload).__name__}, not JSON text")
    if len(payload) > MAX_EVENT_BYTES:
        raise MalformedEvent(f"payload of {len(payload)} bytes (at most {MAX_EVENT_BYTES})")
    try:
        body = json.loads(payload)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise MalformedEvent("payload is not JSON") from None
    if not isinstance(body, dict):
        raise MalformedEvent("payload is not a JSON object")
    shard = _int(body.get("shard"), "shard")
    if shards is not None and shard >= shards:
        raise MalformedEvent(f"shard {shard} is not one of this run's {shards}")
    kind = body.get("kind")
    if kind == "tick":
        _keys(body, {"kind", "shard", "tick", "time_wait", "snapshots"}, "tick")
        snapshots = _list(body.get("snapshots"), "snapshots")
        return ShardTick(shard, _int(body.get("tick"), "tick"), [_snapshot_in(s) for s in snapshots],
                         _opt_int(body.get("time_wait"), "time_wait"))
    if kind == "ready":
        _keys(body, {"kind", "shard", "detail"}, "ready")
        return ShardReady(shard, _detail(body.get("detail")))
    if kind == "done":
        _keys(body, {"kind", "shard", "summary"}, "done")
        return ShardDone(shard, _summary(body.get("summary")))
    if kind == "error":
        _keys(body, {"kind", "shard", "error"}, "error")
        return ShardError(shard, _text(body.get("error"), "error"))
    raise MalformedEvent(f"unknown kind {str(kind)[:40]!r}")


def _keys(body: dict, allowed: set[str], what: str) -> None:
    extra = set(body) - allowed
    if extra:
        raise MalformedEvent(f"{what}: unexpected field {sorted(extra)[0][:40]!r}")


def _int(value: object, what: str) -> int:
    if type(value) is not int or not 0 <= value <= MAX_WHOLE:  # bool is an int subclass: refused too
        raise MalformedEvent(f"{what} is not a whole number from 0 to 2**63-1")
    return value


def _opt_int(value: object, what: str) -> int | None:
    return None if value is None else _int(value, what)


def _number(value: object, what: str) -> float:
    try:
        finite = type(value) in (int, float) and math.isfinite(value)  # type: ignore[arg-type]
    except OverflowError:  # an int beyond a float's range
        finite = False
    if not finite:
        raise MalformedEvent(f"{what} is not a finite number")
    return value  # type: ignore[return-value]


def _opt_number(value: object, what: str) -> float | None:
    return None if value is None else _number(value, what)


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise MalformedEvent(f"{what} is not a string (of at most {MAX_TEXT} characters)")
    return value


def _list(value: object, what: str) -> list:
    if not isinstance(value, list) or len(value) > MAX_NAMES:
        raise MalformedEvent(f"{what} is not a list (of at most {MAX_NAMES})")
    return value


def _dict(value: object, what: str) -> dict:
    if not isinstance(value, dict) or len(value) > MAX_NAMES:
        raise MalformedEvent(f"{what} is not an object (of at most {MAX_NAMES} fields)")
    return value


def _texts(value: object, what: str) -> list[str]:
    return [_text(v, what) for v in _list(value, what)]


def _counts(value: object, what: str) -> dict[str, int]:
    return {_text(k, what): _int(n, f"{what}[{k[:40]}]") for k, n in _dict(value, what).items()}


def _histogram(value: object, what: str) -> bytes:
    text = _text(value, what)
    if not text:
        return b""
    try:
        data = text.encode("ascii")
        check_encoded(data)  # as Totals.add will decode it: a bad one is refused here, not there
    except Exception:  # hdrh raises binascii, zlib, struct or its own codec errors
        raise MalformedEvent(f"{what} is not an encoded HdrHistogram") from None
    return data


SNAPSHOT_COUNTS = ("requests", "connections_opened", "bytes_in", "bytes_out")
TLS_COUNTS = ("tls_handshakes", "tls_resumed")  # the core's, https only
H2_GAUGES = ("h2_server_max_streams", "h2_connections_open", "h2_streams_open")  # the core's, --http2 only


def _status(value: object, what: str) -> dict[int, int]:
    status = {}
    for code, n in _dict(value, what).items():
        if not (isinstance(code, str) and code.isascii() and code.isdigit() and len(code) <= 3):
            raise MalformedEvent(f"status code {str(code)[:40]!r} is not a number ({what})")
        status[int(code)] = _int(n, f"{what}[{code}]")
    return status


MAX_GROUPS = 256  # plan/targets.py MAX_NAMES: a request file's target groups


def _targets(value: object) -> dict[int, dict]:
    """A snapshot's per-target counts (CoreWorker.target_counts), by group index."""
    out = {}
    for group, part in _dict(value, "targets").items():
        if not (isinstance(group, str) and group.isascii() and group.isdigit() and int(group) < MAX_GROUPS):
            raise MalformedEvent(f"targets: group {str(group)[:40]!r} is not 0..{MAX_GROUPS - 1}")
        part = _dict(part, "targets")
        _keys(part, {"requests", "sum_latency_us", "status", "errors", "latency"}, "targets")
        out[int(group)] = {"requests": _int(part.get("requests"), "targets.requests"),
                           "sum_latency_us": _int(part.get("sum_latency_us"), "targets.sum_latency_us"),
                           "status": _status(part.get("status"), "targets.status"),
                           "errors": _counts(part.get("errors"), "targets.errors"),
                           "latency": _histogram(part.get("latency"), "targets.latency")}
    return out


def _snapshot_in(value: object) -> Snapshot:
    """A snapshot as Totals.add reads it: counters, status and error counts, histograms (bytes)."""
    raw = _dict(value, "snapshot")
    _keys(raw, {*SNAPSHOT_COUNTS, *TLS_COUNTS, "status", "errors", "first_errors", "max_lag_us", "sums_us",
                "peer_bytes", "tls_reason", *H2_GAUGES, "targets", "destinations", *HISTOGRAMS}, "snapshot")
    snap: dict[str, Any] = {name: _int(raw.get(name), name) for name in SNAPSHOT_COUNTS}
    snap["status"] = _status(raw.get("status"), "status")
    snap["errors"] = _counts(raw.get("errors"), "errors")
    if "targets" in raw:
        snap["targets"] = _targets(raw["targets"])
    if "destinations" in raw:
        snap["destinations"] = tuple(_int(n, "destinations") for n in _list(raw["destinations"], "destinations"))
    if "first_errors" in raw:
        first = {}
        for name, pair in _dict(raw["first_errors"], "first_errors").items():
            pair = _list(pair, "first_errors")
            if len(pair) != 2:
                raise MalformedEvent("first_errors: not [connection, seconds]")
            first[_text(name, "first_errors")] = (_int(pair[0], "first_errors"), _number(pair[1], "first_errors"))
        snap["first_errors"] = first
    if "max_lag_us" in raw:
        snap["max_lag_us"] = _int(raw["max_lag_us"], "max_lag_us")
    if "sums_us" in raw:
        snap["sums_us"] = _counts(raw["sums_us"], "sums_us")
    for name in HISTOGRAMS:
        if name in raw:
            snap[name] = _histogram(raw[name], name)
    if "peer_bytes" in raw:
        try:
            snap["peer_bytes"] = base64.b64decode(_text(raw["peer_bytes"], "peer_bytes"), validate=True)
        except binascii.Error:
            raise MalformedEvent("peer_bytes is not base64") from None
    if "tls_reason" in raw:
        snap["tls_reason"] = _text(raw["tls_reason"], "tls_reason")
    for name in TLS_COUNTS:
        if name in raw:
            snap[name] = _int(raw[name], name)
    for name in H2_GAUGES:  # --http2: the server's cap on the streams; connections and streams open
        if name in raw:
            snap[name] = _int(raw[name], name)
    return Snapshot(**snap)


def _budget(value: object) -> dict:
    budget = dict(_dict(value, "budget"))
    budget["ports"] = _int(budget.get("ports"), "budget.ports")
    budget["reuse_after_s"] = _number(budget.get("reuse_after_s"), "budget.reuse_after_s")
    budget["sustainable_new_conn_per_s"] = _opt_number(budget.get("sustainable_new_conn_per_s"),
                                                       "budget.sustainable_new_conn_per_s")
    budget["exhausted_at_connection"] = _opt_int(budget.get("exhausted_at_connection"),
                                                 "budget.exhausted_at_connection")
    return budget


def _detail(value: object) -> dict:
    """The shard's pre-flight: what the coordinator reads of it is checked; the rest is shown as data."""
    detail = dict(_dict(value, "detail"))
    detail["clock_s"] = _number(detail.get("clock_s"), "clock_s")
    for name in ("host", "netns"):
        detail[name] = _text(detail.get(name), name)
    detail["sources"] = _texts(detail.get("sources"), "sources")
    detail["budget"] = _budget(detail.get("budget"))
    if not isinstance(detail.get("target_timestamps"), bool):
        raise MalformedEvent("target_timestamps is not true or false")
    for name in ("pid", "engine_processes", "connections"):
        detail[name] = _int(detail.get(name), name)
    for name in ("time_wait_held", "listeners_in_range"):
        if name in detail:
            detail[name] = _int(detail[name], name)
    if "warning" in detail:
        detail["warning"] = _text(detail["warning"], "warning")
    return detail


def _summary(value: object) -> Summary:
    """The shard's own summary: the fields the coordinator merges are checked; the rest is data."""
    summary = dict(_dict(value, "summary"))
    summary["duration_s"] = _number(summary.get("duration_s"), "duration_s")
    for name in ("worker_failures", "advice"):
        if name in summary:
            summary[name] = _texts(summary[name], name)
    for name in ("engine", "io", "interrupted", "stopped_by"):
        if summary.get(name) is not None:
            summary[name] = _text(summary[name], name)
    if "time_wait_peak" in summary:
        summary["time_wait_peak"] = _int(summary["time_wait_peak"], "time_wait_peak")
    if "first_errors" in summary:
        _dict(summary["first_errors"], "first_errors")
    try:
        return Summary.from_dict(summary)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a field this twload cannot read
        raise MalformedEvent(f"summary: {type(exc).__name__}: {str(exc)[:80]}") from None
