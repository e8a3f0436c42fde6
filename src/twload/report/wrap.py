"""Fitting text output to the terminal: long lines wrap with a hanging indent, never cut (pure)."""

from __future__ import annotations

import textwrap

NARROWEST = 40  # below this, wrapping helps no one: lines stay as they are


def wrap_line(line: str, width: int, hang: int = 4) -> list[str]:
    """One line as lines of at most `width` (a single word longer than that, such as a URL, stays whole);
    continuation lines are indented `hang` more than the first."""
    if len(line) <= width or width < NARROWEST:
        return [line]
    indent = line[: len(line) - len(line.lstrip())]
    return textwrap.wrap(line.strip(), width, initial_indent=indent, subsequent_indent=indent + " " * hang,
                         break_long_words=False, break_on_hyphens=False)


def wrap_lines(lines: list[str], width: int, hang: int = 4) -> list[str]:
    return [part for line in lines for part in wrap_line(line, width, hang)]
