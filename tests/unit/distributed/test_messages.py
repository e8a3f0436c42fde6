"""The shards' messages are data: JSON that arrives equal, checked on receipt; anything else (a pickle
above all: the scheduler's topic is open to whoever reaches it) is counted and dropped, never run."""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import replace

import pytest

from twload.distributed.coordinator import Events
from twload.distributed.messages import (
    MalformedEvent,
    ShardDone,
    ShardError,
    ShardReady,
    ShardTick,
    decode,
    encode,
)
from twload.merge.summary import Summary
from twload.metrics import Interval, Snapshot, encode_counts


def snapshot(peer: bytes | None = None) -> Snapshot:
    iv = Interval()
    iv.latency.extend([120, 250, 250, 9000])
    iv.connect.extend([40, 41])
    iv.status_codes.extend([200, 200, 503, 101])
    iv.requests, iv.connections_opened, iv.bytes_in, iv.bytes_out = 4, 2, 400, 200
    iv.errors.update({"ECONNRESET": 2, "unexpected_upgrade": 1})
    iv.first_errors["ECONNRESET"] = [3, 0.25]
    snap = iv.snapshot()
    if peer is not None:
        snap = replace(snap, peer_bytes=peer)
    return snap


DETAIL = {
    "host": "h1", "netns": "h1:4026531840", "pid": 4242, "sources": ["127.0.0.1"], "engine_processes": 1,
    "connections": 2, "port_range": "32768-60999", "tcp_tw_reuse": 2, "tcp_timestamps": 1,
    "target_timestamps": True, "time_wait_held": 0, "listeners_in_range": 3, "clock_s": 1.8e9,
    "budget": {"ports": 28232, "reuse_after_s": 60.0, "sustainable_new_conn_per_s": None,
               "exhausted_at_connection": None, "exhausted_after_s": None},
}


@pytest.mark.parametrize("message", [
    ShardReady(0, DETAIL),
    ShardTick(1, 3, [snapshot(), snapshot(b"SSH-2.0-OpenSSH\r\n\x00\xff")], 7),
    ShardTick(1, 4, [Interval().snapshot()], None),
    ShardTick(1, 5, [replace(snapshot(), tls_handshakes=3, tls_resumed=2)], None),  # the core's, https
    ShardTick(1, 5, [replace(snapshot(), h2_server_max_streams=1)], None),  # --http2, capped by the server
    ShardTick(1, 6, [replace(snapshot(), h2_connections_open=3, h2_streams_open=27)], None),  # --http2's gauges
    ShardTick(1, 6, [replace(snapshot(), destinations=(3, 0, 7), targets={  # a request file, several destinations
        0: {"requests": 2, "sum_latency_us": 370, "status": {200: 1, 503: 1}, "errors": {"ECONNRESET": 1},
            "latency": encode_counts({120: 1, 250: 1})},
        5: {"requests": 0, "sum_latency_us": 0, "status": {}, "errors": {"timeout": 2}, "latency": b""}})], None),
    ShardDone(2, Summary.from_dict({"duration_s": 2.5, "requests": 10, "status": {"200": 10}, "errors": {},
                                    "advice": ["x"], "worker_failures": ["worker 0: gone"], "engine": "core",
                                    "io": "epoll", "time_wait_peak": 4,
                                    "first_errors": {"ECONNRESET": {"at_s": 0.5, "connection": 3, "worker": 0}}})),
    ShardError(0, "this worker has twload 0.0.9, the coordinator 0.1.0: install the same version"),
], ids=lambda m: type(m).__name__)
def test_each_message_arrives_equal(message):
    payload = encode(message)
    json.loads(payload)  # plain JSON on the wire
    assert decode(payload, shards=3) == message


class WritesAFile:
    """A pickle that, once loaded, creates a file: what an attacker on the scheduler's network sends."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_pickled_event_is_counted_and_never_loaded(tmp_path):
    marker = tmp_path / "pwned"
    evil = pickle.dumps(WritesAFile(str(marker)))
    honest_pickle = pickle.dumps(ShardError(0, "old coordinator's format"))
    with pytest.raises(MalformedEvent):
        decode(evil)
    events = Events(shards=1)
    events((1.0, evil))
    events((1.0, honest_pickle))
    events((1.0, encode(ShardError(0, "real"))))
    assert not marker.exists() and not os.path.exists(marker)
    assert events.malformed == 2 and events.first_malformed == "payload is not JSON"
    assert events.get_nowait() == ShardError(0, "real")
    assert events.queue.empty()


def tick(**snap_fields) -> dict:
    snap = json.loads(encode(ShardTick(0, 1, [snapshot()], None)))
    snap["snapshots"][0].update(snap_fields)
    return snap


BAD = {
    "not an object": [1, 2],
    "no kind": {"shard": 0},
    "unknown kind": {"kind": "exec", "shard": 0, "code": "import os"},
    "shard out of range": {"kind": "error", "shard": 5, "error": "x"},
    "negative shard": {"kind": "error", "shard": -1, "error": "x"},
    "bool shard": {"kind": "error", "shard": True, "error": "x"},
    "extra field": {"kind": "error", "shard": 0, "error": "x", "callback": "os.system"},
    "error not text": {"kind": "error", "shard": 0, "error": {"a": 1}},
    "string count": tick(requests="5"),
    "float count": tick(requests=5.5),
    "status not a code": tick(status={"OK": 1}),
    "histogram not hdrh": tick(latency="bm90IGEgaGlzdG9ncmFt"),
    "peer bytes not base64": tick(peer_bytes="***"),
    "h2 stream cap not a count": tick(h2_server_max_streams="1"),
    "unknown snapshot field": tick(__class__="x"),
    "target group not an index": tick(targets={"x": {}}),
    "target group beyond the file's": tick(targets={"256": {}}),
    "target count not a count": tick(targets={"0": {"requests": -1, "sum_latency_us": 0, "status": {}, "errors": {},
                                                    "latency": ""}}),
    "target field unknown": tick(targets={"0": {"requests": 1, "sum_latency_us": 0, "status": {}, "errors": {},
                                                "latency": "", "eval": "x"}}),
    "destination count not a count": tick(destinations=["1"]),
    "detail without budget": {"kind": "ready", "shard": 0,
                              "detail": {k: v for k, v in DETAIL.items() if k != "budget"}},
    "detail clock not a number": {"kind": "ready", "shard": 0, "detail": dict(DETAIL, clock_s="now")},
    "summary without duration": {"kind": "done", "shard": 0, "summary": {"requests": 1}},
    "summary advice not text": {"kind": "done", "shard": 0, "summary": {"duration_s": 1.0, "advice": [1]}},
    "summary first error not a record": {"kind": "done", "shard": 0,
                                         "summary": {"duration_s": 1.0, "first_errors": {"ECONNRESET": 5}}},
}


@pytest.mark.parametrize("body", BAD.values(), ids=BAD.keys())
def test_a_malformed_message_is_refused_by_name(body):
    events = Events(shards=2)
    events((1.0, json.dumps(body).encode()))
    assert events.malformed == 1 and events.first_malformed and events.queue.empty()
    with pytest.raises(MalformedEvent):
        decode(json.dumps(body), shards=2)


@pytest.mark.parametrize("payload", [b"", b"\xff\xfe", b"[" * 100_000, 12, None, {"kind": "tick"}],
                         ids=["empty", "not utf-8", "deep", "int", "none", "dict"])
def test_payloads_that_are_not_json_text_are_refused(payload):
    with pytest.raises(MalformedEvent):
        decode(payload)


def test_an_event_that_is_not_a_pair_is_counted():
    events = Events(shards=1)
    events("just a string")
    assert events.malformed == 1 and events.queue.empty()


HUGE = 10 ** 400  # valid JSON, a Python int; too large for a float (math.isfinite, go_at + tick raise OverflowError)
TOO_LARGE = {
    "detail clock": {"kind": "ready", "shard": 0, "detail": dict(DETAIL, clock_s=HUGE)},
    "budget reuse": {"kind": "ready", "shard": 0,
                     "detail": dict(DETAIL, budget=dict(DETAIL["budget"], reuse_after_s=HUGE))},
    "first error time": tick(first_errors={"ECONNRESET": [3, HUGE]}),
    "tick": {"kind": "tick", "shard": 0, "tick": HUGE, "time_wait": None, "snapshots": []},
    "count": tick(requests=2 ** 64),
    "summary duration": {"kind": "done", "shard": 0, "summary": {"duration_s": HUGE}},
}


@pytest.mark.parametrize("body", TOO_LARGE.values(), ids=TOO_LARGE.keys())
def test_a_number_too_large_is_refused_by_name_not_raised(body):
    """The coordinator's arithmetic on these (go_at + tick, a clock offset) would raise OverflowError in
    the Dask client's event loop or the run's supervisor, never counted: refused here instead."""
    events = Events(shards=1)
    events((1.0, json.dumps(body).encode()))
    assert events.malformed == 1 and events.first_malformed and events.queue.empty()
