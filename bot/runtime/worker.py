"""gunicorn's threaded worker, where a slow client cannot hold a thread.

The stock worker hands a connection to a thread as soon as its first byte arrives, and the
thread then reads the rest of the request for as long as the client likes. Forty clients
trickling their headers a byte every two seconds would hold every thread, and Slack's requests
(answered within 3 s or lost) would queue behind them. Here the worker's event loop reads each
request's head without a thread and hands the connection over only once the head is complete;
a head not complete within ``HEAD_SECONDS`` of the connection (or of a kept-alive connection's
next request) closes it. The body is then read in the thread, within ``BODY_SECONDS``.
"""

from __future__ import annotations

import errno
import selectors
import socket
import time
from collections import deque
from contextlib import AbstractContextManager, nullcontext
from functools import partial
from typing import Any

from gunicorn.workers.gthread import TConn, ThreadWorker

HEAD_SECONDS = 5.0
BODY_SECONDS = 10.0  # a body is at most 1 MB (notifications.MAX_BODY_BYTES)
MAX_HEAD_BYTES = 64 * 1024  # past this the parser answers 431 itself
END_OF_HEAD = b"\r\n\r\n"


class DeadlineSocket:
    """A client socket whose blocking reads end at a deadline, counted from the first read once
    armed: past it a read sees the end of the stream, which gunicorn and Werkzeug already treat
    as a client that went away."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._allowed: float | None = None
        self._deadline: float | None = None

    def arm(self, seconds: float | None) -> None:
        """Reads from now on must be done within ``seconds`` of the first; None: no limit."""
        self._allowed, self._deadline = seconds, None

    def recv(self, size: int, *flags: int) -> bytes:
        if self._allowed is None:
            return self._sock.recv(size, *flags)
        if self._deadline is None:
            self._deadline = time.monotonic() + self._allowed
        left = self._deadline - time.monotonic()
        if left <= 0:
            return b""
        previous = self._sock.gettimeout()
        self._sock.settimeout(left)
        try:
            return self._sock.recv(size, *flags)
        except TimeoutError:
            return b""
        finally:
            self._sock.settimeout(previous)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class DeadlineWorker(ThreadWorker):  # type: ignore[misc]
    def init_process(self) -> None:
        self.reading: deque[Any] = deque()  # connections whose head is arriving, oldest first
        super().init_process()

    def accept(self, listener: socket.socket) -> None:
        if self.cfg.is_ssl:  # TLS is the PaaS router's job; keep gunicorn's own path for it
            super().accept(listener)
            return
        try:
            sock, client = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = TConn(self.cfg, DeadlineSocket(sock), client, listener.getsockname())
        conn.head = bytearray()
        self._read_head(conn)

    def on_client_socket_readable(self, conn: Any, client: Any) -> None:
        """A kept-alive connection's next request: its head is read the same way."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        conn.head = bytearray()
        self._read_head(conn)

    def _read_head(self, conn: Any) -> None:
        conn.sock.setblocking(False)
        conn.timeout = time.monotonic() + HEAD_SECONDS
        self.reading.append(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_head_bytes, conn))

    def _on_head_bytes(self, conn: Any, client: Any) -> None:
        try:
            chunk = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if chunk:
            conn.head += chunk
            if END_OF_HEAD not in conn.head and len(conn.head) <= MAX_HEAD_BYTES:
                return
        self.poller.unregister(client)
        self.reading.remove(conn)
        if not chunk:  # the client went away
            self.nr_conns -= 1
            conn.close()
            return
        conn.init()  # the parser, for a plain-HTTP connection: no I/O
        conn.parser.unreader.unread(bytes(conn.head))
        conn.data_ready = True
        self.enqueue_req(conn)

    def murder_pending(self) -> None:
        super().murder_pending()
        now = time.monotonic()
        while self.reading and self.reading[0].timeout <= now:
            conn = self.reading.popleft()
            self.poller.unregister(conn.sock)
            self.nr_conns -= 1
            conn.close()

    def _serving(self) -> AbstractContextManager[None]:
        """The request counted by the pools of the bot this worker serves."""
        bot = getattr(self.wsgi, "bot", None)
        return bot.pools.serving.request() if bot is not None else nullcontext()

    def handle_request(self, req: Any, conn: Any) -> Any:
        if isinstance(conn.sock, DeadlineSocket):
            conn.sock.arm(BODY_SECONDS)  # the head is in; the application reads the body
        try:
            with self._serving():  # the work after acks waits for them (runtime.background)
                return super().handle_request(req, conn)
        finally:
            if isinstance(conn.sock, DeadlineSocket):
                conn.sock.arm(None)
