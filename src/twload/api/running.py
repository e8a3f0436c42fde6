"""The one way to run a plan on this host: pre-flight, port budget, run folder, supervisor, summary.

`twload run` (cli/run.py) and `twload.run()` both call `execute`; they differ only in what they show
while it runs (the command line's progress line or full-screen view, through `watch` and `note`).
A run that cannot start raises RunError or RunFolderError, with one line for the user.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twload import thresholds as gates
from twload.doctor.preflight import Preflight, preflight
from twload.engine import preflight as pf
from twload.engine.supervisor import Progress, RunError, exit_code_for, run_into_folder
from twload.kernel.sysctl import sysctl_values
from twload.merge.summary import Summary
from twload.plan import Plan
from twload.results import check_fresh, claim_run_dir, plan_record

EXIT_STRICT = 2
EXIT_THRESHOLD = 1  # a failed threshold: the run itself went fine, the target did not

OnProgress = Callable[[Progress], None]
OnSecond = Callable[[dict[str, Any]], None]
Hooks = tuple[OnProgress | None, Sequence[OnSecond]]
# what shows the run while it goes, set up once the pre-flight is known: (on_progress, on_second observers)
Watch = Callable[[Preflight, pf.PortProbe], AbstractContextManager[Hooks]]
Note = Callable[[str, bool], None]  # a pre-flight line before the run; True: a warning


class StrictRefusal(RunError):
    """`strict` and the pre-flight says the ports will run out: the run does not start."""


@dataclass(frozen=True)
class Outcome:
    summary: Summary
    folder: Path
    code: int  # the command line's exit code for it


@contextmanager
def unwatched(pre: Preflight, probe: pf.PortProbe) -> Iterator[Hooks]:
    yield None, ()


def quiet(line: str, warning: bool) -> None:
    pass


def execute(plan: Plan, out: Path | None = None, *, strict: bool = False,
            thresholds: Sequence[gates.Threshold] = (), keep_credentials: bool = False,
            command: list[str] | None = None, note: Note = quiet, watch: Watch = unwatched,
            on_second: Sequence[OnSecond] = (), stop: threading.Event | None = None) -> Outcome:
    """Run `plan` into `out` (default: a new folder under ./twload-runs/). `command`: what plan.json
    records as the command (default: this process's argv); `stop`, set from another thread, stops the
    run as Ctrl-C does."""
    if out is not None:
        check_fresh(out)  # before the probe: a refused folder costs the target nothing
    facts = pf.gather_facts(plan)
    probe = pf.time_wait_probe(plan, facts.start)  # the run's own TIME_WAIT, told from what the facts found
    pre = preflight(plan, facts)
    for each in pre.destinations:  # targets on several destinations: each one's budget and wall
        if not each.warnings:
            note(each.sentence, False)
    for warning in pre.warnings:
        note(warning, True)
    if pre.runs_out and strict:
        raise StrictRefusal("refusing to start (--strict)")
    record = plan_record(plan, sysctl_values(), pre.plan_block(), keep_credentials, command)

    def finish(summary: Summary) -> Summary:
        first = summary.first_errors.get("EADDRNOTAVAIL")
        block = pre.summary_block(summary.errors, summary.connections_opened, first.at_s if first else None)
        if "advice" in block:
            block["advice"] = tuple(block["advice"])
        summary = summary.with_(**block)
        if summary.destinations:  # each destination's row gains its own pre-flight
            summary = summary.with_(destinations=tuple(
                row | each.destination_block()
                for row, each in zip(summary.destinations, pre.destinations, strict=False)))
        if thresholds:
            summary = summary.with_(thresholds=tuple(gates.evaluate(list(thresholds), summary)))
        return summary

    path = out or claim_run_dir()  # claimed now: a probe that fails above leaves no empty folder
    with watch(pre, probe) as (on_progress, observers):
        summary = run_into_folder(plan, path, on_progress, probe, finish, record, (*observers, *on_second), stop)
    code = exit_code_for(summary)
    if code == 0 and any(not t["passed"] for t in summary.thresholds or ()):
        code = EXIT_THRESHOLD
    return Outcome(summary, Path(path), code)
