"""The engines and I/O backends the integration tests run over. io_uring is skipped, with the reason
said, where the kernel, a sysctl or seccomp keeps it out."""

import pytest

from twload.engine import core

NEEDS_URING = pytest.mark.skipif(not core.uring_available(),
                                 reason="io_uring not usable here (kernel, sysctl or seccomp)")
BACKENDS = ["epoll", pytest.param("uring", marks=NEEDS_URING)]
ENGINES = [("core", "epoll"), pytest.param(("core", "uring"), marks=NEEDS_URING), ("asyncio", "auto")]
ENGINE_IDS = ["core-epoll", "core-uring", "asyncio"]
# the same, for a test that runs every usable one in turn (no skipped entries)
USABLE_ENGINES = [("core", "epoll")] + ([("core", "uring")] if core.uring_available() else []) + [("asyncio", "auto")]
