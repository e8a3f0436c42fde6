"""Charts as text: vertical bars one column a second, a one-line sparkline, a gauge. Pure."""

from __future__ import annotations

from collections.abc import Sequence

EIGHTHS = " ▁▂▃▄▅▆▇█"
SPARKS = "▁▂▃▄▅▆▇█"


def bars(values: Sequence[float], width: int, height: int, top: float | None = None) -> list[str]:
    """The last `width` values as vertical bars `height` rows high, the newest at the right, scaled so
    that `top` (default: the largest value) fills a column; each row exactly `width` wide, top row first."""
    width, height = max(1, width), max(1, height)
    shown = list(values)[-width:]
    peak = top if top is not None and top > 0 else max(shown, default=0.0)
    eighths = [round(min(1.0, max(0.0, v) / peak) * height * 8) if peak > 0 else 0 for v in shown]
    eighths = [1 if e == 0 and v > 0 else e for e, v in zip(eighths, shown, strict=True)]  # a non-zero second shows
    pad = " " * (width - len(shown))
    rows = []
    for row in range(height - 1, -1, -1):  # top row first
        cells = [EIGHTHS[min(8, max(0, e - row * 8))] for e in eighths]
        rows.append(pad + "".join(cells))
    return rows


def sparkline(values: Sequence[float], width: int, top: float | None = None) -> str:
    """The last `width` values on one line (eight heights), padded on the left to `width`."""
    shown = list(values)[-max(1, width):]
    peak = top if top is not None and top > 0 else max(shown, default=0.0)
    if peak <= 0:
        return " " * (width - len(shown)) + SPARKS[0] * len(shown)
    cells = [SPARKS[min(7, int(min(1.0, max(0.0, v) / peak) * 7.999))] for v in shown]
    return " " * (width - len(shown)) + "".join(cells)


def gauge(used: float, total: float, width: int) -> str:
    """A bar `width` wide, filled in eighths for used / total."""
    width = max(1, width)
    share = min(1.0, max(0.0, used / total)) if total > 0 else 0.0
    eighths = round(share * width * 8)
    full, part = divmod(eighths, 8)
    bar = "█" * full + (EIGHTHS[part] if part and full < width else "")
    return bar + "░" * (width - len(bar))
