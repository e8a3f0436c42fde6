"""Several runs side by side as text, within the terminal's width (pure: numbers in, str out)."""

from __future__ import annotations

import textwrap

from twload.report.numbers import fmt_us

LABEL = 20


def _value(value: object, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "us":
        return fmt_us(float(value)).replace(" ", "")  # type: ignore[arg-type]
    if unit == "s":
        return f"{value:.2f}s"
    return f"{value:,.0f}" if isinstance(value, int | float) else str(value)


def render_comparison(comparison: dict, width: int = 80) -> str:
    """Runs are lettered A, B, … (named below the table); each cell is the value and its change against A."""
    letters = [chr(ord("A") + i) for i in range(len(comparison["runs"]))]
    cell = min(20, max(12, (width - LABEL) // max(1, len(letters))))
    lines = [f"twload: {len(letters)} runs compared (changes against A)"]
    lines.append(" " * LABEL + "".join(f"{letter:>{cell}}" for letter in letters))
    for row in comparison["rows"]:
        cells = []
        for value, diff in zip(row["values"], row["vs_first"], strict=True):
            shown = _value(value, row["unit"])
            if diff and diff != "=":
                shown += f" {diff}"
            cells.append(f"{shown:>{cell}}")
        lines.append(f"{row['figure']:<{LABEL}}" + "".join(cells))
    for letter, label, verdict in zip(letters, comparison["runs"], comparison["verdicts"], strict=True):
        lines.append(f"{letter} = {label}")
        lines.extend(textwrap.wrap(verdict["text"], width, initial_indent="    ", subsequent_indent="    "))
    return "\n".join(lines)
