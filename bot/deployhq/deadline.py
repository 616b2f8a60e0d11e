"""A hard deadline for a whole HTTP call made through ``requests``.

requests' timeouts bound each read, so an answer that trickles in a byte at a time never trips
them. Within ``Deadline``, each connection taken from the pool and each response it gives is
noted; when the deadline passes a watchdog shuts their sockets, and the blocked read returns at
once with an error.
"""

from __future__ import annotations

import socket
import threading
from contextlib import suppress
from types import TracebackType
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.response import BaseHTTPResponse

_current = threading.local()


class Deadline:
    """``with Deadline(seconds) as deadline:`` one call; ``deadline.passed`` afterwards says
    whether the watchdog cut it short."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._taken: list[Any] = []
        self._fired = threading.Event()
        self._watchdog = threading.Timer(seconds, _cut, (self._taken, self._fired))
        self._watchdog.daemon = True

    @property
    def passed(self) -> bool:
        return self._fired.is_set()

    def __enter__(self) -> Deadline:
        _current.taken = self._taken
        self._watchdog.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._watchdog.cancel()
        _current.taken = None


def _noting(pool: type[HTTPConnectionPool]) -> type[HTTPConnectionPool]:
    class Noting(pool):  # type: ignore[valid-type,misc]
        def _get_conn(self, timeout: float | None = None) -> Any:
            conn = super()._get_conn(timeout)
            _note(conn)
            return conn

        def _make_request(self, *args: Any, **kwargs: Any) -> Any:
            # Once the headers are in, the response may own the socket (the connection lets go).
            response = super()._make_request(*args, **kwargs)
            _note(response)
            return response

    return Noting


_NOTING_POOLS = {"http": _noting(HTTPConnectionPool), "https": _noting(HTTPSConnectionPool)}


class DeadlineAdapter(HTTPAdapter):
    """An adapter whose connections and responses a ``Deadline`` can cut."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _NOTING_POOLS


def _note(part: Any) -> None:
    taken = getattr(_current, "taken", None)
    if taken is not None:
        taken.append(part)


def _cut(taken: list[Any], fired: threading.Event) -> None:
    fired.set()
    for part in taken:
        with suppress(OSError):
            if isinstance(part, BaseHTTPResponse):
                part.shutdown()
            elif getattr(part, "sock", None) is not None:
                part.sock.shutdown(socket.SHUT_RDWR)


def never_sent(exc: BaseException) -> bool:
    """Whether a connection error happened before the request could leave."""
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            return False
        if isinstance(seen, NewConnectionError | ConnectTimeoutError | NameResolutionError):
            return True
        seen = seen.__cause__ or seen.__context__ or (seen.args[0] if seen.args else None)
        if not isinstance(seen, BaseException):
            return False
    return False
