"""Reading a run folder: the summary, each second's row, the histograms of the whole run.

    python docs/examples/read_folder.py twload-runs/20261207T010203Z
    python docs/examples/read_folder.py          # first runs 2 s against the embedded target
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import twload


def describe(folder: str | Path) -> None:
    run = twload.read_run(folder)
    print(run)  # the folder, its seconds, and the summary's key figures
    s = run.summary
    print(f"{s.requests} requests in {s.duration_s:.1f} s: {s.rps:,.0f} req/s, p50 {s.latency_us.p50} us, "
          f"p99 {s.latency_us.p99} us, errors {s.errors or 'none'}")
    for row in run.samples:  # samples.jsonl: one row a second
        print(f"  second {row['t']:>3}: {row['requests']:>8} requests, p99 {row['latency_us']['p99']} us, "
              f"{sum(row['errors'].values())} errors")
    latency = run.histogram("latency")  # every second's histogram added up (HdrHistogram, us)
    print(f"p99.9 from the histograms: {latency.get_value_at_percentile(99.9)} us "
          f"over {latency.get_total_count()} responses")


def main() -> None:
    if len(sys.argv) > 1:
        describe(sys.argv[1])
        return
    with twload.serve() as url, tempfile.TemporaryDirectory() as tmp:
        twload.run(url, connections=10, duration="2s", workers=1, out=Path(tmp) / "run")
        describe(Path(tmp) / "run")


if __name__ == "__main__":
    main()
