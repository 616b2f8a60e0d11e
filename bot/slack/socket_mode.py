"""Socket Mode: each worker's WebSocket to Slack, kept alive and replaced the moment it fails.

Slack hands each button click and command to one open connection and gives the app 3 s to ack
it. So a connection must never go deaf unnoticed:

- ``disconnect`` (Slack's routine refresh): a new connection opens at once, and the old one is
  still read, its envelopes served and acked, until Slack closes it.
- A close without a close frame or a reset ends the connection the moment the socket reports it.
- A half-open connection (nothing arrives, pings go unanswered) is given up after
  ``SOCKET_MODE_PING_TIMEOUT`` seconds without a pong.

Every connection has a reader thread (blocked in the WebSocket library, never polling) and a
keepalive thread; envelopes are handed to a small pool, so a slow listener never holds up
reading. Reconnects are immediate after a connection that served for a while and back off
after repeated failures, each failure logged once, as one line with its cause.

Built on the ``websockets`` library's threaded client; README's "Which WebSocket client" says
why that and not slack-sdk's built-in client, with the figures.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import socket
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from slack_bolt import App, BoltRequest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.request import SocketModeRequest
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus
from websockets.protocol import State
from websockets.sync.client import ClientConnection, connect

from bot import logs, metrics
from bot.config import Settings

log = logging.getLogger(__name__)

BACKOFF_FIRST = 1.0  # seconds before the second attempt in a row
BACKOFF_MAX = 30.0
STABLE_AFTER = 30.0  # a connection that served this long resets the backoff
DRAIN_MAX = 30.0  # after ``disconnect``, the old connection is read at most this long
OPEN_TIMEOUT = 10.0
CLOSE_TIMEOUT = 2.0
ENVELOPE_THREADS = 10


def backoff(failures: int) -> float:
    """Seconds to wait before the next attempt, after ``failures`` attempts in a row went
    wrong: none after the first, then about 1, 2, 4 … up to 30 (jittered, so that workers
    spread out)."""
    if failures <= 0:
        return 0.0
    return float(min(BACKOFF_FIRST * 2 ** (failures - 1), BACKOFF_MAX) * random.uniform(0.75, 1.0))


@dataclass(frozen=True)
class Cause:
    """Why a connection was replaced or could not be opened: a metric label and a phrase."""

    label: str
    text: str


class _OpenFailed(Exception):
    def __init__(self, cause: Cause, retry_after: float = 0.0) -> None:
        super().__init__(cause.text)
        self.cause = cause
        self.retry_after = retry_after


class _Link:
    """One WebSocket connection and why it ended (the first cause found wins)."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.opened = time.monotonic()
        self.cause: Cause | None = None
        self.refreshing_since: float | None = None
        self.ended = threading.Event()
        self.replace = threading.Event()  # tells the supervisor to open the next connection
        self._lock = threading.Lock()

    def end_because(self, cause: Cause) -> None:
        with self._lock:
            if self.cause is None:
                self.cause = cause
        self.replace.set()

    def abort(self) -> None:
        """End at once, without a closing handshake (the peer is not listening)."""
        with contextlib.suppress(OSError):  # already closed
            self.connection.socket.shutdown(socket.SHUT_RDWR)


@dataclass(frozen=True)
class Status:
    """What /healthz says about this worker's connection."""

    connected: bool
    down_for: float  # seconds without a connection (0 while connected)
    last_heard: float | None  # epoch seconds of the last message or pong from Slack
    last_heard_ago: float | None
    reconnects: int
    grace: float

    @property
    def healthy(self) -> bool:
        return self.connected or self.down_for <= self.grace

    def as_json(self) -> dict[str, Any]:
        heard = self.last_heard
        return {
            "connected": self.connected,
            "down_seconds": round(self.down_for, 1),
            "last_heard_from_slack": (
                datetime.fromtimestamp(heard, UTC).isoformat(timespec="seconds") if heard else None
            ),
            "last_heard_seconds_ago": (
                round(self.last_heard_ago, 1) if self.last_heard_ago is not None else None
            ),
            "reconnects": self.reconnects,
        }


class SocketMode:
    """This worker's Socket Mode connection: ``start()`` it, read ``status()``, ``close()`` it."""

    def __init__(self, app: App, settings: Settings, client: WebClient) -> None:
        if not settings.slack_app_token:
            raise ValueError("Socket Mode needs SLACK_APP_TOKEN")
        self._app = app
        self._token = settings.slack_app_token
        self._client = client
        self._ping_interval = settings.socket_mode_ping_interval
        self._ping_timeout = settings.socket_mode_ping_timeout
        self._grace = settings.socket_mode_health_grace
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._links: set[_Link] = set()
        self._current: _Link | None = None
        self._down_since = time.monotonic()
        metrics.SOCKET_MODE_DOWN_SINCE.set(time.time())
        self._heard: tuple[float, float] | None = None  # (monotonic, epoch)
        self._reconnects = 0
        self._envelopes = ThreadPoolExecutor(ENVELOPE_THREADS, "socket-mode-envelope")

    def start(self) -> SocketMode:
        threading.Thread(target=self._run, name="socket-mode", daemon=True).start()
        return self

    def close(self) -> None:
        """Close every connection politely and stop reconnecting."""
        self._stop.set()
        with self._lock:
            links = list(self._links)
            current = self._current
        if current is not None:
            current.replace.set()
        for link in links:
            link.connection.close()
        self._envelopes.shutdown(wait=False)

    def status(self) -> Status:
        now = time.monotonic()
        with self._lock:
            connected = self._current is not None
            down_for = 0.0 if connected else now - self._down_since
            heard = self._heard
            reconnects = self._reconnects
        return Status(
            connected=connected,
            down_for=down_for,
            last_heard=heard[1] if heard else None,
            last_heard_ago=now - heard[0] if heard else None,
            reconnects=reconnects,
            grace=self._grace,
        )

    # --- the supervisor: one connection at a time, replaced when it ends ------------------------

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                link = self._open()
            except _OpenFailed as failed:
                failures += 1
                delay = max(backoff(failures), failed.retry_after)
                self._count(failed.cause)
                log.warning("Socket Mode: %s; trying again in %.1f s", failed.cause.text, delay)
                self._stop.wait(delay)
                continue
            link.replace.wait()
            if self._stop.is_set():
                return
            cause = link.cause or Cause("closed", "it ended")
            self._count(cause)
            if cause.label == "refresh":
                failures = 0
                log.info(
                    "Socket Mode: %s; opening a new connection, the old one is read until it "
                    "closes",
                    cause.text,
                )
                continue
            if time.monotonic() - link.opened >= STABLE_AFTER:
                failures = 0
            delay = backoff(failures)
            failures += 1
            log.warning(
                "Socket Mode connection lost: %s; reconnecting %s",
                cause.text,
                f"in {delay:.1f} s" if delay else "now",
            )
            self._stop.wait(delay)

    def _open(self) -> _Link:
        try:
            url = str(self._client.apps_connections_open(app_token=self._token)["url"])
        except SlackApiError as exc:
            error = str(exc.response.get("error") or f"HTTP {exc.response.status_code}")
            retry_after = float(exc.response.headers.get("Retry-After", 0) or 0)
            raise _OpenFailed(
                Cause("refused", f"Slack refused apps.connections.open ({error})"), retry_after
            ) from None
        except Exception as exc:  # a network error of any kind: named, never printed whole
            raise _OpenFailed(
                Cause("unreachable", f"apps.connections.open failed ({type(exc).__name__})")
            ) from None
        try:
            connection = connect(
                url,
                open_timeout=OPEN_TIMEOUT,
                close_timeout=CLOSE_TIMEOUT,
                ping_interval=None,  # our own keepalive, which also notes when Slack answered
                max_size=None,
            )
        except Exception as exc:  # the URL carries a ticket: name the error, never print it
            status = f" HTTP {exc.response.status_code}" if isinstance(exc, InvalidStatus) else ""
            raise _OpenFailed(
                Cause("unreachable", f"could not open the WebSocket ({type(exc).__name__}{status})")
            ) from None
        link = _Link(connection)
        with self._lock:
            self._links.add(link)
            self._current = link
        metrics.SOCKET_MODE_CONNECTIONS.inc()
        metrics.SOCKET_MODE_DOWN_SINCE.set(0)
        self._note_heard()
        if self._stop.is_set():  # closed while connecting
            connection.close()
        for target, name in ((self._read, "socket-mode-read"), (self._keepalive, "socket-ping")):
            threading.Thread(target=target, args=(link,), name=name, daemon=True).start()
        log.info("connected to Slack over Socket Mode")
        return link

    def _count(self, cause: Cause) -> None:
        with self._lock:
            self._reconnects += 1
        metrics.SOCKET_MODE_RECONNECTS.labels(cause.label).inc()

    def _note_heard(self) -> None:
        with self._lock:
            self._heard = (time.monotonic(), time.time())

    # --- each connection: a reader and a keepalive ----------------------------------------------

    def _read(self, link: _Link) -> None:
        try:
            with link.connection as connection:  # closed on the way out, whatever happens
                for message in connection:
                    self._note_heard()
                    self._on_message(link, message)
            received = link.connection.protocol.close_rcvd
            code = f"code {received.code}" if received else "no code"
            link.end_because(Cause("closed", f"Slack closed it ({code})"))
        except ConnectionClosedError as exc:
            link.end_because(_why(exc))
        except Exception as exc:  # never expected; the connection is replaced all the same
            link.end_because(Cause("error", f"reading it failed ({type(exc).__name__})"))
        finally:
            with self._lock:
                self._links.discard(link)
                if self._current is link:
                    self._current = None
                    self._down_since = time.monotonic()
                    metrics.SOCKET_MODE_DOWN_SINCE.set(time.time())
            metrics.SOCKET_MODE_CONNECTIONS.dec()
            link.ended.set()
            link.replace.set()

    def _keepalive(self, link: _Link) -> None:
        while not link.ended.wait(self._ping_interval):
            since = link.refreshing_since
            if since is not None and time.monotonic() - since > DRAIN_MAX:
                link.connection.close()  # Slack kept the old connection open unusually long
                return
            try:
                pong = link.connection.ping(ack_on_close=True)
            except ConnectionClosed:
                return
            if pong.wait(self._ping_timeout):
                if link.connection.state is State.OPEN:
                    self._note_heard()
                continue
            if link.ended.is_set():
                return
            link.end_because(Cause("no-pong", f"no pong within {self._ping_timeout:g} s"))
            link.abort()
            return

    def _on_message(self, link: _Link, message: str | bytes) -> None:
        try:
            envelope = json.loads(message)
        except ValueError:
            log.warning("Socket Mode: ignored a message that is not JSON (%d bytes)", len(message))
            return
        if not isinstance(envelope, dict):
            return
        kind = envelope.get("type")
        if kind == "disconnect":
            link.refreshing_since = time.monotonic()
            reason = str(envelope.get("reason") or "no reason given")[:40]
            link.end_because(Cause("refresh", f"Slack asked for a new connection ({reason})"))
        elif kind != "hello" and "envelope_id" in envelope:
            self._envelopes.submit(self._serve, link, envelope)

    def _serve(self, link: _Link, envelope: dict[str, Any]) -> None:
        """Run the envelope through Bolt and ack it, on its own connection if that is still
        open, else on the current one."""
        request = SocketModeRequest.from_dict(envelope)
        if request is None:
            return
        logs.start_request(request.envelope_id)
        started = time.perf_counter()
        response = self._app.dispatch(bolt_request(request))
        if response.status != 200:
            log.info("Socket Mode %s not acked: Bolt answered %s", request.type, response.status)
            return
        ack: dict[str, Any] = {"envelope_id": request.envelope_id}
        if response.body:
            content_type = (response.headers.get("content-type") or [""])[0]
            is_json = content_type.startswith("application/json")
            ack["payload"] = json.loads(response.body) if is_json else {"text": response.body}
        self._send(link, json.dumps(ack))
        metrics.ACK_SECONDS.observe(time.perf_counter() - started)

    def _send(self, link: _Link, text: str) -> None:
        try:
            link.connection.send(text)
            return
        except ConnectionClosed:
            pass
        with self._lock:
            current = self._current
        try:
            if current is None or current is link:
                raise ConnectionClosed(None, None)
            current.connection.send(text)
        except ConnectionClosed:
            log.warning("Socket Mode: an ack was lost: no connection was open to send it")


def _why(exc: ConnectionClosedError) -> Cause:
    if isinstance(exc.__cause__, ConnectionResetError):
        return Cause("reset", "the connection was reset")
    if exc.rcvd is None:
        return Cause("dropped", "closed without a close frame")
    return Cause("closed", f"Slack closed it (code {exc.rcvd.code})")


def bolt_request(request: SocketModeRequest) -> BoltRequest:
    """A Socket Mode request as Bolt takes it (its public ``BoltRequest``, in Socket Mode), with
    Slack's retry marks where the HTTP mode has them, so a listener can tell an Events API retry."""
    headers: dict[str, str | Sequence[str]] = {}
    if request.retry_attempt is not None:
        headers["x-slack-retry-num"] = str(request.retry_attempt)
    if request.retry_reason is not None:
        headers["x-slack-retry-reason"] = request.retry_reason
    return BoltRequest(mode="socket_mode", body=request.payload, headers=headers or None)
