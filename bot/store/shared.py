"""Everything the bot keeps, on one key-value backend: claims, cards, turns, and the members of
allowed user groups and the members deployers' emails name, cached briefly to spare Slack one
call per click or failure."""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from bot.store.kv import REMEMBER_SECONDS, Keys, KeyValue, WithoutStore

# What a missing store means to what this layer keeps for the others (caches, DeployHQ's pause,
# holds, the ledger): a read finds nothing, a write is not kept, and the caller goes on without
# it. Quiet (DEBUG): a store that stays down is reported by /healthz and the layers above.
WITHOUT_STORE = WithoutStore(
    "store",
    {
        "pause": "the pause holds this process only, and reads as none",
        "answer": "DeployHQ is read afresh, and its answer not kept",
        "hold": "a hold not dropped lapses by itself",
        "ledger": "who paused what is not recorded, and reads as unknown (DeployHQ's record "
        "still says whether it is on)",
        "heard": "when the bot last heard from Slack or DeployHQ reads as never",
    },
    level=logging.DEBUG,
)

# Who paused what is kept this long: a pause older than that still shows, by DeployHQ's record.
LEDGER_SECONDS = 30 * 86400.0


class Turns:
    """Who does a periodic job: one caller across processes per period."""

    def __init__(self, kv: KeyValue, keys: Keys) -> None:
        self.kv = kv
        self.keys = keys

    def take(self, name: str, seconds: float) -> str | None:
        """A token for one caller, across processes, per ``seconds``; None for the others."""
        token = uuid.uuid4().hex
        return token if self.kv.add(self.keys("turn", name), token, seconds) else None

    def keep(self, name: str, token: str, seconds: float) -> bool:
        """Renew a turn still held; False when it lapsed (another process may have it now)."""
        return self.kv.swap(self.keys("turn", name), token, token, seconds)


class UserGroups:
    """The members of Slack user groups, each kept for a little while."""

    def __init__(self, kv: KeyValue, keys: Keys) -> None:
        self.kv = kv
        self.keys = keys

    def members(self, group: str) -> frozenset[str] | None:
        raw = self.kv.get(self.keys("usergroup", group))
        return frozenset(json.loads(raw)) if raw is not None else None

    def save(self, group: str, members: frozenset[str], ttl: float) -> None:
        self.kv.put(self.keys("usergroup", group), json.dumps(sorted(members)), ttl)


class DeployerMembers:
    """Which Slack member, if any, has a deployer's email: hits and misses, each kept for a
    while, under a digest of the address (no email in a key)."""

    def __init__(self, kv: KeyValue, keys: Keys) -> None:
        self.kv = kv
        self.keys = keys

    def _key(self, email: str) -> str:
        return self.keys("deployer", hashlib.sha256(email.lower().encode()).hexdigest()[:32])

    def member(self, email: str) -> str | None:
        """The member id found for ``email``; "" when none was; None when not looked up."""
        return self.kv.get(self._key(email))

    def save(self, email: str, member: str, ttl: float) -> None:
        self.kv.put(self._key(email), member, ttl)


class Pauses:
    """DeployHQ's ``Retry-After``, shared by every process: kept as a key that expires when the
    pause ends, by the store's clock (no process's own)."""

    def __init__(self, kv: KeyValue, keys: Keys) -> None:
        self.kv = kv
        self.key = keys("deployhq-pause")

    def hold(self, seconds: float) -> None:
        """Pause every process for ``seconds`` (a pause already longer is kept)."""
        with WITHOUT_STORE.step("pause"):
            if (self.kv.ttl(self.key) or 0.0) < seconds:
                self.kv.put(self.key, "1", seconds)

    def left(self) -> float:
        """Seconds of the pause left; 0 when there is none (or the store cannot say)."""
        return WITHOUT_STORE.read("pause", lambda: self.kv.ttl(self.key) or 0.0, 0.0)


class Orders:
    """What a private confirm would do, kept here under a random token that its button carries,
    so no field of it can be edited on its way back through Slack."""

    def __init__(self, kv: KeyValue, keys: Keys) -> None:
        self.kv = kv
        self.keys = keys

    def save(self, order: str, ttl: float) -> str:
        token = uuid.uuid4().hex
        self.kv.put(self.keys("order", token), order, ttl)
        return token

    def load(self, token: str) -> str | None:
        if not (len(token) == 32 and token.isalnum() and token.isascii()):
            return None
        return self.kv.get(self.keys("order", token))

    def keep_run(self, key: str, run: str, *, open_: bool = True) -> None:
        """Keep what a confirmed deploy (claim ``key``) has shown in its channel, listed among
        the open ones (for the reconciler) until its outcome is known."""
        index = self.keys("orders-open")
        self.kv.put_listed(self.keys("order-run", key), run, REMEMBER_SECONDS, index, key, open_)

    def run(self, key: str) -> str | None:
        return self.kv.get(self.keys("order-run", key))

    def open_runs(self) -> set[str]:
        """The confirmed deploys whose outcome the channel has not been told yet."""
        return self.kv.members(self.keys("orders-open"))

    def close_run(self, key: str) -> None:
        self.kv.remove_member(self.keys("orders-open"), key)


class Requests:
    """Requests for approval, under the id their Approve and Deny buttons carry (the token of
    the claim that waits): what the button stands for is looked up here, never read from it."""

    def __init__(self, kv: KeyValue, keys: Keys) -> None:
        self.kv = kv
        self.keys = keys

    def save(self, request: str, what: str, ttl: float, *, listed: bool | None = None) -> None:
        """Keep a request; ``listed`` True puts it among the open requests that have a channel
        message of their own (for the reconciler), False takes it off, None leaves the list."""
        key = self.keys("approval", request)
        if listed is None:
            self.kv.put(key, what, ttl)
        else:
            self.kv.put_listed(key, what, ttl, self.keys("approvals-open"), request, listed)

    def load(self, request: str) -> str | None:
        if not (len(request) == 32 and request.isalnum() and request.isascii()):
            return None
        return self.kv.get(self.keys("approval", request))

    def save_post(self, request: str, where: str, ttl: float) -> None:
        """Keep where a request's own message is, kept apart from the request itself (so a
        decision taken meanwhile is never overwritten), and list it among the open ones."""
        self.kv.put_listed(
            self.keys("approval-post", request),
            where,
            ttl,
            self.keys("approvals-open"),
            request,
            True,
        )

    def load_post(self, request: str) -> str | None:
        return self.kv.get(self.keys("approval-post", request))

    def open_posted(self) -> set[str]:
        """The open requests shown by a channel message of their own (no card shows them)."""
        return self.kv.members(self.keys("approvals-open"))

    def close(self, request: str) -> None:
        self.kv.remove_member(self.keys("approvals-open"), request)


class Answers:
    """DeployHQ's answers kept briefly (a branch's recent commits): one process reads each at a
    time, and a burst of callers waits for its answer instead of asking again."""

    def __init__(self, kv: KeyValue, keys: Keys) -> None:
        self.kv = kv
        self.keys = keys

    def kept(self, *name: str) -> str | None:
        return WITHOUT_STORE.read("answer", lambda: self.kv.get(self.keys("answer", *name)), None)

    def fetch(self, name: tuple[str, ...], read: Callable[[], str], ttl: float, wait: float) -> str:
        """The answer kept under ``name``, else ``read()``'s, kept for ``ttl`` seconds. While
        another caller is reading it, wait for its answer (at most ``wait`` seconds, then read
        it here). ``read``'s errors are raised; a store that cannot answer is read around."""
        key, lock = self.keys("answer", *name), self.keys("answer-lock", *name)
        token = uuid.uuid4().hex
        with WITHOUT_STORE.step("answer", name[0]) as store:
            kept = self.kv.get(key)
            if kept is not None:
                return kept
            if not self.kv.add(lock, token, wait):
                return self._wait_for(key, lock, wait) or read()
            kept = self.kv.get(key)  # kept by a reader that let go just before
        if store.missing:
            return read()
        try:
            if kept is not None:
                return kept
            answer = read()
            with WITHOUT_STORE.step("answer", name[0]):
                self.kv.put(key, answer, ttl)
            return answer
        finally:
            with WITHOUT_STORE.step("answer", name[0]):
                self.kv.delete_if(lock, token)

    def _wait_for(self, key: str, lock: str, wait: float) -> str | None:
        """The answer another caller is reading, once kept; None when it let go without one."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            time.sleep(0.05)
            reading = self.kv.get(lock) is not None  # looked at first: then the answer
            kept = self.kv.get(key)
            if kept is not None:
                return kept
            if not reading:
                break  # its reader failed, or died: read it here
        return None

    def keep(self, name: tuple[str, ...], answer: str, ttl: float) -> None:
        with WITHOUT_STORE.step("answer", name[0]):
            self.kv.put(self.keys("answer", *name), answer, ttl)

    def forget(self, *name: str) -> None:
        with WITHOUT_STORE.step("answer", name[0]):
            self.kv.delete(self.keys("answer", *name))


class Holds:
    """One of a kind at a time, across processes (a preview per action): a hold that lapses
    unless renewed, so one whose process died frees itself."""

    def __init__(self, kv: KeyValue, keys: Keys) -> None:
        self.kv = kv
        self.keys = keys

    def take(self, name: str, value: str, ttl: float) -> str | None:
        """None when this caller holds ``name`` now; else what the holder keeps there."""
        key = self.keys("hold", name)
        if self.kv.add(key, value, ttl):
            return None
        return self.kv.get(key) or "{}"

    def keep(self, name: str, value: str, ttl: float) -> None:
        self.kv.put(self.keys("hold", name), value, ttl)

    def drop(self, name: str) -> None:
        with WITHOUT_STORE.step("hold", name):
            self.kv.delete(self.keys("hold", name))


class AutoDeployLedger:
    """Who last turned a server's or group's automatic deployments off or on from Slack, and
    when (DeployHQ's record stays the truth of whether they are on); and when the bot last
    heard from DeployHQ and Slack, for the App Home and doctor."""

    def __init__(self, kv: KeyValue, keys: Keys) -> None:
        self.kv = kv
        self.keys = keys

    def record(self, project: str, identifier: str, *, on: bool, by: str, at: float) -> None:
        entry = json.dumps({"on": on, "by": by, "at": at}, separators=(",", ":"))
        with WITHOUT_STORE.step("ledger", identifier):
            self.kv.put(self.keys("auto-deploy-by", project, identifier), entry, LEDGER_SECONDS)

    def entry(self, project: str, identifier: str) -> tuple[bool, str, float] | None:
        """``(on, by, at)`` as last recorded; None when nobody changed it from Slack lately."""
        key = self.keys("auto-deploy-by", project, identifier)
        raw = WITHOUT_STORE.read("ledger", lambda: self.kv.get(key), None, identifier)
        try:
            data = json.loads(raw or "null")
            return bool(data["on"]), str(data["by"]), float(data["at"])
        except (ValueError, KeyError, TypeError):
            return None

    def heard(self, what: str, at: float) -> None:
        """``what`` (``notification``, ``home``) reached the bot at ``at``."""
        with WITHOUT_STORE.step("heard", what):
            self.kv.put(self.keys("heard", what), str(at), LEDGER_SECONDS)

    def last_heard(self, what: str) -> float | None:
        raw = WITHOUT_STORE.read("heard", lambda: self.kv.get(self.keys("heard", what)), None)
        try:
            return float(raw) if raw else None
        except ValueError:
            return None


@dataclass(frozen=True)
class Store:
    kv: KeyValue
    keys: Keys
    turns: Turns
    usergroups: UserGroups
    deployers: DeployerMembers
    pauses: Pauses
    orders: Orders
    requests: Requests
    answers: Answers
    holds: Holds
    ledger: AutoDeployLedger

    @classmethod
    def on(
        cls,
        kv: KeyValue,
        *,
        keys: Keys | None = None,
    ) -> Store:
        keys = keys or Keys()
        return cls(
            kv,
            keys,
            Turns(kv, keys),
            UserGroups(kv, keys),
            DeployerMembers(kv, keys),
            Pauses(kv, keys),
            Orders(kv, keys),
            Requests(kv, keys),
            Answers(kv, keys),
            Holds(kv, keys),
            AutoDeployLedger(kv, keys),
        )

    @property
    def backend(self) -> str:
        """``redis`` or ``memory``."""
        return self.kv.name

    def ping(self) -> None:
        self.kv.ping()
