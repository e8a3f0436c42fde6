"""`twload serve`: a small, fast HTTP/1.1 target with selectable close behaviour.

uvloop + httptools, one process per worker, all listening on one port with
SO_REUSEPORT so the kernel spreads connections. Every served request is counted
in shared memory (one slot per worker, no lock: each slot has one writer), so
GET /__twload/stats and the exit line report the exact total across workers.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import resource
import signal
import socket
import ssl
import sys
import time
from dataclasses import dataclass

import httptools

from twload.engine.limits import raise_file_limit
from twload.serve.limits import MAX_HEAD, MAX_URL

STATS_PATH = b"/__twload/stats"
# The kernel caps a listen backlog at net.core.somaxconn (net/socket.c: __sys_listen), so ask for the
# most: a storm of 100,000 connects overflows a short accept queue, and each dropped SYN costs the
# client a 1 s retransmit (net/ipv4/tcp_timer.c: TCP_TIMEOUT_INIT).
BACKLOG = 65535
FILES_BESIDES_SOCKETS = 64  # the worker's listening socket, event loop, pipes, stdio, the interpreter's own
# Bytes fed to the parser at once: a head's bytes are counted per piece, so a pipelined head that begins
# inside a piece is counted from the next one: it may pass the cap by at most this much before its 431
# (nginx's count is per buffer too). A head that starts a read is counted exactly.
FEED_PIECE = 8 * 1024
LINGER_S = 5.0  # after a refusal: read and drop what the client still sends, then close (nginx's lingering_timeout)


def capacity_note(workers: int, file_limit: int) -> str:
    """How many connections the workers can hold: beyond that accept() fails with EMFILE and connections
    wait in the kernel's accept queue unanswered, established as far as the client can tell."""
    if file_limit == resource.RLIM_INFINITY:
        return ""
    most = workers * max(0, file_limit - FILES_BESIDES_SOCKETS)
    return f"; at most ~{most:,} connections ({file_limit:,} open files per worker: more need more --workers)"


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    body_size: int = 12
    delay_s: float = 0.0
    close_after: int = 0  # 0: never; N: the server closes after N requests on a connection
    stall_s: float = 0.0  # once, after stall_after requests, the whole worker stops for this long
    stall_after: int = 0
    tls_cert: str | None = None
    tls_key: str | None = None
    max_url: int = MAX_URL
    max_head: int = MAX_HEAD
    http2: bool = False  # HTTP/2 (serve/http2.py): h2c with prior knowledge, or h2 by ALPN with TLS

    def tls_context(self):
        if not self.tls_cert:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.tls_cert, self.tls_key)
        context.set_alpn_protocols(["h2"] if self.http2 else ["http/1.1"])
        return context


def _response(body: bytes, close: bool, content_type: bytes = b"text/plain") -> bytes:
    head = (
        b"HTTP/1.1 200 OK\r\nServer: twload\r\nContent-Type: " + content_type
        + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n"
    )
    if close:
        head += b"Connection: close\r\n"
    return head + b"\r\n" + body


BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
URI_TOO_LONG = b"HTTP/1.1 414 URI Too Long\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
HEAD_TOO_LARGE = b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class Refused(Exception):
    """Raised in a parser callback to stop parsing: the response that says why is on the connection."""


class App:
    """What every connection of one worker shares: canned responses and the counter."""

    def __init__(self, options: ServeOptions, counts, index: int) -> None:
        body = (b"twload says hello\n" * (options.body_size // 18 + 1))[: options.body_size]
        self.body = body
        self.keep = _response(body, close=False)
        self.close = _response(body, close=True)
        self.options = options
        self.counts = counts
        self.index = index
        self.stalled = False

    def maybe_stall(self) -> None:
        """A one-time pause of the whole event loop, like a GC pause: for coordinated-omission tests."""
        options = self.options
        if options.stall_s and not self.stalled and self.counts[self.index] >= options.stall_after:
            self.stalled = True
            time.sleep(options.stall_s)

    def stats_body(self) -> bytes:
        per_worker = list(self.counts)
        return json.dumps({"requests": sum(per_worker), "per_worker": per_worker}).encode()


class ServerConnection(asyncio.Protocol):
    __slots__ = ("app", "transport", "parser", "url", "served", "closing", "loop", "in_body", "head_bytes",
                 "boundaries", "refusal", "max_url", "max_head")

    def __init__(self, app: App, loop) -> None:
        self.app = app
        self.loop = loop
        self.transport = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.served = 0
        self.closing = False
        self.in_body = False  # between a head's end and its message's end
        self.head_bytes = 0  # of the head being read (or of the bytes before one begins)
        self.boundaries = 0  # heads and messages ended: tells whether a piece was all head
        self.refusal = b""  # the response a callback chose before raising Refused
        self.max_url, self.max_head = app.options.max_url, app.options.max_head

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        try:
            if len(data) <= FEED_PIECE and (self.in_body or len(data) <= self.max_head - self.head_bytes):
                self._feed(data)  # one piece: the usual case, no slicing
                return
            view = memoryview(data)
            while view and not self.closing:
                piece = view[:FEED_PIECE if self.in_body else min(FEED_PIECE, self.max_head - self.head_bytes)]
                view = view[len(piece):]
                self._feed(piece)
        except httptools.HttpParserUpgrade:
            pass  # what follows is not HTTP/1.1: the rest of this read is left unread, as before

    def _feed(self, piece) -> None:
        in_head = not self.in_body
        boundaries = self.boundaries
        try:
            self.parser.feed_data(piece)
        except httptools.HttpParserError:
            if self.refusal:
                self.refuse(self.refusal)
            else:
                self.closing = True
                self.transport.write(BAD_REQUEST)
                self.transport.close()
            return
        if in_head and self.boundaries == boundaries:  # no head or message ended inside: all of it was head
            self.head_bytes += len(piece)
            if self.head_bytes >= self.max_head:
                self.refuse(HEAD_TOO_LARGE)

    def connection_lost(self, exc) -> None:
        self.closing = True

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self.max_url:
            self.refusal = URI_TOO_LONG
            raise Refused  # parsing stops here: the URL is not kept growing

    def on_headers_complete(self) -> None:
        self.in_body = True
        self.head_bytes = 0
        self.boundaries += 1

    def refuse(self, response: bytes) -> None:
        """Answer with an error and close (after the responses already due, if --delay holds them back)."""
        self.closing = True
        if self.app.options.delay_s:
            self.loop.call_later(self.app.options.delay_s, self._refuse, response)
        else:
            self._refuse(response)

    def _refuse(self, response: bytes) -> None:
        transport = self.transport
        if transport.is_closing():
            return
        transport.write(response)
        if not transport.can_write_eof():  # TLS: no half-close
            transport.close()
            return
        # A lingering close, as nginx does: closing with the client's bytes unread would send a reset
        # that can overtake the response. Send FIN, drop what still comes, close on the client's FIN
        # (eof_received) or after LINGER_S at the latest.
        transport.write_eof()
        self.loop.call_later(LINGER_S, transport.abort)

    def on_message_complete(self) -> None:
        self.in_body = False
        self.boundaries += 1
        if self.closing:
            return  # pipelined after a request we answered with close: not served
        app = self.app
        options = app.options
        url, self.url = self.url, b""
        keep = self.parser.should_keep_alive()
        if url == STATS_PATH:
            response = _response(app.stats_body(), not keep, b"application/json")
        else:
            self.served += 1
            app.counts[app.index] += 1
            app.maybe_stall()
            if options.close_after and self.served >= options.close_after:
                keep = False
            response = app.keep if keep else app.close
        if not keep:
            self.closing = True  # ignore anything pipelined after a close
        if options.delay_s:
            self.loop.call_later(options.delay_s, self._reply, response, keep)
        else:
            self._reply(response, keep)

    def _reply(self, response: bytes, keep: bool) -> None:
        transport = self.transport
        if transport.is_closing():
            return
        transport.write(response)
        if not keep:
            transport.close()  # the server closes first: TIME_WAIT stays on the server


def _listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


class Acceptor:
    """Accepts every pending connection each time the listening socket is readable.

    uvloop's server accepts one connection per turn of its loop (measured: one accept4 between two
    epoll_waits of 1,024 events each), so a worker busy with 15,000 keep-alive connections accepts
    a few hundred a second, its accept queue fills, and the kernel drops new SYNs
    (net/ipv4/tcp_input.c: tcp_conn_request, sk_acceptq_is_full -> LINUX_MIB_LISTENOVERFLOWS): the
    clients' connects time out. Here one wake-up drains the queue (up to a batch, so that requests
    already waiting are not starved in turn)."""

    BATCH = 512
    FULL_PAUSE_S = 0.1  # out of file descriptors: leave the rest in the accept queue for a while

    def __init__(self, loop, listener: socket.socket, factory) -> None:
        self.loop, self.listener, self.factory = loop, listener, factory
        self.tasks: set[asyncio.Task] = set()
        self.closed = False
        listener.setblocking(False)
        loop.add_reader(listener.fileno(), self.accept_pending)

    def accept_pending(self) -> None:
        for _ in range(self.BATCH):
            try:
                conn, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue  # reset while in the queue: nothing to serve
            except OSError:  # EMFILE/ENFILE: retrying at once would spin; the queue keeps them
                self.loop.remove_reader(self.listener.fileno())
                self.loop.call_later(self.FULL_PAUSE_S, self._resume)
                return
            task = self.loop.create_task(self.loop.connect_accepted_socket(self.factory, conn))
            self.tasks.add(task)  # held until connection_made ran, so the task is not collected
            task.add_done_callback(self._set_up)

    def _set_up(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        if not task.cancelled():
            task.exception()  # a peer gone before its transport was made: nothing to serve, nothing to log

    def _resume(self) -> None:
        if not self.closed:
            self.loop.add_reader(self.listener.fileno(), self.accept_pending)

    def close(self) -> None:
        self.closed = True
        self.loop.remove_reader(self.listener.fileno())
        self.listener.close()


async def _serve_forever(options: ServeOptions, counts, index: int, port: int, ready, stop) -> None:
    loop = asyncio.get_running_loop()
    app = App(options, counts, index)
    sock = _listening_socket(options.host, port)
    sock.listen(BACKLOG)
    tls = options.tls_context()
    if options.http2:
        from twload.serve.http2 import H2ServerConnection

        def factory():
            return H2ServerConnection(app, loop, STATS_PATH, LINGER_S)
    else:
        def factory():
            return ServerConnection(app, loop)
    if tls is None:
        server = Acceptor(loop, sock, factory)
    else:  # a TLS handshake costs more than any accept: uvloop's own server is fine there
        server = await loop.create_server(factory, sock=sock, backlog=BACKLOG, ssl=tls)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    ready()
    await stop.wait()
    server.close()


def _worker(options: ServeOptions, counts, index: int, port: int, ready_event) -> None:
    import uvloop

    async def main() -> None:
        await _serve_forever(options, counts, index, port, ready_event.set, asyncio.Event())

    uvloop.run(main())


def serve(options: ServeOptions, announce=print) -> int:
    """Run until SIGINT/SIGTERM; return the number of requests served."""
    import uvloop

    # Reserve the port (and learn it, for --port 0) with a bound, never-listening
    # socket: it shares the SO_REUSEPORT group but receives no connections.
    reserve = _listening_socket(options.host, options.port)
    port = reserve.getsockname()[1]
    note = capacity_note(options.workers, raise_file_limit())
    ctx = mp.get_context("fork")
    counts = ctx.RawArray("q", options.workers)
    options.tls_context()  # a bad certificate or key fails here, before any worker starts
    host = f"[{options.host}]" if ":" in options.host else options.host  # an IPv6 literal (RFC 3986)
    url = f"{'https' if options.tls_cert else 'http'}://{host}:{port}/"
    if options.workers == 1:
        async def main() -> None:
            stop = asyncio.Event()
            await _serve_forever(
                options, counts, 0, port,
                lambda: announce(f"twload serve listening on {url} (1 worker{note})"), stop,
            )
        uvloop.run(main())
    else:
        procs, events = [], []
        for index in range(options.workers):
            ready = ctx.Event()
            proc = ctx.Process(target=_worker, args=(options, counts, index, port, ready), daemon=True)
            proc.start()
            procs.append(proc)
            events.append(ready)
        for ready in events:
            ready.wait(timeout=30)
        announce(f"twload serve listening on {url} ({options.workers} workers{note})")
        stopped = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda s, f: stopped.append(s))
        while not stopped and all(p.is_alive() for p in procs):
            time.sleep(0.2)
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        for proc in procs:
            proc.join(timeout=5)
    reserve.close()
    total = sum(counts)
    announce(f"twload serve: served {total} requests")
    sys.stdout.flush()
    return total
