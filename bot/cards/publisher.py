"""A card's record shown in Slack: posted once, then updated, then its thread notes.

Every change is first written to the card's record (see ``cards``); a push brings Slack up to
it. One push per card at a time, across processes, on a lease renewed before each call to
Slack; the card's lock is held only to read and write its record, never across a call. A push
Slack refuses, or a process that dies before it, leaves the record marked undrawn, and the
outbox and the reconciler push it again until it lands: nothing is lost.

DeployHQ's API is the arbiter of what a card shows: a failure notification is confirmed through
the API before Retry is offered, and a deployment the account does not have gets no card.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from datetime import UTC, datetime

from slack_sdk import WebClient

from bot import metrics
from bot.cards import rules as card_rules
from bot.cards.deliveries import Deliveries
from bot.cards.rules import Card
from bot.cards.store import WITHOUT_STORE, CardStore
from bot.deployhq.client import DeployHQ, DeployHQError, deployment_page_url
from bot.deployhq.deployment import Deployment
from bot.messages.card import deployment_card
from bot.messages.text import Message, notes_message
from bot.runtime import failpoints
from bot.slack.client import MESSAGE_GONE, SLACK_ERRORS, how_to_fix, refused, slack_error

log = logging.getLogger(__name__)

# How long a channel's refusal is remembered, to answer later deliveries with the fix.
CHANNEL_REFUSAL_SECONDS = 600.0
# One push of a card at a time. Its lease is renewed before each call to Slack, and a post is
# never retried inside the client (a 429 ends the push; the outbox comes back), so a lease of
# one call's timeout and this margin outlives any one call; a push whose process died frees
# the card that long after.
PUSH_MARGIN_SECONDS = 5.0
PUSH_ROUNDS = 5
# A card's waiting thread notes are posted together, in one message, this many at most.
NOTES_AT_ONCE = 10
# The card's identity in Slack's message metadata, so a post whose answer was lost is found.
CARD_EVENT = "deployhq_card"
# How far back in the channel a lost post is looked for.
HISTORY_LIMIT = 100
MISSING, UNREACHABLE = "missing", "unreachable"  # what DeployHQ said of a card's deployment


class NotTaken(Exception):
    """Slack did not take (or could not be asked about) part of a card: push it again later."""


class LookupFailed(Exception):
    """Slack could not be asked whether it has a post: nothing may be posted meanwhile."""


class Publisher:
    def __init__(
        self,
        client: WebClient,
        store: CardStore,
        deliveries: Deliveries,
        web_url: str,
        *,
        deployhq: DeployHQ | None = None,
        poster: WebClient | None = None,
        slack_timeout: float = 10.0,
    ) -> None:
        self.client = client
        # chat.postMessage has no idempotency key: its client never re-sends a post by itself
        # after a lost answer (only after a 429, which Slack did not take).
        self.poster = poster or client
        self.store = store
        self.deliveries = deliveries  # those that waited for a busy card are applied first
        self.web_url = web_url
        self.deployhq = deployhq  # confirms a card from DeployHQ's record before Retry shows
        self._refused_channels: dict[str, tuple[str, float]] = {}
        self._push_token = threading.local()  # the push this thread holds
        self.push_seconds = slack_timeout + PUSH_MARGIN_SECONDS

    def page_url(self, deployment: Deployment) -> str:
        return deployment_page_url(
            self.web_url, deployment.project_permalink, deployment.identifier
        )

    def channel_refusal(self, channel: str) -> str:
        """Why Slack recently refused a post to ``channel``, with the fix; "" when it did not."""
        reason, until = self._refused_channels.get(channel, ("", 0.0))
        return reason if until > datetime.now(UTC).timestamp() else ""

    def post_unrecorded(self, deployment: Deployment, channel: str) -> None:
        """With the store down a failure is still posted (a duplicate is a smaller harm than a
        failure nobody hears of), from DeployHQ's record when it can be read."""
        record = self._confirm(Card(channel, deployment, confirmed=False))
        if record == MISSING:
            return
        confirmed = isinstance(record, Deployment)
        shown = record if isinstance(record, Deployment) else deployment
        message = deployment_card(
            shown,
            card_rules.resting_state(shown),
            page_url=self.page_url(shown),
            confirmed=confirmed,
            rollback_to=None,
        )
        try:
            self.poster.chat_postMessage(
                channel=channel, unfurl_links=False, unfurl_media=False, **message
            )
        except SLACK_ERRORS as exc:
            log.error("could not post the card of %s: %s", deployment.identifier, slack_error(exc))

    def sync(self, deployment_id: str) -> bool:
        """Bring the card in Slack up to its record: apply deliveries that waited, confirm,
        draw, post the thread notes. One push per card at a time, across processes; the card's
        lock is held only to read and write its record, never across a call to Slack or
        DeployHQ, so a slow or rate-limited Slack holds up nothing else.

        True when nothing is left to do; False when Slack has yet to take something (or
        another push is under way): the outbox and the reconciler come back.
        """
        with WITHOUT_STORE.step("push", deployment_id):
            push = self.store.take_push(deployment_id, self.push_seconds)
            if push is None:
                return False
            self._push_token.value = push
            try:
                # Changes made while this push talked to Slack are pushed by it too, in turn.
                for _ in range(PUSH_ROUNDS):
                    try:
                        self._push(deployment_id)
                    except NotTaken:
                        return False
                    card = self.store.card(deployment_id)
                    if card is None or (card.drawn and not card.notes):
                        return True
                return False
            finally:
                self.store.end_push(deployment_id, push)
        return False

    def _push(self, deployment_id: str) -> None:
        """One round: what waited, the confirmation, the draw, the notes; ``NotTaken`` when
        Slack did not take something."""
        with self.store.card_lock(deployment_id):
            self.deliveries.apply_queued(deployment_id)
            card = self.store.card(deployment_id)
        if card is None:
            return
        if not card.confirmed:
            confirmed = self._confirm(card)
            with self.store.card_lock(deployment_id):
                current = self.store.card(deployment_id)
                if current is None:
                    return
                if confirmed == MISSING and current.ts is None:
                    self.store.drop_card(deployment_id)
                    return
                if isinstance(confirmed, Deployment) and not current.confirmed:
                    current = card_rules.confirmed(current, confirmed)
                    self.store.save_card(current)
                card = current
        if not card.drawn:
            card = self._draw(card)
        if card.drawn and card.ts is not None and card.notes:  # the card first, then its notes
            self._post_notes(card)

    def _confirm(self, card: Card) -> Deployment | str:
        """DeployHQ's record of the card's deployment; ``"missing"`` when DeployHQ has no
        such deployment (or it is too old to post), ``"unreachable"`` when it cannot say now."""
        told = card.deployment
        if self.deployhq is None:
            return told
        try:
            record = self.deployhq.deployment(told.project_permalink, told.identifier)
        except DeployHQError as error:
            if error.status == 404:
                log.warning(
                    "DeployHQ has no deployment %s in project %s: its notification gets no card",
                    told.identifier,
                    told.project_permalink,
                )
                return MISSING
            log.warning(
                "could not confirm deployment %s with DeployHQ (%s); posting it unconfirmed",
                told.identifier,
                error,
            )
            return UNREACHABLE
        if card.ts is None and self.deliveries.too_old(record):
            log.warning("not posting deployment %s: DeployHQ says it is too old", told.identifier)
            return MISSING
        return record

    def _keep_push(self, deployment_id: str) -> None:
        """Renew this push's lease before a call to Slack; ``NotTaken`` if it lapsed (another
        push may be under way now, so this one must not touch Slack)."""
        if not self.store.keep_push(deployment_id, self._push_token.value, self.push_seconds):
            log.warning("the push of card %s outlived its lease; it stops", deployment_id)
            raise NotTaken(deployment_id)

    def _draw(self, card: Card) -> Card:
        """Show the card's record in Slack (update, or post once): the card as saved after."""
        identifier = card.deployment.identifier
        if card.ts is None and card.posting:
            # An earlier post's answer was lost (or its process died): Slack may have it.
            self._keep_push(identifier)
            try:
                found = self._find_post(card)
            except LookupFailed:
                raise NotTaken(card.deployment.identifier) from None
            with self.store.card_lock(identifier):
                current = self.store.card(identifier) or card
                card = replace(current, ts=found, posting=False)
                self.store.save_card(card)
            return self._draw(card)  # the record as it is now, where Slack has it (or anew)
        if card.ts is not None:
            self._keep_push(identifier)
            try:
                self.client.chat_update(channel=card.channel, ts=card.ts, **self._message(card))
            except SLACK_ERRORS as exc:
                reason = slack_error(exc)
                metrics.SLACK_ERRORS.labels("chat.update", reason).inc()
                gone = reason in MESSAGE_GONE
                log.warning(
                    "could not update card %s of deployment %s (%s); %s",
                    card.ts,
                    identifier,
                    reason,
                    "posting a fresh one" if gone else "it will be tried again",
                )
                if not gone:
                    raise NotTaken(identifier) from None  # Slack may take it later
                with self.store.card_lock(identifier):
                    current = self.store.card(identifier) or card
                    card = replace(current, ts=None)
                    self.store.save_card(card)
            else:
                return self._drawn(card)
        return self._post(card)

    def _message(self, card: Card) -> Message:
        return deployment_card(
            card.deployment,
            card.state,
            page_url=self.page_url(card.deployment),
            confirmed=card.confirmed,
            rollback_to=card.rollback_to,
            latest=card.latest,
            running=card.rolled_back or card.deployment,
            aborted=card.aborted,
            undoes=card.undoes,
            adds=card.adds,
            auto=card.auto,
        )

    def _post(self, card: Card) -> Card:
        """Post the card once, as its record is now."""
        identifier = card.deployment.identifier
        with self.store.card_lock(identifier):
            current = self.store.card(identifier)
            if current is None or current.ts is not None:
                return current or card
            card = replace(current, posting=True)  # from here a lost answer is looked for
            self.store.save_card(card)
        posted = card.version
        message = self._message(card)
        self._keep_push(identifier)
        try:
            response = self.poster.chat_postMessage(
                channel=card.channel,
                unfurl_links=False,
                unfurl_media=False,
                metadata={"event_type": CARD_EVENT, "event_payload": {"deployment": identifier}},
                **message,
            )
        except SLACK_ERRORS as exc:
            reason = slack_error(exc)
            metrics.SLACK_ERRORS.labels("chat.postMessage", reason).inc()
            fix = how_to_fix(reason, card.channel)
            log.error(
                "could not post the card of deployment %s to %s: %s%s",
                identifier,
                card.channel,
                reason,
                f": {fix}" if fix else "; it will be tried again",
            )
            if fix:
                until = datetime.now(UTC).timestamp() + CHANNEL_REFUSAL_SECONDS
                self._refused_channels[card.channel] = (f"{reason}: {fix}", until)
            if refused(exc):  # Slack answered and did not take it: nothing to look for
                with self.store.card_lock(identifier):
                    current = self.store.card(identifier) or card
                    card = replace(current, posting=False)
                    self.store.save_card(card)
            raise NotTaken(identifier) from None
        failpoints.reach("posted")  # Slack has it; its ts is not saved yet
        self._refused_channels.pop(card.channel, None)
        log.info("posted the card of deployment %s as %s", identifier, response["ts"])
        with self.store.card_lock(identifier):
            current = self.store.card(identifier) or card
            # Where Slack has it, and (unless it changed meanwhile) that Slack shows it: one
            # write, not two.
            card = replace(
                current,
                channel=str(response["channel"]),
                ts=str(response["ts"]),
                posting=False,
                drawn=current.drawn or current.version == posted,
            )
            self.store.save_card(card)
            self.store.list_card(card)
        return card

    def _drawn(self, card: Card, version: int | None = None) -> Card:
        """Mark the card drawn if what Slack now shows is still its latest version."""
        identifier = card.deployment.identifier
        shown = card.version if version is None else version
        with self.store.card_lock(identifier):
            current = self.store.card(identifier) or card
            if current.version == shown and current.ts == card.ts:
                current = replace(current, drawn=True)
                self.store.save_card(current)
        return current

    def _find_post(self, card: Card) -> str | None:
        """The ts of this card's message in its channel, found by its metadata; None when
        Slack has none; ``LookupFailed`` when Slack cannot be asked now."""
        try:
            response = self.client.conversations_history(
                channel=card.channel, include_all_metadata=True, limit=HISTORY_LIMIT
            )
        except SLACK_ERRORS as exc:
            metrics.SLACK_ERRORS.labels("conversations.history", slack_error(exc)).inc()
            log.warning(
                "could not look for the lost post of card %s: %s",
                card.deployment.identifier,
                slack_error(exc),
            )
            raise LookupFailed(card.deployment.identifier) from exc
        for message in response.get("messages") or []:
            metadata = message.get("metadata") or {}
            payload = metadata.get("event_payload") or {}
            if (
                metadata.get("event_type") == CARD_EVENT
                and payload.get("deployment") == card.deployment.identifier
            ):
                log.info("found the lost post of card %s", card.deployment.identifier)
                return str(message["ts"])
        return None

    def _post_notes(self, card: Card) -> Card:
        """Post the waiting thread replies in order, each once, in one message (a section
        each, at most ``NOTES_AT_ONCE``): the notes are taken off the record before they are
        posted, and put back only when Slack refused them."""
        identifier = card.deployment.identifier
        while True:
            with self.store.card_lock(identifier):
                current = self.store.card(identifier)
                # A note follows the card: none is posted while Slack shows an older version
                # (the push draws the newer one first, then comes back for its notes).
                if current is None or not current.notes or current.ts is None or not current.drawn:
                    return current or card
                notes = current.notes[:NOTES_AT_ONCE]
                card = replace(current, notes=current.notes[NOTES_AT_ONCE:])
                self.store.save_card(card)
            self._keep_push(identifier)
            try:
                self.poster.chat_postMessage(
                    channel=card.channel,
                    thread_ts=card.ts,
                    unfurl_links=False,
                    unfurl_media=False,
                    **notes_message(notes),
                )
            except SLACK_ERRORS as exc:
                metrics.SLACK_ERRORS.labels("chat.postMessage", slack_error(exc)).inc()
                log.warning(
                    "could not reply in the thread of card %s: %s", card.ts, slack_error(exc)
                )
                if refused(exc):
                    with self.store.card_lock(identifier):
                        current = self.store.card(identifier) or card
                        card = replace(current, notes=(*notes, *current.notes))
                        self.store.save_card(card)
                raise NotTaken(identifier) from None
