"""The card: the one Slack message that tracks a deployment, posted on failure, kept current."""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot import messages
from bot.deployhq import deployment_page_url
from bot.deployments import FAILED, Deployment
from bot.store import Card, Store, StoreUnavailable

log = logging.getLogger(__name__)

# What the Web API client can raise: API errors, and network errors after its own retries.
SLACK_ERRORS = (SlackClientError, OSError)


class NotDelivered(Exception):
    """Slack did not take the notification; the delivery should be reported as failed."""


def slack_error(exc: BaseException) -> str:
    """A short reason, e.g. ``channel_not_found``, without tokens or bodies."""
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error") or f"HTTP {exc.response.status_code}")
    return type(exc).__name__


class Cards:
    def __init__(self, client: WebClient, store: Store, web_url: str) -> None:
        self.client = client
        self.store = store
        self.web_url = web_url

    def page_url(self, deployment: Deployment) -> str:
        return deployment_page_url(
            self.web_url, deployment.project_permalink, deployment.identifier
        )

    def on_notification(self, deployment: Deployment, channel: str) -> str:
        """Act on a DeployHQ notification; returns what was done (for the webhook's answer)."""
        if deployment.status != FAILED:
            return "ignored"
        try:
            fresh = self.store.claim_notification(deployment.run_key, deployment.status)
        except StoreUnavailable:
            # A duplicate post is a smaller harm than a failure nobody hears about.
            log.warning(
                "store unavailable; posting deployment %s without duplicate check",
                deployment.identifier,
            )
            fresh, remembered = True, False
        else:
            remembered = True
        if not fresh:
            log.info("duplicate notification for deployment %s ignored", deployment.run_key)
            return "duplicate"
        message = messages.deployment_card(
            deployment, messages.Failed(), page_url=self.page_url(deployment)
        )
        try:
            response = self.client.chat_postMessage(
                channel=channel, unfurl_links=False, unfurl_media=False, **message
            )
        except SLACK_ERRORS as exc:
            log.error(
                "could not post failure of deployment %s to %s: %s",
                deployment.identifier,
                channel,
                slack_error(exc),
            )
            if remembered:
                self._forget(deployment)
            raise NotDelivered(slack_error(exc)) from exc
        card = Card(str(response["channel"]), str(response["ts"]), deployment)
        try:
            self.store.save_card(card)
        except StoreUnavailable:
            log.warning("store unavailable; card of deployment %s not remembered", card.ts)
        log.info("posted failure of deployment %s as %s", deployment.identifier, card.ts)
        return "posted"

    def show(
        self, deployment_id: str, state: messages.CardState, deployment: Deployment | None = None
    ) -> bool:
        """Redraw a deployment's card in ``state``; False when there is no card to redraw.

        ``deployment`` is fresher data from DeployHQ, when the caller has it.
        """
        try:
            card = self.store.card(deployment_id)
        except StoreUnavailable:
            log.warning("store unavailable; card of deployment %s not updated", deployment_id)
            return False
        if card is None:
            return False
        current = deployment or card.deployment
        message = messages.deployment_card(current, state, page_url=self.page_url(current))
        try:
            self.client.chat_update(channel=card.channel, ts=card.ts, **message)
        except SLACK_ERRORS as exc:
            log.error(
                "could not update card %s of deployment %s: %s",
                card.ts,
                deployment_id,
                slack_error(exc),
            )
            return False
        if deployment is not None:
            try:
                self.store.save_card(Card(card.channel, card.ts, deployment))
            except StoreUnavailable:
                log.warning("store unavailable; card of deployment %s not saved", deployment_id)
        return True

    def _forget(self, deployment: Deployment) -> None:
        try:
            self.store.forget_notification(deployment.run_key, deployment.status)
        except StoreUnavailable:
            log.warning("store unavailable; a redelivery of %s may be ignored", deployment.run_key)
