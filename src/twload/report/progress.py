"""Live progress on stderr (rich): elapsed / planned, req/s, errors, p50 / p99."""

from __future__ import annotations

from contextlib import contextmanager

from rich.console import Console
from rich.live import Live
from rich.text import Text

from twload.report.text import fmt_us


def progress_line(progress) -> Text:
    totals = progress.totals
    sample = progress.last_sample or {}
    lat = sample.get("latency_us", {})
    if progress.planned_s:
        done = min(1.0, progress.elapsed_s / progress.planned_s)
        head = f"{progress.elapsed_s:5.1f}s / {progress.planned_s:g}s"
    else:
        done = min(1.0, totals.requests / progress.planned_requests) if progress.planned_requests else 0.0
        head = f"{totals.requests} / {progress.planned_requests} req"
    bar = "█" * int(done * 20) + "░" * (20 - int(done * 20))
    errors = totals.error_count
    line = Text(f"{bar} {head}  ")
    line.append(f"{sample.get('rps', 0):>9.0f} req/s  ")
    if "target" in sample:
        line.append(f"(target {sample['target']:g})  ")
    line.append(f"errors {errors}", style="bold red" if errors else "")
    line.append(f"  p50 {fmt_us(lat.get('p50', 0))}  p99 {fmt_us(lat.get('p99', 0))}")
    if progress.time_wait is not None:
        line.append(f"  TIME_WAIT {progress.time_wait}", style="yellow" if progress.time_wait else "")
    if progress.stopping:
        line.append(f"  stopping ({progress.stopping})", style="yellow")
    return line


@contextmanager
def live_progress(console: Console, enabled: bool):
    """Yields an on_progress callback; a no-op when disabled or not on a terminal."""
    if not enabled or not console.is_terminal:
        yield lambda progress: None
        return
    with Live(Text(""), console=console, refresh_per_second=4, transient=True) as live:
        yield lambda progress: live.update(progress_line(progress))
