"""twload.ports.timewait: a run's own TIME_WAIT sockets told from the ones it found, by their time left.

Readings as sock_diag gives them: each TIME_WAIT socket's time left in ms (60,000 when it has just
entered TIME_WAIT, 0 once its timer is due but has not fired). Times are time.monotonic() seconds.
"""

from __future__ import annotations

from twload.ports import timewait
from twload.ports.timewait import JIFFY_MS, TIME_WAIT_MS, TIMER_SLACK_MS, Split

START = 1000.0  # the start reading: begun 5 ms before it was complete


def start_with(*left_ms: int):
    return timewait.found(START - 0.005, START, len(left_ms), len(left_ms), left_ms)


def left_at(entered_s: float, read_s: float) -> int:
    """What the kernel reports at read_s for a socket that entered TIME_WAIT at entered_s."""
    return max(0, round(TIME_WAIT_MS - (read_s - entered_s) * 1000))


def test_sockets_that_entered_time_wait_after_the_start_are_the_runs_own():
    found = [START - 30.0, START - 1.0]  # an earlier run's, 30 s and 1 s before the start
    own = [START + 0.4, START + 1.5]  # the run's connections, closed after its workers started
    start = start_with(*(left_at(e, START) for e in found))
    read = START + 2.0
    assert timewait.split(start, read, [left_at(e, read) for e in found + own]) == Split(own=2, found=2, reused=0)


def test_a_server_close_run_after_a_fin_run_has_no_own_time_wait():
    """The issue's case: every socket there was found at the start; those gone were taken over."""
    earlier = [START - 2.0 + i * 0.001 for i in range(1000)]  # a fin run's, 2 s before the start
    start = start_with(*(left_at(e, START) for e in earlier))
    read = START + 1.0
    left = [left_at(e, read) for e in earlier[600:]]  # the run's connects took over 600 of them
    assert timewait.split(start, read, left) == Split(own=0, found=400, reused=600)


def test_a_socket_that_entered_time_wait_just_before_the_start_reading_is_found_not_own():
    start = start_with(left_at(START - 0.001, START))
    read = START + 3.0
    # read as the kernel may: one jiffy later than the truth
    assert timewait.split(start, read, [left_at(START - 0.001, read) + JIFFY_MS]).own == 0


def test_a_found_socket_that_timed_out_is_not_counted_as_reused():
    start = start_with(left_at(START - 59.0, START), left_at(START - 10.0, START))  # due 1 s and 50 s in
    read = START + 2.0
    lingering = timewait.split(start, read, [0, left_at(START - 10.0, read)])  # due, its timer not fired yet
    assert lingering == Split(own=0, found=2, reused=0)
    gone = timewait.split(start, read, [left_at(START - 10.0, read)])  # its timer fired
    assert gone == Split(own=0, found=1, reused=0)


def test_a_due_socket_is_the_runs_own_only_once_no_found_one_can_still_be_waiting():
    """A due timer fires up to TIMER_SLACK_MS late; its socket reads 0 meanwhile, so its age is 60-65 s."""
    start = start_with(left_at(START - 0.5, START))
    soon = START + (TIME_WAIT_MS + 1000) / 1000  # 61 s in: it may be the found one, lingering
    assert timewait.split(start, soon, [0]) == Split(own=0, found=1, reused=0)
    later = START + (TIME_WAIT_MS + TIMER_SLACK_MS + 1000) / 1000  # every found one is gone by now
    assert timewait.split(start, later, [0]) == Split(own=1, found=0, reused=0)


def test_nothing_found_nothing_reused():
    start = start_with()
    read = START + 1.0
    assert timewait.split(start, read, [left_at(START + 0.5, read)] * 3) == Split(own=3, found=0, reused=0)
