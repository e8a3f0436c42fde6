"""Builds the compiled engine core (twload.engine.core._core); everything else is in pyproject.toml.

The io_uring backend is compiled in (TWLOAD_HAVE_URING) only when liburing's header is found
(Debian: liburing-dev); without it the epoll backend still builds. https needs OpenSSL (Debian:
libssl-dev), linked always; so is libnghttp2 for --http2 (Debian: libnghttp2-dev). TWLOAD_SANITIZE=1 builds
with ASan + UBSan for the sanitizer test run; CFLAGS/LDFLAGS from the environment are added by
setuptools as usual.
"""

import os
from pathlib import Path

from setuptools import Extension, setup

CORE = Path("src/twload/engine/core")
INCLUDE_DIRS = ("/usr/include", "/usr/local/include")


def have_header(name: str) -> bool:
    return any((Path(d) / name).exists() for d in INCLUDE_DIRS)


sources = ["_core.c", "core.c", "loop_epoll.c", "tls.c", "h2.c", "http1_parse.c"]
macros: list[tuple[str, str | None]] = []
libraries: list[str] = ["ssl", "crypto"]  # https (tls.c): OpenSSL, Debian libssl-dev
libraries.append("nghttp2")  # --http2 (h2.c): libnghttp2, Debian libnghttp2-dev
if have_header("liburing.h") and os.environ.get("TWLOAD_NO_URING") != "1":
    sources.append("loop_uring.c")
    macros.append(("TWLOAD_HAVE_URING", None))
    libraries.append("uring")

compile_args = ["-O2", "-Wall", "-Wextra", "-Werror", "-std=gnu11"]
link_args: list[str] = []
if os.environ.get("TWLOAD_SANITIZE") == "1":
    sanitize = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"]
    compile_args += [*sanitize, "-O1", "-g"]
    link_args += sanitize

setup(
    ext_modules=[
        Extension(
            "twload.engine.core._core",
            sources=[str(CORE / s) for s in sources],
            depends=[str(p) for p in CORE.glob("*.h")],
            define_macros=macros,
            libraries=libraries,
            extra_compile_args=compile_args,
            extra_link_args=link_args,
        )
    ]
)
