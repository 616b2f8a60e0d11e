"""Shared state: webhook dedupe, retry locks, and where each deployment's card was posted.

Redis makes a retry happen once across every web process. Without ``REDIS_URL`` an in-process
store does the same job for a single process only. Both sit behind the tiny ``KeyValue``
protocol, and ``Store`` puts the bot's meaning on it.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from bot import messages
from bot.deployments import FINAL_STATUSES, Deployment

log = logging.getLogger(__name__)

DAY = 24 * 3600
# Longer than the slowest DeployHQ call; the settings derive it from DeployHQ's timeouts.
RETRY_LOCK_SECONDS = 30.0
REMEMBER_SECONDS = 14 * DAY
# A card's lock covers a read and a write of its record (no Slack or DeployHQ call is made
# while it is held); holding it longer means the holder died.
CARD_LOCK_SECONDS = 5.0
CARD_LOCK_WAIT_SECONDS = 10.0
# A request thread queues its change rather than wait longer: a holder's own reads and writes
# take milliseconds, but a busy machine can stretch them.
BUSY_CARD_SECONDS = 0.25


class CardBusy(Exception):
    """Another process is changing this card's record right now."""


class StoreUnavailable(Exception):
    """The store did not answer; callers must not act as if it had. ``certificate``: because
    its TLS certificate was refused."""

    def __init__(self, message: str, *, certificate: bool = False) -> None:
        super().__init__(message)
        self.certificate = certificate


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

    def __init__(self) -> None:
        self._items: dict[str, tuple[str, float]] = {}
        self._sets: dict[str, set[str]] = {}
        self._lists: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._swept = time.monotonic()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def _sweep(self) -> None:
        """Drop expired entries now and then (under the lock), so they do not pile up."""
        now = time.monotonic()
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
            self._items[key] = (value, time.monotonic() + ttl)
            return True

    def get(self, key: str) -> str | None:
        with self._lock:
            return self._live(key)

    def put(self, key: str, value: str, ttl: float) -> None:
        with self._lock:
            self._sweep()
            self._items[key] = (value, time.monotonic() + ttl)

    def swap(self, key: str, expected: str, value: str, ttl: float) -> bool:
        with self._lock:
            if self._live(key) != expected:
                return False
            self._items[key] = (value, time.monotonic() + ttl)
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
            self._items[key] = (value, time.monotonic() + ttl)
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
        if item[1] <= time.monotonic():
            del self._items[key]
            return None
        return item[0]


RUNNING, SENDING, IN_DOUBT, DONE = "running", "sending", "in-doubt", "done"


@dataclass(frozen=True)
class RetryClaim:
    """Who holds (or held) the one action on one failure (a retry or a rollback), and how far
    it got.

    ``running``: claimed; nothing sent yet (the claim expires if its holder dies). ``sending``:
    the call is going out (``sent_at``); from here the claim never expires by itself: its
    holder has ``lease_seconds`` to hear DeployHQ's answer, and past that the claim counts as
    in doubt. ``in-doubt``: the answer was lost (``lost_at``); the action may have happened, so
    nothing more is sent until DeployHQ's record proves what did, looked for for
    ``doubt_seconds`` from ``lost_at``. ``done``: DeployHQ took it. ``ref``: for a rollback,
    the revision it puts back, by which DeployHQ's record proves it.
    """

    user_id: str
    at: datetime
    token: str
    state: str = RUNNING
    action: str = "retry"  # or "rollback": one claim per failure covers both
    ref: str = ""
    sent_at: datetime | None = None
    lease_seconds: float = 0.0
    lost_at: datetime | None = None
    doubt_seconds: float = 0.0

    @property
    def done(self) -> bool:
        return self.state == DONE

    def lost(self, now: datetime | None = None) -> datetime | None:
        """When the answer was lost: at once for ``in-doubt``; for ``sending``, once the
        holder's lease has run out (it died, or never heard back); else None."""
        if self.state == IN_DOUBT:
            return self.lost_at or self.at
        if self.state == SENDING and self.sent_at is not None:
            lapsed = self.sent_at + timedelta(seconds=self.lease_seconds)
            return lapsed if (now or datetime.now(UTC)) >= lapsed else None
        return None

    @property
    def in_doubt(self) -> bool:
        return self.lost() is not None

    def doubt_over(self, now: datetime | None = None) -> bool:
        """Whether DeployHQ's record has had the whole doubt window to show the action."""
        lost = self.lost(now)
        return lost is not None and (now or datetime.now(UTC)) >= lost + timedelta(
            seconds=self.doubt_seconds
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "user": self.user_id,
                "at": self.at.timestamp(),
                "token": self.token,
                "state": self.state,
                "action": self.action,
                "ref": self.ref,
                "sent_at": self.sent_at.timestamp() if self.sent_at else None,
                "lease": self.lease_seconds,
                "lost_at": self.lost_at.timestamp() if self.lost_at else None,
                "doubt": self.doubt_seconds,
            }
        )

    @classmethod
    def from_json(cls, raw: str) -> RetryClaim:
        data = json.loads(raw)

        def moment(key: str) -> datetime | None:
            value = data.get(key)
            return datetime.fromtimestamp(float(value), UTC) if value is not None else None

        return cls(
            user_id=str(data["user"]),
            at=datetime.fromtimestamp(float(data["at"]), UTC),
            token=str(data["token"]),
            state=str(data.get("state", RUNNING)),
            action=str(data.get("action", "retry")),
            ref=str(data.get("ref") or ""),
            sent_at=moment("sent_at"),
            lease_seconds=float(data.get("lease") or 0.0),
            lost_at=moment("lost_at"),
            doubt_seconds=float(data.get("doubt") or 0.0),
        )


_STATES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        messages.Failed,
        messages.Progress,
        messages.Retrying,
        messages.InDoubt,
        messages.Retried,
        messages.RetryRefused,
        messages.RetryFailed,
        messages.RolledBack,
        messages.Overtaken,
        messages.Unknown,
    )
}
MAX_PENDING_NOTES = 20


def _state_to_json(state: messages.CardState) -> dict[str, Any]:
    data: dict[str, Any] = {"kind": type(state).__name__}
    for f in fields(state):
        value = getattr(state, f.name)
        data[f.name] = value.timestamp() if isinstance(value, datetime) else value
    return data


def _state_from_json(data: dict[str, Any]) -> messages.CardState:
    cls = _STATES[str(data.get("kind"))]
    values = {}
    for f in fields(cls):
        value = data.get(f.name)
        if "datetime" in str(f.type) and isinstance(value, int | float):
            value = datetime.fromtimestamp(value, UTC)
        values[f.name] = value
    state: messages.CardState = cls(**values)
    return state


@dataclass(frozen=True)
class Card:
    """A deployment's message: what it should show, and how much of that Slack has.

    The record is written before Slack is called, so nothing is lost when Slack refuses or a
    process dies: ``drawn`` is False until Slack shows this version, ``notes`` are thread
    replies still to post, and ``confirmed`` says the deployment was read from DeployHQ's API
    (a delivery's word alone never offers Retry). ``ts`` is None until the first post lands.
    """

    channel: str
    deployment: Deployment
    state: messages.CardState = field(default_factory=messages.Failed)
    ts: str | None = None
    confirmed: bool = True
    drawn: bool = False
    notes: tuple[str, ...] = ()
    retried_by: str | None = None
    retried_at: datetime | None = None
    explained: str = ""  # the run whose failure log (and last good deployment) was looked up
    rollback_to: Deployment | None = None  # the last good deployment on the same servers
    rolled_back: Deployment | None = None  # the deployment a rollback queued, followed here
    version: int = 0  # counts changes of what the card shows; a push marks drawn only its own
    posting: bool = False  # a first post went out and its outcome is unknown until found

    @property
    def live(self) -> bool:
        """DeployHQ may still move it on: a retry or the deployment itself is under way."""
        if isinstance(self.state, messages.Retrying | messages.InDoubt):
            return True
        if self.rolled_back is not None:
            return self.rolled_back.status not in FINAL_STATUSES
        return self.deployment.status not in FINAL_STATUSES

    @property
    def settled(self) -> bool:
        """Nothing left to do unless a notification or a click arrives."""
        return self.confirmed and self.drawn and not self.notes and not self.live

    def noting(self, note: str) -> Card:
        """This card with one more thread reply to post (the oldest go when too many wait)."""
        return replace(self, notes=(*self.notes, note)[-MAX_PENDING_NOTES:])

    def to_json(self) -> str:
        return json.dumps(
            {
                "channel": self.channel,
                "ts": self.ts,
                "deployment": self.deployment.to_api(),
                "state": _state_to_json(self.state),
                "confirmed": self.confirmed,
                "drawn": self.drawn,
                "notes": list(self.notes),
                "retried_by": self.retried_by,
                "retried_at": self.retried_at.timestamp() if self.retried_at else None,
                "explained": self.explained,
                "rollback_to": self.rollback_to.to_api() if self.rollback_to else None,
                "rolled_back": self.rolled_back.to_api() if self.rolled_back else None,
                "version": self.version,
                "posting": self.posting,
            }
        )

    @classmethod
    def from_json(cls, raw: str) -> Card:
        data = json.loads(raw)
        retried_at = data.get("retried_at")
        return cls(
            channel=str(data["channel"]),
            deployment=Deployment.from_api(data["deployment"], steps=True),
            state=_state_from_json(data.get("state") or {"kind": "Failed"}),
            ts=data.get("ts"),
            confirmed=bool(data.get("confirmed", True)),
            drawn=bool(data.get("drawn", True)),
            notes=tuple(data.get("notes") or ()),
            retried_by=data.get("retried_by"),
            retried_at=datetime.fromtimestamp(retried_at, UTC) if retried_at else None,
            explained=str(data.get("explained") or ""),
            rollback_to=_deployment_or_none(data.get("rollback_to")),
            rolled_back=_deployment_or_none(data.get("rolled_back")),
            version=int(data.get("version") or 0),
            posting=bool(data.get("posting", False)),
        )


def _deployment_or_none(data: Any) -> Deployment | None:
    return Deployment.from_api(data) if data else None


class Store:
    def __init__(
        self,
        kv: KeyValue,
        *,
        retry_lock_seconds: float = RETRY_LOCK_SECONDS,
        remember_seconds: float = REMEMBER_SECONDS,
        prefix: str = "deployhq-bot:",
    ) -> None:
        self.kv = kv
        self.retry_lock_seconds = retry_lock_seconds
        self.remember_seconds = remember_seconds
        self.prefix = prefix

    @property
    def backend(self) -> str:
        return self.kv.name

    def ping(self) -> None:
        self.kv.ping()

    # --- webhook dedupe: one post per (run of a deployment, status) --------------------------

    def claim_notification(self, run_key: str, status: str) -> bool:
        """True the first time this event is seen; False for a duplicate delivery."""
        return self.kv.add(self._key("notified", run_key, status), "1", self.remember_seconds)

    # --- retry locks: one retry per failure ---------------------------------------------------

    def claim_retry(
        self, run_key: str, user_id: str, action: str = "retry", ref: str = ""
    ) -> tuple[bool, RetryClaim]:
        """Take one failure, to retry or roll back: ``(True, mine)``, or ``(False, the
        holder's)``; a retry and a rollback of the same failure exclude each other."""
        key = self._key("retry", run_key)
        mine = RetryClaim(user_id, datetime.now(UTC), uuid.uuid4().hex, action=action, ref=ref)
        for _ in range(3):  # the holder's claim can expire between our add and get
            if self.kv.add(key, mine.to_json(), self.retry_lock_seconds):
                return True, mine
            held = self.kv.get(key)
            if held == mine.to_json():  # our add went through but its answer was lost
                return True, mine
            if held is not None:
                return False, RetryClaim.from_json(held)
        raise StoreUnavailable("the retry lock kept changing hands")

    def refresh_retry(self, run_key: str, claim: RetryClaim) -> bool:
        """Renew a claim's full lifetime; False when it expired or passed to someone else."""
        value = claim.to_json()
        return self.kv.swap(self._key("retry", run_key), value, value, self.retry_lock_seconds)

    def mark_sending(
        self,
        run_key: str,
        claim: RetryClaim,
        lease_seconds: float,
        doubt_seconds: float,
        ref: str = "",
    ) -> RetryClaim | None:
        """Make the claim durable just before the call goes out: from now on only DeployHQ's
        record frees this failure. None when the claim lapsed or passed to someone else (then
        nothing may be sent)."""
        sending = replace(
            claim,
            state=SENDING,
            ref=ref,
            sent_at=datetime.now(UTC),
            lease_seconds=lease_seconds,
            doubt_seconds=doubt_seconds,
        )
        key = self._key("retry", run_key)
        if self.kv.swap(key, claim.to_json(), sending.to_json(), self.remember_seconds):
            return sending
        return None

    def finish_retry(self, run_key: str, claim: RetryClaim) -> RetryClaim:
        """Keep a successful claim, so later clickers learn who acted and when."""
        return self._move_claim(run_key, claim, DONE)

    def doubt_retry(self, run_key: str, claim: RetryClaim) -> RetryClaim:
        """Keep a claim whose outcome is unknown, until DeployHQ's record settles it; the doubt
        window starts now, when the answer was lost."""
        return self._move_claim(run_key, claim, IN_DOUBT, lost_at=datetime.now(UTC))

    def settle(self, run_key: str, claim: RetryClaim, done: bool) -> RetryClaim | None:
        """Settle an in-doubt claim from DeployHQ's record: done, or released when the record
        proved nothing happened. Only for the claim as read: whoever settles it first does the
        telling, and a newer claim is never overwritten. None when someone else already had."""
        key = self._key("retry", run_key)
        if done:
            settled = replace(claim, state=DONE)
            ok = self.kv.swap(key, claim.to_json(), settled.to_json(), self.remember_seconds)
            return settled if ok else None
        return claim if self.kv.delete_if(key, claim.to_json()) else None

    def retry_claim(self, run_key: str) -> RetryClaim | None:
        raw = self.kv.get(self._key("retry", run_key))
        return RetryClaim.from_json(raw) if raw else None

    def _move_claim(
        self, run_key: str, claim: RetryClaim, state: str, **changes: Any
    ) -> RetryClaim:
        moved = replace(claim, state=state, **changes)
        key = self._key("retry", run_key)
        if not self.kv.swap(key, claim.to_json(), moved.to_json(), self.remember_seconds):
            # Lost (Redis forgot it) or taken over: what DeployHQ did still stands, so say it.
            self.kv.add(key, moved.to_json(), self.remember_seconds)
        return moved

    def release_retry(self, run_key: str, claim: RetryClaim) -> None:
        """Give the failure back (nothing was sent), if the claim is still ours."""
        self.kv.delete_if(self._key("retry", run_key), claim.to_json())

    # --- cards: deployment -> its message -----------------------------------------------------

    def save_card(self, card: Card) -> None:
        """Keep the card, and list it for the reconciler while anything about it is open."""
        identifier = card.deployment.identifier
        self.kv.put_listed(
            self._key("card", identifier),
            card.to_json(),
            self.remember_seconds,
            self._key("cards-open"),
            identifier,
            listed=not card.settled,
        )

    def follow(self, deployment_id: str, card_of: str) -> None:
        """Notifications of ``deployment_id`` (a rollback's) update the card of ``card_of``."""
        self.kv.put(self._key("follow", deployment_id), card_of, self.remember_seconds)

    def followed(self, deployment_id: str) -> str | None:
        """The deployment whose card follows ``deployment_id``, if one does."""
        return self.kv.get(self._key("follow", deployment_id))

    def drop_card(self, deployment_id: str) -> None:
        self.kv.delete(self._key("card", deployment_id))
        self.kv.remove_member(self._key("cards-open"), deployment_id)

    def open_cards(self) -> set[str]:
        """Deployments whose card is not settled (see ``Card.settled``)."""
        return self.kv.members(self._key("cards-open"))

    def take_turn(self, name: str, seconds: float) -> str | None:
        """A token for one caller, across processes, per ``seconds``: who does a periodic job;
        None for the others."""
        token = uuid.uuid4().hex
        return token if self.kv.add(self._key("turn", name), token, seconds) else None

    def keep_turn(self, name: str, token: str, seconds: float) -> bool:
        """Renew a turn still held; False when it lapsed (another process may have it now)."""
        return self.kv.swap(self._key("turn", name), token, token, seconds)

    def card(self, deployment_id: str) -> Card | None:
        raw = self.kv.get(self._key("card", deployment_id))
        return Card.from_json(raw) if raw else None

    @contextmanager
    def card_lock(self, deployment_id: str, *, wait: bool = True) -> Iterator[None]:
        """Serialise every change to one card's record, across processes, so the newest state
        wins. Held only for a read and a write of the store: never across a call to Slack or
        DeployHQ. ``wait=False`` (a request thread): ``CardBusy`` unless it is free within
        ``BUSY_CARD_SECONDS`` (another holder's own reads and writes take milliseconds)."""
        key = self._key("card-lock", deployment_id)
        token = uuid.uuid4().hex
        started = time.monotonic()
        deadline = started + CARD_LOCK_WAIT_SECONDS
        while not self.kv.add(key, token, CARD_LOCK_SECONDS):
            if not wait and time.monotonic() - started > BUSY_CARD_SECONDS:
                raise CardBusy(deployment_id)
            if time.monotonic() > deadline:
                raise StoreUnavailable(f"the card of {deployment_id} stayed locked")
            time.sleep(0.005)
        try:
            yield
        finally:
            with suppress(StoreUnavailable):  # it expires by itself
                self.kv.delete_if(key, token)

    def take_push(self, deployment_id: str, seconds: float) -> str | None:
        """One push of a card to Slack at a time, across processes: a token, or None while
        another push holds it (it lapses if its process dies)."""
        token = uuid.uuid4().hex
        return token if self.kv.add(self._key("card-push", deployment_id), token, seconds) else None

    def keep_push(self, deployment_id: str, token: str, seconds: float) -> bool:
        """Renew a push's lease; False when it lapsed (another push may hold it now)."""
        return self.kv.swap(self._key("card-push", deployment_id), token, token, seconds)

    def end_push(self, deployment_id: str, token: str) -> None:
        with suppress(StoreUnavailable):
            self.kv.delete_if(self._key("card-push", deployment_id), token)

    def queue_delivery(self, deployment_id: str, raw: str) -> None:
        """Keep a delivery for a card that is busy; it is applied in order by the next push."""
        self.kv.append(self._key("card-queue", deployment_id), raw, self.remember_seconds)

    def queued_deliveries(self, deployment_id: str) -> list[str]:
        """The deliveries waiting for a card, oldest first, taken off the queue."""
        return self.kv.take_all(self._key("card-queue", deployment_id))

    # --- user groups: members cached briefly, to spare Slack one call per click --------------

    def usergroup_members(self, group: str) -> frozenset[str] | None:
        raw = self.kv.get(self._key("usergroup", group))
        return frozenset(json.loads(raw)) if raw is not None else None

    def save_usergroup_members(self, group: str, members: frozenset[str], ttl: float) -> None:
        self.kv.put(self._key("usergroup", group), json.dumps(sorted(members)), ttl)

    def _key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
