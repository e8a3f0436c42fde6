"""wrk-style text summary of a summary.json dict (pure: dict in, str out), wrapped to a width."""

from __future__ import annotations

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


def latency_rows(summary: dict) -> list[str]:
    """The percentile table; a row of nothing measured says so instead of showing zeros."""
    rows = [("Latency", "latency_us", summary["requests"]), ("Connect", "connect_us", summary["connections_opened"]),
            ("Service", "service_us", summary["requests"]), ("TLS", "tls_handshake_us", summary["connections_opened"])]
    lines = ["                 p50       p90       p99     p99.9       max      mean"]
    for label, key, measured in rows:
        if key not in summary:
            continue
        if measured:
            lines.append(f"  {label:<9}" + "".join(f"{fmt_us(summary[key][k]):>10}" for k in COLUMNS))
        else:
            lines.append(f"  {label:<9}(none: no {'response' if key != 'connect_us' else 'connection'} completed)")
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


def time_wait_lines(summary: dict) -> list[str]:
    """The run's own client TIME_WAIT; then, where there were any, the sockets earlier connections left
    towards the target (found at the start) and how many of them the run's connects took over."""
    budget = summary.get("budget", {})
    share = f" of {budget['ports']} ports" if budget.get("ports") else ""
    if "time_wait_at_start" not in summary:  # an older run: every socket towards the target counted
        return [f"  Client TIME_WAIT towards the target: peak {summary['time_wait_peak']}{share}"]
    lines = [f"  Client TIME_WAIT towards the target: the run's own peaked at {summary['time_wait_peak']}{share}"]
    found = summary["time_wait_at_start"]
    if found:
        reused = summary.get("time_wait_found_reused")
        lines.append(f"  {found} more were left by earlier connections"
                     + (f"; {reused} of them were reused" if reused is not None else ""))
    return lines


def render(summary: dict, width: int = 80) -> str:
    dur = summary["duration_s"] or 1e-9
    lines = [
        *([summary["wall"]] if summary.get("wall") else []),  # the cause first, for whoever reads one line
        *(["No request got a response."] if not summary["requests"] else []),
        f"twload @ {summary['url']}",
        f"  {plural(summary['workers'], 'worker')}, {plural(summary['connections'], 'connection')},"
        f" close={summary['close']}",
        *latency_rows(summary),
        f"  {summary['requests']} requests in {summary['duration_s']:.2f}s, "
        f"{fmt_bytes(summary['bytes_in'])} read, {summary['connections_opened']} connections opened",
    ]
    other = {code: n for code, n in summary["status"].items() if not code.startswith("2")}
    if other:
        lines.append("  Non-2xx responses: " + ", ".join(f"{code} {n}" for code, n in other.items()))
    if summary["errors"]:
        lines.append("  Errors: " + ", ".join(f"{name} {n}" for name, n in summary["errors"].items()))
    if summary.get("peer_bytes"):
        lines.append(f"  The peer did not answer HTTP; it sent: {summary['peer_bytes']}")
    if "tls_handshakes" in summary:
        lines.append(f"  TLS: {plural(summary['tls_handshakes'], 'handshake')}, {summary['tls_resumed']} resumed")
    if summary.get("tls_reason"):
        lines.append(f"  TLS: {summary['tls_reason']} (the first failed handshake)")
    if "rate_target" in summary:
        lines.append(f"  Open loop: target {summary['rate_target']:.0f} req/s, achieved {summary['rate_achieved']:.0f}"
                     f" req/s, max scheduling lag {fmt_us(summary['max_lag_us'])}")
        lines.append("    (Latency counts from the intended send time; Service from the actual send)")
    if summary.get("behind"):
        lines.append(f"  Behind: {summary['behind']}")
    for name, first in summary.get("first_errors", {}).items():
        lines.append(f"  First {name}: connection {first['connection']} of worker {first['worker']},"
                     f" {first['at_s']:.3f}s into the run")
    if summary.get("time_wait_peak") is not None:
        lines += time_wait_lines(summary)
    for line in summary.get("advice", []):
        lines.append(f"  Advice: {line}")
    for failure in summary.get("worker_failures", []):
        lines.append(f"  Worker failure: {failure}")
    lines += [dask_worker_line(w) for w in summary.get("workers_detail", [])]
    lines.append(f"Requests/sec: {summary['rps']:>12.2f}")
    lines.append(f"Transfer/sec: {fmt_bytes(summary['bytes_in'] / dur):>12}")
    for t in summary.get("thresholds", []):
        shown = _threshold_value(t)
        lines.append(f"Threshold {t['threshold']}: {'pass' if t['passed'] else 'FAIL'} (observed {shown})")
    if summary.get("stopped_by") == "max_errors":
        lines.append(f"(stopped early: more than {summary['max_errors']} errors (--max-errors); "
                     "the numbers cover what was done)")
    if summary.get("interrupted"):
        lines.append(f"(stopped early by {summary['interrupted']}: the numbers cover what was done)")
    return "\n".join(wrap_lines(lines, width))
