"""`twload demo`'s table (cli/demo.py demo_table): a row stays one line at 80 columns, the reasons become
numbered notes, and a wider terminal gets the whole reason in the row."""

from twload.cli.demo import LABEL, DemoRow, demo_table
from twload.plan.close import WHY

# numbers as wide as a busy run makes them: six-figure req/s, seconds of p99, five-figure TIME_WAIT
ROWS = [
    DemoRow("keepalive", 256413.2, 15_680.0, {}, 20, 0),
    DemoRow("fin", 8239.0, 2_050_000.0, {"EADDRNOTAVAIL": 123456, "ECONNRESET": 7}, 28232, 0),
    DemoRow("server", 7956.0, 1_940.0, {}, 0, 13606),
    DemoRow("rst", 8720.0, 1_430.0, {}, 0, 0),
]


def text(lines: list[str]) -> str:
    """The lines as one text: a note that wraps reads as a whole again."""
    return " ".join(line.strip() for line in lines)


def row_lines(lines: list[str]) -> dict[str, str]:
    return {line.split()[0]: line for line in lines if line.split() and line.split()[0] in WHY}


def test_at_80_columns_each_row_is_one_line_with_a_short_label_and_a_note():
    lines = demo_table(ROWS, 80)
    assert max(map(len, lines)) <= 80, "\n".join(lines)
    rows = row_lines(lines)
    assert list(rows) == ["keepalive", "fin", "server", "rst"]
    for number, row in enumerate(ROWS, 1):
        assert rows[row.close].endswith(f"{LABEL[row.close]} [{number}]"), rows[row.close]
        assert f"[{number}] {WHY[row.close]}" in text(lines)
    assert rows["fin"].split()[1:6] == ["8239", "2.05s", "123463", "28232", "0"]
    assert f"[2] {WHY['fin']}; errors: EADDRNOTAVAIL 123456, ECONNRESET 7" in text(lines)
    assert lines[1].split()[:3] == ["strategy", "req/s", "p99"] and lines[0].strip() == "TIME_WAIT"
    # the group header stands over its two columns
    assert lines[1].index("client") <= lines[0].index("TIME_WAIT") < lines[1].index("server") + len("server")


def test_a_wide_terminal_gets_the_whole_reason_in_the_row():
    lines = demo_table(ROWS, 160)
    rows = row_lines(lines)
    for row in ROWS:
        assert WHY[row.close] in rows[row.close]
    # only the row with errors still has a note: its errors by name
    assert [line for line in lines if line.startswith("[")] == ["[1] errors: EADDRNOTAVAIL 123456, ECONNRESET 7"]
    assert rows["fin"].endswith(f"{WHY['fin']} [1]")


def test_too_narrow_for_labels_the_row_keeps_the_note_number():
    lines = demo_table(ROWS[:1], 50)
    assert row_lines(lines)["keepalive"].endswith("[1]")
    assert f"[1] {WHY['keepalive']}" in text(lines)
    assert max(map(len, lines)) > 50  # the row itself cannot be narrower; the note wraps


def test_the_http2_row_fits_80_columns_with_its_own_reason():
    from twload.cli.demo import HTTP2, WHY_ROW

    lines = demo_table([*ROWS, DemoRow(HTTP2, 3100.0, 9_000.0, {}, 20, 0)], 80)
    assert max(map(len, lines)) <= 80, "\n".join(lines)
    http2 = next(line for line in lines if line.startswith("http2 "))
    assert http2.endswith(f"{LABEL[HTTP2]} [5]") and http2.split()[1:6] == ["3100", "9.00ms", "0", "20", "0"]
    assert f"[5] {WHY_ROW[HTTP2]}" in text(lines)
