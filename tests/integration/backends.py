"""The I/O backends the integration tests run the compiled core over (the one engine since issue #30).
io_uring is skipped, with the reason said, where the kernel, a sysctl or seccomp keeps it out."""

import pytest

from twload.engine import core

NEEDS_URING = pytest.mark.skipif(not core.uring_available(),
                                 reason="io_uring not usable here (kernel, sysctl or seccomp)")
BACKENDS = ["epoll", pytest.param("uring", marks=NEEDS_URING)]
ENGINES = [("core", "epoll"), pytest.param(("core", "uring"), marks=NEEDS_URING)]
ENGINE_IDS = ["core-epoll", "core-uring"]
# the same, for a test that runs every usable one in turn (no skipped entries)
USABLE_ENGINES = [("core", "epoll")] + ([("core", "uring")] if core.uring_available() else [])
