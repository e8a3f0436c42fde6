"""The C response parser against llhttp (httptools), the parser of the asyncio engine.

Both engines must frame responses the same way, so valid responses drawn by hypothesis
(any version, status, framing, header case, extra headers, chunk extensions, trailers,
pipelined after each other) must give the same statuses, keep-alive verdicts and
response boundaries in both. The C parser is built as a shared library with the system
cc and driven through ctypes; only its two public fields are read.
"""

import ctypes
import shutil
import subprocess
from pathlib import Path

import httptools
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

CORE = Path(__file__).resolve().parents[2] / "src" / "twload" / "engine" / "core"
T1_MORE, T1_DONE = 0, 1


@pytest.fixture(scope="module")
def t1(tmp_path_factory):
    if shutil.which("cc") is None:
        pytest.skip("no C compiler (cc) on PATH")
    lib = tmp_path_factory.mktemp("t1") / "libt1.so"
    subprocess.run(["cc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC",
                    str(CORE / "http1_parse.c"), "-o", str(lib)], check=True)
    t1 = ctypes.CDLL(str(lib))
    t1.t1_feed.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)]
    t1.t1_init.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    t1.t1_eof.argtypes = [ctypes.c_void_p]
    return t1


class Parser(ctypes.Structure):
    """The public head of t1_parser, padded beyond the size of the private rest."""

    _fields_ = [("status", ctypes.c_int), ("keep_alive", ctypes.c_uint8), ("private", ctypes.c_uint8 * 256)]


def c_responses(t1, data: bytes) -> tuple[list[tuple[int, int, int]], int]:
    """[(status, keep_alive, end offset)] of each complete response, and what EOF then says."""
    p = Parser()
    used = ctypes.c_size_t()
    out, at = [], 0
    t1.t1_init(ctypes.byref(p), 0, 65536)
    while at < len(data):
        rc = t1.t1_feed(ctypes.byref(p), data[at:], len(data) - at, ctypes.byref(used))
        assert rc in (T1_MORE, T1_DONE), (rc, data)
        at += used.value
        if rc == T1_MORE:
            break
        out.append((p.status, p.keep_alive, at))
        t1.t1_init(ctypes.byref(p), 0, 65536)
    return out, t1.t1_eof(ctypes.byref(p))


def llhttp_responses(data: bytes) -> list[tuple[int, int]]:
    done = []

    class Callbacks:
        def on_message_complete(self):
            done.append((parser.get_status_code(), int(parser.should_keep_alive())))

    parser = httptools.HttpResponseParser(Callbacks())
    parser.feed_data(data)
    return done


token = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=1, max_size=12)
value = st.text("abcdefghijklmnopqrstuvwxyz0123456789 ;=,./", max_size=20).map(str.strip)
body_bytes = st.binary(max_size=40)


def case_variants(name: str):
    return st.sampled_from([name, name.lower(), name.upper()])


@st.composite
def response(draw, last: bool):
    version = draw(st.sampled_from(["1.1", "1.0"]))
    status = draw(st.sampled_from([200, 201, 204, 301, 304, 404, 500, 503]))
    framing = draw(st.sampled_from(["length", "chunked"] + (["close"] if last else [])))
    lines = [f"HTTP/{version} {status} {draw(st.sampled_from(['OK', 'Whatever', '']))}".rstrip(" ")]
    extra = draw(st.lists(st.tuples(token, value), max_size=3))
    lines += [f"X-{n}: {v}" for n, v in extra]
    # only the last response may end the connection: nothing can follow it
    if last:
        connection = draw(st.sampled_from([None, "close", "keep-alive", "Keep-Alive", "upgrade, close", "te"]))
    elif version == "1.0":
        connection = draw(st.sampled_from(["keep-alive", "Keep-Alive", "te, keep-alive"]))
    else:
        connection = draw(st.sampled_from([None, "keep-alive", "te"]))
    if connection:
        lines.append(f"{draw(case_variants('Connection'))}: {connection}")
    body = b""
    no_body = status in (204, 304)
    if framing == "length":
        content = b"" if no_body else draw(body_bytes)
        lines.append(f"{draw(case_variants('Content-Length'))}: {len(content)}")
        body = content
    elif framing == "chunked":
        codings = draw(st.sampled_from(["chunked", "gzip, chunked"]))
        lines.append(f"{draw(case_variants('Transfer-Encoding'))}: {codings}")
        if not no_body:
            for chunk in draw(st.lists(st.binary(min_size=1, max_size=20), max_size=3)):
                ext = draw(st.sampled_from(["", ";a=b", ';q="x y"']))
                body += f"{len(chunk):x}{ext}\r\n".encode() + chunk + b"\r\n"
            trailers = draw(st.lists(st.tuples(token, value), max_size=2))
            body += b"0\r\n" + b"".join(f"T-{n}: {v}\r\n".encode() for n, v in trailers) + b"\r\n"
    else:
        body = b"" if no_body else draw(body_bytes)
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body, framing == "close" and not no_body


def closes_after_transfer_encoding(response: bytes, verdict: tuple[int, int]) -> tuple[int, int]:
    """llhttp keeps an HTTP/1.0 response with Transfer-Encoding alive when it says keep-alive; RFC 9112
    section 6.1 (and CONTRACT-28) close the connection after it, as the C parser does."""
    head = response.split(b"\r\n\r\n", 1)[0].lower()
    if head.startswith(b"http/1.0") and b"\r\ntransfer-encoding:" in head:
        return verdict[0], 0
    return verdict


@settings(max_examples=200, deadline=None)
@given(first=st.lists(response(last=False), max_size=3), last=response(last=True))
def test_same_framing_as_llhttp(t1, first, last):
    data = b"".join(r for r, _ in first) + last[0]
    ours, eof = c_responses(t1, data)
    theirs = [closes_after_transfer_encoding(r, verdict)
              for (r, _), verdict in zip([*first, last], llhttp_responses(data), strict=False)]
    # a close-delimited body: llhttp waits on, the engine completes it at EOF
    assert eof == (T1_DONE if last[1] else -3)
    assert [(status, keep) for status, keep, _ in ours] == theirs
    assert len(ours) == len(first) + (0 if last[1] else 1)
    if not last[1]:
        assert ours[-1][2] == len(data)
