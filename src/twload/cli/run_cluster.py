"""`twload run … --cluster local:N | --scheduler URL`: the distributed run, from plan to summary.

Called by cli/run.py in place of its local execute(); the same run folder comes out. It is the
command line's part of a distributed run (what the user is told, the exit code, the thresholds);
twload.distributed runs it.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from twload import thresholds as gates
from twload.cli.progress import live_hooks, live_progress
from twload.distributed.coordinator import DaskRun, DistributedError, connect, worker_slots
from twload.distributed.spec import ClusterSpec
from twload.distributed.split import merged_budget, split, wall_line
from twload.engine.supervisor import exit_code_for
from twload.live.feed import LiveRun
from twload.merge.summary import Summary
from twload.plan import Plan
from twload.results import RunFolder, RunFolderError, check_fresh, claim_run_dir, plan_record

EXIT_STRICT = 2
CLOCK_SKEW_WARN_S = 0.25  # the start instant is wall-clock time; a worker this far off starts visibly apart


class Refused(DistributedError):
    exit_code = EXIT_STRICT


def execute(plan: Plan, spec: ClusterSpec, processes_per_worker: int | None, out: Path | None,
            show_progress: bool, console: Console, strict: bool = False,
            thresholds: list | None = None, keep_credentials: bool = False, live: LiveRun | None = None,
            full_screen: bool = False) -> tuple[Summary, Path, int]:
    """Run `plan` over the cluster; DistributedError (one line for the user) when it cannot."""
    if spec.plain_beyond_loopback:
        console.print(f"[yellow]note: {spec.scheduler} is plain tcp:// (--allow-insecure-scheduler): whoever "
                      "reaches it can run code on its workers and on this host[/]", soft_wrap=True)

    held: list[str] = []  # said while the full screen is up: said again once it gave way

    def say(text: str) -> None:
        console.print(text, soft_wrap=True)
        if full_screen:
            held.append(text)

    def on_ready(preflights: list[dict]) -> None:
        if live is not None:
            live.state.set_budget(merged_budget(preflights))  # the view's and the endpoint's port budget
        skewed = [p for p in preflights if abs(p["clock_offset_s"]) > CLOCK_SKEW_WARN_S]
        for p in skewed:
            say(f"[yellow]{p['host']}'s clock is {p['clock_offset_s']:+.2f} s from this host's: it starts "
                "that much off the common instant (run NTP on every host)[/]")
        warnings = [p["warning"] for p in preflights if "warning" in p]
        if not warnings:
            return
        budget = merged_budget(preflights)
        line = wall_line(preflights) or f"{len(preflights)} workers"
        exhausted = budget["exhausted_at_connection"]
        more = (f"; connection {exhausted:,} within 60 s fails with EADDRNOTAVAIL" if exhausted else "")
        which = "each worker" if len(warnings) == len(preflights) else f"{len(warnings)} of {len(preflights)} workers"
        say(f"[yellow]pre-flight: {line}{more}. {which.capitalize()}: {warnings[0].removeprefix('pre-flight: ')}[/]")
        if strict:
            raise Refused("refusing to start (--strict)")

    try:
        if out is not None:
            check_fresh(out)  # before the cluster starts: a refused folder costs nothing
    except RunFolderError as exc:
        raise DistributedError(str(exc)) from None
    with connect(spec) as client:
        shards = split(plan, worker_slots(client), processes_per_worker)
        try:
            # a default folder is claimed once the cluster answers: an unreachable one leaves none behind
            path = Path(out) if out is not None else claim_run_dir()
            folder = RunFolder(path)
        except RunFolderError as exc:
            raise DistributedError(str(exc)) from None
        try:
            # this host's view; each worker's own pre-flight is in the summary
            record = plan_record(plan, keep_credentials=keep_credentials)
            record["cluster"] = spec.label
            record["dask_workers"] = [s.worker.address for s in shards]
            folder.write_plan(record)
            try:
                with live_progress(console, show_progress and not full_screen) as on_line, \
                        live_hooks(live, console, full_screen, None, on_line) as (on_progress, on_second):
                    # on_second: the coordinator's merged seconds, as a local run's
                    summary = DaskRun(plan, folder, client, shards, on_progress, on_ready, on_second=on_second).run()
            finally:
                for text in held:
                    console.print(text, soft_wrap=True)
            summary = summary.with_(cluster=spec.label)
            if thresholds:
                summary = summary.with_(thresholds=tuple(gates.evaluate(thresholds, summary)))
            folder.write_summary(summary.to_dict())
        finally:
            folder.close()
    malformed = summary.malformed_events
    if malformed:
        console.print(f"[yellow]{malformed['count']} event(s) on the run's Dask topic were not shard messages and "
                      f"were ignored (first: {malformed['first']}): someone else can reach the scheduler[/]",
                      soft_wrap=True)
    code = exit_code_for(summary)
    if code == 0 and any(not t["passed"] for t in summary.thresholds or ()):
        code = 1
    return summary, path, code
