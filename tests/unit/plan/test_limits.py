"""The file-limit arithmetic (twload.plan.limits, pure): files a worker needs against the hard limit."""

from twload.kernel.resolve import parse_target
from twload.plan import Plan, Stage
from twload.plan.limits import FILES_BESIDES_SOCKETS, file_limit_problem, files_per_worker


def plan(url="http://127.0.0.1:8080/", **kw):
    return Plan(target=parse_target(url), url=url, **kw)


def test_files_per_worker_follows_the_largest_share():
    assert files_per_worker(plan(connections=101, workers=2)) == 51 + FILES_BESIDES_SOCKETS
    staged = plan(stages=(Stage(1.0, 10.0), Stage(1.0, 3000.0)), duration_s=2.0, workers=4)
    assert files_per_worker(staged) == 750 + FILES_BESIDES_SOCKETS


def test_file_limit_problem_says_how_many_workers():
    assert file_limit_problem(plan(connections=19_000, workers=1), hard_limit=20_000) is None
    line = file_limit_problem(plan(connections=50_000, workers=1), hard_limit=20_000)
    assert line is not None and "at most 20,000" in line and "--workers 3" in line
    assert "\n" not in line
    # the advice is enough: with that many workers the check passes
    assert file_limit_problem(plan(connections=50_000, workers=3), hard_limit=20_000) is None


def test_no_hard_limit_no_problem():
    assert file_limit_problem(plan(connections=50_000, workers=1), hard_limit=None) is None
