"""`twload watch` full screen: TIME_WAIT per destination over time. The rows are twload.watch.rows'
(the same numbers as the table and the --json lines); this keeps their history and draws it."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from rich.console import Group

from twload.live.chart import bars, sparkline
from twload.live.state import HISTORY_S
from twload.live.view import AXIS_W, Part, line, n


@dataclass
class WatchHistory:
    """Each reading's client TIME_WAIT, in all and per (source, destination); per listening address."""

    total: deque = field(default_factory=lambda: deque(maxlen=HISTORY_S))
    by_row: dict[str, deque] = field(default_factory=dict)
    readings: int = 0

    def add(self, rows: list[dict], listeners: list[dict]) -> None:
        self.readings += 1
        self.total.append(float(sum(r["time_wait"] for r in rows)))
        seen = set()
        for key, value in [(row_key(r), r["time_wait"]) for r in rows] + \
                          [(f"listen {r['local']}", r["time_wait"]) for r in listeners]:
            seen.add(key)
            history = self.by_row.setdefault(key, deque([0.0] * min(self.readings - 1, HISTORY_S),
                                                        maxlen=HISTORY_S))
            history.append(float(value))
        for key, history in self.by_row.items():
            if key not in seen:
                history.append(0.0)


def row_key(row: dict) -> str:
    return f"{row['src']} → {row['dst']}"  # cut from the left when narrow: the destination stays


def render_watch(rows: list[dict], listeners: list[dict], history: WatchHistory, header: str, interval_s: float,
                 width: int, height: int, stop_hint: str = "q or Ctrl-C: stop") -> Group:
    width = max(20, width)
    lines = [line(("twload watch ", "bold"), header, width=width),
             line((stop_hint, "dim"), f"  every {interval_s:g}s, a column a reading", width=width)]
    listed = [(row_key(r), r["time_wait"], f"ESTAB {n(r['established'])} budget {r['budget_used']:.1%}",
               r["budget_used"]) for r in rows] + \
             [(f"listen {r['local']}", r["time_wait"], f"ESTAB {n(r['established'])} peers {r['peers']}", 0.0)
              for r in listeners]
    room = max(1, height - len(lines) - 3)
    chart_h = max(3, min(12, room - min(len(listed), room // 2) - 1))
    rows_room = max(1, height - len(lines) - chart_h - 3)
    chart_w = max(1, width - AXIS_W)
    total = list(history.total)[-chart_w:]
    peak = max(total, default=0.0)
    lines.append(line(("client TIME_WAIT, all destinations ", "bold"), f"now {n(total[-1] if total else 0)}  "
                      f"peak {n(peak)}", width=width))
    for i, row in enumerate(bars(total, chart_w, chart_h, top=peak or None)):
        label = n(peak) if i == 0 else ("0" if i == chart_h - 1 else "")
        lines.append(line(f"{label:>{AXIS_W - 1}} ", (row, "yellow"), width=width))
    shown = listed[:rows_room]
    name_w = min(max((len(key) for key, *_ in shown), default=12) + 1, max(12, width // 2))
    top = max((max(history.by_row.get(key, [0.0]), default=0.0) for key, *_ in shown), default=0.0)
    for key, tw, rest, used in shown:
        counts = f" TW {n(tw):>7} {rest} "
        spark_w = max(0, width - name_w - len(counts))
        style = "red" if used > 0.9 else "yellow" if used > 0.5 else ""
        # one scale for every row, so the rows compare
        parts: list[Part] = [(f"{key[-(name_w - 1):]:<{name_w}}", "cyan"), (counts, style),
                             (sparkline(list(history.by_row.get(key, ())), spark_w, top=top or None), "yellow")]
        lines.append(line(*parts, width=width))
    if not listed:
        lines.append(line("(no client connections)", width=width))
    elif len(listed) > rows_room:
        lines[-1] = line(f"… {len(listed) - rows_room + 1} more rows (--dst narrows)", width=width)
    return Group(*lines[:height])
