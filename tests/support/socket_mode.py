"""A fake Socket Mode endpoint: a real WebSocket server on 127.0.0.1 that sends envelopes as
Slack does and records what the app sends back (acks carry the envelope's id).

The app reaches it through a TCP relay of its own, so a test can also do to a connection what a
network does: close it without a close frame, reset it, or go silent (a half-open connection:
nothing read, no pong). ``refresh`` does what Slack does routinely: a ``disconnect`` message
(``refresh_requested``), the old connection kept open a while, then closed.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve

from tests.support.redis_server import free_port


@dataclass
class Link:
    """One TCP connection from the app, relayed to the WebSocket server."""

    app_side: socket.socket
    server_side: socket.socket
    frozen: threading.Event = field(default_factory=threading.Event)
    closed: threading.Event = field(default_factory=threading.Event)
    reset: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data or self.frozen.is_set():
                    break
                target.sendall(data)
        except OSError:
            pass
        if self.frozen.is_set():
            self.closed.wait()  # silent: hold both sockets open, read nothing, say nothing
        self._finish()

    def close(self, *, reset: bool = False) -> None:
        """Close the app's connection: FIN, or RST with ``reset``."""
        self.reset = reset
        if reset and not self.frozen.is_set():
            # Only wake the thread reading the app's side: a socket closed while another thread
            # is still in recv() on it is released (and the RST sent) only when that returns.
            with contextlib.suppress(OSError):
                self.app_side.shutdown(socket.SHUT_RD)
            return
        for sock in (self.app_side, self.server_side):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._finish()

    def _finish(self) -> None:
        with self._lock:
            if self.closed.is_set():
                return
            self.closed.set()
        if self.reset:  # SO_LINGER 0: close() sends RST instead of FIN
            self.app_side.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            self.server_side.shutdown(socket.SHUT_RDWR)
        self.app_side.close()
        self.server_side.close()


@dataclass
class Opened:
    """A WebSocket connection the server accepted, and when."""

    connection: ServerConnection
    at: float
    link: Link | None


class FakeSocketMode:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}/link"
        self.received: list[dict[str, Any]] = []
        self.acked: list[tuple[str, float]] = []  # (envelope_id, when its ack arrived)
        self.opened: list[Opened] = []
        self._links: dict[int, Link] = {}  # by the relay's port towards the server
        self._lock = threading.Lock()
        self._server_port = free_port()
        # No keepalive of its own: a silenced connection must not be noticed from this side.
        self._server = serve(self._handle, "127.0.0.1", self._server_port, ping_interval=None)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    # --- the relay ------------------------------------------------------------------------------

    def _accept(self) -> None:
        while True:
            try:
                app_side, _ = self._listener.accept()
            except OSError:
                return  # stopped
            try:
                server_side = socket.create_connection(("127.0.0.1", self._server_port))
            except OSError:  # the server is stopping
                app_side.close()
                return
            link = Link(app_side, server_side)
            with self._lock:
                self._links[server_side.getsockname()[1]] = link
            for source, target in ((app_side, server_side), (server_side, app_side)):
                threading.Thread(target=link.pump, args=(source, target), daemon=True).start()

    # --- the WebSocket server -------------------------------------------------------------------

    def _handle(self, connection: ServerConnection) -> None:
        with self._lock:
            link = self._links.get(connection.remote_address[1])
            self.opened.append(Opened(connection, time.monotonic(), link))
        connection.send(json.dumps({"type": "hello", "num_connections": 1}))
        try:
            for message in connection:
                now = time.monotonic()
                with self._lock:
                    acked = json.loads(message)
                    self.received.append(acked)
                    self.acked.append((str(acked.get("envelope_id")), now))
        except Exception:  # noqa: S110 - a connection the test broke on purpose
            pass

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self.opened)

    def wait_connected(self, count: int = 1, timeout: float = 10) -> float:
        """Wait until ``count`` connections have been opened in all; when the last one was."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if len(self.opened) >= count:
                    return self.opened[count - 1].at
            if time.monotonic() > deadline:
                raise AssertionError(f"the app opened {self.connections} of {count} connections")
            time.sleep(0.01)

    def send(
        self,
        envelope_type: str,
        payload: dict[str, Any],
        *,
        connection: int = -1,
        envelope_id: str | None = None,
        retry_attempt: int = 0,
    ) -> str:
        """Send an envelope on a connection (the newest by default); its id."""
        envelope_id = envelope_id or f"env-{time.monotonic_ns()}"
        envelope = {
            "envelope_id": envelope_id,
            "type": envelope_type,
            "accepts_response_payload": envelope_type == "slash_commands",
            "payload": payload,
            "retry_attempt": retry_attempt,
            "retry_reason": "timeout" if retry_attempt else "",
        }
        text = json.dumps(envelope)
        with self._lock:
            opened = self.opened[connection]
        try:
            opened.connection.send(text)
        except ConnectionClosed:
            self._send_elsewhere(text)
        return envelope_id

    def _send_elsewhere(self, text: str, timeout: float = 10) -> None:
        """As Slack does with an envelope for a connection the app has closed: send it on the
        newest open one, waiting for one to open if need be."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                newest_first = [opened.connection for opened in reversed(self.opened)]
            for connection in newest_first:
                try:
                    connection.send(text)
                except ConnectionClosed:
                    continue
                return
            time.sleep(0.05)

    def ack(self, envelope_id: str, timeout: float = 5) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for message in self.received:
                    if message.get("envelope_id") == envelope_id:
                        return message
            time.sleep(0.01)
        raise AssertionError(f"no ack for {envelope_id}; received {self.received}")

    def ack_seconds(self, envelope_id: str, sent: float, timeout: float = 10) -> float | None:
        """How long after ``sent`` (a ``time.monotonic()``) the app acked an envelope; None when
        no ack came within ``timeout``."""
        deadline = sent + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for acked, at in self.acked:
                    if acked == envelope_id and at >= sent:
                        return at - sent
            time.sleep(0.01)
        return None

    # --- what Slack and networks do to a connection ---------------------------------------------

    def refresh(self, window: float, connection: int = -1) -> None:
        """Ask for a new connection as Slack does, and close this one ``window`` s later."""
        with self._lock:
            opened = self.opened[connection]
        opened.connection.send(
            json.dumps({"type": "disconnect", "reason": "refresh_requested", "debug_info": {}})
        )

        def close_later() -> None:
            time.sleep(window)
            opened.connection.close()

        threading.Thread(target=close_later, daemon=True).start()

    def _link(self, connection: int) -> Link:
        with self._lock:
            link = self.opened[connection].link
        assert link is not None
        return link

    def drop(self, connection: int = -1) -> None:
        """Close the TCP connection without a WebSocket close frame."""
        self._link(connection).close()

    def reset(self, connection: int = -1) -> None:
        """Reset the TCP connection (RST)."""
        self._link(connection).close(reset=True)

    def go_silent(self, connection: int = -1) -> None:
        """A half-open connection: from now on nothing is read or sent, pings go unanswered."""
        self._link(connection).frozen.set()

    def stop(self) -> None:
        self._listener.close()
        with self._lock:
            links = list(self._links.values())
        for link in links:
            if not link.closed.is_set():
                link.close()
        self._server.shutdown()
