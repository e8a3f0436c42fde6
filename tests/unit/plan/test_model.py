"""Which engine and backend a plan asks for (pure)."""

import pytest

from twload.kernel.resolve import parse_target
from twload.plan import Plan, PlanError


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

