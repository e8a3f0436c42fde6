"""`twload report RUN`: a run folder's summary again, rebuilt from its samples when the run never finished."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from twload.cli import EXIT_USAGE, app, err, fail, terminal_width
from twload.report.rebuild import rebuild_summary
from twload.report.text import render
from twload.results import SAMPLES, SUMMARY, read_summary


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run folder (twload-runs/<time>/).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print summary.json instead of text.")] = False,
) -> None:
    """Show a run folder's summary; rebuilds it from the streamed samples if the run never finished."""
    if (run_dir / SUMMARY).exists():
        summary = read_summary(run_dir)
    elif (run_dir / SAMPLES).exists():
        summary = rebuild_summary(run_dir)
        err.print("no summary.json (the run did not finish): rebuilt from plan.json, samples.jsonl and hdrh.log")
    else:
        fail(f"{run_dir} is not a twload run folder (no summary.json, no samples.jsonl)", EXIT_USAGE)
    print(json.dumps(summary, indent=2) if as_json else render(summary, terminal_width()))
