"""The wait after failed connects (engine/backoff.py)."""

from twload.engine.backoff import CONNECT_BACKOFF_FIRST_S, CONNECT_BACKOFF_MAX_S, ConnectBackoff


def test_the_wait_doubles_up_to_the_cap_and_a_success_starts_afresh():
    b = ConnectBackoff()
    waits = [b.failed() for _ in range(12)]
    assert waits[0] == CONNECT_BACKOFF_FIRST_S
    assert waits[1] == 2 * CONNECT_BACKOFF_FIRST_S
    assert all(later >= earlier for earlier, later in zip(waits, waits[1:], strict=False))
    assert max(waits) == waits[-1] == CONNECT_BACKOFF_MAX_S
    b.succeeded()
    assert b.failed() == CONNECT_BACKOFF_FIRST_S


def test_a_second_of_failures_costs_tens_of_tries_not_thousands():
    b = ConnectBackoff()
    spent, tries = 0.0, 0
    while spent < 1.0:
        spent += b.failed()
        tries += 1
    assert tries <= 20


def test_a_slots_wait_follows_from_its_previous_one():
    from twload.engine.backoff import next_wait

    assert next_wait(0.0) == CONNECT_BACKOFF_FIRST_S  # the slot's first failure (or first since a success)
    assert next_wait(0.004) == 0.008
    assert next_wait(CONNECT_BACKOFF_MAX_S) == CONNECT_BACKOFF_MAX_S
