"""Hand-made TCP peers on loopback for the engines' edge cases: a listener, an accept thread, and
what each peer does with a connection (`accepted`); closed when the test ends."""

import socket
import threading


class ListeningPeer:
    """Listens on 127.0.0.1 and hands each accepted connection to `accepted`, in its accept thread."""

    def __init__(self, backlog: int = 64) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
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
