"""Cards in the store: each deployment's card record, its lock and push lease, the deliveries
seen, the deliveries waiting for a busy card, and which deployment a card follows.

The record's JSON is the stored format (see ``card_states`` for its states): a field is added
only with a default for records that lack it, and none is renamed.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from bot.cards.rules import Card
from bot.deployhq import commits
from bot.deployhq.commits import Summary
from bot.deployhq.deployment import Deployment, Revision
from bot.store.kv import REMEMBER_SECONDS, Keys, KeyValue, StoreUnavailable, WithoutStore
from bot.words import states as card_states

# A card's lock covers a read and a write of its record (no Slack or DeployHQ call is made
# while it is held); holding it longer means the holder died.
# What a missing store means to the cards, decided here: a card's record stays as it was (it is
# not changed, and nothing new is shown of it now), and the reconciler, the next notification or
# the next push brings it up to date once the store answers. Whoever asked for the change falls
# back as its own step says: an action's outcome is told to the person directly, a webhook is
# answered 503 (DeployHQ sends it again), the Home shows the store's problem.
WITHOUT_STORE = WithoutStore(
    "cards",
    {
        "card": "the card is not changed now; the reconciler brings it up to date",
        "cards listed": "no other card of the project is changed now",
        "lock": "the card's lock expires by itself",
        "push": "the card is left for the reconciler to push",
        "home": "the Home shows the store's problem, and no open cards",
    },
)
CARD_LOCK_SECONDS = 5.0
CARD_LOCK_WAIT_SECONDS = 10.0
# A request thread queues its change rather than wait longer: a holder's own reads and writes
# take milliseconds, but a busy machine can stretch them.
BUSY_CARD_SECONDS = 0.25


class CardBusy(Exception):
    """Another process is changing this card's record right now."""


def card_to_json(card: Card) -> str:
    return json.dumps(
        {
            "channel": card.channel,
            "ts": card.ts,
            "deployment": card.deployment.to_api(),
            "state": card_states.to_json(card.state),
            "confirmed": card.confirmed,
            "drawn": card.drawn,
            "notes": list(card.notes),
            "retried_by": card.retried_by,
            "retried_at": card.retried_at.timestamp() if card.retried_at else None,
            "explained": card.explained,
            "rollback_to": card.rollback_to.to_api() if card.rollback_to else None,
            "rolled_back": card.rolled_back.to_api() if card.rolled_back else None,
            "version": card.version,
            "posting": card.posting,
            # Added later: stored only when set, so older records are written back as read.
            **({"latest": commits.to_json(card.latest)} if card.latest else {}),
            **({"aborted": card_states.to_json(card.aborted)} if card.aborted else {}),
            **({"mentioned": card.mentioned} if card.mentioned else {}),
            **({"changes_told": card.changes_told} if card.changes_told else {}),
            **({"undoes": card.undoes.to_json()} if card.undoes else {}),
            **({"adds": card.adds.to_json()} if card.adds else {}),
            **({"auto": card_states.auto_to_json(card.auto)} if card.auto else {}),
        }
    )


def card_from_json(raw: str) -> Card:
    data = json.loads(raw)
    retried_at = data.get("retried_at")
    return Card(
        channel=str(data["channel"]),
        deployment=Deployment.from_api(data["deployment"], steps=True),
        state=card_states.from_json(data.get("state") or {"kind": card_states.Failed.TAG}),
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
        latest=_revision(data.get("latest")),
        aborted=card_states.from_json(data["aborted"]) if data.get("aborted") else None,
        mentioned=str(data.get("mentioned") or ""),
        changes_told=str(data.get("changes_told") or ""),
        undoes=Summary.from_json(data.get("undoes")),
        adds=Summary.from_json(data.get("adds")),
        auto=card_states.auto_from_json(data.get("auto")),
    )


def _revision(data: Any) -> Revision | None:
    if not isinstance(data, dict) or not data.get("ref"):
        return None
    return Revision(str(data["ref"]), str(data.get("message") or ""), str(data.get("author") or ""))


def _deployment_or_none(data: Any) -> Deployment | None:
    return Deployment.from_api(data) if data else None


class CardStore:
    def __init__(
        self, kv: KeyValue, keys: Keys, *, remember_seconds: float = REMEMBER_SECONDS
    ) -> None:
        self.kv = kv
        self.keys = keys
        self.remember_seconds = remember_seconds

    # --- deliveries: one per (run of a deployment, status) -----------------------------------

    def first_delivery(self, run_key: str, status: str) -> bool:
        """True the first time this event is seen; False for a duplicate delivery."""
        return self.kv.add(self.keys("notified", run_key, status), "1", self.remember_seconds)

    def queue_delivery(self, deployment_id: str, raw: str) -> None:
        """Keep a delivery for a card that is busy; it is applied in order by the next push."""
        self.kv.append(self.keys("card-queue", deployment_id), raw, self.remember_seconds)

    def queued_deliveries(self, deployment_id: str) -> list[str]:
        """The deliveries waiting for a card, oldest first, taken off the queue."""
        return self.kv.take_all(self.keys("card-queue", deployment_id))

    # --- records: deployment -> its card -----------------------------------------------------

    def card(self, deployment_id: str) -> Card | None:
        raw = self.kv.get(self.keys("card", deployment_id))
        return card_from_json(raw) if raw else None

    def save_card(self, card: Card) -> None:
        """Keep the card, and list it for the reconciler while anything about it is open."""
        identifier = card.deployment.identifier
        self.kv.put_listed(
            self.keys("card", identifier),
            card_to_json(card),
            self.remember_seconds,
            self.keys("cards-open"),
            identifier,
            listed=not card.settled,
        )

    def list_card(self, card: Card) -> None:
        """List a newly posted card under its project (the App Home reads them, and a change
        of automatic deployments finds the cards that show it); the projects too."""
        project = card.deployment.project_permalink
        self.kv.add_member(self.keys("projects"), project)
        self.kv.add_member(self.keys("project-cards", project), card.deployment.identifier)

    def projects(self) -> set[str]:
        """The projects the bot has posted cards for."""
        return self.kv.members(self.keys("projects"))

    def project_cards(self, project: str) -> list[Card]:
        """The cards of ``project`` still kept; the ones that have lapsed are unlisted."""
        found = []
        for identifier in sorted(self.kv.members(self.keys("project-cards", project))):
            card = self.card(identifier)
            if card is None:
                self.kv.remove_member(self.keys("project-cards", project), identifier)
            else:
                found.append(card)
        return found

    def drop_card(self, deployment_id: str) -> None:
        self.kv.delete(self.keys("card", deployment_id))
        self.kv.remove_member(self.keys("cards-open"), deployment_id)

    def open_cards(self) -> set[str]:
        """Deployments whose card is not settled (see ``Card.settled``)."""
        return self.kv.members(self.keys("cards-open"))

    def follow(self, deployment_id: str, card_of: str) -> None:
        """Notifications of ``deployment_id`` (a rollback's) update the card of ``card_of``."""
        self.kv.put(self.keys("follow", deployment_id), card_of, self.remember_seconds)

    def followed(self, deployment_id: str) -> str | None:
        """The deployment whose card follows ``deployment_id``, if one does."""
        return self.kv.get(self.keys("follow", deployment_id))

    # --- who may change a record, and who may push it to Slack -------------------------------

    @contextmanager
    def card_lock(self, deployment_id: str, *, wait: bool = True) -> Iterator[None]:
        """Serialise every change to one card's record, across processes, so the newest state
        wins. Held only for a read and a write of the store: never across a call to Slack or
        DeployHQ. ``wait=False`` (a request thread): ``CardBusy`` unless it is free within
        ``BUSY_CARD_SECONDS`` (another holder's own reads and writes take milliseconds)."""
        key = self.keys("card-lock", deployment_id)
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
            with WITHOUT_STORE.step("lock", deployment_id):
                self.kv.delete_if(key, token)

    def take_push(self, deployment_id: str, seconds: float) -> str | None:
        """One push of a card to Slack at a time, across processes: a token, or None while
        another push holds it (it lapses if its process dies)."""
        token = uuid.uuid4().hex
        return token if self.kv.add(self.keys("card-push", deployment_id), token, seconds) else None

    def keep_push(self, deployment_id: str, token: str, seconds: float) -> bool:
        """Renew a push's lease; False when it lapsed (another push may hold it now)."""
        return self.kv.swap(self.keys("card-push", deployment_id), token, token, seconds)

    def end_push(self, deployment_id: str, token: str) -> None:
        with WITHOUT_STORE.step("lock", deployment_id):
            self.kv.delete_if(self.keys("card-push", deployment_id), token)

    def edit(self, card_id: str, change: Callable[[Card], Card | None]) -> tuple[Card, bool] | None:
        """The card of ``card_id`` changed by ``change`` under its lock and saved (``change``
        returns None to leave it as it is): the card as it now stands, and whether it changed.
        None when there is no card, ``change`` left it, or the store did not answer."""
        with WITHOUT_STORE.step("card", card_id), self.card_lock(card_id):
            card = self.card(card_id)
            changed = None if card is None else change(card)
            if card is None or changed is None:
                return None
            if changed != card:
                self.save_card(changed)
            return changed, changed != card
        return None
