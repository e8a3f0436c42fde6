"""`twload.simulate()`: a named scenario of the deterministic kernel model, as `twload simulate run` runs
it (the same scenarios, settings, checks and --json document)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twload.plan import PlanError
from twload.sim.run import run_scenario
from twload.sim.scenarios import SCENARIOS


@dataclass(frozen=True)
class SimResult:
    """What the model found: connections attempted and established, failures and SYNs dropped by reason,
    the rules that decided, and the explanation `twload simulate run` prints."""

    scenario: str
    kernel: str
    attempted: int
    established: int
    failed: dict[str, int]
    syn_dropped: dict[str, int]
    first_failure_s: float | None
    explanation: tuple[str, ...]
    params: dict[str, Any]
    document: dict[str, Any] = field(repr=False)  # `twload simulate run --json`'s

    @property
    def failures(self) -> int:
        return sum(self.failed.values())

    def to_dict(self) -> dict[str, Any]:
        """`twload simulate run --json`'s document."""
        return dict(self.document)

    def __repr__(self) -> str:
        first = "" if self.first_failure_s is None else f", first failure at {self.first_failure_s:g} s"
        failed = ", ".join(f"{name} {count}" for name, count in self.failed.items()) or "none"
        return (f"SimResult({self.scenario} on {self.kernel}: {self.established}/{self.attempted} established, "
                f"failed: {failed}{first})")


def scenario_result(name: str, overrides: dict[str, str], kernel: str | None = None, seed: int = 1,
                    trace: bool = False) -> SimResult:
    """The scenario with `--set key=value` texts; PlanError for an unknown scenario or setting (one line)."""
    if name not in SCENARIOS:
        raise PlanError(f"unknown scenario {name!r}: see `twload simulate list`")
    try:
        out = run_scenario(name, overrides, kernel, seed, trace)
    except ValueError as exc:  # a setting the scenario does not take, or a value of the wrong kind
        raise PlanError(str(exc)) from None
    return SimResult(out["scenario"], out["kernel"], out["attempted"], out["established"], dict(out["failed"]),
                     dict(out["syn_dropped"]), out["first_failure_s"], tuple(out["explanation"]),
                     dict(out["params"]), out)


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def simulate(scenario: str, *, kernel: str | None = None, seed: int = 1, trace: bool = False,
             **settings: object) -> SimResult:
    """`twload simulate run SCENARIO --kernel K --seed N --set key=value ...`: `settings` are the --set
    values (ports=1000, rate=50, tw_reuse=1, server_timestamps=False ...). Same seed, same result."""
    return scenario_result(scenario, {key: _text(value) for key, value in settings.items()}, kernel, seed, trace)
