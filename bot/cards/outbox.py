"""Cards reach Slack from here: on a pool of their own, and again until Slack takes them.

A card's record is written first (see ``cards``); ``show`` pushes it (``card_publisher``) on the
Slack pool, off every request thread, so a rate-limited Slack (the client waits out
``Retry-After``) delays only other cards. A push Slack refuses is tried again a few times within
a minute; after that the reconciler keeps trying every ``RECONCILE_INTERVAL``, for as long as
the card stays unsettled. Once a failure's card is out, why it failed is looked up on the
lookups pool (``explain``), then its server's automatic deployments (``auto_deploys``) and what
changed (``what_changed``), and the card is shown again once, with all that was found.
"""

from __future__ import annotations

from bot.cards.auto_deploys import AutoDeployLookup
from bot.cards.explain import Explainer
from bot.cards.publisher import Publisher
from bot.cards.rules import Card
from bot.cards.what_changed import WhatChanged
from bot.runtime.background import Runner

BACKOFF_SECONDS = (2.0, 5.0, 15.0, 30.0)


class Outbox:
    def __init__(
        self,
        publisher: Publisher,
        explainer: Explainer,
        *,
        slack: Runner,
        lookups: Runner,
        what_changed: WhatChanged | None = None,
        auto_deploys: AutoDeployLookup | None = None,
        backoff: tuple[float, ...] = BACKOFF_SECONDS,
    ) -> None:
        self.publisher = publisher
        self.explainer = explainer
        self.slack = slack  # where pushes run: they may wait out Slack's Retry-After
        self.lookups = lookups  # where failures are looked up: DeployHQ may be slow to answer
        self.what_changed = what_changed
        self.auto_deploys = auto_deploys
        self.backoff = backoff

    def show(self, deployment_id: str) -> None:
        """Bring the card in Slack up to its record, soon, off this thread."""
        self.slack.run("showing a card in Slack", self._attempt, deployment_id, 0)

    def push_now(self, deployment_id: str) -> bool:
        """Push the card in this thread; True once Slack shows everything its record holds."""
        shown = self.publisher.sync(deployment_id)
        card = self.explainer.claim(deployment_id)
        if card is not None:
            self.lookups.run("looking up why a deployment failed", self._explain, card)
        return shown

    def _explain(self, card: Card) -> None:
        """Why it failed, its automatic deployments, what changed: all recorded, then shown in
        one update of the card (and its notes in one thread message)."""
        identifier = card.deployment.identifier
        changed = self.explainer.look_up(card)
        if self.auto_deploys is not None:
            changed = self.auto_deploys.look_up(card) or changed  # Pause auto-deploy, or who
        told = self.what_changed.claim(identifier) if self.what_changed else None
        if told is not None and self.what_changed is not None:
            changed = self.what_changed.look_up(told) or changed
        if changed:
            self.show(identifier)

    def _attempt(self, deployment_id: str, attempt: int) -> None:
        if self.push_now(deployment_id) or attempt >= len(self.backoff):
            return
        self.slack.later(
            self.backoff[attempt],
            "showing a card in Slack again",
            self._attempt,
            deployment_id,
            attempt + 1,
        )
