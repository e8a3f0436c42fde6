"""The port wall in words (twload.ports.wall): the one sentence and the budget's phrases."""

from twload.ports import wall


def test_the_sentence_says_when_where_after_what_and_the_budget():
    phrase = wall.budget_phrase(500, 60.0, found_at_start=15)
    assert wall.sentence("10.250.1.2:80", 300, 485, phrase, at_s=0.06) == (
        "At the port wall from 0.06s, after 485 connections: no free local port towards 10.250.1.2:80 "
        "(EADDRNOTAVAIL x300); the budget: 500 ports, each unusable for 60 s after the client closes, 15 of them "
        "in TIME_WAIT left by earlier connections at the start.")


def test_without_a_first_time_or_client_time_wait_the_sentence_says_less():
    line = wall.sentence("[::1]:8080", 7, 20, wall.budget_phrase(20, None))
    assert line == ("At the port wall, after 20 connections: no free local port towards [::1]:8080 (EADDRNOTAVAIL x7); "
                    "the budget: 20 ports, held while connections are open.")
    assert wall.budget_phrase(20, 0.0) == wall.budget_phrase(20, None)  # no hold: open connections hold ports


def test_a_run_over_workers_names_the_workers_at_the_wall_and_the_pools():
    pools = wall.pools_phrase(3, [28232, 28232, 28232], 1411.7)
    assert pools == "3 workers x 28,232 ports: the wall is at 1,412 new connections/s"
    assert wall.pools_phrase(2, [100], 1.6).startswith("2 workers sharing 1 port pool x 100 ports")
    assert wall.pools_phrase(2, [100, 300], 6.6).startswith("2 workers, 400 ports in all:")
    line = wall.sentence("127.0.0.1:80", 9, 400, pools, at_s=1.5, walled=(2, 3))
    assert line.startswith("At the port wall from 1.50s on 2 of 3 workers, after 400 connections: ")
