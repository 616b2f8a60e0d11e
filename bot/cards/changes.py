"""The card of a deployment: every change is written to its record first, then shown.

Three things change a card: a DeployHQ notification (``on_notification``), DeployHQ's record read
back (``on_record``), and an action on its failure (``on_action``). Each is applied to the
record under the card's lock (see ``card_rules`` for how a card moves), then handed to the
outbox, which pushes it to Slack off the request thread (``card_publisher`` draws it).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from bot.cards import rules as card_rules
from bot.cards.deliveries import Deliveries
from bot.cards.outbox import Outbox
from bot.cards.rules import Card
from bot.cards.store import WITHOUT_STORE, CardBusy, CardStore
from bot.deployhq.deployment import Deployment, Revision
from bot.words.buttons import ActionTarget
from bot.words.states import AutoDeploy, CardState

log = logging.getLogger(__name__)


class Cards:
    def __init__(self, store: CardStore, deliveries: Deliveries, outbox: Outbox) -> None:
        self.store = store
        self.deliveries = deliveries
        self.outbox = outbox

    def on_notification(self, deployment: Deployment, channel: str) -> str:
        """Record what a notification says; the card's push then shows it in Slack.

        Returns ``accepted`` (a new failure, to confirm and post), ``updated``, ``duplicate``
        (decided as the delivery is recorded), ``stale``, ``too-old``, ``ignored``, or
        ``queued`` when another process is changing the card right now: the delivery is then
        kept and applied, in order, by the card's next push; a request thread never waits.
        Raises ``StoreUnavailable``.
        """
        if not self.store.first_delivery(deployment.run_key, deployment.status):
            log.info("duplicate notification %s %s", deployment.run_key, deployment.status)
            return "duplicate"
        # A rollback's deployment: its failure's card follows it.
        card_id = self.store.followed(deployment.identifier) or deployment.identifier
        try:
            with self.store.card_lock(card_id, wait=False):
                result = self.deliveries.apply(deployment, channel, card_id)
        except CardBusy:
            raw = json.dumps({"channel": channel, "deployment": deployment.to_api()})
            self.store.queue_delivery(card_id, raw)
            result = "queued"
        if result in ("accepted", "updated", "queued"):
            self.outbox.show(card_id)
        return result

    def on_record(self, record: Deployment) -> bool:
        """Show DeployHQ's record of a carded deployment if it has moved on; True if it had."""
        moved = False
        with WITHOUT_STORE.step("card", record.identifier) as store:
            card_id = self.store.followed(record.identifier) or record.identifier
            with self.store.card_lock(card_id):
                if card_id != record.identifier:
                    moved = self.deliveries.follow_rollback(card_id, record)
                else:
                    card = self.store.card(record.identifier)
                    advanced = (
                        None if card is None else card_rules.advance(card, record, trusted=True)
                    )
                    moved = advanced is not None
                    if advanced is not None:
                        self.store.save_card(advanced)
        if store.missing or not moved:
            return False
        self.outbox.show(card_id)
        return True

    def on_action(
        self,
        target: ActionTarget,
        state: CardState,
        note: str,
        deployment: Deployment | None = None,
        *,
        rolled_back: Deployment | None = None,
    ) -> bool:
        """Show an action's progress on the card and ``note`` in its thread (see
        ``card_rules.acted``); ``rolled_back``: the new deployment a rollback queued, whose
        notifications update this card from now on. False when there is no card to show it
        on, so the caller can tell the person directly.
        """

        def act(card: Card) -> Card:
            if rolled_back is not None:
                self.store.follow(rolled_back.identifier, target.deployment)
            return card_rules.acted(card, target.run_key, state, note, deployment, rolled_back)

        return self._change(target.deployment, act)

    def on_note(self, deployment_id: str, note: str) -> bool:
        """One more note in the card's thread (a preview's outcome); False with no card."""
        return self._change(deployment_id, lambda card: card.noting(note))

    def on_auto_deploy(
        self,
        project: str,
        identifier: str,
        change: Callable[[AutoDeploy], AutoDeploy],
        note: str = "",
        card_id: str = "",
    ) -> bool:
        """Show a change of a server's or group's automatic deployments on every card of
        ``project`` that shows them, and ``note`` in the thread of ``card_id`` (the card it was
        asked from). False when that card could not show it, so the person is told directly."""
        none: list[Card] = []
        cards = WITHOUT_STORE.read("cards listed", lambda: self.store.project_cards(project), none)
        shown = False
        for each in dict.fromkeys([card_id, *(c.deployment.identifier for c in cards)]):
            said = note if each == card_id else ""

            def auto_deploy(card: Card, said: str = said) -> Card | None:
                auto = card.auto
                if auto is None or (auto.project, auto.identifier) != (project, identifier):
                    return None
                return card_rules.auto_deploy(card, change(auto), said)

            if each and self._change(each, auto_deploy):
                shown = shown or each == card_id
        return shown

    def on_rollback_target(
        self, target: ActionTarget, good: Deployment | None, record: Deployment
    ) -> None:
        """The Roll back button named another target than DeployHQ gives now: redraw the card
        with the one it gives (or none), back on the failure."""

        def redraw(card: Card) -> Card | None:
            if card.deployment.run_key != target.run_key:
                return None
            return card_rules.target_moved(card, good, record)

        self._change(target.deployment, redraw)

    def on_latest(self, target: ActionTarget, latest: Revision | None, record: Deployment) -> None:
        """The Deploy latest button named another commit than DeployHQ gives now: redraw the
        card with the one it gives, back on the failure."""

        def redraw(card: Card) -> Card | None:
            if card.deployment.run_key != target.run_key:
                return None
            return card_rules.latest_moved(card, latest, record)

        self._change(target.deployment, redraw)

    def _change(self, card_id: str, change: Callable[[Card], Card | None]) -> bool:
        """The card of ``card_id`` changed by ``change`` (None leaves it as it is), then pushed
        when it changed. False when there is no card, ``change`` left it, or the store did not
        answer (``WITHOUT_STORE`` says what that means)."""
        edited = self.store.edit(card_id, change)
        if edited is None:
            return False
        if edited[1]:
            self.outbox.show(card_id)
        return True

    def restore(self, record: Deployment, channel: str, ts: str) -> None:
        """Draw DeployHQ's record of a deployment into its card's message (``channel``,
        ``ts``) when the store lost the card: back on its failure, with its buttons; the thread
        is not told again who deployed it nor what changed. A card still kept is pushed as
        it stands."""
        with self.store.card_lock(record.identifier):
            if self.store.card(record.identifier) is None:
                run, state = record.run_key, card_rules.resting_state(record)
                card = Card(channel, record, state, ts=ts, mentioned=run, changes_told=run)
                self.store.save_card(card)
                self.store.list_card(card)
        self.outbox.show(record.identifier)

    def post_record(self, record: Deployment, channel: str) -> Card | None:
        """Post a card for DeployHQ's record, as a failure notification would (``notify``)."""
        with self.store.card_lock(record.identifier):
            self.store.save_card(Card(channel, record, card_rules.resting_state(record)))
        self.outbox.push_now(record.identifier)
        return self.store.card(record.identifier)
