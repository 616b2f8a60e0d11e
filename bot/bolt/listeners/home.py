"""The App Home: ``app_home_opened`` on the Home tab publishes that person's view, after the
event is answered (``cards.home`` gathers it at bounded cost)."""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt import App

from bot.cards.home import Home
from bot.runtime.background import Runner

log = logging.getLogger(__name__)

_USER = re.compile(r"[UW][A-Z0-9]{2,30}")


def register(app: App, home: Home, pool: Runner) -> None:
    def opened(event: dict[str, Any]) -> None:
        user_id = str(event.get("user") or "")
        if event.get("tab", "home") != "home" or not _USER.fullmatch(user_id):
            return  # the Messages tab, or no one to publish for
        log.info("Home opened by %s", user_id)
        pool.run("publishing a Home tab", home.publish, user_id)

    app.event("app_home_opened")(opened)
