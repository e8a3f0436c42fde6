import pytest
from hypothesis import given
from hypothesis import strategies as st

from twload.plan import PlanError, parse_duration
from twload.plan.schedule import Schedule, Stage, parse_stages, worker_part


def test_parse_stages():
    assert parse_stages("30s:100,1m:1000,30s:0", parse_duration) == (
        Stage(30, 100), Stage(60, 1000), Stage(30, 0))
    for bad in ("", "30s", "30s:x", "30s:-1", "xs:10"):
        with pytest.raises(PlanError):
            parse_stages(bad, parse_duration)


def test_linear_ramps():
    s = Schedule(parse_stages("10s:100,10s:100,10s:0", parse_duration))
    assert s.value(0) == 0 and s.value(5) == 50 and s.value(10) == 100 and s.value(15) == 100
    assert s.value(25) == 50 and s.value(30) == 0
    assert s.planned_requests() == pytest.approx(500 + 1000 + 500)


def test_constant_rate_sends_exactly():
    s = Schedule.constant(1000, 1.0)
    times = all_sends(s)
    assert len(times) == 1000
    assert times[0] == 0 and times[1] - times[0] == pytest.approx(0.001)
    assert Schedule.constant(100, None).send_time(1_000_000) == pytest.approx(10_000)


def all_sends(s):
    times, k = [], 0
    while (t := s.send_time(k)) is not None:
        times.append(t)
        k += 1
    return times


@given(target=st.floats(10, 2000), duration=st.floats(1, 5), share=st.sampled_from([1.0, 0.5]))
def test_ramp_sends_about_the_integral(target, duration, share):
    s = Schedule((Stage(duration, target), Stage(duration, target / 3)), share)
    times = all_sends(s)
    assert len(times) == pytest.approx(s.planned_requests(), abs=1.5)
    assert times == sorted(times) and times[-1] <= 2 * duration
    # the send density follows the ramp: the first half of stage one gets a quarter of its requests
    first_quarter = sum(1 for t in times if t < duration / 2)
    assert first_quarter == pytest.approx(target * share * duration / 8, abs=1.5)


@given(st.floats(min_value=0, max_value=1e6), st.integers(min_value=1, max_value=64))
def test_worker_parts_add_up_to_the_staged_total(total, workers):
    parts = [worker_part(total, workers, i) for i in range(workers)]
    assert sum(parts) == int(total + 0.5)
    assert max(parts) - min(parts) <= 1


def test_one_connection_over_two_workers_is_one_connection():
    assert [worker_part(1.0, 2, i) for i in range(2)] == [1, 0]
    assert [worker_part(10.0, 4, i) for i in range(4)] == [3, 3, 2, 2]  # not 2.5 rounded to 2 by each
