"""The C response parser against llhttp (httptools), a reference parser (and once the retired asyncio
engine's).

Both must frame responses the same way, so responses drawn by hypothesis (any version,
status, framing, header case, extra headers, chunk extensions, trailers, 1xx interim heads,
a final 101, answers to HEAD, pipelined after each other) must give the same statuses,
keep-alive verdicts and response boundaries in both, and a broken response must be an error in
both. llhttp is fed one byte at a time, so the byte where it completes a response is exact, and
it is read as the contract has it (docs/ARCHITECTURE.md "Server surprises"): a 1xx interim head
is no answer; after a 101 nothing more is read (the connection is closed: unexpected_upgrade); a
response to HEAD ends with its head (a new llhttp parser starts there). The C parser is built as a
shared library with the system cc and driven through ctypes; only its two public fields are read.

Where docs/ARCHITECTURE.md "Server surprises" decides what llhttp does not do, the cases are
listed apart (CONTRACT_CASES), each with the verdict the contract wants and llhttp's.
"""

import ctypes
import shutil
import subprocess
from pathlib import Path

import httptools
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

CORE = Path(__file__).resolve().parents[4] / "src" / "twload" / "engine" / "core"
T1_MORE, T1_DONE, T1_ERR_PROTOCOL, T1_ERR_EOF = 0, 1, -1, -3
MAX_HEAD = 65536

Responses = list[tuple[int, int, int]]  # (status, keep_alive, end offset) of each final response


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


def c_responses(t1, data: bytes, head: bool = False) -> tuple[Responses, str]:
    """The C parser's responses, and how the stream ends for it: "error", "upgrade" (a 101:
    nothing after it is read), "eof_completes" (a body that EOF ends) or "more" (EOF would be an
    error: mid-response, or between responses)."""
    p = Parser()
    used = ctypes.c_size_t()
    out: Responses = []
    at = 0
    t1.t1_init(ctypes.byref(p), int(head), MAX_HEAD)
    while at < len(data):
        rc = t1.t1_feed(ctypes.byref(p), data[at:], len(data) - at, ctypes.byref(used))
        at += used.value
        if rc < 0:
            return out, "error"
        if rc == T1_MORE:
            break
        out.append((p.status, p.keep_alive, at))
        if p.status == 101:
            return out, "upgrade"
        t1.t1_init(ctypes.byref(p), int(head), MAX_HEAD)
    return out, "eof_completes" if t1.t1_eof(ctypes.byref(p)) == T1_DONE else "more"


def llhttp_responses(data: bytes, head: bool = False) -> tuple[Responses, str]:
    """llhttp's responses, fed one byte at a time, read as the engines read them (see the top);
    how the stream ends: "error", "upgrade" or "more" (llhttp itself never ends a body at EOF)."""
    out: Responses = []
    current: dict = {}
    pos = 0

    class Callbacks:
        def on_headers_complete(self) -> None:
            parser = current["parser"]
            status = parser.get_status_code()
            if self is not current["callbacks"] or not head or (100 <= status < 200 and status != 101):
                return
            # HeadConnection: the head is the whole response; the next one needs a fresh parser
            out.append((status, 0 if status == 101 else int(parser.should_keep_alive()), pos))
            fresh()

        def on_message_complete(self) -> None:
            parser = current["parser"]
            status = parser.get_status_code()
            if self is not current["callbacks"] or (100 <= status < 200 and status != 101):
                return  # an old parser's (HEAD), or a 1xx interim head: no answer
            out.append((status, 0 if status == 101 else int(parser.should_keep_alive()), pos))

    def fresh() -> None:
        current["callbacks"] = Callbacks()
        current["parser"] = httptools.HttpResponseParser(current["callbacks"])

    fresh()
    for i in range(len(data)):
        pos = i + 1
        try:
            current["parser"].feed_data(data[i:pos])
        except httptools.HttpParserUpgrade:
            return out, "upgrade"
        except httptools.HttpParserError:
            # llhttp pauses after a 101 and then refuses every byte: the 101 is the last answer
            return out, "upgrade" if out and out[-1][0] == 101 else "error"
        if out and out[-1][0] == 101:
            return out, "upgrade"
    return out, "more"


token = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=1, max_size=12)
value = st.text("abcdefghijklmnopqrstuvwxyz0123456789 ;=,./", max_size=20).map(str.strip)
body_bytes = st.binary(max_size=40)


def case_variants(name: str):
    return st.sampled_from([name, name.lower(), name.upper()])


@st.composite
def interim(draw) -> bytes:
    """0-2 informational heads, each skipped by both (RFC 9110 section 15.2)."""
    heads = b""
    for status, reason in draw(st.lists(st.sampled_from([(100, "Continue"), (102, "Processing"),
                                                         (103, "Early Hints")]), max_size=2)):
        lines = [f"HTTP/1.1 {status} {reason}"]
        if status == 103:
            lines.append("Link: </style.css>; rel=preload; as=style")
        heads += ("\r\n".join(lines) + "\r\n\r\n").encode()
    return heads


@st.composite
def response(draw, last: bool, head: bool = False):
    """(bytes, whether EOF completes it) of one response, 1xx heads before it."""
    version = draw(st.sampled_from(["1.1", "1.0"]))
    status = draw(st.sampled_from([200, 201, 204, 301, 304, 404, 500, 503] + ([101] if last else [])))
    # HTTP/1.0 with chunked, and HEAD without a length: see CONTRACT_CASES and test_head_without_a_length
    framings = ["length"] + (["chunked"] if version == "1.1" else []) + (["close"] if last and not head else [])
    framing = draw(st.sampled_from(framings))
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
    if status == 101:
        lines.append("Upgrade: websocket")
    body = b""
    no_body = status in (101, 204, 304) or head
    if framing == "length":
        content = draw(body_bytes)
        if status in (101, 204, 304):
            content = b""
        lines.append(f"{draw(case_variants('Content-Length'))}: {len(content)}")
        body = b"" if no_body else content
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
    if status == 101:  # what follows speaks another protocol: never read
        body = draw(st.sampled_from([b"", b"\x81\x05hello", b"HTTP/1.1 200 OK\r\n\r\n"]))
    data = draw(interim()) + ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    return data, framing == "close" and not no_body


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_same_framing_as_llhttp(t1, data):
    head = data.draw(st.booleans(), label="head")
    first = data.draw(st.lists(response(last=False, head=head), max_size=3), label="first")
    last = data.draw(response(last=True, head=head), label="last")
    stream = b"".join(r for r, _ in first) + last[0]
    ours, how = c_responses(t1, stream, head)
    theirs, their_how = llhttp_responses(stream, head)
    assert ours == theirs
    assert len(ours) == len(first) + (0 if last[1] else 1)
    if last[1]:  # a close-delimited body: llhttp waits on, the engine completes it at EOF
        assert (how, their_how) == ("eof_completes", "more")
    elif ours[-1][0] == 101:
        assert (how, their_how) == ("upgrade", "upgrade")
    else:
        assert ours[-1][2] == len(stream)
        assert (how, their_how) == ("more", "more")


# Broken responses: (name, bytes of a response that both parsers must refuse).
BROKEN = [
    ("bare LF after the status line", b"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n"),
    ("bare LF ending the head", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\n"),
    ("obs-fold", b"HTTP/1.1 200 OK\r\nX-Fold: a\r\n b\r\nContent-Length: 0\r\n\r\n"),
    ("space before the colon", b"HTTP/1.1 200 OK\r\nX-Bad : a\r\nContent-Length: 0\r\n\r\n"),
    ("control byte in a name", b"HTTP/1.1 200 OK\r\nX\x01: a\r\nContent-Length: 0\r\n\r\n"),
    ("NUL in a value", b"HTTP/1.1 200 OK\r\nX-Nul: a\x00b\r\nContent-Length: 0\r\n\r\n"),
    ("status of two digits", b"HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n"),
    ("status with a letter", b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n"),
    ("not HTTP", b"SSH-2.0-OpenSSH_9.2\r\n"),
    ("Content-Length not a number", b"HTTP/1.1 200 OK\r\nContent-Length: 12a\r\n\r\n"),
    ("negative Content-Length", b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"),
    ("two different Content-Lengths", b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"),
    ("TE and CL on a 200", b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("CL and TE on a 200", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n0\r\n\r\n"),
    ("chunk size not hex", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
    ("chunk data longer than its size", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n0\r\n\r\n"),
    ("chunk size line ending in LF", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\nab\r\n"),
    ("bare LF in a 1xx head", b"HTTP/1.1 100 Continue\n\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
]


@settings(max_examples=150, deadline=None)
@given(first=st.lists(response(last=False), max_size=2), broken=st.sampled_from(BROKEN), before=interim())
def test_same_errors_as_llhttp(t1, first, broken, before):
    prefix = b"".join(r for r, _ in first)
    stream = prefix + (before if not broken[1].startswith(b"HTTP/1.1 100") else b"") + broken[1]
    ours, how = c_responses(t1, stream)
    theirs, their_how = llhttp_responses(stream)
    assert ours == theirs
    assert len(ours) == len(first)
    assert (how, their_how) == ("error", "error"), broken[0]


# The framing decisions of docs/ARCHITECTURE.md "Server surprises", where llhttp differs from them
# (the C parser follows them all):
# (name, head, stream, the verdict the contract wants, llhttp's verdict); END: the stream's length.
END = -1
CL5 = b"Content-Length: 5\r\n"
CONTRACT_CASES = [
    ("two identical Content-Length fields", False, b"HTTP/1.1 200 OK\r\n" + CL5 + CL5 + b"\r\nhello",
     ([], "error"), ([], "error")),
    ("a Content-Length list 5, 5", False, b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello",
     ([], "error"), ([], "error")),
    # RFC 9112 section 6.1: framed by chunked, then closed; llhttp keeps it alive when asked to
    ("HTTP/1.0 with Transfer-Encoding", False,
     b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
     ([(200, 0, END)], "more"), ([(200, 1, END)], "more")),
    # RFC 9112 section 6.3 rule 1 before rule 3; llhttp refuses the head
    ("204 with TE and CL", False,
     b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
     ([(204, 1, END)], "more"), ([], "error")),
    ("304 with TE and CL", False,
     b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
     ([(304, 1, END)], "more"), ([], "error")),
    ("HEAD with TE and CL", True,
     b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
     ([(200, 1, END)], "more"), ([], "error")),
]


def at_end(verdict: tuple[Responses, str], stream: bytes) -> tuple[Responses, str]:
    return [(s, k, len(stream) if end == END else end) for s, k, end in verdict[0]], verdict[1]


@pytest.mark.parametrize("name, head, stream, contract, llhttp", [
    pytest.param(*case, id=case[0]) for case in CONTRACT_CASES])
def test_c_parser_follows_the_contract(t1, name, head, stream, contract, llhttp):
    assert c_responses(t1, stream, head) == at_end(contract, stream)


@pytest.mark.parametrize("name, head, stream, contract, llhttp", [
    pytest.param(*case, id=case[0]) for case in CONTRACT_CASES])
def test_what_llhttp_says_to_the_contract_cases(name, head, stream, contract, llhttp):
    """Where llhttp differs from the contract, the contract is the C parser's (issue #28)."""
    assert llhttp_responses(stream, head) == at_end(llhttp, stream)


def test_interim_and_101_heads(t1):
    """Spelled out: 100 and 103 are skipped by both; a 101 is final, ends at its blank line, and
    nothing after it is read."""
    ok = (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
          b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    switching = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
    stream = ok + switching + b"\x81\x05hello"
    expected = ([(200, 1, len(ok)), (101, 0, len(ok) + len(switching))], "upgrade")
    assert c_responses(t1, stream) == expected
    assert llhttp_responses(stream) == expected


def test_head_without_a_length(t1):
    """A response to HEAD with neither Content-Length nor chunked ends at its blank line and keeps
    the connection (RFC 9112 section 6.3 rule 1); llhttp, not told of the HEAD, expects a body up
    to EOF, so its should_keep_alive() is false."""
    stream = b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\n"
    assert c_responses(t1, stream, head=True) == ([(200, 1, len(stream))], "more")
    assert llhttp_responses(stream, head=True) == ([(200, 0, len(stream))], "more")
