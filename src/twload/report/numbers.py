"""The report's numbers: a run folder in, plain tables, series and a verdict out.

Reading (read_run) is the only I/O here; everything after it is pure, so the text,
JSON, CSV and HTML reports all show the same numbers, computed once. The numbers
prefer what the run itself wrote (summary.json, the per-second samples, the
pre-flight's budget, the `wall` line) and compute only what is missing, so a figure
in the report agrees with the same figure in the run's own summary.

A run folder may be incomplete (killed: no summary.json) or old (latency.hdr instead
of hdrh.log, no plan.json): each missing part leaves its section empty, never an error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from twload.merge.summary import Percentiles, Summary
from twload.metrics import new_histogram, percentiles_us
from twload.plan import PlanError, split_url
from twload.ports.wall import WALL_ERROR, budget_phrase
from twload.ports.wall import sentence as wall_sentence
from twload.report.rebuild import rebuild_summary
from twload.results import (
    HDRH_CONNECT_LOG,
    HDRH_LOG,
    SAMPLES,
    SUMMARY,
    read_log_intervals,
    read_plan,
    read_samples,
    read_summary,
    shown_command,
)

LEGACY_LATENCY_LOG = "latency.hdr"  # older run folders: "t base64" per line
PERCENTILE_LINES = (("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p99_9", "p99.9"))
ERROR_RATE_NOTABLE = 0.01  # more failed requests than this is the headline


class ReportError(Exception):
    """The folder cannot be reported on; the message is for the user."""


@dataclass
class RunFiles:
    """What a run folder holds, read once."""

    path: str
    plan: dict | None  # plan.json; None in folders written before it existed
    summary: Summary  # summary.json, or rebuilt from the samples for a run that never finished
    finished: bool  # summary.json was there
    samples: list[dict]
    latency: dict[int, HdrHistogram] = field(default_factory=dict)  # second t -> that second's histogram
    connect: dict[int, HdrHistogram] = field(default_factory=dict)


def read_run(folder: Path) -> RunFiles:
    folder = Path(folder)
    if not folder.is_dir():
        raise ReportError(f"{folder} is not a folder")
    has_summary = (folder / SUMMARY).exists()
    if not has_summary and not (folder / SAMPLES).exists():
        raise ReportError(f"{folder} is not a twload run folder (no summary.json, no samples.jsonl)")
    try:
        samples = read_samples(folder) if (folder / SAMPLES).exists() else []
        summary = Summary.from_dict(read_summary(folder)) if has_summary else rebuild_summary(folder)
        plan = read_plan(folder)
        if (folder / HDRH_LOG).exists():
            latency = read_interval_log(folder / HDRH_LOG)
        else:
            latency = read_legacy_log(folder / LEGACY_LATENCY_LOG)
        connect = read_interval_log(folder / HDRH_CONNECT_LOG) if (folder / HDRH_CONNECT_LOG).exists() else {}
    except (ValueError, KeyError, TypeError) as exc:
        raise ReportError(f"{folder}: a file of the run is damaged ({type(exc).__name__}: {exc})") from None
    except OSError as exc:
        raise ReportError(f"{folder}: cannot read {exc.filename}: {exc.strerror}") from None
    if not has_summary:
        summary = fill_from_logs(summary, latency, connect)
    return RunFiles(str(folder), plan, summary, has_summary, samples, latency, connect)


def fill_from_logs(summary: Summary, latency: dict[int, HdrHistogram],
                   connect: dict[int, HdrHistogram]) -> Summary:
    """A rebuilt summary's percentiles, where it could not read the logs itself: the same computation."""
    total = merged(latency)
    if total is not None and total.get_total_count() and not summary.latency_us.p50:
        summary = summary.with_(latency_us=Percentiles.from_dict(percentiles_us(total)))
    total = merged(connect)
    if total is not None and total.get_total_count() and not summary.connect_us.p50:
        summary = summary.with_(connect_us=Percentiles.from_dict(percentiles_us(total)))
    return summary


def read_interval_log(path: Path) -> dict[int, HdrHistogram]:
    """Second t (1-based, as samples.jsonl counts) -> the histogram of the interval starting at t - 1.

    By its start, not its end: the run's last interval is shorter than a second.
    """
    intervals, started_s = read_log_intervals(path)
    out: dict[int, HdrHistogram] = {}
    for hist in intervals:
        t = max(1, round(hist.get_start_time_stamp() / 1000.0 - started_s) + 1)
        if t in out:
            out[t].add(hist)
        else:
            out[t] = hist
    return out


def read_legacy_log(path: Path) -> dict[int, HdrHistogram]:
    out: dict[int, HdrHistogram] = {}
    if path.exists():
        for line in path.read_text(encoding="ascii").splitlines():
            t, _, encoded = line.partition(" ")
            if encoded:
                out[int(t)] = HdrHistogram.decode(encoded.encode())
    return out


# -- pure from here on ----------------------------------------------------------------------------

def merged(histograms: dict[int, HdrHistogram]) -> HdrHistogram | None:
    if not histograms:
        return None
    total = new_histogram()
    for hist in histograms.values():
        total.add(hist)
    return total


def series(files: RunFiles) -> dict:
    """Per-second columns, all the same length as `t`; None where a second has no value."""
    rows = sorted(files.samples, key=lambda s: s["t"])
    t = [s["t"] for s in rows]
    error_names = sorted({name for s in rows for name in s.get("errors", {})})
    status_codes = sorted({code for s in rows for code in s.get("status", {})})
    out: dict = {
        "t": t,
        "requests": [s["requests"] for s in rows],
        "rps": [s.get("rps", s["requests"]) for s in rows],
        "connections_opened": [s["connections_opened"] for s in rows],
        "errors": {name: [s.get("errors", {}).get(name, 0) for s in rows] for name in error_names},
        "status": {code: [s.get("status", {}).get(code, 0) for s in rows] for code in status_codes},
        "bytes_in": [s.get("bytes_in", 0) for s in rows],
    }
    for key, _ in PERCENTILE_LINES:
        out[f"latency_{key}"] = [_percentile(s, "latency_us", key, files.latency) for s in rows]
    out["latency_max"] = [_percentile(s, "latency_us", "max", files.latency) for s in rows]
    out["connect_p50"] = [_percentile(s, "connect_us", "p50", files.connect) for s in rows]
    out["connect_p99"] = [_percentile(s, "connect_us", "p99", files.connect) for s in rows]
    for optional in ("time_wait", "time_wait_found", "ports_in_use", "target", "max_lag_us",
                     "connections_open", "streams_open", "http1_ports_needed"):  # the last three: --http2
        if any(optional in s for s in rows):
            out[optional] = [s.get(optional) for s in rows]
    return out


def _percentile(sample: dict, block: str, key: str, histograms: dict[int, HdrHistogram]) -> int | None:
    """What the sample says (the live line showed it), else the same second's histogram from the log."""
    counted = sample.get("requests", 0) if block == "latency_us" else sample.get("connections_opened", 0)
    if counted == 0:
        return None  # no response (no connect) that second: no time at all, not a time of 0
    value = sample.get(block, {}).get(key)
    if value:  # 0 is what an empty histogram reports (1 µs is the lowest it records)
        return value
    hist = histograms.get(sample["t"])
    if hist is None or hist.get_total_count() == 0:
        return None
    return percentiles_us(hist)[key]


def distribution(files: RunFiles) -> list[dict]:
    """HdrHistogram's percentile distribution of the whole run's latency, for the percentile plot.

    From the merged interval log; a folder without one gives the summary's few percentiles.
    """
    total = merged(files.latency)
    if total is None or total.get_total_count() == 0:
        lat = files.summary.latency_us
        points = [(50.0, "p50"), (75.0, "p75"), (90.0, "p90"), (99.0, "p99"), (99.9, "p99_9")]
        return [{"percentile": p, "latency_us": lat[k]} for p, k in points if lat[k]]
    out = []
    count = total.get_total_count()
    for item in total.get_percentile_iterator(5):
        # the last step is 100 %: drawn at the rank of the last value, the plot's axis has no 100 %
        p = min(item.percentile_level_iterated_to, 100.0 * (1 - 1 / (2 * count)) if count > 1 else 50.0)
        out.append({"percentile": round(p, 6), "latency_us": item.value_iterated_to})
    return out


def first_errors(summary: Summary, s: dict) -> list[dict]:
    """When each error was first seen: the summary knows exactly; samples know the second."""
    known = summary.first_errors
    rows = []
    for name in sorted(set(known) | set(s["errors"])):
        if name in known:
            first = known[name]
            rows.append({"name": name, "at_s": first.at_s, "connection": first.connection,
                         "worker": first.worker, "exact": True})
        else:
            column = s["errors"][name]
            t = next(t for t, n in zip(s["t"], column, strict=True) if n)
            # only the second is known: it started then
            rows.append({"name": name, "at_s": float(t - 1), "connection": None, "worker": None, "exact": False})
    return sorted(rows, key=lambda r: r["at_s"])


def wall(files: RunFiles, s: dict, firsts: list[dict]) -> dict:
    """The port budget the pre-flight computed, where the run met it, and where it predicted it."""
    budget = files.summary.budget or ((files.plan or {}).get("preflight") or {}).get("budget") or {}
    at_connection = budget.get("exhausted_at_connection")
    first_wall = next((r["at_s"] for r in firsts if r["name"] == WALL_ERROR), None)
    # a time for the wall only where the pre-flight gave one (a planned rate: open loop), its own
    # number, as its advice says it; a closed loop's prediction is a connection number, compared
    # with the first failing connection instead
    predicted_at_s = budget.get("exhausted_after_s")
    first = next((r for r in firsts if r["name"] == WALL_ERROR), {})
    return {
        "ports": budget.get("ports"),
        "free_ports": at_connection - 1 if at_connection else None,
        "hold_s": budget.get("reuse_after_s"),
        "sustainable_new_conn_per_s": budget.get("sustainable_new_conn_per_s"),
        "predicted_connection": at_connection,
        "predicted_at_s": predicted_at_s,
        "first_eaddrnotavail_s": first_wall,
        "first_eaddrnotavail_connection": first.get("connection"),
        "time_wait_peak": (files.summary.time_wait_peak if files.summary.time_wait_peak is not None
                           else max((v for v in s.get("time_wait", []) if v is not None), default=None)),
        **time_wait_found(files),
    }


def time_wait_found(files: RunFiles) -> dict:
    """The client TIME_WAIT earlier connections left towards the target, found at the run's start, and
    how many of them the run's connects took over; None for a run folder written before twload told
    them from the run's own (its peak then counted them too)."""
    preflight = (files.plan or {}).get("preflight") or {}
    last = next((x for x in sorted(files.samples, key=lambda x: x["t"], reverse=True)
                 if "time_wait_found_reused" in x), {})
    summary = files.summary
    return {
        "time_wait_at_start": (summary.time_wait_at_start if summary.time_wait_at_start is not None
                               else preflight.get("time_wait_at_start")),
        # written with time_wait_found, null or not
        "time_wait_found_reused": (summary.time_wait_found_reused if summary.time_wait_found is not None
                                   else last.get("time_wait_found_reused")),
    }


def totals(summary: Summary) -> dict:
    return {
        "requests": summary.requests,
        "rps": summary.rps,
        "duration_s": summary.duration_s,
        "connections_opened": summary.connections_opened,
        "errors": summary.error_count,
        "error_rate": summary.error_rate,
        "latency_us": summary.latency_us.to_dict(),
        "connect_us": summary.connect_us.to_dict(),
        "time_wait_peak": summary.time_wait_peak,
        "bytes_in": summary.bytes_in,
    }


def describe_run(files: RunFiles) -> dict:
    """Who ran what against what: from plan.json when there is one, else from the summary."""
    plan = (files.plan or {}).get("plan", {})
    summary = files.summary
    rows = {
        "url": plan.get("url") or summary.url,
        "close": plan.get("close") or summary.close,
        "connections": plan.get("connections") or summary.connections or None,
        "workers": plan.get("workers") or summary.workers or None,
        "duration_s": plan.get("duration_s") or summary.duration_planned_s,
        "requests": plan.get("requests") or summary.requests_planned,
        "rate": plan.get("rate") or summary.rate_target,
        "stages": plan.get("stages") or None,
        "method": plan.get("method"),
        "engine": summary.engine or plan.get("engine"),  # what ran, not what was asked ("auto")
        "io": summary.io,
        "sources": plan.get("sources") or None,
        "started_utc": (files.plan or {}).get("started_utc"),
        "host": (files.plan or {}).get("host"),
        "kernel": (files.plan or {}).get("kernel"),
        "command": " ".join(shown_command(files.plan or {})) or None,
    }
    if rows["url"] == "(unknown: rebuilt from samples)":
        rows["url"] = None
    return {k: v for k, v in rows.items() if v not in (None, "", "?")}


def _n(x: float) -> str:
    return f"{x:,.0f}"


def fmt_us(us: float | None) -> str:
    if us is None:
        return "-"
    if us >= 1_000_000:
        return f"{us / 1_000_000:.2f} s"
    if us >= 1_000:
        return f"{us / 1_000:.2f} ms"
    return f"{us:.0f} µs"


def target_of(files: RunFiles) -> str:
    """'host:port' of the run's URL, as the summary's wall sentence names the target."""
    url = ((files.plan or {}).get("plan") or {}).get("url") or files.summary.url or ""
    try:
        _, host, port, _ = split_url(url)
    except PlanError:
        return "the target"
    return f"{host}:{port}"


def verdict(files: RunFiles, tot: dict, w: dict, meta: dict) -> dict:
    """The headline in plain words: level is ok | wall | errors | failed, and `text`."""
    summary = files.summary
    errors = summary.errors
    dominant = max(errors, key=lambda name: errors[name]) if errors else None
    unfinished = "" if files.finished else (
        f"The run did not finish (no summary.json): these numbers cover its first {len(files.samples)} s. ")
    if WALL_ERROR in errors:
        level = "wall"
        if summary.wall:  # the run's own one-line verdict (the same computation as its summary)
            text = summary.wall.rstrip(".")
        else:  # a summary written before the sentence, or rebuilt: the same sentence from what the folder holds
            budget = (budget_phrase(w["ports"], w["hold_s"], w.get("time_wait_at_start") or 0)
                      if w.get("ports") else "no budget was recorded")
            text = wall_sentence(target_of(files), errors[WALL_ERROR], tot["connections_opened"], budget,
                                 w["first_eaddrnotavail_s"]).rstrip(".")
        share = errors[WALL_ERROR] / max(1, tot["errors"])
        tail = ("; EADDRNOTAVAIL is the client running out of local ports, so the server was not the limit"
                if share > 0.9 else f"; {share:.0%} of the errors are EADDRNOTAVAIL (the client's ports)")
        text = text + tail + "."
    elif tot["requests"] == 0:
        level = "failed"
        text = f"No request succeeded: {_n(tot['errors'])} errors, mostly {dominant}." if dominant else (
            "No request was made.")
    elif tot["error_rate"] > ERROR_RATE_NOTABLE:
        level = "errors"
        assert dominant is not None  # errors were counted
        p99 = fmt_us(tot["latency_us"].get("p99"))
        text = (f"{tot['error_rate']:.1%} of requests failed, mostly {dominant} ({_n(errors[dominant])}); "
                f"{_n(tot['requests'])} succeeded at {_n(tot['rps'])} req/s, p99 {p99}.")
    else:
        level = "ok"
        some = f", {_n(tot['errors'])} errors ({tot['error_rate']:.2%})" if tot["errors"] else ", no errors"
        text = (f"{_n(tot['requests'])} requests in {tot['duration_s']:.1f} s at {_n(tot['rps'])} req/s, "
                f"p99 {fmt_us(tot['latency_us'].get('p99'))}{some}.")
        if meta.get("close") == "fin" and w.get("free_ports") and w.get("sustainable_new_conn_per_s") is not None:
            text = text[:-1] + (f"; --close fin: {_n(w['sustainable_new_conn_per_s'])} new connections/s is "
                                "what the client's ports sustain.")
    text = text[0].upper() + text[1:]
    if summary.interrupted:
        text += f" Stopped early by {summary.interrupted}."
    if summary.stopped_by == "max_errors":
        text += " Stopped early: more errors than --max-errors allows."
    return {"level": level, "text": unfinished + text}


def readings(files: RunFiles, s: dict, tot: dict, w: dict, dist: list[dict], meta: dict) -> dict:
    """One line per section saying what its plot shows."""
    # the last second of a run is cut short (and drains): the per-second range is over whole seconds
    rps = [r for t, r in zip(s["t"], s["rps"], strict=True) if t <= tot["duration_s"]] or s["rps"] or [0]
    errors_total = tot["errors"]
    out = {}
    if errors_total:
        worst = max(s["errors"], key=lambda name: sum(s["errors"][name]))
        out["throughput"] = (f"{_n(tot['rps'])} req/s on average (per second {_n(min(rps))} to {_n(max(rps))}); "
                             f"{_n(errors_total)} errors, most of them {worst}.")
    else:
        out["throughput"] = (f"{_n(tot['rps'])} req/s on average (per second {_n(min(rps))} to {_n(max(rps))}), "
                             f"{_n(tot['connections_opened'])} connections opened, no errors.")
    p99 = [(v, t) for v, t in zip(s["latency_p99"], s["t"], strict=True) if v is not None]
    if len(p99) == 1:
        out["latency"] = (f"Only second {p99[0][1]} had responses: p99 {fmt_us(p99[0][0])}; connect p99 "
                          f"{fmt_us(tot['connect_us'].get('p99'))} over the run.")
    elif p99:
        worst_v, worst_t = max(p99)
        out["latency"] = (f"p99 per second from {fmt_us(min(p99)[0])} to {fmt_us(worst_v)} (worst in second "
                          f"{worst_t}); connect p99 {fmt_us(tot['connect_us'].get('p99'))} over the run.")
    else:
        out["latency"] = "No response was received, so there is no latency to show."
    lat = tot["latency_us"]
    if lat.get("p50"):
        out["distribution"] = (f"Half the requests took under {fmt_us(lat['p50'])}, 99 % under {fmt_us(lat['p99'])}, "
                               f"99.9 % under {fmt_us(lat['p99_9'])}; the slowest {fmt_us(lat['max'])}.")
    else:
        out["distribution"] = "No latency was recorded."
    out["ports"] = _ports_reading(w, meta, "time_wait" in s)
    status = files.summary.status
    ok = sum(n for code, n in status.items() if str(code).startswith("2"))
    if errors_total:
        out["errors"] = f"{_n(errors_total)} errors ({tot['error_rate']:.2%} of attempts); {_n(ok)} 2xx responses."
    else:
        out["errors"] = f"No errors; {_n(ok)} of {_n(tot['requests'])} responses were 2xx."
    return out


def http2_rows(summary: dict) -> list[tuple[str, str]]:
    """An HTTP/2 run's streams and connections, as the report's table shows them ([] for HTTP/1.1)."""
    if not summary.get("http2"):
        return []
    capped = summary.get("h2_server_max_streams")
    rows = [("streams per connection (--streams)", _n(summary.get("streams") or 0))]
    if capped:
        rows.append(("the server capped them at (SETTINGS_MAX_CONCURRENT_STREAMS)", _n(capped)))
    rows += [("connections opened (ports)", _n(summary["connections_opened"])),
             ("ports the same rate would hold as HTTP/1.1 short connections",
              _n(summary.get("http1_ports_needed") or 0))]
    return rows


def http2_reading(summary: dict) -> str:
    """The HTTP/2 section's one line: how many connections carried the requests, against HTTP/1.1's ports."""
    capped = summary.get("h2_server_max_streams")
    cap = f" (the server capped them at {_n(capped)})" if capped else ""
    return (f"{_n(summary['requests'])} requests over {_n(summary['connections_opened'])} connections, "
            f"{_n(summary.get('streams') or 0)} streams each at once{cap}; as HTTP/1.1 short connections the same "
            f"rate would hold {_n(summary.get('http1_ports_needed') or 0)} ports in TIME_WAIT.")


def found_words(at_start: int, reused: int | None) -> str:
    """'14,564 were left by earlier connections; 14,064 of them were reused'"""
    return (f"{_n(at_start)} were left by earlier connections"
            + (f"; {_n(reused)} of them were reused" if reused is not None else ""))


def _ports_reading(w: dict, meta: dict, measured: bool) -> str:
    close = meta.get("close")
    parts = []
    if w.get("time_wait_peak") is not None and measured:
        share = f" of {_n(w['ports'])} ports" if w.get("ports") else ""
        if w.get("time_wait_at_start") is None:  # an older run: every socket towards the target counted
            parts.append(f"client TIME_WAIT towards the target peaked at {_n(w['time_wait_peak'])}{share}")
        else:
            parts.append(f"the run's own client TIME_WAIT towards the target peaked at "
                         f"{_n(w['time_wait_peak'])}{share}")
            if w["time_wait_at_start"]:
                parts.append("at its start " + found_words(w["time_wait_at_start"], w.get("time_wait_found_reused")))
    elif not measured:
        parts.append("client TIME_WAIT was not measured in this run")
    if w.get("first_eaddrnotavail_s") is not None:
        parts.append(f"the first EADDRNOTAVAIL came {w['first_eaddrnotavail_s']:.3f} s into the run")
    if w.get("predicted_connection"):
        at = ("" if w.get("predicted_at_s") is None
              else f" (the wall at {w['predicted_at_s']:.2f} s at the planned rate)")
        seen = (f", the run's first failure was connection {_n(w['first_eaddrnotavail_connection'])}"
                if w.get("first_eaddrnotavail_connection") is not None else "")
        parts.append(f"the pre-flight predicted connection {_n(w['predicted_connection'])} would fail{at}{seen}")
    elif close in ("server", "rst", "keepalive"):
        parts.append(f"--close {close} leaves no TIME_WAIT per request on the client, so ports do not run out")
    text = "; ".join(parts) + "."
    return text[0].upper() + text[1:]


def plan_rows(files: RunFiles, meta: dict) -> dict:
    """Section 6: the plan, the kernel's sysctls, the pre-flight's and the doctor's findings, the advice."""
    sysctls = (files.plan or {}).get("sysctls") or {}
    findings = []
    preflight = (files.plan or {}).get("preflight") or {}
    summary = files.summary
    written = summary.budget is not None or summary.target_timestamps is not None  # written with the budget
    if "target_timestamps" in preflight or written:
        ts = preflight.get("target_timestamps", summary.target_timestamps)
        findings.append("the target negotiates TCP timestamps (TIME_WAIT ports can be reused where tcp_tw_reuse allows)"
                        if ts else "the target does not negotiate TCP timestamps: tcp_tw_reuse cannot act")
    findings.extend(preflight.get("warnings", []))
    if summary.behind:
        findings.append(summary.behind)
    findings.extend(summary.worker_failures)
    if summary.peer_bytes:
        findings.append(f"the peer sent: {summary.peer_bytes}")
    advice = list(dict.fromkeys(summary.advice or ()))
    return {"plan": meta, "sysctls": sysctls, "findings": findings, "advice": advice,
            "thresholds": list(summary.thresholds or ())}


def run_numbers(files: RunFiles) -> dict:
    """Everything a report shows about one run (plain values, JSON-ready)."""
    s = series(files)
    tot = totals(files.summary)
    firsts = first_errors(files.summary, s)
    w = wall(files, s, firsts)
    meta = describe_run(files)
    dist = distribution(files)
    return {
        "name": Path(files.path).name,
        "path": files.path,
        "finished": files.finished,
        "verdict": verdict(files, tot, w, meta),
        "run": meta,
        "totals": tot,
        "status": files.summary.status,
        "errors": files.summary.errors,
        "first_errors": firsts,
        "wall": w,
        "series": s,
        "distribution": dist,
        "readings": readings(files, s, tot, w, dist, meta),
        "context": plan_rows(files, meta),
        "summary": files.summary.to_dict(),
    }


# -- several runs side by side --------------------------------------------------------------------

COMPARED = (  # (label, how to get it from run_numbers, unit, higher is better?)
    ("requests/s", lambda r: r["totals"]["rps"], "req/s", True),
    ("requests", lambda r: r["totals"]["requests"], "", True),
    ("errors", lambda r: r["totals"]["errors"], "", False),
    ("latency p50", lambda r: r["totals"]["latency_us"].get("p50"), "us", False),
    ("latency p99", lambda r: r["totals"]["latency_us"].get("p99"), "us", False),
    ("latency p99.9", lambda r: r["totals"]["latency_us"].get("p99_9"), "us", False),
    ("connect p99", lambda r: r["totals"]["connect_us"].get("p99"), "us", False),
    ("connections opened", lambda r: r["totals"]["connections_opened"], "", None),
    ("TIME_WAIT peak", lambda r: r["wall"]["time_wait_peak"], "", None),  # the run's own
    ("TIME_WAIT at start", lambda r: r["wall"].get("time_wait_at_start"), "", None),  # earlier connections'
    ("  of them reused", lambda r: r["wall"].get("time_wait_found_reused"), "", None),
    ("duration", lambda r: r["totals"]["duration_s"], "s", None),
)


def difference(base: float | None, value: float | None) -> str:
    if base is None or value is None:
        return ""
    if base == 0:
        return "=" if value == 0 else "new"
    change = (value - base) / base
    if abs(change) < 0.005:
        return "="
    if change >= 9:  # +900 % reads worse than a factor
        return f"x{value / base:,.0f}"
    return f"{change:+.0%}"


def compare(runs: list[dict]) -> dict:
    """A table of the key figures, one column per run, and each run's difference to the first."""
    rows: list[dict[str, Any]] = []
    for label, get, unit, better in COMPARED:
        values = [get(r) for r in runs]
        rows.append({"figure": label, "unit": unit, "higher_is_better": better, "values": values,
                     "vs_first": [""] + [difference(values[0], v) for v in values[1:]]})
    labels = [run_label(r) for r in runs]
    by_figure = {row["figure"]: row for row in rows}

    def line(figure: str, shown: Callable[[Any], str]) -> str:
        row = by_figure[figure]
        cells = [f"{r['name']} {shown(v)}" + (f" ({d})" if d and d != "=" else "")
                 for r, v, d in zip(runs, row["values"], row["vs_first"], strict=True)]
        return f"{figure}: " + "; ".join(cells) + "."

    def count(v: float | None) -> str:
        return "-" if v is None else _n(v)

    found = [(r["name"], r["wall"].get("time_wait_at_start"), r["wall"].get("time_wait_found_reused"))
             for r in runs]
    ports = line("TIME_WAIT peak", count)
    if all(at_start is not None for _, at_start, _ in found):  # no run folder from before they were told apart
        ports = "Each run's own " + ports
    if any(at_start for _, at_start, _ in found):
        ports += " At the start of " + "; ".join(f"{name}, {found_words(at_start, reused)}"
                                                   for name, at_start, reused in found if at_start) + "."
    readings = {
        "throughput": line("requests/s", count),
        "latency": line("latency p99", fmt_us),
        "distribution": line("latency p99.9", fmt_us),
        "ports": ports,
    }
    return {"runs": labels, "rows": rows, "verdicts": [r["verdict"] for r in runs], "readings": readings}


def run_label(r: dict) -> str:
    close = r["run"].get("close")
    rate, conns = r["run"].get("rate"), r["run"].get("connections")
    load = f"rate={rate:g}/s" if rate else f"c={conns}" if conns else ""
    what = ", ".join(x for x in (f"close={close}" if close else "", load) if x)
    return f"{r['name']} ({what})" if what else r["name"]

