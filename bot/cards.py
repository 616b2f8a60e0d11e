"""The card: the one Slack message that tracks a deployment, posted on failure, kept current.

Every change is first written to the card's record in the store, under the card's lock, and
then pushed to Slack by ``sync``. A push Slack refuses, or a process that dies before it, leaves
the record marked undrawn, and the reconciler pushes it again until it lands: nothing is lost.

DeployHQ's API is the arbiter of what a card shows. A failure notification is confirmed through
the API before Retry is offered, and the card shows the API's project, servers and revisions; a
deployment the account does not have gets no card. Notifications are applied only when newer
than the card, so duplicates and late deliveries change nothing.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot import failpoints, messages, metrics
from bot.background import Background
from bot.deployhq import DeployHQ, DeployHQError, deployment_page_url
from bot.deployments import FAILED, Deployment, last_good
from bot.routing import RetryTarget
from bot.store import Card, CardBusy, Store, StoreUnavailable

log = logging.getLogger(__name__)

# What the Web API client can raise: API errors, and network errors after its own retries.
SLACK_ERRORS = (SlackClientError, OSError)
# Errors that say this message can never be updated again: post a fresh card instead.
_MESSAGE_GONE = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})
DEFAULT_MAX_DELIVERY_AGE = timedelta(hours=24)
# How long a channel's refusal is remembered, to answer later deliveries with the fix.
CHANNEL_REFUSAL_SECONDS = 600.0
# One push of a card at a time. Its lease is renewed before each call to Slack, and a post is
# never retried inside the client (a 429 ends the push; the outbox comes back), so a lease of
# one call's timeout and this margin outlives any one call; a push whose process died frees
# the card that long after.
PUSH_MARGIN_SECONDS = 5.0
PUSH_ROUNDS = 5
# The card's identity in Slack's message metadata, so a post whose answer was lost is found.
CARD_EVENT = "deployhq_card"
# How far back in the channel a lost post is looked for.
HISTORY_LIMIT = 100
MISSING, UNREACHABLE = "missing", "unreachable"  # what DeployHQ said of a card's deployment


class NotTaken(Exception):
    """Slack did not take (or could not be asked about) part of a card: push it again later."""


class LookupFailed(Exception):
    """Slack could not be asked whether it has a post: nothing may be posted meanwhile."""


def slack_error(exc: BaseException) -> str:
    """A short reason, e.g. ``channel_not_found``, without tokens or bodies."""
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error") or f"HTTP {exc.response.status_code}")
    return type(exc).__name__


def how_to_fix(error: str, channel: str) -> str:
    """What an operator should do about a post Slack refused for its channel."""
    if error == "not_in_channel":
        return f"invite the bot to {channel} (in that channel: /invite @DeployHQ)"
    if error == "channel_not_found":
        return (
            f"the bot sees no channel {channel}; check SLACK_CHANNEL (or the webhook URL's "
            "?channel=), and invite the bot if the channel is private"
        )
    return ""


class Cards:
    def __init__(
        self,
        client: WebClient,
        store: Store,
        web_url: str,
        *,
        deployhq: DeployHQ | None = None,
        max_delivery_age: timedelta = DEFAULT_MAX_DELIVERY_AGE,
        lookups: Background | None = None,
        poster: WebClient | None = None,
        slack_timeout: float = 10.0,
    ) -> None:
        self.client = client
        # chat.postMessage has no idempotency key: its client never re-sends a post by itself
        # after a lost answer (only after a 429, which Slack did not take).
        self.poster = poster or client
        self.store = store
        self.web_url = web_url
        self.deployhq = deployhq
        self.max_delivery_age = max_delivery_age
        self.lookups = lookups  # where failure logs are looked up, off the Slack pool
        # How a changed record reaches Slack: now, in this thread, unless an outbox takes it.
        self.show: Callable[[str], object] = self.sync
        self._refused_channels: dict[str, tuple[str, float]] = {}
        self._push_token = threading.local()  # the push this thread holds
        self.push_seconds = slack_timeout + PUSH_MARGIN_SECONDS

    def page_url(self, deployment: Deployment) -> str:
        return deployment_page_url(
            self.web_url, deployment.project_permalink, deployment.identifier
        )

    # --- DeployHQ's notifications -------------------------------------------------------------

    def on_notification(self, deployment: Deployment, channel: str) -> str:
        """Record what a notification says; the card's push then shows it in Slack.

        Returns ``accepted`` (a new failure, to confirm and post), ``updated``, ``duplicate``
        (decided as the delivery is recorded), ``stale``, ``too-old``, ``ignored``, or
        ``queued`` when another process is changing the card right now: the delivery is then
        kept and applied, in order, by the card's next push; a request thread never waits.
        Raises ``StoreUnavailable``.
        """
        if not self.store.claim_notification(deployment.run_key, deployment.status):
            log.info("duplicate notification %s %s", deployment.run_key, deployment.status)
            return "duplicate"
        # A rollback's deployment: its failure's card follows it.
        card_id = self.store.followed(deployment.identifier) or deployment.identifier
        try:
            with self.store.card_lock(card_id, wait=False):
                result = self._apply(deployment, channel, card_id)
        except CardBusy:
            raw = json.dumps({"channel": channel, "deployment": deployment.to_api()})
            self.store.queue_delivery(card_id, raw)
            result = "queued"
        if result in ("accepted", "updated", "queued"):
            self.show(card_id)
        return result

    def _apply(self, deployment: Deployment, channel: str, card_id: str) -> str:
        """A delivery applied to its card's record (the card's lock held)."""
        if card_id != deployment.identifier:
            return "updated" if self._follow_rollback(card_id, deployment) else "stale"
        card = self.store.card(deployment.identifier)
        if card is None:
            if deployment.status != FAILED:
                return "ignored"  # only failures start a card
            if self._too_old(deployment):
                log.warning(
                    "not posting deployment %s: it failed at %s, longer ago than "
                    "DEPLOYHQ_MAX_DELIVERY_AGE",
                    deployment.identifier,
                    deployment.finished_at,
                )
                return "too-old"
            self.store.save_card(Card(channel, deployment, confirmed=False))
            return "accepted"
        advanced = self._advance(card, deployment, trusted=False)
        if advanced is None:
            log.info(
                "notification %s %s is older than its card",
                deployment.run_key,
                deployment.status,
            )
            return "stale"
        self.store.save_card(advanced)
        return "updated"

    def _apply_queued(self, card_id: str) -> None:
        """Deliveries that came while the card was busy, oldest first (the lock held)."""
        for raw in self.store.queued_deliveries(card_id):
            data = json.loads(raw)
            deployment = Deployment.from_api(data["deployment"])
            result = self._apply(deployment, str(data["channel"]), card_id)
            log.info("queued notification %s %s: %s", deployment.run_key, deployment.status, result)

    def post_record(self, record: Deployment, channel: str) -> Card | None:
        """Post a card for DeployHQ's record, as a failure notification would (``notify``)."""
        state: messages.CardState = messages.Failed()
        if record.status != FAILED:
            state = messages.Progress()
        with self.store.card_lock(record.identifier):
            self.store.save_card(Card(channel, record, state))
        self.sync(record.identifier)
        return self.store.card(record.identifier)

    def channel_refusal(self, channel: str) -> str:
        """Why Slack recently refused a post to ``channel``, with the fix; "" when it did not."""
        reason, until = self._refused_channels.get(channel, ("", 0.0))
        return reason if until > datetime.now(UTC).timestamp() else ""

    def post_without_store(self, deployment: Deployment, channel: str) -> None:
        """With the store down a failure is still posted (a duplicate is a smaller harm than a
        failure nobody hears of), from DeployHQ's record when it can be read."""
        record = self._confirm(Card(channel, deployment, confirmed=False))
        if record == MISSING:
            return
        confirmed = isinstance(record, Deployment)
        shown = record if isinstance(record, Deployment) else deployment
        state: messages.CardState = (
            messages.Failed() if shown.status == FAILED else messages.Progress()
        )
        message = messages.deployment_card(
            shown, state, page_url=self.page_url(shown), confirmed=confirmed, rollback_to=None
        )
        try:
            self.poster.chat_postMessage(
                channel=channel, unfurl_links=False, unfurl_media=False, **message
            )
        except SLACK_ERRORS as exc:
            log.error("could not post the card of %s: %s", deployment.identifier, slack_error(exc))

    # --- DeployHQ's own record ----------------------------------------------------------------

    def on_record(self, record: Deployment) -> bool:
        """Show DeployHQ's record of a carded deployment if it has moved on; True if it had."""
        try:
            card_id = self.store.followed(record.identifier) or record.identifier
            with self.store.card_lock(card_id):
                if card_id != record.identifier:
                    moved = self._follow_rollback(card_id, record)
                else:
                    card = self.store.card(record.identifier)
                    advanced = None if card is None else self._advance(card, record, trusted=True)
                    moved = advanced is not None
                    if advanced is not None:
                        self.store.save_card(advanced)
        except StoreUnavailable:
            log.warning("store unavailable; card of %s not updated", record.identifier)
            return False
        if moved:
            self.show(card_id)
        return moved

    def _follow_rollback(self, card_of: str, deployment: Deployment) -> bool:
        """A later state of the deployment a rollback queued, recorded on the failure's card
        (the card's lock held)."""
        card = self.store.card(card_of)
        if card is None or card.rolled_back is None:
            return False
        if deployment.progress <= card.rolled_back.progress:
            return False
        state = card.state
        if isinstance(state, messages.RolledBack):
            state = replace(state, status=deployment.status)
        note = ":rewind: The rollback: " + messages.event_note(deployment)
        self.store.save_card(_changed(card, rolled_back=deployment, state=state).noting(note))
        return True

    def _advance(self, card: Card, deployment: Deployment, *, trusted: bool) -> Card | None:
        """The card moved on to ``deployment``, or None when that is not newer than the card."""
        if deployment.progress <= card.deployment.progress:
            return None
        state: messages.CardState
        if deployment.status == FAILED:
            state = messages.Failed(again=True, retried_by=card.retried_by)
        else:
            state = messages.Progress(card.retried_by, card.retried_at)
        # A failure offers Retry only once DeployHQ's record confirms it.
        confirmed = trusted or deployment.status != FAILED
        if trusted:
            deployment = _keep_names(deployment, card.deployment)
        return _changed(card, deployment=deployment, state=state, confirmed=confirmed).noting(
            messages.event_note(deployment)
        )

    # --- retries --------------------------------------------------------------------------------

    def on_retry(
        self,
        target: RetryTarget,
        state: messages.CardState,
        note: str,
        deployment: Deployment | None = None,
        *,
        rolled_back: Deployment | None = None,
    ) -> bool:
        """Show a retry's (or rollback's) progress on the card and ``note`` in its thread.

        ``rolled_back``: the new deployment a rollback queued; the card follows it from now on.

        The card is redrawn only while it still shows the failure the retry is for; a card
        that has moved on (say, to ``running``) keeps its state and gets the note. False when
        there is no card to show it on, so the caller can tell the person directly.
        """
        try:
            with self.store.card_lock(target.deployment):
                card = self.store.card(target.deployment)
                if card is None:
                    return False
                if isinstance(state, messages.Retried):
                    card = replace(card, retried_by=state.user_id, retried_at=state.at)
                if rolled_back is not None:
                    self.store.follow(rolled_back.identifier, target.deployment)
                    card = replace(card, rolled_back=rolled_back)
                if (
                    deployment is not None
                    and card.deployment.run_key != target.run_key
                    and deployment.progress < card.deployment.progress
                ):
                    # A late answer: the card has moved on from the failure acted on (DeployHQ's
                    # later notifications came first), so it keeps the newer state and only
                    # says who acted.
                    if isinstance(card.state, messages.Progress) and card.retried_by:
                        card = replace(
                            card, state=messages.Progress(card.retried_by, card.retried_at)
                        )
                    self.store.save_card(_changed(card).noting(note))
                elif card.deployment.run_key == target.run_key or deployment is not None:
                    if deployment is not None:
                        card = replace(card, deployment=_keep_names(deployment, card.deployment))
                    self.store.save_card(_changed(card, state=state).noting(note))
                else:
                    self.store.save_card(card.noting(note))
        except StoreUnavailable:
            log.warning("store unavailable; card of %s not updated", target.deployment)
            return False
        self.show(target.deployment)
        return True

    def on_rollback_target(
        self, target: RetryTarget, good: Deployment | None, record: Deployment
    ) -> None:
        """The Roll back button named another target than DeployHQ gives now: redraw the card
        with the one it gives (or none), back on the failure."""
        try:
            with self.store.card_lock(target.deployment):
                card = self.store.card(target.deployment)
                if card is None or card.deployment.run_key != target.run_key:
                    return
                state = messages.Failed() if record.status == FAILED else messages.Progress()
                self.store.save_card(_changed(card, state=state, rollback_to=good))
        except StoreUnavailable:
            log.warning("store unavailable; card of %s not redrawn", target.deployment)
            return
        self.show(target.deployment)

    # --- Slack ----------------------------------------------------------------------------------

    def sync(self, deployment_id: str) -> bool:
        """Bring the card in Slack up to its record: apply deliveries that waited, confirm,
        draw, post the thread notes. One push per card at a time, across processes; the card's
        lock is held only to read and write its record, never across a call to Slack or
        DeployHQ, so a slow or rate-limited Slack holds up nothing else.

        True when nothing is left to do; False when Slack has yet to take something (or
        another push is under way): the outbox and the reconciler come back.
        """
        try:
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
        except StoreUnavailable:
            log.warning("store unavailable; card of %s left for the reconciler", deployment_id)
            return False

    def _push(self, deployment_id: str) -> None:
        """One round: what waited, the confirmation, the draw, the notes; ``NotTaken`` when
        Slack did not take something."""
        with self.store.card_lock(deployment_id):
            self._apply_queued(deployment_id)
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
                    current = _confirmed(current, confirmed)
                    self.store.save_card(current)
                card = current
        if not card.drawn:
            card = self._draw(card)
        if card.drawn and card.ts is not None and card.notes:  # the card first, then its notes
            card = self._post_notes(card)
        if card.drawn and not card.notes and card.confirmed and card.deployment.status == FAILED:
            self._explain(card)

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
        if card.ts is None and self._too_old(record):
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
                gone = reason in _MESSAGE_GONE
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

    def _message(self, card: Card) -> messages.Message:
        return messages.deployment_card(
            card.deployment,
            card.state,
            page_url=self.page_url(card.deployment),
            confirmed=card.confirmed,
            rollback_to=card.rollback_to,
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
            if _refused(exc):  # Slack answered and did not take it: nothing to look for
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
            card = replace(
                current, channel=str(response["channel"]), ts=str(response["ts"]), posting=False
            )
            self.store.save_card(card)
        return self._drawn(card, version=posted)

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
        """Post the waiting thread replies in order, each once: a note is taken off the record
        before it is posted, and put back only when Slack refused it."""
        identifier = card.deployment.identifier
        while True:
            with self.store.card_lock(identifier):
                current = self.store.card(identifier)
                # A note follows the card: none is posted while Slack shows an older version
                # (the push draws the newer one first, then comes back for its notes).
                if current is None or not current.notes or current.ts is None or not current.drawn:
                    return current or card
                note = current.notes[0]
                card = replace(current, notes=current.notes[1:])
                self.store.save_card(card)
            self._keep_push(identifier)
            try:
                self.poster.chat_postMessage(
                    channel=card.channel,
                    thread_ts=card.ts,
                    unfurl_links=False,
                    unfurl_media=False,
                    **messages.notice(note),
                )
            except SLACK_ERRORS as exc:
                metrics.SLACK_ERRORS.labels("chat.postMessage", slack_error(exc)).inc()
                log.warning(
                    "could not reply in the thread of card %s: %s", card.ts, slack_error(exc)
                )
                if _refused(exc):
                    with self.store.card_lock(identifier):
                        current = self.store.card(identifier) or card
                        card = replace(current, notes=(note, *current.notes))
                        self.store.save_card(card)
                raise NotTaken(identifier) from None

    # --- why it failed ------------------------------------------------------------------------

    def _explain(self, card: Card) -> None:
        """Once per failure, after the card is out: the failing step and its log go to the
        thread, and the last good deployment on its servers gives the card Roll back."""
        if self.deployhq is None or card.explained == card.deployment.run_key:
            return
        identifier = card.deployment.identifier
        try:  # claimed on the record first, so two pushes never look it up twice
            with self.store.card_lock(identifier):
                current = self.store.card(identifier)
                if current is None or current.explained == current.deployment.run_key:
                    return
                card = replace(current, explained=current.deployment.run_key)
                self.store.save_card(card)
        except StoreUnavailable:
            return
        if self.lookups is not None:
            self.lookups.run("looking up why a deployment failed", self._explain_now, card)
        else:
            self._explain_now(card)

    def _explain_now(self, card: Card) -> None:
        assert self.deployhq is not None
        deployment = card.deployment
        project = deployment.project_permalink
        try:
            # DeployHQ's record, read to confirm the card, names the failing step: only its
            # log is read here (else the record is read again), and the last good deployment
            # from the deployments to the same servers.
            if card.confirmed and deployment.steps_read:
                found = self.deployhq.step_log(project, deployment)
            else:
                found = self.deployhq.failure_log(project, deployment.identifier)
            good = last_good(self.deployhq.history(project, to=deployment.parent), deployment)
        except DeployHQError as error:
            log.warning("could not look up deployment %s: %s", deployment.identifier, error)
            if error.kind == "too-large":
                return  # it will not shrink: not looked up again
            try:  # let a later push try again
                with self.store.card_lock(deployment.identifier):
                    current = self.store.card(deployment.identifier)
                    if current is not None and current.explained == deployment.run_key:
                        self.store.save_card(replace(current, explained=""))
            except StoreUnavailable:
                pass
            return
        try:
            with self.store.card_lock(deployment.identifier):
                current = self.store.card(deployment.identifier)
                if current is None or current.deployment.run_key != deployment.run_key:
                    return
                if found is not None:
                    current = current.noting(messages.failure_log(*found))
                if good is not None:
                    current = _changed(current, rollback_to=good)
                self.store.save_card(current)
        except StoreUnavailable:
            return
        self.show(deployment.identifier)

    def _too_old(self, deployment: Deployment) -> bool:
        moment = deployment.finished_at
        return moment is not None and datetime.now(UTC) - moment > self.max_delivery_age


def _keep_names(record: Deployment, shown: Deployment) -> Deployment:
    """DeployHQ's answers to retry and list calls may omit the project's name; keep ours."""
    if record.project_name == record.project_permalink and shown.project_name:
        return replace(record, project_name=shown.project_name)
    return record


def _changed(card: Card, **changes: object) -> Card:
    """The card with ``changes`` to what it shows: a new version, not yet drawn."""
    return replace(card, **changes, version=card.version + 1, drawn=False)  # type: ignore[arg-type]


def _confirmed(card: Card, record: Deployment) -> Card:
    """The card confirmed by DeployHQ's record (never older than what it shows)."""
    if record.progress < card.deployment.progress:
        return replace(card, confirmed=True)
    state = card.state
    if record.status != FAILED:
        state = messages.Progress(card.retried_by, card.retried_at)
    return _changed(card, deployment=record, state=state, confirmed=True)


def _refused(exc: BaseException) -> bool:
    """Slack answered and did not take the call (an error it named, or a 429): as opposed to
    a lost answer or a server error, after which it may have."""
    if not isinstance(exc, SlackApiError):
        return False
    status = exc.response.status_code
    return status == 429 or (status < 500 and exc.response.get("ok") is False)
