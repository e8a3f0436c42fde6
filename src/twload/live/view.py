"""The full-screen view of a run, as lines of text exactly as wide as the terminal. Rendering only:
each call builds the screen from a LiveState (no terminal I/O here).

At 80x24 everything fits: the header, requests/s as a chart (one column a second), latency
percentiles of the last second and of the run, status codes, errors by name with when each first
came, ports in use against the port budget with the pre-flight's wall, the run's own TIME_WAIT, and
the open loop's target and lag. A taller terminal gets a taller chart and more error names, a wider
one more seconds of history and the p99.9 column.
"""

from __future__ import annotations

from rich.console import Group
from rich.text import Text

from twload.live.chart import bars, gauge, sparkline
from twload.live.state import LiveState

AXIS_W = 8  # the chart's left labels
MIN_CHART_H = 3
MAX_CHART_H = 16


Part = tuple[str, str] | str  # text, or (text, style)


def line(*parts: Part, width: int) -> Text:
    """One screen line from (text, style) parts, cut to `width`."""
    text = Text(no_wrap=True, overflow="crop")
    for part in parts:
        if isinstance(part, str):
            text.append(part)
        else:
            text.append(part[0], style=part[1])
    text.truncate(width)
    return text


def beside(left: Text, right: Text, left_w: int, width: int) -> Text:
    out = left.copy()
    out.truncate(left_w, pad=True)
    out.append_text(right)
    out.truncate(width)
    return out


def n(value: float) -> str:
    return f"{value:,.0f}"


def short_us(us: float) -> str:
    """A duration in at most 6 characters, three significant digits (report.text's fmt_us takes up to 8)."""
    ms = us / 1_000
    if us < 999.5:  # each bound where the next rounding would take a seventh character
        return f"{us:.0f}us"
    if ms < 9.995:
        return f"{ms:.2f}ms"
    if ms < 99.95:
        return f"{ms:.1f}ms"
    if ms < 999.5:
        return f"{ms:.0f}ms"
    return f"{us / 1_000_000:.2f}s"  # at most 60 s: HIGHEST_US


def header(state: LiveState, width: int) -> list[Text]:
    f = state.facts
    first = line(("twload ", "bold"), (f.url, "cyan"), f"  {f.engine}/{f.io}  close {f.close}  "
                 f"{'open loop' if f.open_loop else f'-c {f.connections}'}", width=width)
    if f.planned_s:
        done = min(1.0, state.elapsed_s / f.planned_s) if f.planned_s else 0.0
        where = f"{state.elapsed_s:5.1f}s / {f.planned_s:g}s"
    else:
        done = min(1.0, state.requests / f.planned_requests) if f.planned_requests else 0.0
        where = f"{n(state.requests)} / {n(f.planned_requests or 0)} req"
    hint = f"stopping ({state.stopping})" if state.stopping else state.stop_hint
    bar_w = max(5, min(30, width - len(where) - len(hint) - 6))
    second = line(gauge(done, 1.0, bar_w), f" {where}  ", (hint, "yellow" if state.stopping else "dim"),
                  width=width)
    return [first, second]


def wall_column(state: LiveState, seconds: list[int]) -> int | None:
    """Where on the chart's time axis the wall is: when EADDRNOTAVAIL first came, else the pre-flight's
    prediction at the planned rate; None when it is not on the chart."""
    at = state.first_errors.get("EADDRNOTAVAIL", state.facts.wall_after_s)
    if at is None or not seconds:
        return None
    second = int(at) + 1  # sample t covers (t-1, t]
    return seconds.index(second) if second in seconds else None


def rps_chart(state: LiveState, width: int, height: int) -> list[Text]:
    chart_w = max(1, width - AXIS_W)
    samples = list(state.samples)[-chart_w:]
    # a short run's seconds get up to 4 columns each, so its first seconds are not a sliver at the right
    per_second = max(1, min(4, chart_w // max(1, len(samples))))
    shown = [float(s.get("rps", 0.0)) for s in samples for _ in range(per_second)][-chart_w:]
    seconds = [int(s.get("t", 0)) for s in samples for _ in range(per_second)][-chart_w:]
    peak = max(shown, default=0.0)
    last = state.last
    title: list[Part] = [("requests/s ", "bold"), f"now {n(last.get('rps', 0))}  peak {n(peak)}"]
    if "target" in last:
        title.append(f"  target {last['target']:g}" + ("/s" if state.facts.open_loop else " conns"))
    lines = [line(*title, width=width)]
    rows = bars(shown, chart_w, height, top=peak or None)
    for i, row in enumerate(rows):
        label = n(peak) if i == 0 else ("0" if i == height - 1 else "")
        lines.append(line(f"{label:>{AXIS_W - 1}} ", (row, "green"), width=width))
    axis = list("─" * chart_w)
    column = wall_column(state, seconds)
    offset = chart_w - len(seconds)
    if column is not None:
        axis[offset + column] = "▲"
    first_t = f"{seconds[0] - 1}s" if seconds else ""
    label = "wall▲" if column is not None else first_t
    lines.append(line(f"{label:>{AXIS_W - 1}} ", ("".join(axis), "red" if column is not None else "dim"),
                      width=width))
    return lines


def latency_block(state: LiveState, width: int) -> list[Text]:
    columns = [("p50", "p50"), ("p90", "p90"), ("p99", "p99")]
    if width >= 45:
        columns.append(("p99.9", "p99_9"))
    columns.append(("max", "max"))
    cell = 7  # short_us is at most 6 wide
    last = state.last.get("latency_us", {})
    run = state.run_latency_us
    rows = [line(("latency", "bold"), "".join(f"{name:>{cell}}" for name, _ in columns), width=width)]
    for label, values in (("last 1s", last), ("run", run)):
        rows.append(line(f"{label:<7}", "".join(f"{short_us(values.get(key, 0)):>{cell}}" for _, key in columns),
                         width=width))
    connect = state.run_connect_us
    opened = f" opened {n(state.connections_opened)}"
    text = f" p50 {short_us(connect.get('p50', 0))} p99 {short_us(connect.get('p99', 0))}"
    rows.append(line(("connect", "bold"), text + (opened if 7 + len(text) + len(opened) <= width else ""),
                     width=width))
    return rows


def status_style(code: str) -> str:
    return "green" if code.startswith("2") else "yellow" if code[:1] in ("3", "4") else "red"


def outcome_block(state: LiveState, width: int, rows: int) -> list[Text]:
    """Status codes on one line, then the errors by name, most counted first, with when each first came."""
    status: list[Part] = [("status ", "bold")]
    for code, count in state.status.items():
        status += [(code, status_style(code)), f" {n(count)}  "]
    if not state.status:
        status.append("none yet")
    lines = [line(*status, width=width)]
    errors = state.errors_by_count()
    total = sum(count for _, count, _ in errors)
    lines.append(line(("errors ", "bold"), (n(total), "bold red" if total else ""), width=width))
    shown = errors[: max(0, rows - 2)]
    if len(errors) > len(shown) and shown:
        shown = shown[:-1]
    for name, count, at in shown:
        since = f" since {at:.2f}s" if at is not None else ""
        lines.append(line("  ", (name, "red"), f" {n(count)}{since}", width=width))
    if len(errors) > len(shown):
        lines.append(line(f"  … {len(errors) - len(shown)} more", width=width))
    return lines


def ports_block(state: LiveState, width: int) -> list[Text]:
    f = state.facts
    used, ports = state.ports_in_use, f.ports
    lines = []
    if ports and used is None:  # a Dask run: each worker's host holds its own ports
        lines.append(line(("ports   ", "bold"), f"budget {n(ports)}; in use not measured here", width=width))
    elif ports and used is not None:
        label = f" {n(used)}/{n(ports)}"
        share = used / ports
        style = "red" if share >= 0.9 else "yellow" if share >= 0.5 else "green"
        bar_w = max(5, min(40, width - 8 - len(label) - 6))
        lines.append(line(("ports   ", "bold"), (gauge(used, ports, bar_w), style), label, f" {share:.0%}",
                          width=width))
    own = state.time_wait
    if own is not None:
        tw = [float(s.get("time_wait", 0)) for s in state.samples]
        found = f" (+{n(state.time_wait_found)} earlier)" if state.time_wait_found else ""
        text = f"{n(own)} own{found} "
        spark_w = max(0, min(40, width - 10 - len(text)))
        lines.append(line(("TIME_WAIT ", "bold"), text, (sparkline(tw, spark_w, top=ports or None), "yellow"),
                          width=width))
    lines.append(line(("wall    ", "bold"), *wall_text(state), width=width))
    return lines


def wall_text(state: LiveState) -> list[Part]:
    """The pre-flight's predicted wall, and where the last seconds' pace is heading."""
    f = state.facts
    first = state.first_errors.get("EADDRNOTAVAIL")
    if first is not None:
        return [(f"hit at {first:.2f}s: EADDRNOTAVAIL x{n(state.errors.get('EADDRNOTAVAIL', 0))}", "bold red")]
    parts: list[Part] = []
    if f.wall_at_connection:
        when = f" (~{f.wall_after_s:.0f}s)" if f.wall_after_s else ""
        parts.append((f"predicted at connection {n(f.wall_at_connection)}{when}", "yellow"))
    elif f.ports:
        parts.append(("none predicted", "green"))
    else:
        parts.append(("no budget known", "dim"))
    eta = state.wall_eta_s()
    used = state.ports_in_use or 0
    # the pace towards the budget, where the pre-flight predicts a wall or half the ports are held already
    # (where it predicts none, TIME_WAIT's ports are reused and the pace levels off before the budget)
    if eta is not None and (f.wall_at_connection or (f.ports and used >= f.ports / 2)):
        parts.append((f"; full in ~{eta:.0f}s at +{n(state.ports_trend_per_s() or 0)} ports/s",
                      "red" if eta < 10 else "yellow"))
    return parts


def open_loop_line(state: LiveState, width: int) -> Text | None:
    last = state.last
    if not state.facts.open_loop or "target" not in last:
        return None
    lag = last.get("max_lag_us", 0)
    style = "red" if lag > 50_000 else "yellow" if lag > 5_000 else ""
    return line(("rate    ", "bold"), f"target {last['target']:g}/s  sent {n(last.get('rps', 0))}/s  ",
                ("lag " + short_us(lag), style), f"  run max {short_us(state.max_lag_us)}", width=width)


def render(state: LiveState, width: int, height: int) -> Group:
    """The whole screen, `height` lines at most, none wider than `width`."""
    width = max(20, width)
    top = header(state, width)
    half = width // 2 if width >= 80 else width
    latency = latency_block(state, half - 1 if half < width else width)
    ports = ports_block(state, width)
    lag = open_loop_line(state, width)
    bottom = ports + ([lag] if lag else [])
    # errors get up to half of what is left (a line each, after the status and the total), the chart
    # the rest within bounds; a screen with room to spare lists more errors
    side = half < width
    avail = height - len(top) - 2 - len(bottom)  # 2: the chart's title and axis
    error_rows = max(4, min(2 + len(state.errors), avail // 2))
    if side:
        error_rows = max(error_rows, len(latency))
    middle_h = error_rows if side else len(latency) + error_rows
    chart_h = max(MIN_CHART_H, min(MAX_CHART_H, avail - middle_h))
    if chart_h == MAX_CHART_H:
        error_rows += max(0, avail - chart_h - middle_h)
    outcome = outcome_block(state, width - half if side else width, error_rows)
    if side:
        rows = max(len(latency), len(outcome))
        latency += [Text()] * (rows - len(latency))
        outcome += [Text()] * (rows - len(outcome))
        middle = [beside(a, b, half, width) for a, b in zip(latency, outcome, strict=True)]
    else:
        middle = latency + outcome
    lines = top + rps_chart(state, width, chart_h) + middle + bottom
    return Group(*lines[:height])
