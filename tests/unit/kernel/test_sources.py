"""The source addresses' check (twload.kernel.sources): the kernel is asked to bind each one."""

import pytest

from twload.kernel.resolve import parse_target
from twload.kernel.sources import check_sources_local
from twload.plan import PlanError


def test_non_local_source_is_refused():
    target = parse_target("http://127.0.0.1:9/")
    check_sources_local(("127.0.0.2",), target)  # all of 127/8 is local
    with pytest.raises(PlanError, match="not an address of this host"):
        check_sources_local(("192.0.2.55",), target)
    with pytest.raises(PlanError, match="address family"):
        check_sources_local(("::1",), target)
