"""What a shard (the twload run on one Dask worker) tells the coordinator, through Dask's event stream."""

from __future__ import annotations

import pickle
from dataclasses import dataclass


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
    snapshots: list[dict]
    time_wait: int | None


@dataclass(frozen=True, slots=True)
class ShardDone:
    """The shard has stopped; `summary` is its own (engine.supervisor) summary."""

    shard: int
    summary: dict


@dataclass(frozen=True, slots=True)
class ShardError:
    """The shard could not start or run; the message is for the user."""

    shard: int
    error: str


ShardMessage = ShardReady | ShardTick | ShardDone | ShardError


def encode(message: ShardMessage) -> bytes:
    """Bytes for the event stream (which carries msgpack: a snapshot's int keys would not pass as a map)."""
    return pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)


def decode(payload: bytes) -> ShardMessage:
    """The coordinator reads what its own shards sent; the scheduler they share already runs their code."""
    return pickle.loads(payload)
