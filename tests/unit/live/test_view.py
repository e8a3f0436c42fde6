"""The full-screen views as text: within the terminal's width and height at every size, and the numbers
they show are the state's (the last merged second's, the run's so far)."""

import pytest
from rich.console import Console

from twload.live.chart import bars, gauge, sparkline
from twload.live.state import LiveState, RunFacts
from twload.live.view import render, short_us
from twload.live.watch_view import WatchHistory, render_watch
from twload.metrics import Snapshot, Totals, encode_counts

SIZES = [(80, 24), (120, 40), (60, 15), (200, 60), (80, 10)]


def test_bars_are_exactly_as_wide_and_high_as_asked_and_newest_right():
    rows = bars([1, 2, 4, 8], width=10, height=3)
    assert len(rows) == 3 and all(len(r) == 10 for r in rows)
    assert rows[0][-1] == "█" and rows[-1][:6] == " " * 6
    assert bars([5] * 30, width=10, height=2)[0] == "█" * 10
    assert bars([0, 1, 100], width=3, height=1)[0][1] != " "  # a small non-zero second still shows


def test_sparkline_and_gauge_fill_their_width():
    assert len(sparkline([1, 2, 3], 8)) == 8
    assert sparkline([0, 0], 2) == "▁▁"
    assert gauge(1, 2, 10) == "█████░░░░░"
    assert gauge(3, 2, 4) == "████" and gauge(0, 0, 3) == "░░░"


def state_at_the_wall(seconds: int = 30, errors: int = 3) -> LiveState:
    facts = RunFacts(url="http://127.0.0.1:8080/", destination="127.0.0.1:8080", engine="core", io="epoll",
                     close="fin", connections=50, planned_s=60.0)
    state = LiveState(facts)
    state.set_budget({"ports": 28232, "exhausted_at_connection": 28233, "exhausted_after_s": None})
    totals = Totals()
    names = ["EADDRNOTAVAIL", "ECONNRESET", "timeout", "EPIPE", "protocol_error", "not_sent"][:errors]
    for t in range(1, seconds + 1):
        snap = Snapshot(requests=1000 + t, connections_opened=1000,
                        status={200: 1000 + t}, errors={name: i + 1 for i, name in enumerate(names)},
                        first_errors={name: (1, 0.5 + i) for i, name in enumerate(names)},
                        latency=encode_counts({200: 1000 + t}), connect=encode_counts({40: 10}),
                        sums_us={"latency": 200 * (1000 + t), "connect": 400})
        totals.add(snap)
        sample = {"t": t, "rps": float(1000 + t), "latency_us": {"p50": 200, "p90": 210, "p99": 220, "p99_9": 230,
                                                                "max": 240},
                  "time_wait": 900 * t, "ports_in_use": 950 * t}
        state.on_second(sample)

        class P:
            elapsed_s = t + 0.5
            stopping = None
            time_wait = 900 * t
            time_wait_found = 4
            last_sample = sample
        P.totals = totals
        state.on_progress(P())
    return state


def screen(state_or_group, width: int, height: int) -> list[str]:
    console = Console(width=width, height=height, record=True, force_terminal=True, color_system=None)
    console.print(state_or_group)
    return console.export_text().splitlines()


@pytest.mark.parametrize("width, height", SIZES)
def test_the_run_view_fits_the_terminal(width, height):
    lines = screen(render(state_at_the_wall(errors=6), width, height), width, height)
    assert len(lines) <= height
    assert all(len(line) <= width for line in lines), max(lines, key=len)
    assert lines[0].startswith("twload http://127.0.0.1:8080/")
    if height >= 24:
        text = "\n".join(lines)
        assert "requests/s now 1,030  peak 1,030" in text
        assert "not_sent 180 since 5.50s" in text  # the errors by name, most first, with when each first came
        assert "EADDRNOTAVAIL 30 since 0.50s" in text
        assert "28,500/28,232" in text  # ports in use against the budget
        assert "hit at 0.50s: EADDRNOTAVAIL" in text


def test_more_room_shows_more_history_and_the_p99_9_column():
    small = "\n".join(screen(render(state_at_the_wall(), 80, 24), 80, 24))
    large = "\n".join(screen(render(state_at_the_wall(), 160, 50), 160, 50))
    assert "p99.9" not in small and "p99.9" in large
    assert "last 1s" in small and "200us" in small


def test_the_predicted_wall_and_where_the_pace_is_heading():
    state = state_at_the_wall(seconds=10, errors=0)
    text = "\n".join(screen(render(state, 100, 30), 100, 30))
    assert "predicted at connection 28,233" in text
    assert "full in ~" in text and "+950 ports/s" in text  # (28232 - 9500) / 950 ≈ 20 s
    assert "full in ~20s" in text


def test_the_watch_view_fits_and_keeps_each_destinations_history():
    history = WatchHistory()
    for reading in range(1, 6):
        rows = [{"src": "127.0.0.1", "dst": f"127.0.0.1:{8000 + i}", "time_wait": reading * (i + 1) * 10,
                 "established": 1, "other": 0, "budget_used": 0.01} for i in reversed(range(3))]  # TIME_WAIT first
        history.add(rows, [{"local": "127.0.0.1:9000", "time_wait": reading, "established": 0, "other": 0,
                            "peers": 1}])
    assert list(history.by_row["127.0.0.1 → 127.0.0.1:8002"]) == [30, 60, 90, 120, 150]
    assert list(history.total) == [60, 120, 180, 240, 300]
    for width, height in SIZES:
        lines = screen(render_watch(rows, [], history, "TCP sockets (all): TIME_WAIT 300", 1.0, width, height),
                       width, height)
        assert len(lines) <= height and all(len(line) <= width for line in lines)
        assert "127.0.0.1:8002" in "\n".join(lines)
        if height >= 24:
            assert "127.0.0.1:8000" in "\n".join(lines)


@pytest.mark.parametrize("us", [0, 999, 1_000, 9_994, 9_999, 99_949, 192_130, 999_499, 999_999, 1_000_000, 60_000_000])
def test_durations_on_screen_take_six_characters_at_most(us):
    assert len(short_us(us)) <= 6


def test_latency_cells_never_touch():
    """A 192 ms max beside a 3.25 ms p99 read as one cell "3.25ms192.13ms" (seen in the tmux test)."""
    state = state_at_the_wall(seconds=3, errors=0)
    state.samples[-1]["latency_us"] = {"p50": 75, "p90": 170, "p99": 3_250, "p99_9": 99_950, "max": 192_130}
    for width in (80, 120):
        lines = screen(render(state, width, 24), width, 24)
        row = next(line for line in lines if line.startswith("last 1s"))
        cells = row[: width // 2].split()
        assert cells[2:] in (["75us", "170us", "3.25ms", "192ms"], ["75us", "170us", "3.25ms", "100ms", "192ms"])


def test_without_a_ports_reading_the_budget_is_shown_and_said_unmeasured():
    """A Dask run's samples carry no ports_in_use: each worker's host holds its own ports."""
    state = state_at_the_wall(seconds=3, errors=0)
    for sample in state.samples:
        del sample["ports_in_use"]
    text = "\n".join(screen(render(state, 80, 24), 80, 24))
    assert "budget 28,232; in use not measured here" in text and "?/" not in text
