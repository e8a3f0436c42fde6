"""--targets over Dask (issue #32): each shard sends the request file's requests, templated values stay
unique across every shard's engine processes, and the per-target and per-destination counts merge.
A LocalCluster on loopback, recording peers (tests/integration/peers.py) counting what arrives."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import run_cli
from tests.integration.peers import RecordingPeer


@pytest.fixture
def peers():
    made: list[RecordingPeer] = []

    def make() -> RecordingPeer:
        made.append(RecordingPeer())
        return made[-1]

    yield make
    for p in made:
        p.close()


def run_json(tmp_path, *args: str) -> tuple[dict, str]:
    proc = run_cli("run", "--json", "--out", str(tmp_path / "run"), *args, timeout=180, cwd=str(tmp_path))
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), proc.stderr


def test_each_shard_sends_the_file_and_the_targets_merge(tmp_path, peers):
    peer = peers()
    (tmp_path / "body").write_text('{"id": {{seq}}}')
    (tmp_path / "t").write_text(f"# name: list\nGET {peer.url}items?id={{{{seq}}}}&w={{{{worker}}}}\n\n"
                                f"POST {peer.url}items\nX-Tag: a\nX-Tag: b\n@body\n\n"
                                f"DELETE {peer.url}items/7\n")
    summary, _ = run_json(tmp_path, "--targets", "t", "--cluster", "local:2", "-n", "60", "-c", "2")
    assert summary["dask_workers"] == 2 and summary["requests"] == 60 and summary["errors"] == {}
    assert len(peer.requests) == 60
    seqs, workers = [], set()
    for _, line, fields, body in peer.requests:
        if line.startswith("GET"):
            query = dict(p.split("=") for p in line.split()[1].split("?")[1].split("&"))
            seqs.append(int(query["id"]))
            workers.add(query["w"])
        elif line.startswith("POST"):
            assert [v for n, v in fields if n == "X-Tag"] == ["a", "b"]  # repeated, in order
            seqs.append(json.loads(body)["id"])
        else:
            assert line == "DELETE /items/7 HTTP/1.1"
    assert len(seqs) == 40 and len(set(seqs)) == 40  # unique across both shards' engine processes
    assert workers == {"0", "1"}  # the shards' processes numbered 0 and 1, not both 0
    rows = {row["name"]: row["requests"] for row in summary["targets"]}
    # each shard's process walks the cycle of three from its own place: 30 requests, 10 a target
    assert rows == {"list": 20, f"POST {peer.url}items": 20, f"DELETE {peer.url}items/7": 20}
    assert sum(w["requests"] for w in summary["workers_detail"]) == 60


def test_each_shard_sends_each_destination_its_own_targets(tmp_path, peers):
    a, b = peers(), peers()
    (tmp_path / "t").write_text(f"GET {a.url}a\n\n# weight: 3\nGET {b.url}b?id={{{{seq}}}}\n")
    summary, _ = run_json(tmp_path, "--targets", "t", "--cluster", "local:2", "-n", "40", "-c", "4", "--close", "fin")
    assert summary["requests"] == 40 and summary["errors"] == {}
    assert {line for _, line, _, _ in a.requests} == {"GET /a HTTP/1.1"}
    assert {re.sub(r"\?id=\d+", "", line) for _, line, _, _ in b.requests} == {"GET /b HTTP/1.1"}
    assert len(a.requests) + len(b.requests) == 40
    rows = summary["destinations"]
    host = [p.url.split("/")[2] for p in (a, b)]
    assert [r["destination"] for r in rows] == host
    # a connection a request (--close fin): each destination's connections are its requests, every shard's added
    assert [r["connections_opened"] for r in rows] == [len(a.requests), len(b.requests)]
    ids = [int(line.split("=")[1].split()[0]) for _, line, _, _ in b.requests]
    assert len(set(ids)) == len(ids)


def test_too_few_connections_for_the_destinations_on_each_worker_is_one_line(tmp_path, peers):
    a, b = peers(), peers()
    (tmp_path / "t").write_text(f"GET {a.url}\n\nGET {b.url}\n")
    proc = run_cli("run", "--targets", "t", "--cluster", "local:2", "-n", "4", "-c", "3", cwd=str(tmp_path),
                   timeout=180)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "-c 3 over 2 Dask workers leaves a worker fewer connections than the 2 destinations" in proc.stderr
    assert a.connections == b.connections == 0  # refused before any shard starts its pre-flight
