"""Who may act, and on what: everyone on every project, unless DEPLOYHQ_PROJECTS names the
projects and allowed users or user groups are configured."""

from __future__ import annotations

import logging
from collections.abc import Callable

from slack_sdk import WebClient

from bot.actions.claims import WITHOUT_STORE
from bot.messages import replies
from bot.slack.client import SLACK_ERRORS, slack_error
from bot.store.shared import UserGroups

log = logging.getLogger(__name__)

GROUP_CACHE_SECONDS = 300.0

Tell = Callable[[str], None]
"""Sends a private mrkdwn note to the person who asked."""


class PermissionUnknown(Exception):
    """No allowed user group could be read, so nobody outside the user list may act for now."""


class AccessPolicy:
    def __init__(
        self,
        users: frozenset[str],
        groups: frozenset[str],
        *,
        client: WebClient,
        cache: UserGroups,
        projects: frozenset[str] = frozenset(),
        cache_seconds: float = GROUP_CACHE_SECONDS,
    ) -> None:
        self.projects = projects
        self.users = users
        self.groups = groups
        self.client = client
        self.cache = cache
        self.cache_seconds = cache_seconds

    @property
    def restricted(self) -> bool:
        return bool(self.users or self.groups)

    def serves(self, project: str) -> bool:
        """Whether the bot acts on ``project`` (a permalink) at all."""
        return not self.projects or project in self.projects

    def check(self, user_id: str, tell: Tell, project: str = "") -> bool:
        """Whether ``user_id`` may act on ``project``; if not, they are told why, and it is
        logged. Checked before any call to DeployHQ."""
        if project and not self.serves(project):
            log.warning("refused %s: project %r is not in DEPLOYHQ_PROJECTS", user_id, project)
            tell(replies.project_not_served(project))
            return False
        try:
            allowed = self.allows(user_id)
        except PermissionUnknown:
            tell(replies.permission_unknown())
            return False
        if not allowed:
            log.warning("action refused: user %s is not allowed to act", user_id)
            tell(replies.not_allowed())
        return allowed

    def allows(self, user_id: str) -> bool:
        """Whether ``user_id`` may act. A group Slack cannot list (deleted, say) is logged and
        skipped; ``PermissionUnknown`` only when no group could be read and the user is in
        none of those that could."""
        if not self.restricted or user_id in self.users:
            return True
        unreadable = 0
        for group in sorted(self.groups):
            members = self._members(group)
            if members is None:
                unreadable += 1
            elif user_id in members:
                return True
        if unreadable and unreadable == len(self.groups):
            raise PermissionUnknown(", ".join(sorted(self.groups)))
        return False

    def _members(self, group: str) -> frozenset[str] | None:
        """The group's members, each group cached on its own; None when Slack will not say."""
        cached = WITHOUT_STORE.read("cache", lambda: self.cache.members(group), None, group)
        if cached is not None:
            return cached
        try:
            response = self.client.usergroups_users_list(usergroup=group)
        except SLACK_ERRORS as exc:
            log.error(
                "could not list the members of allowed user group %s (%s); it is skipped",
                group,
                slack_error(exc),
            )
            return None
        members = frozenset(str(u) for u in response.get("users") or [])
        with WITHOUT_STORE.step("cache", group):
            self.cache.save(group, members, self.cache_seconds)
        return members
