"""The card: the one Slack message that tracks a deployment, posted on failure, kept current.

Every change to a card happens under its lock in the store, and a notification is applied
only when it is newer than what the card shows, so duplicates and late deliveries change
nothing. Each change also leaves a short reply in the card's thread, the audit trail. If the
message cannot be updated (deleted, or Slack refuses), a fresh one is posted and remembered.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot import messages
from bot.background import Background
from bot.deployhq import DeployHQ, DeployHQError, deployment_page_url
from bot.deployments import FAILED, Deployment
from bot.routing import RetryTarget
from bot.store import Card, Store, StoreUnavailable

log = logging.getLogger(__name__)

# What the Web API client can raise: API errors, and network errors after its own retries.
SLACK_ERRORS = (SlackClientError, OSError)


class NotDelivered(Exception):
    """Slack took neither an update nor a fresh post; the event should be reported as failed."""


def slack_error(exc: BaseException) -> str:
    """A short reason, e.g. ``channel_not_found``, without tokens or bodies."""
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error") or f"HTTP {exc.response.status_code}")
    return type(exc).__name__


def _how_to_fix(error: str, channel: str) -> str:
    """What an operator should do about a post Slack refused for its channel."""
    if error == "not_in_channel":
        return f": invite the bot to {channel} (in that channel: /invite @DeployHQ)"
    if error == "channel_not_found":
        return (
            f": the bot sees no channel {channel}; check SLACK_CHANNEL (or the webhook URL's "
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
        background: Background | None = None,
    ) -> None:
        self.client = client
        self.store = store
        self.web_url = web_url
        self.deployhq = deployhq
        # Why a deployment failed is looked up after the notification is out, never before.
        self.background = background or Background(max_workers=2)

    def page_url(self, deployment: Deployment) -> str:
        return deployment_page_url(
            self.web_url, deployment.project_permalink, deployment.identifier
        )

    # --- DeployHQ's notifications -------------------------------------------------------------

    def on_notification(self, deployment: Deployment, channel: str) -> str:
        """Act on a notification: ``posted``, ``updated``, ``duplicate``, ``stale``, ``ignored``.

        Raises ``NotDelivered`` when Slack took nothing, so the delivery can fail visibly.
        """
        try:
            if not self.store.claim_notification(deployment.run_key, deployment.status):
                log.info("duplicate notification %s %s", deployment.run_key, deployment.status)
                return "duplicate"
            try:
                with self.store.card_lock(deployment.identifier):
                    return self._apply(deployment, channel)
            except NotDelivered:
                self._forget(deployment)
                raise
        except StoreUnavailable:
            # Without the store a failure is still posted: a duplicate is a smaller harm than
            # a failure nobody hears about. Later statuses need the card's place, so they wait.
            log.warning("store unavailable; deployment %s handled without it", deployment.run_key)
            if deployment.status != FAILED:
                return "ignored"
            self._post(deployment, channel, messages.Failed())
            return "posted"

    def _apply(self, deployment: Deployment, channel: str) -> str:
        card = self.store.card(deployment.identifier)
        if card is None:
            if deployment.status != FAILED:
                return "ignored"  # only failures start a card
            card = self._post(deployment, channel, messages.Failed())
            self.store.save_card(card)
            self._explain(card)
            return "posted"
        if deployment.progress <= card.deployment.progress:
            log.info(
                "notification %s %s is older than its card", deployment.run_key, deployment.status
            )
            return "stale"
        state: messages.CardState
        if deployment.status == FAILED:
            state = messages.Failed(again=True, retried_by=card.retried_by)
        else:
            state = messages.Progress(card.retried_by, card.retried_at)
        card = self._redraw(replace(card, deployment=deployment), state)
        self.store.save_card(card)
        self._reply(card, messages.event_note(deployment))
        if deployment.status == FAILED:
            self._explain(card)
        return "updated"

    # --- retries --------------------------------------------------------------------------------

    def on_retry(
        self,
        target: RetryTarget,
        state: messages.CardState,
        note: str,
        deployment: Deployment | None = None,
    ) -> bool:
        """Show a retry's progress on the card and ``note`` in its thread.

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
                if card.deployment.run_key == target.run_key:
                    if deployment is not None:
                        card = replace(card, deployment=deployment)
                    card = self._redraw(card, state)
                self.store.save_card(card)
                self._reply(card, note)
                return True
        except StoreUnavailable:
            log.warning("store unavailable; card of %s not updated", target.deployment)
        except NotDelivered:
            pass  # logged where Slack refused
        return False

    # --- Slack ----------------------------------------------------------------------------------

    def _post(self, deployment: Deployment, channel: str, state: messages.CardState) -> Card:
        message = messages.deployment_card(deployment, state, page_url=self.page_url(deployment))
        try:
            response = self.client.chat_postMessage(
                channel=channel, unfurl_links=False, unfurl_media=False, **message
            )
        except SLACK_ERRORS as exc:
            reason = slack_error(exc) + _how_to_fix(slack_error(exc), channel)
            log.error(
                "could not post the card of deployment %s to %s: %s",
                deployment.identifier,
                channel,
                reason,
            )
            raise NotDelivered(reason) from exc
        log.info("posted the card of deployment %s as %s", deployment.identifier, response["ts"])
        return Card(str(response["channel"]), str(response["ts"]), deployment)

    def _redraw(self, card: Card, state: messages.CardState) -> Card:
        """Update the card in place, or post it afresh when it cannot be updated."""
        deployment = card.deployment
        message = messages.deployment_card(deployment, state, page_url=self.page_url(deployment))
        try:
            self.client.chat_update(channel=card.channel, ts=card.ts, **message)
            return card
        except SLACK_ERRORS as exc:
            log.warning(
                "could not update card %s of deployment %s (%s); posting a fresh one",
                card.ts,
                deployment.identifier,
                slack_error(exc),
            )
        fresh = self._post(deployment, card.channel, state)
        return replace(card, channel=fresh.channel, ts=fresh.ts)

    def _reply(self, card: Card, mrkdwn: str) -> None:
        """A short note in the card's thread; losing one is logged, never fatal."""
        try:
            self.client.chat_postMessage(
                channel=card.channel,
                thread_ts=card.ts,
                unfurl_links=False,
                unfurl_media=False,
                **messages.notice(mrkdwn),
            )
        except SLACK_ERRORS as exc:
            log.warning("could not reply in the thread of card %s: %s", card.ts, slack_error(exc))

    # --- why it failed ------------------------------------------------------------------------

    def _explain(self, card: Card) -> None:
        if self.deployhq is not None:
            self.background.run("looking up why a deployment failed", self._explain_now, card)

    def _explain_now(self, card: Card) -> None:
        assert self.deployhq is not None
        deployment = card.deployment
        try:
            found = self.deployhq.failure_log(deployment.project_permalink, deployment.identifier)
        except DeployHQError as error:
            log.warning(
                "could not learn why deployment %s failed: %s", deployment.identifier, error
            )
            return
        if found is not None:
            self._reply(card, messages.failure_log(*found))

    def _forget(self, deployment: Deployment) -> None:
        try:
            self.store.forget_notification(deployment.run_key, deployment.status)
        except StoreUnavailable:
            log.warning("store unavailable; a redelivery of %s may be ignored", deployment.run_key)
