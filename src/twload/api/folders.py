"""`twload.read_run()`: a run folder read back, as `twload report` reads it (a run that never finished
gets its summary rebuilt from its streamed seconds)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from twload.merge.summary import Summary
from twload.metrics import new_histogram
from twload.report.numbers import ReportError
from twload.report.numbers import read_run as read_files
from twload.results import RunFolderError


@dataclass(frozen=True)
class Run:
    """One run folder: its summary (summary.json, or rebuilt when the run was killed), plan.json, each
    second's samples.jsonl row, and the latency and connect-time histograms of each second (µs,
    HdrHistogram: `hist.get_value_at_percentile(99)`), keyed by the second (1, 2, ... as `t` counts)."""

    folder: Path
    summary: Summary
    finished: bool  # summary.json was there (False: the run was killed; the summary is rebuilt)
    plan: dict[str, Any] | None = field(repr=False)  # plan.json (None in folders older than it)
    samples: tuple[dict[str, Any], ...] = field(repr=False)
    latency: dict[int, HdrHistogram] = field(repr=False)
    connect: dict[int, HdrHistogram] = field(repr=False)

    def histogram(self, which: str = "latency") -> HdrHistogram:
        """The whole run's histogram: every second's `latency` (or `connect`) added up (µs)."""
        if which not in ("latency", "connect"):
            raise ValueError(f"which: latency or connect, not {which!r}")
        total = new_histogram()
        for hist in (self.latency if which == "latency" else self.connect).values():
            total.add(hist)
        return total

    def to_dict(self) -> dict[str, Any]:
        """Plain values: the folder, whether it finished, plan.json, summary.json's shape, the samples."""
        return {"folder": str(self.folder), "finished": self.finished, "plan": self.plan,
                "summary": self.summary.to_dict(), "samples": [dict(s) for s in self.samples]}

    def __repr__(self) -> str:
        state = "finished" if self.finished else "unfinished, rebuilt"
        return f"Run({self.folder}, {len(self.samples)} s, {state}: {self.summary!r})"


def read_run(folder: str | os.PathLike[str]) -> Run:
    """The run folder `folder` (`twload run --out`, or ./twload-runs/<time>/); RunFolderError when it is
    not one, or is damaged (one line, as `twload report` says it)."""
    try:
        files = read_files(Path(folder))
    except ReportError as exc:
        raise RunFolderError(str(exc)) from None
    return Run(Path(files.path), files.summary, files.finished, files.plan, tuple(files.samples),
               dict(files.latency), dict(files.connect))
