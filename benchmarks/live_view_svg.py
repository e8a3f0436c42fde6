"""The live view's screenshot for the README (docs/live-view.svg), drawn from a real run's folder.

    twload serve --port 8080 &
    twload run http://127.0.0.1:8080/ --rate 1500 --close fin -d 10s -w 1 --out /tmp/shot -q
    python benchmarks/live_view_svg.py /tmp/shot --seconds 7 --out docs/live-view.svg

The run's first --seconds seconds (samples.jsonl, and hdrh.log for the run's percentiles) are fed to
the view as the supervisor fed them during the run (twload.live.LiveRun's hooks); rich records the
screen and saves it as SVG.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from rich.console import Console

from twload.live.feed import LiveRun
from twload.live.state import RunFacts, url_without_credentials
from twload.live.view import render
from twload.metrics import Totals
from twload.results import HDRH_CONNECT_LOG, HDRH_LOG, read_hdrh, read_samples, read_summary


@dataclass
class Replayed:
    """What engine.supervisor.Progress holds, rebuilt from the run folder."""

    elapsed_s: float = 0.0
    totals: Totals = field(default_factory=Totals)
    stopping: str | None = None
    time_wait: int | None = None
    time_wait_found: int | None = None
    last_sample: dict | None = None


def replay(folder: Path, seconds: int) -> LiveRun:
    summary = read_summary(folder)
    url = urlsplit(summary["url"])
    facts = RunFacts(url=url_without_credentials(summary["url"]), destination=f"{url.hostname}:{url.port}",
                     engine=summary.get("engine", "?"), io=summary.get("io", "?"), close=summary["close"],
                     connections=summary["connections"], planned_s=summary.get("duration_planned_s"),
                     planned_requests=summary.get("requests_planned"), open_loop="rate_target" in summary)
    run = LiveRun(facts)
    run.state.set_budget(summary.get("budget"))
    latency, connect = read_hdrh(folder, HDRH_LOG), read_hdrh(folder, HDRH_CONNECT_LOG)
    progress = Replayed()
    for i, sample in enumerate(read_samples(folder)[:seconds]):
        progress.totals.add({**sample, "first_errors": {}, "status": {int(k): v for k, v in sample["status"].items()},
                             "latency": latency[i].encode() if i < len(latency) else b"",
                             "connect": connect[i].encode() if i < len(connect) else b""})
        progress.elapsed_s = sample["t"] + 0.4
        progress.time_wait = sample.get("time_wait")
        progress.time_wait_found = sample.get("time_wait_found")
        progress.last_sample = sample
        run.on_second(sample)
        run.on_progress(progress)
    for name, first in summary.get("first_errors", {}).items():
        if first["at_s"] < seconds:
            run.state.first_errors[name] = first["at_s"]
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--seconds", type=int, default=7, help="how far into the run the screenshot is")
    parser.add_argument("--width", type=int, default=100)
    parser.add_argument("--height", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("docs/live-view.svg"))
    args = parser.parse_args()
    run = replay(args.folder, args.seconds)
    console = Console(width=args.width, height=args.height, record=True, force_terminal=True,
                      color_system="truecolor", file=open("/dev/null", "w"))
    console.print(render(run.state, args.width, args.height))
    console.save_svg(str(args.out), title="twload run (live view)")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
