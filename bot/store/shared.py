"""Everything the bot keeps, on one key-value backend: claims, cards, turns, and the members of
allowed user groups and the members deployers' emails name, cached briefly to spare Slack one
call per click or failure."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass

from bot.actions.claims import CLAIM_SECONDS, Claims
from bot.cards.store import CardStore
from bot.store.kv import REMEMBER_SECONDS, Keys, KeyValue, StoreUnavailable


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
        try:
            if (self.kv.ttl(self.key) or 0.0) < seconds:
                self.kv.put(self.key, "1", seconds)
        except StoreUnavailable:
            pass  # this process pauses all the same

    def left(self) -> float:
        """Seconds of the pause left; 0 when there is none (or the store cannot say)."""
        try:
            return self.kv.ttl(self.key) or 0.0
        except StoreUnavailable:
            return 0.0


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

    def save(self, request: str, what: str, ttl: float) -> None:
        self.kv.put(self.keys("approval", request), what, ttl)

    def load(self, request: str) -> str | None:
        if not (len(request) == 32 and request.isalnum() and request.isascii()):
            return None
        return self.kv.get(self.keys("approval", request))


@dataclass(frozen=True)
class Store:
    kv: KeyValue
    claims: Claims
    cards: CardStore
    turns: Turns
    usergroups: UserGroups
    deployers: DeployerMembers
    pauses: Pauses
    orders: Orders
    requests: Requests

    @classmethod
    def on(
        cls,
        kv: KeyValue,
        *,
        claim_seconds: float = CLAIM_SECONDS,
        remember_seconds: float = REMEMBER_SECONDS,
        keys: Keys | None = None,
    ) -> Store:
        keys = keys or Keys()
        return cls(
            kv,
            Claims(kv, keys, lock_seconds=claim_seconds, remember_seconds=remember_seconds),
            CardStore(kv, keys, remember_seconds=remember_seconds),
            Turns(kv, keys),
            UserGroups(kv, keys),
            DeployerMembers(kv, keys),
            Pauses(kv, keys),
            Orders(kv, keys),
            Requests(kv, keys),
        )

    @property
    def backend(self) -> str:
        """``redis`` or ``memory``."""
        return self.kv.name

    def ping(self) -> None:
        self.kv.ping()
