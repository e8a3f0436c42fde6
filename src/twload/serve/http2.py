"""`twload serve --http2`: the embedded target speaking HTTP/2 (python-hyper's `h2` state machine):
h2c with prior knowledge on a plain listener, h2 by ALPN with --tls-cert. Slow next to nginx, but
correct; its point is a target for `twload run --http2` that needs nothing installed (the port
wall's third way out: one connection per worker, no TIME_WAIT growth).

Each served request is counted as the HTTP/1.1 server counts it (App.counts); --close-after N ends a
connection with GOAWAY after its N-th request (the streams past it are refused, not served: the client
may retry them), then closes it.
"""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import h2.exceptions


class H2ServerConnection:
    """One connection, as an asyncio protocol (its methods are asyncio.Protocol's). server.py gives it the
    App its HTTP/1.1 connections share, the stats path and the lingering close's bound."""

    def __init__(self, app, loop, stats_path: bytes, linger_s: float) -> None:
        self.app = app
        self.loop = loop
        self.stats_path, self.linger_s = stats_path, linger_s
        self.transport = None
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
        self.paths: dict[int, bytes] = {}  # stream -> :path, until its request has ended
        self.unsent: dict[int, memoryview] = {}  # stream -> body bytes the flow-control windows hold back
        self.served = 0
        self.goaway = 0  # --close-after: the last stream served; those past it are not (0: none yet)
        self.closing = False

    # -- asyncio.Protocol ------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        self.conn.initiate_connection()
        transport.write(self.conn.data_to_send())

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:  # h2 has queued its GOAWAY: send it, then close
            self._close()
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                self.paths[event.stream_id] = dict(event.headers).get(b":path", b"/")
            elif isinstance(event, h2.events.DataReceived):  # a request body: read, and the window given back
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                path = self.paths.pop(event.stream_id, None)
                if path is not None:
                    self._request(event.stream_id, path)
            elif isinstance(event, h2.events.StreamReset):
                self.paths.pop(event.stream_id, None)
                self.unsent.pop(event.stream_id, None)
            elif isinstance(event, h2.events.WindowUpdated):
                for stream_id in list(self.unsent):
                    self._send_body(stream_id)
            elif isinstance(event, h2.events.ConnectionTerminated):
                self._close()
                return
        self._write()

    def connection_lost(self, exc) -> None:
        self.closing = True

    def eof_received(self) -> bool:
        return False  # the client's FIN: close our side too

    # -- requests --------------------------------------------------------------
    def _request(self, stream_id: int, path: bytes) -> None:
        app = self.app
        if self.goaway:
            return  # past our GOAWAY's last-stream-id: not processed
        if path == self.stats_path:
            body, content_type = app.stats_body(), b"application/json"
        else:
            self.served += 1
            app.counts[app.index] += 1
            app.maybe_stall()
            body, content_type = app.body, b"text/plain"
        close_after = app.options.close_after
        if close_after and self.served >= close_after and not self.goaway:
            self.goaway = stream_id  # its GOAWAY follows its reply (after a GOAWAY, h2 sends nothing more)
        delay = app.options.delay_s
        if delay:
            self.loop.call_later(delay, self._reply, stream_id, body, content_type)
        else:
            self._reply(stream_id, body, content_type)

    def _reply(self, stream_id: int, body: bytes, content_type: bytes) -> None:
        if self.closing:
            return
        headers = [(b":status", b"200"), (b"server", b"twload"), (b"content-type", content_type),
                   (b"content-length", str(len(body)).encode())]
        try:
            self.conn.send_headers(stream_id, headers, end_stream=not body)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            return  # reset by the client meanwhile
        if body:
            self.unsent[stream_id] = memoryview(body)
            self._send_body(stream_id)
        if stream_id == self.goaway:  # --close-after: every stream up to it is answered (replies keep their order)
            self.conn.close_connection(last_stream_id=stream_id)
            self._write()
            self._linger()
            return
        self._write()

    def _send_body(self, stream_id: int) -> None:
        """As much of the body as the windows and the frame size allow; the rest at a WINDOW_UPDATE."""
        rest = self.unsent[stream_id]
        try:
            while rest:
                room = min(self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size)
                if room <= 0:
                    break
                piece, rest = rest[:room], rest[room:]
                self.conn.send_data(stream_id, piece.tobytes(), end_stream=not rest)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            rest = memoryview(b"")
        if rest:
            self.unsent[stream_id] = rest
        else:
            del self.unsent[stream_id]

    def _write(self) -> None:
        data = self.conn.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _linger(self) -> None:
        """Close after our GOAWAY, the lingering way (as server.py's refusals): FIN now, the socket once the
        client's FIN comes (eof_received) or after linger_s. A close() with the client's refused streams
        unread would send a reset that can overtake the last replies."""
        self.closing = True
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if not transport.can_write_eof():  # TLS: no half-close
            transport.close()
            return
        transport.write_eof()
        self.loop.call_later(self.linger_s, transport.abort)

    def _close(self) -> None:
        self._write()
        self.closing = True
        if self.transport is not None:
            self.transport.close()
