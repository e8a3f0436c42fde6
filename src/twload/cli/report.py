"""`twload report RUN [RUN ...]`: one run described, or several compared; text, JSON, CSV or HTML.

Reads only the run folders (never a running engine), so a killed run reports too: its
summary is rebuilt from the streamed samples.
"""

from __future__ import annotations

import json
import textwrap
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from twload.cli import EXIT_USAGE, app, err, fail, terminal_width
from twload.report import numbers
from twload.report.compare_text import render_comparison
from twload.report.text import render
from twload.results import read_summary, write_private

REPORT_HTML = "report.html"


class Format(StrEnum):
    text = "text"
    json = "json"
    html = "html"
    csv = "csv"
    csv_targets = "csv-targets"


def build(folders: list[Path], fmt: str, width: int = 80) -> str:
    """The report of these run folders in this format (numbers.ReportError for a folder that is not a run)."""
    files = [numbers.read_run(folder) for folder in folders]
    runs = [numbers.run_numbers(f) for f in files]
    comparison = numbers.compare(runs) if len(runs) > 1 else None
    if fmt == "json":
        return json.dumps({"runs": runs, "comparison": comparison} if comparison else runs[0], indent=2)
    if fmt == "csv":
        from twload.report.csv import render_csv

        return render_csv(runs)
    if fmt == "csv-targets":  # a request file's targets, one row each (summary.json `targets`)
        from twload.report.csv import render_targets_csv

        return render_targets_csv([(r["name"], f.summary) for r, f in zip(runs, files, strict=True)])
    if fmt == "html":
        from twload.report.html import render_html  # plotly loads only when it is needed

        return render_html(runs, comparison)
    if comparison:
        return render_comparison(comparison, width)
    summary = files[0].summary
    if summary.wall:  # the summary's own first line says it already
        return render(summary, width)
    verdict = textwrap.fill(f"Verdict: {runs[0]['verdict']['text']}", width, subsequent_indent="  ")
    return verdict + "\n" + render(summary, width)


def write_html(folder: Path) -> Path:
    """report.html into the run folder (used by `twload run --report`)."""
    path = Path(folder) / REPORT_HTML
    write_private(path, build([Path(folder)], "html"))
    return path


@app.command()
def report(
    runs: Annotated[list[Path], typer.Argument(help="One or more run folders (twload-runs/<time>/); several are compared side by side.", metavar="RUN...")],
    fmt: Annotated[Format, typer.Option("--format", "-f", help="text | json | html | csv (csv: one row per second) | csv-targets (a request file's targets, one row each).")] = Format.text,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write to this file (html default: RUN/report.html for one run).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run's summary.json (rebuilt for a killed run).")] = False,
) -> None:
    """Describe a run folder, or compare several; rebuilds the summary of a run that never finished."""
    try:
        if as_json:
            if len(runs) != 1:
                fail("--json prints one run's summary; use --format json for several", EXIT_USAGE)
            files = numbers.read_run(runs[0])
            if not files.finished:
                err.print("no summary.json (the run did not finish): rebuilt from plan.json, samples.jsonl and hdrh.log")
            # a finished run's summary.json as it is on disk, key for key (an older twload's too)
            written = read_summary(runs[0]) if files.finished else files.summary.to_dict()
            print(json.dumps(written, indent=2))
            return
        text = build(runs, fmt.value, terminal_width())
        for folder in runs:
            if not (folder / "summary.json").exists():
                err.print(f"{folder}: no summary.json (the run did not finish): rebuilt from plan.json, samples.jsonl and hdrh.log")
    except numbers.ReportError as exc:
        fail(str(exc), EXIT_USAGE)
    if output is None and fmt is Format.html:
        output = runs[0] / REPORT_HTML if len(runs) == 1 else Path("twload-compare.html")
    if output is None:
        print(text, end="" if text.endswith("\n") else "\n")
        return
    try:
        write_private(output, text, atomic=False)  # 0600: a report shows the run's command line
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror}", EXIT_USAGE)
    err.print(f"report: {output}", highlight=False)
