"""The engine the integration tests that load a target run: the compiled core, the one engine
since issue #30 (`--engine core`)."""

import pytest

ENGINES = ("core",)


@pytest.fixture(params=ENGINES)
def engine(request) -> str:
    return request.param
