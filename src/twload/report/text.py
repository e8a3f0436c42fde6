"""wrk-style text summary of a run's Summary (pure: the record in, str out), wrapped to a width."""

from __future__ import annotations

from twload.merge.summary import Summary
from twload.report.wrap import wrap_lines


def fmt_us(us: float) -> str:
    if us >= 1_000_000:
        return f"{us / 1_000_000:.2f}s"
    if us >= 1_000:
        return f"{us / 1_000:.2f}ms"
    return f"{us:.0f}us"


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.2f}{unit}" if unit != "B" else f"{n:.0f}B"
        n /= 1024
    return f"{n:.2f}GB"


def _threshold_value(t: dict) -> str:
    name = t["threshold"].lower()
    if name.startswith(("errors", "error_rate")) and "%" in name:
        return f"{t['observed'] * 100:.3g}%"
    if name.startswith(("rps", "requests", "errors")):
        return f"{t['observed']:g}"
    return fmt_us(t["observed"])


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


COLUMNS = ("p50", "p90", "p99", "p99_9", "max", "mean")


def latency_rows(summary: Summary) -> list[str]:
    """The percentile table; a row of nothing measured says so instead of showing zeros."""
    rows = [("Latency", summary.latency_us, summary.requests, "response"),
            ("Connect", summary.connect_us, summary.connections_opened, "connection"),
            ("Service", summary.service_us, summary.requests, "response"),
            ("TLS", summary.tls_handshake_us, summary.connections_opened, "response")]
    lines = ["                 p50       p90       p99     p99.9       max      mean"]
    for label, block, measured, what in rows:
        if block is None:
            continue
        if measured:
            lines.append(f"  {label:<9}" + "".join(f"{fmt_us(block[k]):>10}" for k in COLUMNS))
        else:
            lines.append(f"  {label:<9}(none: no {what} completed)")
    return lines


def dask_worker_line(w: dict) -> str:
    """One Dask worker of a distributed run: where it ran, what it did, where it hit its wall."""
    errors = sum(w["errors"].values())
    line = f"  Dask worker {w['host']} {','.join(w['sources'])}: {w['requests']} req, {errors} errors"
    wall = w.get("first_errors", {}).get("EADDRNOTAVAIL")
    if wall:
        line += f", wall at conn {wall['connection']} ({wall['at_s']:.2f}s)"
    if "lost_at_s" in w:
        line += f", LOST at {w['lost_at_s']:.1f}s"
    return line


def time_wait_lines(summary: Summary) -> list[str]:
    """The run's own client TIME_WAIT; then, where there were any, the sockets earlier connections left
    towards the target (found at the start) and how many of them the run's connects took over."""
    budget = summary.budget or {}
    share = f" of {budget['ports']} ports" if budget.get("ports") else ""
    if summary.time_wait_at_start is None:  # an older run: every socket towards the target counted
        return [f"  Client TIME_WAIT towards the target: peak {summary.time_wait_peak}{share}"]
    lines = [f"  Client TIME_WAIT towards the target: the run's own peaked at {summary.time_wait_peak}{share}"]
    found = summary.time_wait_at_start
    if found:
        reused = summary.time_wait_found_reused
        lines.append(f"  {found} more were left by earlier connections"
                     + (f"; {reused} of them were reused" if reused is not None else ""))
    return lines


TARGET_LINES = 20  # the slowest this many; summary.json has them all


def target_lines(summary: Summary) -> list[str]:
    """A request file's targets, slowest (p99) first: requests, p50, p99, errors, by name."""
    rows = summary.targets or ()
    if not rows:
        return []
    lines = [f"  Targets ({len(rows)}, slowest first):", "      p50      p99   requests  errors  name"]
    for row in sorted(rows, key=lambda r: (-r["latency_us"]["p99"], r["name"]))[:TARGET_LINES]:
        lat = row["latency_us"]
        lines.append(f"  {fmt_us(lat['p50']):>8} {fmt_us(lat['p99']):>8} {row['requests']:>10}"
                     f" {sum(row['errors'].values()):>7}  {row['name']}")
    if len(rows) > TARGET_LINES:
        lines.append(f"  ... {len(rows) - TARGET_LINES} more in summary.json")
    return lines


def path_lines(summary: Summary) -> list[str]:
    """When each error was counted, retransmissions, slow connects (merge/path.py)."""
    lines = [f"  {name} counted from second {w['first_t']} to second {w['last_t']} of the run"
             for name, w in (summary.errors_window or {}).items()]
    if summary.retransmits:
        lines.append(f"  Retransmits: {summary.retransmits} ({summary.retransmits_per_s:g} retransmits/s, "
                     f"peak {summary.retransmits_peak_per_s}/s; TCP RetransSegs of the client's network namespace)")
    slow = summary.slow_connects
    if slow:
        lines.append(f"  Slow connects: {slow['count']}, {slow['why']}")
    return lines


def destination_lines(summary: Summary) -> list[str]:
    """Targets on several destinations: each one's connections, the ports held towards it at the end (in
    use, in TIME_WAIT), and where its port budget puts the wall."""
    rows = summary.destinations or ()
    if not rows:
        return []
    lines = [f"  Destinations ({len(rows)}, a connection pool and a port budget each):"]
    for row in rows:
        line = f"    {row['destination']}: {plural(row['connections_opened'], 'connection')} opened"
        if "ports_in_use_at_end" in row:
            line += f", {row['ports_in_use_at_end']} ports in use and {row['time_wait_at_end']} in TIME_WAIT at the end"
        sustainable = (row.get("budget") or {}).get("sustainable_new_conn_per_s")
        if sustainable is not None:
            line += f"; the wall at {sustainable:,.0f} new connections/s"
        lines.append(line)
    return lines


def http2_line(summary: Summary) -> str:
    """An HTTP/2 run's one line on the port wall: the connections it used against the ports the same
    rate would hold as HTTP/1.1 short connections."""
    capped = summary.h2_server_max_streams
    streams = plural(summary.streams or 0, "stream") + " per connection" + (
        f" (the server capped them at {capped})" if capped else "")
    return (f"  HTTP/2: {plural(summary.connections_opened, 'connection')} (ports), {streams}; the same rate "
            f"as HTTP/1.1 short connections would hold {summary.http1_ports_needed} ports")


def render(summary: Summary, width: int = 80) -> str:
    dur = summary.duration_s or 1e-9
    lines = [
        *([summary.wall] if summary.wall else []),  # the cause first, for whoever reads one line
        *(["No request got a response."] if not summary.requests else []),
        f"twload @ {summary.url}" + (f", {plural(len(summary.targets), 'target')} (--targets)"
                                     if summary.targets else ""),
        f"  {plural(summary.workers, 'worker')}, {plural(summary.connections, 'connection')},"
        f" close={summary.close}",
        *latency_rows(summary),
        f"  {summary.requests} requests in {summary.duration_s:.2f}s, "
        f"{fmt_bytes(summary.bytes_in)} read, {summary.connections_opened} connections opened",
    ]
    other = {code: n for code, n in summary.status.items() if not code.startswith("2")}
    if other:
        lines.append("  Non-2xx responses: " + ", ".join(f"{code} {n}" for code, n in other.items()))
    if summary.errors:
        lines.append("  Errors: " + ", ".join(f"{name} {n}" for name, n in summary.errors.items()))
    if summary.peer_bytes:
        lines.append(f"  The peer did not answer HTTP; it sent: {summary.peer_bytes}")
    if summary.tls_handshakes is not None:
        lines.append(f"  TLS: {plural(summary.tls_handshakes, 'handshake')}, {summary.tls_resumed} resumed")
    if summary.targets_page_repeats:
        lines.append(f"  Request file: {plural(summary.targets_page_repeats, 'page')} of targets walked again, the next"
                     " not loaded yet (a request of it in flight, or not yet read): more than their share of the order")
    if summary.tls_reason:
        lines.append(f"  TLS: {summary.tls_reason} (the first failed handshake)")
    if summary.http2:
        lines.append(http2_line(summary))
    if summary.rate_target is not None:
        lines.append(f"  Open loop: target {summary.rate_target:.0f} req/s, achieved {summary.rate_achieved or 0:.0f}"
                     f" req/s, max scheduling lag {fmt_us(summary.max_lag_us or 0)}")
        lines.append("    (Latency counts from the intended send time; Service from the actual send)")
    if summary.behind:
        lines.append(f"  Behind: {summary.behind}")
    for name, first in summary.first_errors.items():
        lines.append(f"  First {name}: connection {first.connection} of worker {first.worker},"
                     f" {first.at_s:.3f}s into the run")
    lines += path_lines(summary)
    if summary.time_wait_peak is not None:
        lines += time_wait_lines(summary)
    for line in summary.advice or ():
        lines.append(f"  Advice: {line}")
    for failure in summary.worker_failures:
        lines.append(f"  Worker failure: {failure}")
    lines += [dask_worker_line(w) for w in summary.workers_detail or ()]
    lines += destination_lines(summary)
    lines += target_lines(summary)
    lines.append(f"Requests/sec: {summary.rps:>12.2f}")
    lines.append(f"Transfer/sec: {fmt_bytes(summary.bytes_in / dur):>12}")
    for t in summary.thresholds or ():
        shown = _threshold_value(t)
        lines.append(f"Threshold {t['threshold']}: {'pass' if t['passed'] else 'FAIL'} (observed {shown})")
    if summary.stopped_by == "max_errors":
        lines.append(f"(stopped early: more than {summary.max_errors} errors (--max-errors); "
                     "the numbers cover what was done)")
    if summary.interrupted:
        lines.append(f"(stopped early by {summary.interrupted}: the numbers cover what was done)")
    return "\n".join(wrap_lines(lines, width))
