"""Live progress on stderr (rich): elapsed / planned, req/s, the dominant error by name and since
when, ports in use against the budget, the run's own client TIME_WAIT, p50 / p99; always one line
within the terminal's width. `live_hooks` feeds the full-screen view and the metrics endpoint
(twload.live) instead of or beside it."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

from rich.console import Console
from rich.live import Live
from rich.text import Text

from twload.live.feed import LiveRun
from twload.report.text import fmt_us


@dataclass(frozen=True)
class Part:
    text: str
    keep: int  # when the line is too wide, the parts with the lowest `keep` go first
    style: str = ""


def error_part(totals) -> Part:
    """The error that dominates, by name, and the second of the run it first came in."""
    total = totals.error_count
    if not total:
        return Part("errors 0", keep=2)
    name, count = totals.errors.most_common(1)[0]
    first = totals.first_errors.get(name)
    since = f" since {first['at_s']:.2f}s" if first else ""
    text = f"{total} {name}{since}" if count == total else f"{total} errors, most {name}{since}"
    return Part(text, keep=9, style="bold red")  # at the wall, more telling than req/s


def ports_part(ports: int | None, in_use: int | None) -> Part | None:
    if ports and in_use is not None:
        style = "red" if in_use >= 0.9 * ports else "yellow" if in_use >= 0.5 * ports else ""
        return Part(f"ports {in_use}/{ports}", keep=7, style=style)
    return None


def time_wait_part(progress) -> Part | None:
    """The run's own client TIME_WAIT; beside it, the sockets earlier connections left there that are
    still held (they hold ports too, but are not this run's doing)."""
    if progress.time_wait is None:
        return None
    found = f" (+{progress.time_wait_found} earlier)" if progress.time_wait_found else ""
    return Part(f"TIME_WAIT {progress.time_wait}{found}", keep=5, style="yellow" if progress.time_wait else "")


def progress_parts(progress, ports: int | None = None, in_use: int | None = None) -> list[Part]:
    totals = progress.totals
    sample = progress.last_sample or {}
    lat = sample.get("latency_us", {})
    if progress.planned_s:
        done = min(1.0, progress.elapsed_s / progress.planned_s)
        head = f"{progress.elapsed_s:.1f}s / {progress.planned_s:g}s"
    else:
        done = min(1.0, totals.requests / progress.planned_requests) if progress.planned_requests else 0.0
        head = f"{totals.requests} / {progress.planned_requests} req"
    parts = [
        Part("█" * int(done * 20) + "░" * (20 - int(done * 20)), keep=1),
        Part(head, keep=10),
        Part(f"{sample.get('rps', 0):.0f} req/s", keep=8),
    ]
    if "target" in sample:
        parts.append(Part(f"(target {sample['target']:g})", keep=3))
    parts.append(error_part(totals))
    for part in (ports_part(ports, in_use), time_wait_part(progress)):
        if part is not None:
            parts.append(part)
    parts.append(Part(f"p50 {fmt_us(lat.get('p50', 0))} p99 {fmt_us(lat.get('p99', 0))}", keep=4))
    if progress.stopping:
        parts.append(Part(f"stopping ({progress.stopping})", keep=11, style="yellow"))
    return parts


def fit(parts: list[Part], width: int) -> Text:
    """The parts joined by two spaces; the least important dropped until the line fits."""
    parts = list(parts)
    while len(parts) > 1 and sum(len(p.text) for p in parts) + 2 * (len(parts) - 1) > width:
        parts.remove(min(parts, key=lambda p: p.keep))
    line = Text()
    for i, part in enumerate(parts):
        if i:
            line.append("  ")
        line.append(part.text, style=part.style)
    line.truncate(width)
    return line


def progress_line(progress, width: int = 80, ports: int | None = None, in_use: int | None = None) -> Text:
    return fit(progress_parts(progress, ports, in_use), width)


@contextmanager
def live_progress(console: Console, enabled: bool, ports: int | None = None, probe=None):
    """Yields an on_progress callback; a no-op when disabled or not on a terminal.

    `ports` is the run's port budget and `probe` the port probe whose `in_use` it is compared with.
    """
    if not enabled or not console.is_terminal:
        yield lambda progress: None
        return
    with Live(Text(""), console=console, refresh_per_second=4, transient=True) as live:
        # one column spare: a line exactly as wide as the terminal wraps on some terminals
        yield lambda progress: live.update(progress_line(progress, console.width - 1, ports,
                                                         getattr(probe, "in_use", None)))


@contextmanager
def live_hooks(live: LiveRun | None, console: Console, full_screen: bool, budget: dict | None, on_line):
    """The supervisor's hooks: the progress line alone, or with the live view and the metrics endpoint
    (twload.live) fed too."""
    if live is None or not (full_screen or live.endpoint is not None):
        yield on_line, ()
        return
    with live.shown(console, full_screen, budget) as feed:
        def on_progress(progress) -> None:
            on_line(progress)
            feed.on_progress(progress)

        yield on_progress, (feed.on_second,)
