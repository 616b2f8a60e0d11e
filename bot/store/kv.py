"""The key-value layer under everything the bot keeps: Redis, or this process's memory.

Redis makes an action happen once across every web process. Without ``REDIS_URL`` the
in-process backend does the same job for a single process only. Both offer the few operations
of the ``KeyValue`` protocol; ``claims``, ``card_store`` and ``store`` put the bot's meaning on
them, each key under one prefix (``Keys``).
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)
T = TypeVar("T")

DAY = 24 * 3600
REMEMBER_SECONDS = 14 * DAY  # how long cards, claims and delivery marks are kept


@dataclass(frozen=True)
class Keys:
    """Every key the bot writes: ``deployhq-bot:`` and the parts, joined by colons."""

    prefix: str = "deployhq-bot:"

    def __call__(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)


class StoreUnavailable(Exception):
    """The store did not answer; callers must not act as if it had. ``certificate``: because
    its TLS certificate was refused."""

    def __init__(self, message: str, *, certificate: bool = False) -> None:
        super().__init__(message)
        self.certificate = certificate


class Missing:
    """Whether the store failed to answer inside a ``WithoutStore.step``."""

    def __init__(self) -> None:
        self.missing = False
        self.error: StoreUnavailable | None = None

    def __bool__(self) -> bool:
        return self.missing


class WithoutStore:
    """What a missing store means in one layer, decided in one place.

    Each layer that keeps anything makes one (``store/shared.py``, ``cards/store.py``,
    ``actions/claims.py``, …) with what each of its steps does when the store does not answer
    (``meanings``), and runs those steps inside ``step``: a ``StoreUnavailable`` there is
    logged once, with its meaning, and the step's ``Missing`` says so, for the caller to take the
    way the meaning says. Nothing else in a layer catches ``StoreUnavailable``;
    docs/architecture.md gathers the meanings in one table.
    """

    def __init__(
        self,
        layer: str,
        meanings: dict[str, str],
        level: int = logging.WARNING,
        quiet: frozenset[str] = frozenset(),
    ) -> None:
        self.layer = layer
        self.meanings = meanings
        self.level = level
        self.quiet = quiet  # steps logged at DEBUG only (asked often, reported elsewhere)
        self.log = logging.getLogger(f"bot.{layer}")  # its lines name the layer that decided

    @contextmanager
    def step(self, name: str, about: object = "") -> Iterator[Missing]:
        meaning = self.meanings[name]  # a step the layer has not said the meaning of fails here
        outcome = Missing()
        try:
            yield outcome
        except StoreUnavailable as error:
            outcome.missing, outcome.error = True, error
            self.log.log(
                logging.DEBUG if name in self.quiet else self.level,
                "store unavailable (%s%s): %s",
                name,
                f" {about}" if about else "",
                meaning,
            )

    def read(self, name: str, read: Callable[[], T], default: T, about: object = "") -> T:
        """``read()``, or ``default`` when the store does not answer."""
        with self.step(name, about):
            return read()
        return default


CERTIFICATE_REFUSED = (
    "Redis's TLS certificate was refused (self-signed, as Heroku Redis and other managed Redis "
    "hand out?); set REDIS_TLS_VERIFY=false to accept it"
)


class KeyValue(Protocol):
    name: str

    def ping(self) -> None: ...
    def add(self, key: str, value: str, ttl: float) -> bool:
        """Set ``key`` only if it is absent; True when set."""
        ...

    def get(self, key: str) -> str | None: ...
    def ttl(self, key: str) -> float | None:
        """Seconds before ``key`` expires, by the store's own clock; None when it is absent."""
        ...

    def put(self, key: str, value: str, ttl: float) -> None: ...
    def swap(self, key: str, expected: str, value: str, ttl: float) -> bool:
        """Set ``key`` to ``value`` only while it still holds ``expected``."""
        ...

    def delete_if(self, key: str, expected: str) -> bool: ...
    def delete(self, key: str) -> None: ...
    def put_listed(
        self, key: str, value: str, ttl: float, index: str, member: str, listed: bool
    ) -> None:
        """Set ``key`` and, in the same step, add ``member`` to (or take it off) the set
        ``index``."""
        ...

    def add_member(self, key: str, member: str) -> None: ...
    def append(self, key: str, value: str, ttl: float) -> None: ...
    def take_all(self, key: str) -> list[str]:
        """The list at ``key``, oldest first, emptied in the same step."""
        ...

    def remove_member(self, key: str, member: str) -> None: ...
    def members(self, key: str) -> set[str]: ...


def open_redis(url: str, *, tls_verify: bool = True) -> redis.Redis:
    """A client that fails fast: a click must learn within a second that Redis is gone.

    ``tls_verify=False`` accepts a ``rediss://`` server's certificate unverified: managed Redis
    (Heroku's among them) hands out self-signed ones that rotate, so nothing could pin them.
    """
    tls: dict[str, Any] = {}
    if urlsplit(url).scheme == "rediss" and not tls_verify:
        tls = {"ssl_cert_reqs": "none", "ssl_check_hostname": False}
    return redis.Redis.from_url(
        url,
        **tls,
        decode_responses=True,
        socket_connect_timeout=1.0,
        socket_timeout=2.0,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=2),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
    )


class RedisKeyValue:
    name = "redis"
    _SWAP = """
    if redis.call('GET', KEYS[1]) == ARGV[1] then
        redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
        return 1
    end
    return 0
    """
    _DELETE_IF = """
    if redis.call('GET', KEYS[1]) == ARGV[1] then
        return redis.call('DEL', KEYS[1])
    end
    return 0
    """

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._swap = client.register_script(self._SWAP)
        self._delete_if = client.register_script(self._DELETE_IF)

    def ping(self) -> None:
        self._run(self.client.ping)

    def add(self, key: str, value: str, ttl: float) -> bool:
        return bool(self._run(self.client.set, key, value, px=_ms(ttl), nx=True))

    def get(self, key: str) -> str | None:
        value = self._run(self.client.get, key)
        return value if isinstance(value, str) else None

    def ttl(self, key: str) -> float | None:
        left = self._run(self.client.pttl, key)
        return left / 1000 if isinstance(left, int) and left >= 0 else None

    def put(self, key: str, value: str, ttl: float) -> None:
        self._run(self.client.set, key, value, px=_ms(ttl))

    def swap(self, key: str, expected: str, value: str, ttl: float) -> bool:
        return bool(self._run(self._swap, keys=[key], args=[expected, value, _ms(ttl)]))

    def delete_if(self, key: str, expected: str) -> bool:
        return bool(self._run(self._delete_if, keys=[key], args=[expected]))

    def delete(self, key: str) -> None:
        self._run(self.client.delete, key)

    def put_listed(
        self, key: str, value: str, ttl: float, index: str, member: str, listed: bool
    ) -> None:
        def both() -> None:
            with self.client.pipeline(transaction=True) as step:  # MULTI ... EXEC
                step.set(key, value, px=_ms(ttl))
                (step.sadd if listed else step.srem)(index, member)
                step.execute()

        self._run(both)

    def add_member(self, key: str, member: str) -> None:
        self._run(self.client.sadd, key, member)

    def append(self, key: str, value: str, ttl: float) -> None:
        def push() -> None:
            with self.client.pipeline(transaction=True) as step:
                step.rpush(key, value)
                step.pexpire(key, _ms(ttl))
                step.execute()

        self._run(push)

    def take_all(self, key: str) -> list[str]:
        def take() -> list[str]:
            with self.client.pipeline(transaction=True) as step:
                step.lrange(key, 0, -1)
                step.delete(key)
                values, _ = step.execute()
            return [str(v) for v in values]

        result: list[str] = self._run(take)
        return result

    def remove_member(self, key: str, member: str) -> None:
        self._run(self.client.srem, key, member)

    def members(self, key: str) -> set[str]:
        return {str(m) for m in self._run(self.client.smembers, key)}

    @staticmethod
    def _run(command: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except redis.RedisError as exc:
            if _certificate_refused(exc):
                log.error("Redis is unreachable: %s", CERTIFICATE_REFUSED)
                raise StoreUnavailable(CERTIFICATE_REFUSED, certificate=True) from exc
            raise StoreUnavailable(f"Redis did not answer ({type(exc).__name__})") from exc


def _certificate_refused(exc: BaseException) -> bool:
    """Whether ``exc`` came from a TLS certificate we refused (redis-py keeps it as context)."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class MemoryKeyValue:
    """The same operations in this process's memory: correct for one process only."""

    name = "memory"
    SWEEP_SECONDS = 60.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        """``clock``: seconds, only ever forward (tests move it on instead of sleeping)."""
        self._clock = clock
        self._items: dict[str, tuple[str, float]] = {}
        self._sets: dict[str, set[str]] = {}
        self._lists: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._swept = clock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def _sweep(self) -> None:
        """Drop expired entries now and then (under the lock), so they do not pile up."""
        now = self._clock()
        if now - self._swept < self.SWEEP_SECONDS:
            return
        self._swept = now
        for key in [k for k, (_, expires) in self._items.items() if expires <= now]:
            del self._items[key]

    def ping(self) -> None:
        return None

    def add(self, key: str, value: str, ttl: float) -> bool:
        with self._lock:
            if self._live(key) is not None:
                return False
            self._sweep()
            self._items[key] = (value, self._clock() + ttl)
            return True

    def get(self, key: str) -> str | None:
        with self._lock:
            return self._live(key)

    def ttl(self, key: str) -> float | None:
        with self._lock:
            if self._live(key) is None:
                return None
            return max(0.0, self._items[key][1] - self._clock())

    def put(self, key: str, value: str, ttl: float) -> None:
        with self._lock:
            self._sweep()
            self._items[key] = (value, self._clock() + ttl)

    def swap(self, key: str, expected: str, value: str, ttl: float) -> bool:
        with self._lock:
            if self._live(key) != expected:
                return False
            self._items[key] = (value, self._clock() + ttl)
            return True

    def delete_if(self, key: str, expected: str) -> bool:
        with self._lock:
            if self._live(key) != expected:
                return False
            del self._items[key]
            return True

    def delete(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)

    def put_listed(
        self, key: str, value: str, ttl: float, index: str, member: str, listed: bool
    ) -> None:
        with self._lock:
            self._items[key] = (value, self._clock() + ttl)
            members = self._sets.setdefault(index, set())
            (members.add if listed else members.discard)(member)

    def add_member(self, key: str, member: str) -> None:
        with self._lock:
            self._sets.setdefault(key, set()).add(member)

    def append(self, key: str, value: str, ttl: float) -> None:
        with self._lock:
            self._lists.setdefault(key, []).append(value)

    def take_all(self, key: str) -> list[str]:
        with self._lock:
            return self._lists.pop(key, [])

    def remove_member(self, key: str, member: str) -> None:
        with self._lock:
            self._sets.get(key, set()).discard(member)

    def members(self, key: str) -> set[str]:
        with self._lock:
            return set(self._sets.get(key, ()))

    def _live(self, key: str) -> str | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item[1] <= self._clock():
            del self._items[key]
            return None
        return item[0]


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
