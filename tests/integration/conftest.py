"""Differential testing: the integration tests that load a target run on both engines."""

import pytest

ENGINES = ("core", "asyncio")


@pytest.fixture(params=ENGINES)
def engine(request) -> str:
    """The compiled core (C, epoll or io_uring) and the asyncio (uvloop) engine must agree."""
    return request.param
