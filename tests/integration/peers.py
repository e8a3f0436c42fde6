"""Hand-made TCP peers on loopback for the engines' edge cases: a listener, an accept thread, and
what each peer does with a connection (`accepted`); closed when the test ends."""

import socket
import threading
import time
from collections.abc import Callable, Iterator

from tests.conftest import free_port


class ListeningPeer:
    """Listens on 127.0.0.1 and hands each accepted connection to `accepted`, in its accept thread."""

    def __init__(self, backlog: int = 64) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", free_port()))  # quiet: see tests/conftest.py free_port
        self.listener.listen(backlog)
        self.listener.settimeout(0.1)  # the accept loop looks at `stopped` this often
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/"
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted(conn)

    def accepted(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(2)
        self.listener.close()


class ThreadedPeer(ListeningPeer):
    """Serves each accepted connection in a thread of its own (`serve`, given the connection's index
    in the order accepted), reading it through `reads`. Every blocking call on a connection waits at
    most `POLL_S`, then looks at `stopped`, so `close` ends every thread (bounded) however the
    client behaves."""

    POLL_S = 0.1

    def __init__(self, backlog: int = 64) -> None:
        self.lock = threading.Lock()
        self.connections = 0
        self.threads: list[threading.Thread] = []
        super().__init__(backlog)

    def accepted(self, conn: socket.socket) -> None:
        conn.settimeout(self.POLL_S)
        with self.lock:
            index = self.connections
            self.connections += 1
        thread = threading.Thread(target=self.serve, args=(conn, index), daemon=True)
        self.threads.append(thread)
        thread.start()

    def serve(self, conn: socket.socket, index: int) -> None:
        """Serve one connection, in its thread, and close it."""
        raise NotImplementedError

    def reads(self, conn: socket.socket, idle: Callable[[], None] | None = None) -> Iterator[bytes]:
        """What the client writes, as each recv returns it, until it closes the connection or resets
        it, or the peer stops. `idle` is called each time nothing came for POLL_S."""
        while not self.stopped.is_set():
            try:
                data = conn.recv(65536)
            except TimeoutError:
                if idle is not None:
                    idle()
                continue
            except OSError:
                # A reset, reported once what came before it was read: tcp_recvmsg_locked
                # walks sk_receive_queue before it looks at sk_err, and tcp_reset purges the
                # write queue only (net/ipv4/tcp.c, tcp_input.c, Linux 6.x; seen on 6.18).
                return
            if not data:
                return
            yield data

    def settle(self, timeout_s: float = 5.0) -> None:
        """Wait (bounded) for every connection to end: once the client has exited, each thread
        reads what is left of its requests, sees the close and returns, so the counts are final."""
        deadline = time.monotonic() + timeout_s
        for thread in list(self.threads):
            thread.join(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        super().close()
        for thread in self.threads:
            thread.join(2)


class CountingPeer(ThreadedPeer):
    """Reads request heads (GET, no body), counts each one, in all and per connection, before it
    answers it with `respond`. The count is what an honest client's answers are checked against:
    nothing can answer a request this peer never read."""

    def __init__(self, backlog: int = 64) -> None:
        self.requests = 0
        self.per_connection: list[int] = []
        super().__init__(backlog)

    def accepted(self, conn: socket.socket) -> None:
        with self.lock:  # before its thread counts there (accepted runs in the accept thread alone)
            self.per_connection.append(0)
        super().accepted(conn)

    def serve(self, conn: socket.socket, index: int) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # each write goes out as written
        unread = b""
        answering = True
        with conn:
            for data in self.reads(conn):
                unread += data
                start = 0
                while (end := unread.find(b"\r\n\r\n", start)) >= 0:  # a read may hold many heads
                    start = end + 4
                    with self.lock:
                        self.requests += 1
                        self.per_connection[index] += 1
                    if not answering:
                        continue
                    try:
                        if not self.respond(conn):
                            return
                    except OSError:
                        # The client went away while we wrote (EPIPE, ECONNRESET): keep reading, so
                        # the requests it wrote before its close are counted too.
                        answering = False
                unread = unread[start:]

    def respond(self, conn: socket.socket) -> bool:
        """Answer one request; False ends the connection now (closed on return). An OSError (the
        client's close) ends the answers, not the count."""
        raise NotImplementedError

    def send(self, conn: socket.socket, data: bytes) -> None:
        """sendall that gives up once the peer is stopped (a client that stopped reading cannot
        hold a thread) and never loses its place on a timeout (which sendall would)."""
        view = memoryview(data)
        while view:
            if self.stopped.is_set():
                raise OSError("peer stopped")
            try:
                view = view[conn.send(view):]
            except TimeoutError:
                continue


class RecordingPeer(ThreadedPeer):
    """Records every request it reads, whole (request line, header fields in order, body by its
    Content-Length), per connection and in the order read, and answers each 200 with an empty body;
    a request that asks `Connection: close` gets its answer and then the close. For checking that
    exactly the requests a client was told to send arrive. With `drop_every` N, every N-th request
    read (over all connections) is recorded but gets no answer: the connection closes instead. With
    `hold_first` N, the first request read is answered only once N more have been read (on other
    connections), or after HOLD_S."""

    HOLD_S = 60.0

    def __init__(self, backlog: int = 64, drop_every: int = 0, hold_first: int = 0) -> None:
        self.drop_every = drop_every
        self.hold_first = hold_first
        self.released = threading.Event()
        self.requests: list[tuple[int, str, list[tuple[str, str]], bytes]] = []  # (connection, line, fields, body)
        super().__init__(backlog)

    def serve(self, conn: socket.socket, index: int) -> None:
        unread = b""
        with conn:
            for data in self.reads(conn):
                unread += data
                while (end := unread.find(b"\r\n\r\n")) >= 0:  # a read may hold many requests
                    line, *fields = unread[:end].decode("latin-1").split("\r\n")
                    pairs = [(n, v.strip()) for n, _, v in (f.partition(":") for f in fields)]
                    length = sum(int(v) for n, v in pairs if n.lower() == "content-length")
                    if len(unread) < end + 4 + length:
                        break  # its body is still to come
                    body = unread[end + 4:end + 4 + length]
                    unread = unread[end + 4 + length:]
                    with self.lock:
                        self.requests.append((index, line, pairs, body))
                        drop = self.drop_every > 0 and len(self.requests) % self.drop_every == 0
                        held = self.hold_first > 0 and len(self.requests) == 1
                        if len(self.requests) > self.hold_first:
                            self.released.set()
                    if drop:
                        return
                    if held:
                        self.released.wait(self.HOLD_S)
                    close = any(n.lower() == "connection" and v.lower() == "close" for n, v in pairs)
                    try:
                        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
                                     + (b"Connection: close\r\n" if close else b"") + b"\r\n")
                    except OSError:
                        return
                    if close:
                        return
