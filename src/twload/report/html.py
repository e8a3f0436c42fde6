"""The HTML report: one self-contained file (plotly.js inlined, nothing fetched when opened).

Renders only: every number comes from twload.report.numbers. One run gets six sections (and one
for HTTP/2's streams and connections, one for a request file's targets, where they apply), each a
plot or a table under a one-line reading; several runs get a table of their key
figures with differences, and the same plots with one line per run on shared axes.
"""

from __future__ import annotations

import itertools
from html import escape

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from twload.merge.summary import Summary
from twload.report.numbers import PERCENTILE_LINES, fmt_us, http2_reading, http2_rows

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f")
ERROR_COLORS = ("#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#7f7f7f")
LEVEL_COLORS = {"ok": "#2e7d32", "errors": "#ef6c00", "wall": "#c62828", "failed": "#c62828"}
PLOT_CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["lasso2d", "select2d"]}
# HdrHistogram's percentile plot: x = 1/(1 - q) on a log axis, labelled with the percentile
PERCENTILE_TICKS = ((2, "50%"), (10, "90%"), (100, "99%"), (1000, "99.9%"), (10_000, "99.99%"),
                    (100_000, "99.999%"), (1_000_000, "99.9999%"))

BUDGET_ROWS = (("ports", "ephemeral ports towards the target"), ("free_ports", "free at the start"),
               ("hold_s", "a port is unusable after close for (s)"),
               ("sustainable_new_conn_per_s", "sustainable new connections/s"),
               ("predicted_connection", "first connection predicted to fail"),
               ("predicted_at_s", "the wall at the planned rate (s)"))
CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; margin: 0;
       background: #f6f7f9; }
main { max-width: 1100px; margin: 0 auto; padding: 16px 24px 48px; }
h1 { font-size: 22px; margin: 8px 0 2px; }
h2 { font-size: 18px; margin: 28px 0 4px; }
.sub { color: #555; font-size: 13px; overflow-wrap: anywhere; }
.verdict { border-left: 6px solid; background: #fff; padding: 12px 16px; margin: 14px 0; font-size: 17px;
           box-shadow: 0 1px 2px rgba(0,0,0,.08); }
.verdict .label { text-transform: uppercase; font-size: 12px; letter-spacing: .05em; display: block; }
.tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(130px, 1fr)); gap: 8px; }
.tile { background: #fff; padding: 8px 10px; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
.tile .v { font-size: 20px; font-weight: 600; }
.tile .k { font-size: 12px; color: #555; }
.reading { margin: 2px 0 6px; }
.plot { background: #fff; height: 340px; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
table { border-collapse: collapse; background: #fff; margin: 6px 0; font-size: 14px;
        box-shadow: 0 1px 2px rgba(0,0,0,.08); }
th, td { text-align: left; padding: 4px 10px; border-bottom: 1px solid #e5e5e5; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.better { color: #2e7d32; } .worse { color: #c62828; }
.cols { display: flex; flex-wrap: wrap; gap: 24px; }
.cols > div { flex: 1 1 320px; min-width: 0; }
ul { margin: 4px 0; padding-left: 20px; }
code { font-size: 13px; overflow-wrap: anywhere; }
footer { color: #777; font-size: 12px; margin-top: 32px; }
"""


# -- the page -------------------------------------------------------------------------------------

def render_html(runs: list[dict], comparison: dict | None = None) -> str:
    """A whole page: one run described, or several compared (comparison from numbers.compare)."""
    if len(runs) == 1:
        title = f"twload report: {runs[0]['run'].get('url', runs[0]['name'])}"
        body = _one_run(runs[0])
    else:
        title = f"twload: {len(runs)} runs compared"
        body = _compared(runs, comparison or {})
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{escape(title)}</title><style>{CSS}</style>"
        f"<script type=\"text/javascript\">{get_plotlyjs()}</script></head>"
        f"<body><main><h1>{escape(title)}</h1>{body}"
        "<footer>Written by <code>twload report</code> from the run folder alone (plan.json, samples.jsonl, "
        "hdrh.log, summary.json). Self-contained: it loads nothing from the network.</footer>"
        "</main></body></html>\n"
    )


def _one_run(r: dict) -> str:
    meta = r["run"]
    when = " · ".join(escape(str(x)) for x in (meta.get("started_utc"), meta.get("host"),
                                              meta.get("kernel") and f"Linux {meta['kernel']}") if x)
    head = (f"<div class=\"sub\">run folder <code>{escape(r['path'])}</code>{' · ' + when if when else ''}</div>"
            + _verdict(r["verdict"]) + _tiles(r))
    summary = Summary.from_dict(r.get("summary") or {})
    sections = [
        ("1. Throughput", r["readings"]["throughput"], _plot(throughput_figure([r]), "throughput")),
        ("2. Latency over time", r["readings"]["latency"], _plot(latency_figure(r), "latency")),
        ("3. Latency distribution", r["readings"]["distribution"], _plot(distribution_figure([r]), "distribution")),
        ("4. Ports and TIME_WAIT", r["readings"]["ports"], _plot(ports_figure(r), "ports")),
        ("5. Status codes and errors", r["readings"]["errors"], _errors_tables(r)),
        ("6. Plan, kernel and advice", "What ran, on which kernel settings, and what the pre-flight said.",
         _context(r)),
    ]
    raw = r.get("summary") or {}
    if raw.get("http2"):  # --http2: the streams and connections, against HTTP/1.1's ports
        sections.append((f"{len(sections) + 1}. HTTP/2 streams and connections", http2_reading(raw),
                         _http2_section(r)))
    if summary.targets:  # a request file (--targets): each target, and each destination
        sections.append((f"{len(sections) + 1}. Targets", "Each target of the request file (by its name), the slowest "
                         "(p99) first; each destination (host:port) with its own connections and port budget.",
                         _targets_tables(summary)))
    return head + "".join(_section(*s) for s in sections)


def _compared(runs: list[dict], comparison: dict) -> str:
    verdicts = "".join(
        f"<li><b>{escape(label)}</b>: {escape(v['text'])}</li>"
        for label, v in zip(comparison["runs"], comparison["verdicts"], strict=True))
    worst = max((v["level"] for v in comparison["verdicts"]), key=list(LEVEL_COLORS).index)
    head = (f"<div class=\"verdict\" style=\"border-color:{LEVEL_COLORS[worst]}\">"
            f"<b class=\"label\">verdicts</b><ul>{verdicts}</ul></div>")
    sections = [
        ("Key figures", "Each run beside the first; the percentage is the difference to the first run.",
         _comparison_table(comparison)),
        ("1. Throughput", comparison["readings"]["throughput"], _plot(throughput_figure(runs), "throughput")),
        ("2. Latency p99 over time", comparison["readings"]["latency"], _plot(p99_figure(runs), "latency")),
        ("3. Latency distribution", comparison["readings"]["distribution"],
         _plot(distribution_figure(runs), "distribution")),
        ("4. Client TIME_WAIT", comparison["readings"]["ports"], _plot(time_wait_figure(runs), "ports")),
    ]
    return head + "".join(_section(*s) for s in sections)


def _section(title: str, reading: str, content: str) -> str:
    return f"<section><h2>{escape(title)}</h2><p class=\"reading\">{escape(reading)}</p>{content}</section>"


def _verdict(v: dict) -> str:
    label = {"ok": "verdict", "errors": "verdict: errors", "wall": "verdict: port wall",
             "failed": "verdict: failed"}[v["level"]]
    return (f"<div class=\"verdict\" style=\"border-color:{LEVEL_COLORS[v['level']]}\"><b class=\"label\">{label}</b>"
            f"{escape(v['text'])}</div>")


def _tiles(r: dict) -> str:
    t = r["totals"]
    meta = r["run"]
    load = f"{meta['rate']:g} req/s planned" if meta.get("rate") else f"{meta.get('connections', '?')} connections"
    tiles = [
        (f"close, {load}", meta.get("close", "?")),
        ("requests/s", f"{t['rps']:,.0f}"),
        ("requests", f"{t['requests']:,}"),
        ("errors", f"{t['errors']:,}" + (f" ({t['error_rate']:.1%})" if t["errors"] else "")),
        ("latency p50", fmt_us(t["latency_us"].get("p50"))),
        ("latency p99", fmt_us(t["latency_us"].get("p99"))),
        ("connect p99", fmt_us(t["connect_us"].get("p99"))),
        ("connections opened", f"{t['connections_opened']:,}"),
    ]
    if r["wall"]["time_wait_peak"] is not None:
        tiles.append(("TIME_WAIT peak", f"{r['wall']['time_wait_peak']:,}"))
    tiles.append(("duration", f"{t['duration_s']:.1f} s"))
    return "<div class=\"tiles\">" + "".join(
        f"<div class=\"tile\"><div class=\"v\">{escape(v)}</div><div class=\"k\">{escape(k)}</div></div>"
        for k, v in tiles) + "</div>"


def _plot(fig: go.Figure, name: str) -> str:
    fig.update_layout(template="plotly_white", margin={"l": 60, "r": 20, "t": 30, "b": 40},
                      legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0},
                      font={"size": 12}, hovermode="x unified", legend_traceorder="normal")
    inner = fig.to_html(full_html=False, include_plotlyjs=False, include_mathjax=False, config=PLOT_CONFIG,
                        div_id=f"plot-{name}")
    return f"<div class=\"plot\" data-plot=\"{name}\">{inner}</div>"


# -- tables ---------------------------------------------------------------------------------------

def _table(head: list[str], rows: list[list], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    out = "<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>"
    for row in rows:
        out += "<tr>" + "".join(
            f"<td{' class=n' if i in numeric else ''}>{escape('' if c is None else str(c))}</td>"
            for i, c in enumerate(row)) + "</tr>"
    return out + "</table>"


def _errors_tables(r: dict) -> str:
    status = _table(["status", "responses"], [[code, f"{n:,}"] for code, n in sorted(r["status"].items())], {1})
    firsts = {f["name"]: f for f in r["first_errors"]}
    rows = []
    for name, n in sorted(r["errors"].items(), key=lambda kv: -kv[1]):
        first = firsts.get(name, {})
        at = "" if first.get("at_s") is None else (
            f"{first['at_s']:.3f} s" if first.get("exact") else f"{first['at_s']:g}-{first['at_s'] + 1:g} s")
        conn = "" if first.get("connection") is None else (
            f"connection {first['connection']}" + (f" of worker {first['worker']}" if first.get("worker") is not None
                                                   else ""))
        rows.append([name, f"{n:,}", at, conn])
    errors = (_table(["error", "count", "first seen", "where"], rows, {1}) if rows
              else "<p>No errors.</p>")
    return f"<div class=\"cols\"><div>{status}</div><div>{errors}</div></div>"


def _http2_section(r: dict) -> str:
    """The HTTP/2 facts (summary.json), and each second's connections and streams open (samples.jsonl)."""
    table = _table(["HTTP/2", ""], [list(row) for row in http2_rows(r["summary"])], {1})
    if "connections_open" not in r["series"]:  # written before samples carried them
        return table
    return f"<div class=\"cols\"><div>{table}</div><div>{_plot(http2_figure(r), 'http2')}</div></div>"


def _targets_tables(summary: Summary) -> str:
    """The summary's `targets`, slowest (p99) first, and its `destinations` (targets on several)."""
    rows = [[t["name"], f"{t['requests']:,}", f"{sum(t['errors'].values()):,}", fmt_us(t["latency_us"]["p50"]),
             fmt_us(t["latency_us"]["p99"]), fmt_us(t["latency_us"]["max"])]
            for t in sorted(summary.targets or (), key=lambda t: (-t["latency_us"]["p99"], t["name"]))]
    out = _table(["target", "requests", "errors", "p50", "p99", "max"], rows, {1, 2, 3, 4, 5})
    if summary.targets_page_repeats:
        out += (f"<p>{summary.targets_page_repeats:,} page(s) of the streamed file walked again, the next not loaded"
                " yet (a request of it in flight, or not yet read): their targets got more than their share of the"
                " file's order.</p>")
    dests = summary.destinations or ()
    if dests:
        def wall(d: dict) -> str:
            rate = (d.get("budget") or {}).get("sustainable_new_conn_per_s")
            return "" if rate is None else f"{rate:,.0f} new connections/s"

        out += _table(["destination", "connections opened", "ports in use at the end", "TIME_WAIT at the end",
                       "the wall at"],
                      [[d["destination"], f"{d['connections_opened']:,}", d.get("ports_in_use_at_end"),
                        d.get("time_wait_at_end"), wall(d)] for d in dests], {1, 2, 3})
    return out


def _context(r: dict) -> str:
    ctx = r["context"]
    plan = _table(["plan", ""], [[k, _show(v)] for k, v in ctx["plan"].items()])
    sysctls = (_table(["sysctl", "value"], [[k, "(not in this kernel)" if v is None else _show(v)]
                                             for k, v in ctx["sysctls"].items()]) if ctx["sysctls"]
               else "<p>No sysctls recorded: this run folder has no plan.json (an older twload wrote it).</p>")
    wall = r["wall"]
    budget_rows = [[label, _show(wall[k])] for k, label in BUDGET_ROWS if wall.get(k) is not None]
    budget = _table(["pre-flight port budget", ""], budget_rows) if budget_rows else ""
    lists = ""
    if ctx["findings"]:
        lists += "<h3>Findings</h3><ul>" + "".join(f"<li>{escape(f)}</li>" for f in ctx["findings"]) + "</ul>"
    if ctx["advice"]:
        lists += "<h3>Advice</h3><ul>" + "".join(f"<li>{escape(a)}</li>" for a in ctx["advice"]) + "</ul>"
    if ctx["thresholds"]:
        lists += "<h3>Thresholds</h3>" + _table(
            ["threshold", "result"], [[t["threshold"], "pass" if t["passed"] else "FAIL"] for t in ctx["thresholds"]])
    return f"<div class=\"cols\"><div>{plan}{budget}</div><div>{sysctls}{lists}</div></div>"


def _show(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    if isinstance(value, list):
        return ", ".join(_show(v) for v in value)
    return "" if value is None else str(value)


def _comparison_table(comparison: dict) -> str:
    head = "<table><tr><th>figure</th>" + "".join(f"<th>{escape(label)}</th>" for label in comparison["runs"]) + "</tr>"
    body = ""
    for row in comparison["rows"]:
        cells = ""
        for value, diff in zip(row["values"], row["vs_first"], strict=True):
            shown = _figure(value, row["unit"])
            css = ""
            if diff and diff not in ("=", "new") and row["higher_is_better"] is not None:
                up = diff.startswith(("+", "x"))  # x: a factor, always up
                css = "better" if up == row["higher_is_better"] else "worse"
            extra = f" <span class=\"{css}\">({escape(diff)})</span>" if diff and diff != "=" else ""
            cells += f"<td class=n>{escape(shown)}{extra}</td>"
        body += f"<tr><td>{escape(row['figure'])}</td>{cells}</tr>"
    return head + body + "</table>"


def _figure(value: object, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "us":
        return fmt_us(float(value))  # type: ignore[arg-type]
    if unit == "s":
        return f"{value:.2f} s"
    return f"{value:,.0f}" if isinstance(value, int | float) else str(value)


# -- figures --------------------------------------------------------------------------------------

def log_ticks_ms(values: list) -> list[float]:
    """Ticks for a log latency axis, labelled in full (plotly would print 20 ms as "2"): 1-2-5 steps,
    or finer where the data spans less than a decade, so an axis never has only one label."""
    shown = [v for v in values if v]
    if not shown:
        return []
    low, high = min(shown), max(shown)
    steps = (1, 2, 5) if high / low > 10 else (1, 1.5, 2, 3, 4, 5, 6, 7, 8, 9)
    return [round(m * 10.0**e, 6) for e in range(-3, 6) for m in steps if low / 1.5 <= m * 10.0**e <= high * 1.5]


def _log_ms_axis(fig: go.Figure, title: str) -> None:
    values = [v for trace in fig.data for v in (trace.y or ()) if v is not None]
    ticks = log_ticks_ms(values)
    fig.update_yaxes(title_text=title, type="log", tickvals=ticks, ticktext=[f"{v:g}" for v in ticks])


def _ms(values: list) -> list:
    return [None if v is None else v / 1000.0 for v in values]


def throughput_figure(runs: list[dict]) -> go.Figure:
    """Requests and connections opened per second; below them, errors per second stacked by name."""
    with_errors = any(r["series"]["errors"] for r in runs)
    fig = make_subplots(rows=2 if with_errors else 1, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        row_heights=[0.65, 0.35] if with_errors else None)
    single = len(runs) == 1
    for i, r in enumerate(runs):
        s = r["series"]
        name = "requests/s" if single else r["name"]
        fig.add_trace(go.Scatter(x=s["t"], y=s["rps"], name=name, mode="lines+markers",
                                 line={"color": COLORS[i % len(COLORS)]}), row=1, col=1)
        if single:
            fig.add_trace(go.Scatter(x=s["t"], y=s["connections_opened"], name="connections opened/s",
                                     mode="lines", line={"color": COLORS[2], "dash": "dot"}), row=1, col=1)
            if "target" in s:
                fig.add_trace(go.Scatter(x=s["t"], y=s["target"], name="planned", mode="lines",
                                         line={"color": "#999", "dash": "dash"}), row=1, col=1)
    if with_errors:
        for i, r in enumerate(runs):
            for j, (name, column) in enumerate(sorted(r["series"]["errors"].items())):
                fig.add_trace(go.Bar(x=r["series"]["t"], y=column, name=name if single else f"{r['name']}: {name}",
                                     marker_color=ERROR_COLORS[(i + j) % len(ERROR_COLORS)]), row=2, col=1)
        fig.update_layout(barmode="stack")
        fig.update_yaxes(title_text="errors/s", row=2, col=1, rangemode="tozero")
    fig.update_yaxes(title_text="per second", row=1, col=1, rangemode="tozero")
    fig.update_xaxes(title_text="seconds into the run", row=2 if with_errors else 1, col=1)
    return fig


def latency_figure(r: dict) -> go.Figure:
    s = r["series"]
    fig = go.Figure()
    for i, (key, label) in enumerate(PERCENTILE_LINES):
        fig.add_trace(go.Scatter(x=s["t"], y=_ms(s[f"latency_{key}"]), name=f"latency {label}", mode="lines+markers",
                                 line={"color": COLORS[i]}, connectgaps=False))
    for key, dash in (("connect_p50", "dot"), ("connect_p99", "dash")):
        if any(v is not None for v in s[key]):
            fig.add_trace(go.Scatter(x=s["t"], y=_ms(s[key]), name=key.replace("_", " "), mode="lines+markers",
                                     line={"color": COLORS[5], "dash": dash}, marker={"size": 4}))
    _log_ms_axis(fig, "ms (log scale)")
    fig.update_xaxes(title_text="seconds into the run")
    return fig


def p99_figure(runs: list[dict]) -> go.Figure:
    fig = go.Figure()
    for i, r in enumerate(runs):
        fig.add_trace(go.Scatter(x=r["series"]["t"], y=_ms(r["series"]["latency_p99"]), name=r["name"],
                                 mode="lines+markers", line={"color": COLORS[i % len(COLORS)]}))
    _log_ms_axis(fig, "p99 ms (log scale)")
    fig.update_xaxes(title_text="seconds into the run")
    return fig


def distribution_figure(runs: list[dict]) -> go.Figure:
    fig = go.Figure()
    highest = 10.0
    for i, r in enumerate(runs):
        points = r["distribution"]
        x = [1.0 / (1.0 - p["percentile"] / 100.0) for p in points]
        highest = max([highest, *x])
        fig.add_trace(go.Scatter(
            x=x, y=[p["latency_us"] / 1000.0 for p in points], name=r["name"] if len(runs) > 1 else "latency",
            mode="lines", line={"color": COLORS[i % len(COLORS)], "shape": "hv"},
            customdata=[p["percentile"] for p in points],
            hovertemplate="%{customdata:.4f}th percentile: %{y:.3f} ms<extra></extra>"))
    ticks = [(v, label) for v, label in PERCENTILE_TICKS if v <= highest * 1.5]
    fig.update_xaxes(type="log", tickvals=[v for v, _ in ticks], ticktext=[label for _, label in ticks],
                     title_text="percentile")
    fig.update_yaxes(title_text="latency ms", rangemode="tozero")
    fig.update_layout(hovermode="closest")
    return fig


def ports_figure(r: dict) -> go.Figure:
    """Client TIME_WAIT and ports in use against the budget; the first EADDRNOTAVAIL and the predicted wall."""
    s = r["series"]
    w = r["wall"]
    fig = go.Figure()
    opened, total = [0], 0
    for n in s["connections_opened"]:
        total += n
        opened.append(total)
    fig.add_trace(go.Scatter(x=[0, *s["t"]], y=opened, name="connections opened so far", mode="lines",
                             line={"color": COLORS[2], "dash": "dot"}))
    if "time_wait" in s:
        own = ", the run's own" if "time_wait_found" in s else ""  # older runs counted the found ones too
        fig.add_trace(go.Scatter(x=s["t"], y=s["time_wait"], name="client TIME_WAIT" + own,
                                 mode="lines+markers", line={"color": COLORS[4]}))
    if any(s.get("time_wait_found") or []):
        fig.add_trace(go.Scatter(x=s["t"], y=s["time_wait_found"], name="client TIME_WAIT left by earlier connections",
                                 mode="lines", line={"color": COLORS[4], "dash": "dot"}))
    if "ports_in_use" in s:
        fig.add_trace(go.Scatter(x=s["t"], y=s["ports_in_use"], name="ports in use", mode="lines",
                                 line={"color": COLORS[3]}))
    highest = max([0, *opened, *(v or 0 for v in s.get("time_wait", [])), *(v or 0 for v in s.get("ports_in_use", [])),
                   *(v or 0 for v in s.get("time_wait_found", []))])
    hit = w.get("first_eaddrnotavail_s") is not None
    # the budget lines only where they matter: far above a few sockets they would flatten them to nothing
    if w.get("ports") and (highest >= 0.05 * w["ports"] or hit):
        fig.add_hline(y=w["ports"], line={"color": "#c62828", "width": 1},
                      annotation_text=f"port budget {w['ports']:,}", annotation_position="top right")
    if w.get("free_ports") and (highest >= 0.05 * w["free_ports"] or hit):
        fig.add_hline(y=w["free_ports"], line={"color": "#555", "dash": "dash", "width": 1},
                      annotation_text=f"pre-flight: connection {w['predicted_connection']:,} fails",
                      annotation_position="bottom right")
    if w.get("predicted_at_s") is not None:
        fig.add_vline(x=w["predicted_at_s"], line={"color": "#555", "dash": "dash", "width": 1},
                      annotation_text=f"predicted wall {w['predicted_at_s']:.2f} s", annotation_position="top left")
    if hit:
        fig.add_vline(x=w["first_eaddrnotavail_s"], line={"color": "#c62828", "width": 2},
                      annotation_text=f"first EADDRNOTAVAIL {w['first_eaddrnotavail_s']:.3f} s",
                      annotation_position="bottom right")
    fig.update_yaxes(title_text="sockets / ports", rangemode="tozero")
    fig.update_xaxes(title_text="seconds into the run", rangemode="tozero")
    return fig


def http2_figure(r: dict) -> go.Figure:
    """--http2, per second: connections and streams open, against the ports HTTP/1.1 short connections
    would hold for the same requests (log scale: a handful of connections against thousands of ports)."""
    s = r["series"]
    fig = go.Figure()
    for i, (key, name) in enumerate((("connections_open", "connections open (ports)"),
                                     ("streams_open", "streams in flight"),
                                     ("http1_ports_needed", "ports as HTTP/1.1 short connections"))):
        if key in s:
            fig.add_trace(go.Scatter(x=s["t"], y=[v if v else None for v in s[key]], name=name, mode="lines+markers",
                                     line={"color": COLORS[(2, 0, 1)[i]], "dash": "dot" if i == 2 else None}))
    fig.update_yaxes(title_text="count (log scale)", type="log")
    fig.update_xaxes(title_text="seconds into the run", rangemode="tozero")
    return fig


def time_wait_figure(runs: list[dict]) -> go.Figure:
    fig = go.Figure()
    for i, r in enumerate(runs):
        s = r["series"]
        if "time_wait" in s:
            fig.add_trace(go.Scatter(x=s["t"], y=s["time_wait"], name=r["name"], mode="lines+markers",
                                     line={"color": COLORS[i % len(COLORS)]}))
            if any(s.get("time_wait_found") or []):  # beside the run's own: what earlier connections left
                fig.add_trace(go.Scatter(x=s["t"], y=s["time_wait_found"],
                                         name=f"{r['name']}: left by earlier connections", mode="lines",
                                         line={"color": COLORS[i % len(COLORS)], "dash": "dot"}))
        else:  # an older run folder: no TIME_WAIT measured, its connections opened stand in (dotted)
            opened = list(itertools.accumulate(s["connections_opened"]))
            fig.add_trace(go.Scatter(x=s["t"], y=opened, name=f"{r['name']}: connections opened so far",
                                     mode="lines", line={"color": COLORS[i % len(COLORS)], "dash": "dot"}))
    # a run's budget line only where its TIME_WAIT came near it (else it flattens the others to nothing)
    ports = {r["wall"]["ports"] for r in runs
             if r["wall"].get("ports") and (r["wall"].get("time_wait_peak") or 0) >= 0.05 * r["wall"]["ports"]}
    for p in sorted(ports):
        fig.add_hline(y=p, line={"color": "#c62828", "width": 1}, annotation_text=f"port budget {p:,}",
                      annotation_position="top left")
    fig.update_yaxes(title_text="client TIME_WAIT", rangemode="tozero")
    fig.update_xaxes(title_text="seconds into the run", rangemode="tozero")
    return fig
