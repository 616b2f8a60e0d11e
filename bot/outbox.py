"""Cards reach Slack from here: on a pool of their own, and again until Slack takes them.

A card's record is written first (see ``cards``); ``show`` pushes it on the Slack pool, off every
request thread, so a rate-limited Slack (the client waits out ``Retry-After``) delays only other
cards. A push Slack refuses is tried again a few times within a minute; after that the
reconciler keeps trying every ``RECONCILE_INTERVAL``, for as long as the card stays unsettled.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.background import Background

BACKOFF_SECONDS = (2.0, 5.0, 15.0, 30.0)


class Outbox:
    def __init__(
        self,
        push: Callable[[str], bool],
        pool: Background,
        *,
        backoff: tuple[float, ...] = BACKOFF_SECONDS,
    ) -> None:
        self.push = push  # True once Slack shows everything the card's record holds
        self.pool = pool
        self.backoff = backoff

    def show(self, deployment_id: str) -> None:
        self.pool.run("showing a card in Slack", self._attempt, deployment_id, 0)

    def _attempt(self, deployment_id: str, attempt: int) -> None:
        if self.push(deployment_id) or attempt >= len(self.backoff):
            return
        self.pool.later(
            self.backoff[attempt],
            "showing a card in Slack again",
            self._attempt,
            deployment_id,
            attempt + 1,
        )
