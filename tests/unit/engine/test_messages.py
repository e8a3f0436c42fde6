"""Worker messages cross a real pipe (pickled) and arrive equal; they cannot change on the way."""

from __future__ import annotations

import dataclasses
import multiprocessing as mp

import pytest

from twload.engine.messages import Crash, Final, Ready, Tick
from twload.metrics import Interval

SNAPSHOT = Interval().snapshot()


@pytest.mark.parametrize("message", [
    Ready(0),
    Tick(1, 3, SNAPSHOT),
    Final(2, 4, SNAPSHOT, 3.25),
    Crash(3, "OSError: [Errno 24] Too many open files"),
], ids=lambda m: type(m).__name__)
def test_message_crosses_a_pipe_unchanged(message):
    reader, writer = mp.get_context("spawn").Pipe(duplex=False)
    with reader, writer:
        writer.send(message)
        assert reader.poll(10)
        got = reader.recv()
    assert got == message and type(got) is type(message)
    with pytest.raises(dataclasses.FrozenInstanceError):
        got.worker = 9
