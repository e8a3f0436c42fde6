"""The order of the tools within a benchmark's round: every round runs each tool once, and the order
turns by one each round, so that no tool always runs first (after a pause) or last (after the
others' TIME_WAIT), while a noisy minute of this shared host still hits every tool of its round."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def rotated(items: Sequence[T], round_index: int) -> list[T]:
    """items in round round_index's order: round 0 as given, round 1 from the second, and so on."""
    if not items:
        return []
    turn = round_index % len(items)
    return [*items[turn:], *items[:turn]]
