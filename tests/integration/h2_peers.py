"""Hand-made HTTP/2 servers on loopback (h2c, prior knowledge) for the core's --http2, built on the
python-hyper `h2` package's server state machine: each counts the requests (HEADERS) it read, the
streams it answered and reset, so a test can hold the client's counts against them. One behaviour
each (issue #31): GOAWAY mid-run, RST_STREAM on every third stream, SETTINGS with one concurrent
stream, garbage after the client's preface."""

from __future__ import annotations

import socket

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from tests.integration.peers import ThreadedPeer


class H2Peer(ThreadedPeer):
    """Serves each connection in a thread: every request is answered 200 "ok" unless `on_request`
    says otherwise. Counts (under `lock`): requests read, answered, reset; the protocol errors the
    client caused (`violations`: a stream beyond our SETTINGS_MAX_CONCURRENT_STREAMS, say)."""

    max_streams: int | None = None  # our SETTINGS_MAX_CONCURRENT_STREAMS (None: h2's default, 100)
    # our SETTINGS_INITIAL_WINDOW_SIZE (None: the default, 65,535), sent in a second SETTINGS frame: a
    # change takes effect when the client acknowledges it (RFC 9113 section 6.5.3), so what the client
    # sent under the default window before that stays within the rules
    window: int | None = None

    def __init__(self) -> None:
        self.requests = self.answered = self.reset = self.violations = 0
        self.client_window = 0  # the client's SETTINGS_INITIAL_WINDOW_SIZE, as last seen
        self.body_bytes = 0  # request body bytes read
        super().__init__()

    def new_connection(self) -> h2.connection.H2Connection:
        h2c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
        if self.max_streams is not None:
            h2c.local_settings = h2.settings.Settings(
                client=False, initial_values={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.max_streams})
        h2c.initiate_connection()
        if self.window is not None:
            h2c.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: self.window})
        return h2c

    def serve(self, conn: socket.socket, index: int) -> None:
        with conn:
            h2c = self.new_connection()
            state: dict = {"n": 0, "pending": []}

            def idle() -> None:
                if state["pending"]:  # nothing more came for POLL_S: what waits is answered
                    self.answer(h2c, state, idle=True)
                    conn.sendall(h2c.data_to_send())

            try:
                conn.sendall(h2c.data_to_send())
                for data in self.reads(conn, idle):
                    if self.on_bytes(conn, h2c, state, data):
                        return
                    try:
                        events = h2c.receive_data(data)
                    except h2.exceptions.ProtocolError:
                        with self.lock:
                            self.violations += 1
                        conn.sendall(h2c.data_to_send())
                        return
                    for event in events:
                        if isinstance(event, h2.events.DataReceived):  # read: the window goes back (WINDOW_UPDATE)
                            h2c.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                            with self.lock:
                                self.body_bytes += len(event.data)
                        if isinstance(event, h2.events.RemoteSettingsChanged):
                            self.client_window = h2c.remote_settings.initial_window_size
                        if isinstance(event, h2.events.RequestReceived):
                            with self.lock:
                                self.requests += 1
                            state["n"] += 1
                            state["pending"].append(event.stream_id)
                        self.on_event(event, state)
                    if self.answer(h2c, state, idle=False):
                        conn.sendall(h2c.data_to_send())
                        return
                    conn.sendall(h2c.data_to_send())
            except OSError:
                return

    def on_event(self, event: h2.events.Event, state: dict) -> None:
        """Each event of a connection, after the counting above (`state` is the connection's)."""

    def on_bytes(self, conn: socket.socket, h2c, state: dict, data: bytes) -> bool:
        """Before the state machine sees `data`; True ends the connection."""
        return False

    def answer(self, h2c, state: dict, idle: bool) -> bool:
        """Answer the pending requests (idle: nothing came for POLL_S); True ends the connection (after
        what is queued is written)."""
        for stream_id in state["pending"]:
            self.respond(h2c, stream_id)
        state["pending"].clear()
        return False

    def respond(self, h2c, stream_id: int) -> None:
        h2c.send_headers(stream_id, [(b":status", b"200"), (b"content-length", b"2")])
        h2c.send_data(stream_id, b"ok", end_stream=True)
        with self.lock:
            self.answered += 1


class RstEveryThirdPeer(H2Peer):
    """Every third request it reads (in all) gets RST_STREAM CANCEL instead of an answer."""

    def __init__(self) -> None:
        self.seen = 0
        super().__init__()

    def respond(self, h2c, stream_id: int) -> None:
        with self.lock:  # the connections' threads count together
            self.seen += 1
            third = self.seen % 3 == 0
        if third:
            h2c.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
            with self.lock:
                self.reset += 1
        else:
            super().respond(h2c, stream_id)


class GoawayPeer(H2Peer):
    """Once a connection has AFTER + 2 requests waiting, answers the first AFTER and sends GOAWAY with
    the last of them as its last-stream-id (the others were not processed: the client may retry them),
    then closes. With `code`, the GOAWAY carries that error. Fewer waiting for POLL_S (the run's last
    requests) are all answered."""

    AFTER = 3

    def __init__(self, code: h2.errors.ErrorCodes = h2.errors.ErrorCodes.NO_ERROR) -> None:
        self.code = code
        self.goaways = 0
        super().__init__()

    def answer(self, h2c, state: dict, idle: bool) -> bool:
        pending = state["pending"]
        if len(pending) < self.AFTER + 2:  # wait for the client's streams to pile up (it runs 10 at once)
            if idle:  # the run's last requests: fewer will come
                return super().answer(h2c, state, idle)
            return False
        for stream_id in pending[:self.AFTER]:
            self.respond(h2c, stream_id)
        h2c.close_connection(error_code=self.code, last_stream_id=pending[self.AFTER - 1])
        with self.lock:
            self.goaways += 1
        pending.clear()
        return True


class GarbagePeer(H2Peer):
    """After the client's preface, bytes that are no HTTP/2 frame (a text line where its SETTINGS
    belong)."""

    def new_connection(self):
        return _Silent()

    def on_event(self, event: h2.events.Event, state: dict) -> None:
        """Each event of a connection, after the counting above (`state` is the connection's)."""

    def on_bytes(self, conn: socket.socket, h2c, state: dict, data: bytes) -> bool:
        conn.sendall(b"this is not a frame, it is garbage after the preface\r\n" * 4)
        return False


class _Silent:
    """No server preface: the garbage is all the client gets."""

    def data_to_send(self) -> bytes:
        return b""

    def receive_data(self, data: bytes) -> list:
        return []


class SilentPeer(H2Peer):
    """Reads every request and answers none (the client's --timeout must end each stream)."""

    def answer(self, h2c, state: dict, idle: bool) -> bool:
        state["pending"].clear()
        return False


class NoStatusPeer(H2Peer):
    """Every other response has no :status (RFC 9113 section 8.3.2 makes it malformed): nghttp2 resets
    that stream; the connection goes on."""

    def __init__(self) -> None:
        self.seen = 0
        self.malformed = 0
        super().__init__()

    def new_connection(self) -> h2.connection.H2Connection:
        h2c = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=False, header_encoding=None, validate_outbound_headers=False))
        h2c.initiate_connection()
        return h2c

    def respond(self, h2c, stream_id: int) -> None:
        with self.lock:
            self.seen += 1
            bad = self.seen % 2 == 0
            self.malformed += bad
        if not bad:
            super().respond(h2c, stream_id)
            return
        h2c.send_headers(stream_id, [(b"content-length", b"2")])
        h2c.send_data(stream_id, b"ok", end_stream=True)


class RecordingH2Peer(H2Peer):
    """Answers as H2Peer and records every request in the order its HEADERS came (streams of one
    connection in their order): (connection, its fields as (name, value) in order, pseudo-fields
    first, and its body). The body is whole once the peer has answered (it answers after END_STREAM)."""

    def __init__(self) -> None:
        self.recorded: list[tuple[int, list[tuple[str, str]], bytearray]] = []
        self.connection_index = 0
        super().__init__()

    def on_event(self, event: h2.events.Event, state: dict) -> None:
        if isinstance(event, h2.events.RequestReceived):
            fields = [(bytes(n).decode("latin-1"), bytes(v).decode("latin-1")) for n, v in event.headers]
            if "connection" not in state:  # the connection's number, at its first request
                with self.lock:
                    self.connection_index += 1
                    state["connection"] = self.connection_index
            entry = (state["connection"], fields, bytearray())
            state.setdefault("bodies", {})[event.stream_id] = entry[2]
            with self.lock:
                self.recorded.append(entry)
        elif isinstance(event, h2.events.DataReceived):
            state["bodies"][event.stream_id].extend(event.data)

    @property
    def requests_seen(self) -> list[tuple[int, list[tuple[str, str]], bytes]]:
        with self.lock:
            return [(c, fields, bytes(body)) for c, fields, body in self.recorded]
