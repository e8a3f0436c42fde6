"""`twload.doctor()`: what will fail in a short-connection load test, why, and what to change, as
`twload doctor` says it (the same checks of the plan, the same facts, rules and --json document).

Read-only: the sysctl fixes (`twload doctor --fix`, `--restore`) stay on the command line, where they
ask first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twload.doctor import rules
from twload.doctor.probe import probe
from twload.kernel import sysctl
from twload.kernel.resolve import parse_target
from twload.plan import CLOSE_STRATEGIES, PlanError, Target, parse_sources
from twload.ports.facts import KernelFacts


@dataclass(frozen=True)
class Diagnosis:
    """The doctor's verdict: this host's kernel settings, the target's facts when a URL was given, the
    findings (each ok, warning or problem, with its message), the port budget."""

    url: str | None
    kernel: KernelFacts
    sysctls: dict[str, str | None]
    target: rules.TargetFacts | None
    plan: rules.DoctorPlan
    findings: tuple[rules.Finding, ...]
    document: dict[str, Any] = field(repr=False)  # `twload doctor --json`'s, built once

    @property
    def problems(self) -> tuple[rules.Finding, ...]:
        return tuple(f for f in self.findings if f.level == rules.PROBLEM)

    @property
    def warnings(self) -> tuple[rules.Finding, ...]:
        return tuple(f for f in self.findings if f.level == rules.WARNING)

    @property
    def ok(self) -> bool:
        """No problem found (warnings may remain): `twload doctor` exits 0."""
        return not self.problems

    @property
    def fixes(self) -> dict[str, str]:
        """The sysctl changes `twload doctor --fix` would make: name -> value."""
        return rules.proposed_fixes(list(self.findings))

    @property
    def sustainable_new_conn_per_s(self) -> float | None:
        value = self.document["budget"]["sustainable_new_conn_per_s"]
        return None if value is None else float(value)

    def to_dict(self) -> dict[str, Any]:
        """`twload doctor --json`'s document: sysctl, target, budget, findings."""
        return {key: value for key, value in self.document.items()}

    def __repr__(self) -> str:
        def named(found: tuple[rules.Finding, ...], word: str) -> str:
            ids = f" ({', '.join(f.id for f in found)})" if found else ""
            return f"{len(found)} {word}{'' if len(found) == 1 else 's'}{ids}"

        where = f"target {self.url}" if self.url else "no target"
        return (f"Diagnosis(kernel {self.kernel.kernel_release}, {where}, close={self.plan.close}: "
                f"{named(self.problems, 'problem')}, {named(self.warnings, 'warning')})")


def doctor_plan(close: str = "fin", rate: float | None = None, connections: int = 50, source: str | None = None,
                sources: int | None = None) -> rules.DoctorPlan:
    """The plan the doctor judges, checked as `twload doctor`'s options are (PlanError: one line)."""
    if close not in CLOSE_STRATEGIES:
        raise PlanError(f"--close must be one of {', '.join(CLOSE_STRATEGIES)}, not {close!r}")
    if source is not None and sources is not None:
        raise PlanError("give --source ADDRESSES (or the old --sources N), not both")
    count = len(parse_sources(source)) if source else (sources if sources is not None else 1)
    if count < 1 or connections < 1 or (rate is not None and rate <= 0):
        raise PlanError("--source needs at least one address, --connections at least 1, --rate positive")
    return rules.DoctorPlan(close=close, rate=rate, connections=connections, sources=count)


def diagnose(url: str | None, plan: rules.DoctorPlan, target: Target | None = None) -> Diagnosis:
    """This host's facts (and the target's, probed with two requests, when `url` is given) under the rules.
    `target`: the URL already resolved."""
    if target is None and url:
        target = parse_target(url)  # a bad URL or an unknown host: PlanError
    kernel = sysctl.gather()
    facts = probe(target) if target else None
    findings = rules.diagnose(kernel, facts, plan)
    values = sysctl.sysctl_values()
    return Diagnosis(url, kernel, values, facts, plan, tuple(findings),
                     rules.report(kernel, values, facts, plan, findings))


def doctor(url: str | None = None, *, close: str = "fin", rate: float | None = None, connections: int = 50,
           source: str | None = None) -> Diagnosis:
    """`twload doctor [URL] --close ... --rate ... -c ... --source ...`: the diagnosis of a planned run.

    `rate`: new connections per second; `source`: the source addresses (10.0.0.2,10.0.0.3 or a range or
    a CIDR block). An unreachable target is a finding, not an exception; PlanError for a mistake in the
    arguments."""
    return diagnose(url, doctor_plan(close, rate, connections, source))
