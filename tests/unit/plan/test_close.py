"""The close strategies' meaning (twload.plan.close): every strategy a plan takes has its reason."""

from twload.plan import CLOSE_STRATEGIES
from twload.plan.close import WHY, asks_server_to_close


def test_every_strategy_says_who_keeps_time_wait():
    assert tuple(WHY) == CLOSE_STRATEGIES


def test_only_server_asks_the_server_to_close():
    assert [c for c in CLOSE_STRATEGIES if asks_server_to_close(c)] == ["server"]
