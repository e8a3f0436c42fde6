"""summary.json's shape (its keys, their order and nesting, no values), for comparing runs across versions.

PLANS are the runs the comparison covers; summary_shapes_main.json holds their shapes as main wrote them
before the summary became a typed record (made by running these plans with main's code)."""

from __future__ import annotations

from typing import Any

PLANS = {
    "closed_loop": ["-n", "200", "-c", "2", "-w", "2", "--threshold", "p99<10s", "--threshold", "errors<1%"],
    "open_loop": ["--rate", "100", "-d", "1500ms", "-c", "2", "-w", "1", "--close", "fin"],
}
DATA_KEYED = {"status", "errors", "first_errors"}  # their keys are data (codes, error names), not the interface


def shape(value: Any, key: str = "") -> Any:
    """[[key, shape], ...] for a mapping, in order; "list" for a list; "value" for anything else."""
    if isinstance(value, dict):
        if key in DATA_KEYED:
            return "map"
        return [[k, shape(v, k)] for k, v in value.items()]
    if isinstance(value, list):
        return "list"
    return "value"
