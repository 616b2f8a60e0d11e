"""DeployHQ's notifications applied to card records: only failures start a card, and a later
status is applied only when newer than the card. The caller holds the card's lock."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

from bot.cards import rules as card_rules
from bot.cards.rules import Card
from bot.cards.store import CardStore
from bot.deployhq.deployment import FAILED, Deployment

log = logging.getLogger(__name__)

DEFAULT_MAX_DELIVERY_AGE = timedelta(hours=24)


class Deliveries:
    def __init__(
        self, store: CardStore, *, max_delivery_age: timedelta = DEFAULT_MAX_DELIVERY_AGE
    ) -> None:
        self.store = store
        self.max_delivery_age = max_delivery_age

    def apply(self, deployment: Deployment, channel: str, card_id: str) -> str:
        """A delivery applied to its card's record: ``accepted`` (a new failure), ``updated``,
        ``stale``, ``too-old`` or ``ignored``."""
        if card_id != deployment.identifier:
            return "updated" if self.follow_rollback(card_id, deployment) else "stale"
        card = self.store.card(deployment.identifier)
        if card is None:
            if deployment.status != FAILED:
                return "ignored"  # only failures start a card
            if self.too_old(deployment):
                log.warning(
                    "not posting deployment %s: it failed at %s, longer ago than "
                    "DEPLOYHQ_MAX_DELIVERY_AGE",
                    deployment.identifier,
                    deployment.finished_at,
                )
                return "too-old"
            self.store.save_card(Card(channel, deployment, confirmed=False))
            return "accepted"
        advanced = card_rules.advance(card, deployment, trusted=False)
        if advanced is None:
            log.info(
                "notification %s %s is older than its card",
                deployment.run_key,
                deployment.status,
            )
            return "stale"
        self.store.save_card(advanced)
        return "updated"

    def apply_queued(self, card_id: str) -> None:
        """Deliveries that came while the card was busy, oldest first."""
        for raw in self.store.queued_deliveries(card_id):
            data = json.loads(raw)
            deployment = Deployment.from_api(data["deployment"])
            result = self.apply(deployment, str(data["channel"]), card_id)
            log.info("queued notification %s %s: %s", deployment.run_key, deployment.status, result)

    def follow_rollback(self, card_of: str, deployment: Deployment) -> bool:
        """A later state of the deployment a rollback queued, recorded on the failure's card."""
        card = self.store.card(card_of)
        moved = None if card is None else card_rules.follow_rollback(card, deployment)
        if moved is None:
            return False
        self.store.save_card(moved)
        return True

    def too_old(self, deployment: Deployment) -> bool:
        moment = deployment.finished_at
        return moment is not None and datetime.now(UTC) - moment > self.max_delivery_age
