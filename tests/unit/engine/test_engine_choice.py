"""Which engine and backend a plan asks for, and the file-limit arithmetic (pure)."""

import pytest

from twload.engine.limits import FILES_BESIDES_SOCKETS, file_limit_problem, files_per_worker
from twload.kernel.resolve import parse_target
from twload.plan import Plan, PlanError, Stage


def plan(url="http://127.0.0.1:8080/", **kw):
    return Plan(target=parse_target(url), url=url, **kw)


def test_auto_and_core_are_the_core_for_http_and_https():
    assert plan().engine_choice == "core"
    assert plan("https://127.0.0.1/").engine_choice == "core"
    assert plan(engine="core").engine_choice == "core"
    assert plan(engine="core", io="uring").io == "uring"


@pytest.mark.parametrize("kw, words", [
    ({"engine": "rust"}, "--engine must be one of"),
    ({"io": "kqueue"}, "--io must be one of"),
    # retired (issue #30): said in one line, not run on the core in its place
    ({"engine": "asyncio"}, "--engine asyncio was retired"),
    ({"engine": "asyncio", "io": "uring"}, "--engine asyncio was retired"),
])
def test_engine_mistakes(kw, words):
    with pytest.raises(PlanError, match=words):
        plan(**kw)


def test_core_takes_https_on_epoll_only():
    assert plan("https://127.0.0.1/", engine="core").engine_choice == "core"
    with pytest.raises(PlanError, match="https:// runs on the epoll backend"):
        plan("https://127.0.0.1/", engine="core", io="uring")


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
