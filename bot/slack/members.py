"""The deployer told: a failure's deployer, when DeployHQ gives it as an email address, is
matched to the Slack member whose profile email is exactly that address.

Nothing but an exact match (the whole address, case aside) ever becomes a mention: a display
name, a partial match, Slack's ``users_not_found`` or an error mention nobody. Hits and misses
are cached, so a storm of failures by one person costs one lookup.
"""

from __future__ import annotations

import logging
import re

from slack_sdk import WebClient

from bot import metrics
from bot.slack.client import SLACK_ERRORS, slack_error
from bot.store.kv import WithoutStore
from bot.store.shared import DeployerMembers

log = logging.getLogger(__name__)
# What a missing store means to Slack's lookups, decided here: asked of Slack afresh, not kept.
WITHOUT_STORE = WithoutStore("slack", {"cache": "the deployer is looked up in Slack afresh"})

MEMBER_CACHE_SECONDS = 3600.0
# An address and nothing else: no spaces, no Slack markup characters, one @, a dotted domain.
_EMAIL = re.compile(r"[A-Za-z0-9.!#$%'*+/=?^_`{}~-]{1,64}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_MEMBER_ID = re.compile(r"[UW][A-Z0-9]{2,30}")


def is_email(text: str) -> bool:
    return len(text) <= 254 and bool(_EMAIL.fullmatch(text))


class Deployers:
    def __init__(
        self,
        client: WebClient,
        cache: DeployerMembers,
        *,
        cache_seconds: float = MEMBER_CACHE_SECONDS,
    ) -> None:
        self.client = client
        self.cache = cache
        self.cache_seconds = cache_seconds

    def member(self, deployer: str) -> str | None:
        """The Slack member whose email is exactly ``deployer``; None for anything else."""
        if not is_email(deployer):
            return None
        cached = WITHOUT_STORE.read("cache", lambda: self.cache.member(deployer), None)
        if cached is not None:
            return cached or None
        try:
            response = self.client.users_lookupByEmail(email=deployer)
        except SLACK_ERRORS as exc:
            reason = slack_error(exc)
            if reason != "users_not_found":  # an error is not a miss: not cached
                metrics.SLACK_ERRORS.labels("users.lookupByEmail", reason).inc()
                log.warning("could not look up a failure's deployer in Slack: %s", reason)
                return None
            found = ""
        else:
            found = _exact(response.get("user"), deployer)
        with WITHOUT_STORE.step("cache"):
            self.cache.save(deployer, found, self.cache_seconds)
        return found or None


def _exact(user: object, email: str) -> str:
    """The member's id when their profile email is ``email`` exactly, case aside; else ""."""
    if not isinstance(user, dict):
        return ""
    profile = user.get("profile")
    found = profile.get("email") if isinstance(profile, dict) else None
    member = user.get("id")
    if not (isinstance(found, str) and isinstance(member, str)):
        return ""
    if found.lower() != email.lower() or not _MEMBER_ID.fullmatch(member):
        return ""
    return member
