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

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot import messages, metrics
from bot.background import Background
from bot.deployhq import DeployHQ, DeployHQError, deployment_page_url
from bot.deployments import FAILED, Deployment, last_good
from bot.routing import RetryTarget
from bot.store import Card, Store, StoreUnavailable

log = logging.getLogger(__name__)

# What the Web API client can raise: API errors, and network errors after its own retries.
SLACK_ERRORS = (SlackClientError, OSError)
# Errors that say this message can never be updated again: post a fresh card instead.
_MESSAGE_GONE = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})
DEFAULT_MAX_DELIVERY_AGE = timedelta(hours=24)
# How long a channel's refusal is remembered, to answer later deliveries with the fix.
CHANNEL_REFUSAL_SECONDS = 600.0


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
    ) -> None:
        self.client = client
        self.store = store
        self.web_url = web_url
        self.deployhq = deployhq
        self.max_delivery_age = max_delivery_age
        self.lookups = lookups  # where failure logs are looked up, off the Slack pool
        # How a changed record reaches Slack: now, in this thread, unless an outbox takes it.
        self.show: Callable[[str], object] = self.sync
        self._refused_channels: dict[str, tuple[str, float]] = {}

    def page_url(self, deployment: Deployment) -> str:
        return deployment_page_url(
            self.web_url, deployment.project_permalink, deployment.identifier
        )

    # --- DeployHQ's notifications -------------------------------------------------------------

    def on_notification(self, deployment: Deployment, channel: str) -> str:
        """Record what a notification says; ``sync`` then shows it in Slack.

        Returns ``accepted`` (a new failure, to confirm and post), ``updated``, ``duplicate``,
        ``stale``, ``too-old`` or ``ignored``; raises ``StoreUnavailable``.
        """
        if not self.store.claim_notification(deployment.run_key, deployment.status):
            log.info("duplicate notification %s %s", deployment.run_key, deployment.status)
            return "duplicate"
        followed = self.store.followed(deployment.identifier)
        if followed is not None:  # a rollback's deployment: its failure's card follows it
            return "updated" if self._follow_rollback(followed, deployment) else "stale"
        with self.store.card_lock(deployment.identifier):
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
        card = self._confirm(Card(channel, deployment, confirmed=False))
        if card is not None:
            self._draw(card)

    # --- DeployHQ's own record ----------------------------------------------------------------

    def on_record(self, record: Deployment) -> bool:
        """Show DeployHQ's record of a carded deployment if it has moved on; True if it had."""
        followed = self.store.followed(record.identifier)
        if followed is not None:
            return self._follow_rollback(followed, record)
        try:
            with self.store.card_lock(record.identifier):
                card = self.store.card(record.identifier)
                advanced = None if card is None else self._advance(card, record, trusted=True)
                if advanced is None:
                    return False
                self.store.save_card(advanced)
        except StoreUnavailable:
            log.warning("store unavailable; card of %s not updated", record.identifier)
            return False
        self.show(record.identifier)
        return True

    def _follow_rollback(self, card_of: str, deployment: Deployment) -> bool:
        """A later state of the deployment a rollback queued, shown on the failure's card."""
        with self.store.card_lock(card_of):
            card = self.store.card(card_of)
            if card is None or card.rolled_back is None:
                return False
            if deployment.progress <= card.rolled_back.progress:
                return False
            state = card.state
            if isinstance(state, messages.RolledBack):
                state = replace(state, status=deployment.status)
            note = ":rewind: The rollback: " + messages.event_note(deployment)
            self.store.save_card(
                replace(card, rolled_back=deployment, state=state, drawn=False).noting(note)
            )
        self.show(card_of)
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
        return replace(
            card, deployment=deployment, state=state, confirmed=confirmed, drawn=False
        ).noting(messages.event_note(deployment))

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
                if card.deployment.run_key == target.run_key or deployment is not None:
                    if deployment is not None:
                        card = replace(card, deployment=_keep_names(deployment, card.deployment))
                    card = replace(card, state=state, drawn=False)
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
                self.store.save_card(replace(card, state=state, rollback_to=good, drawn=False))
        except StoreUnavailable:
            log.warning("store unavailable; card of %s not redrawn", target.deployment)
            return
        self.show(target.deployment)

    # --- Slack ----------------------------------------------------------------------------------

    def sync(self, deployment_id: str) -> bool:
        """Bring the card in Slack up to its record: confirm, draw, post the thread notes.

        True when nothing is left to do; False when Slack has yet to take something.
        """
        try:
            with self.store.card_lock(deployment_id):
                card = self.store.card(deployment_id)
                if card is None:
                    return True
                if not card.confirmed:
                    confirmed = self._confirm(card)
                    if confirmed is None:
                        self.store.drop_card(deployment_id)
                        return True
                    card = confirmed
                if not card.drawn:
                    card = self._draw(card)
                if card.drawn and card.notes:
                    card = self._post_notes(card)
                self.store.save_card(card)
                shown = card.drawn and not card.notes
        except StoreUnavailable:
            log.warning("store unavailable; card of %s left for the reconciler", deployment_id)
            return False
        if shown and card.confirmed and card.deployment.status == FAILED:
            self._explain(card)
        return shown

    def _confirm(self, card: Card) -> Card | None:
        """The card with DeployHQ's record; None when DeployHQ has no such deployment."""
        if self.deployhq is None:
            return replace(card, confirmed=True)
        told = card.deployment
        try:
            record = self.deployhq.deployment(told.project_permalink, told.identifier)
        except DeployHQError as error:
            if error.status == 404:
                log.warning(
                    "DeployHQ has no deployment %s in project %s: its notification gets no card",
                    told.identifier,
                    told.project_permalink,
                )
                return None
            log.warning(
                "could not confirm deployment %s with DeployHQ (%s); posting it unconfirmed",
                told.identifier,
                error,
            )
            return card
        if card.ts is None and self._too_old(record):
            log.warning("not posting deployment %s: DeployHQ says it is too old", told.identifier)
            return None
        state = card.state
        if record.status != FAILED:
            state = messages.Progress(card.retried_by, card.retried_at)
        return replace(card, deployment=record, state=state, confirmed=True, drawn=False)

    def _draw(self, card: Card) -> Card:
        """Update the card in place (or post it): the card marked drawn when Slack took it."""
        deployment = card.deployment
        message = messages.deployment_card(
            deployment,
            card.state,
            page_url=self.page_url(deployment),
            confirmed=card.confirmed,
            rollback_to=card.rollback_to,
        )
        if card.ts is not None:
            try:
                self.client.chat_update(channel=card.channel, ts=card.ts, **message)
                return replace(card, drawn=True)
            except SLACK_ERRORS as exc:
                reason = slack_error(exc)
                metrics.SLACK_ERRORS.labels("chat.update", reason).inc()
                gone = reason in _MESSAGE_GONE
                log.warning(
                    "could not update card %s of deployment %s (%s); %s",
                    card.ts,
                    deployment.identifier,
                    reason,
                    "posting a fresh one" if gone else "it will be tried again",
                )
                if not gone:
                    return card  # Slack may take it later: the reconciler tries again
        try:
            response = self.client.chat_postMessage(
                channel=card.channel, unfurl_links=False, unfurl_media=False, **message
            )
        except SLACK_ERRORS as exc:
            reason = slack_error(exc)
            metrics.SLACK_ERRORS.labels("chat.postMessage", reason).inc()
            fix = how_to_fix(reason, card.channel)
            log.error(
                "could not post the card of deployment %s to %s: %s%s",
                deployment.identifier,
                card.channel,
                reason,
                f": {fix}" if fix else "; it will be tried again",
            )
            if fix:
                until = datetime.now(UTC).timestamp() + CHANNEL_REFUSAL_SECONDS
                self._refused_channels[card.channel] = (f"{reason}: {fix}", until)
            return card
        self._refused_channels.pop(card.channel, None)
        log.info("posted the card of deployment %s as %s", deployment.identifier, response["ts"])
        return replace(card, channel=str(response["channel"]), ts=str(response["ts"]), drawn=True)

    def _post_notes(self, card: Card) -> Card:
        """Post the waiting thread replies in order; those Slack refuses wait for the next try."""
        notes = list(card.notes)
        while notes:
            try:
                self.client.chat_postMessage(
                    channel=card.channel,
                    thread_ts=card.ts,
                    unfurl_links=False,
                    unfurl_media=False,
                    **messages.notice(notes[0]),
                )
            except SLACK_ERRORS as exc:
                metrics.SLACK_ERRORS.labels("chat.postMessage", slack_error(exc)).inc()
                log.warning(
                    "could not reply in the thread of card %s: %s", card.ts, slack_error(exc)
                )
                break
            notes.pop(0)
        return replace(card, notes=tuple(notes))

    # --- why it failed ------------------------------------------------------------------------

    def _explain(self, card: Card) -> None:
        """Once per failure, after the card is out: the failing step and its log go to the
        thread, and the last good deployment on its servers gives the card Roll back."""
        if self.deployhq is None or card.explained == card.deployment.run_key:
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
            found = self.deployhq.failure_log(project, deployment.identifier)
            good = last_good(self.deployhq.history(project), deployment)
        except DeployHQError as error:
            log.warning("could not look up deployment %s: %s", deployment.identifier, error)
            return
        try:
            with self.store.card_lock(deployment.identifier):
                current = self.store.card(deployment.identifier)
                if current is None or current.deployment.run_key != deployment.run_key:
                    return
                current = replace(current, explained=deployment.run_key)
                if found is not None:
                    current = current.noting(messages.failure_log(*found))
                if good is not None:
                    current = replace(current, rollback_to=good, drawn=False)
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
