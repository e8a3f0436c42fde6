"""The plan of a run: what to load, how, for how long. Pure: no sockets, no ssl."""

from twload.plan.errors import PlanError
from twload.plan.model import CLOSE_STRATEGIES, MAX_HEADER_BYTES, Plan, Target, is_loopback
from twload.plan.parse import (
    default_workers,
    parse_duration,
    parse_header,
    parse_sources,
    split_url,
)
from twload.plan.schedule import Schedule, Stage, parse_stages

__all__ = [
    "CLOSE_STRATEGIES", "MAX_HEADER_BYTES", "Plan", "PlanError", "Schedule", "Stage", "Target",
    "default_workers", "is_loopback", "parse_duration", "parse_header", "parse_sources", "parse_stages",
    "split_url",
]
