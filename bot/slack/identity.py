"""Who the bot is in Slack: one ``auth.test``, made when a worker starts, never in a click's path.

Bolt would call ``auth.test`` on the first request a worker serves and make that click wait for
Slack (or fail it with "your installation is no longer available" when Slack hiccups). Instead
the identity is fetched in the background, retried until Slack answers, and Bolt's ``authorize``
hook answers from it at once: with just the token while it is not known yet, which is all the
bot's listeners need.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from slack_bolt.authorization import AuthorizeResult
from slack_sdk import WebClient

from bot.slack.client import SLACK_ERRORS, slack_error

log = logging.getLogger(__name__)

FIRST_WAIT, LONGEST_WAIT = 1.0, 60.0


class Identity:
    def __init__(self, client: WebClient, token: str) -> None:
        self.client = client
        self.token = token
        self.known: dict[str, Any] | None = None
        self._stop = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._learn, name="slack-identity", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _learn(self) -> None:
        wait = FIRST_WAIT
        while not self._stop.is_set():
            try:
                answer = self.client.auth_test()
            except SLACK_ERRORS as exc:
                log.warning(
                    "Slack's auth.test failed (%s); trying again in %.0f s", slack_error(exc), wait
                )
            else:
                self.known = dict(answer.data) if isinstance(answer.data, dict) else {}
                log.info(
                    "connected to Slack as %s in team %s",
                    self.known.get("user_id"),
                    self.known.get("team_id"),
                )
                return
            self._stop.wait(wait)
            wait = min(wait * 2, LONGEST_WAIT)

    def authorize(
        self, enterprise_id: str | None, team_id: str | None, user_id: str | None
    ) -> AuthorizeResult:
        """Bolt's ``authorize`` hook: no network, ever."""
        known = self.known or {}
        return AuthorizeResult(
            enterprise_id=known.get("enterprise_id") or enterprise_id,
            team_id=known.get("team_id") or team_id,
            bot_token=self.token,
            bot_id=known.get("bot_id"),
            bot_user_id=known.get("user_id"),
            user_id=user_id,
        )
