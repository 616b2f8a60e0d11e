"""Who may act, and on what: everyone on every project, unless DEPLOYHQ_PROJECTS names the
projects and allowed users or user groups are configured."""

from __future__ import annotations

import logging

from slack_sdk import WebClient

from bot.cards import SLACK_ERRORS, slack_error
from bot.store import Store, StoreUnavailable

log = logging.getLogger(__name__)

GROUP_CACHE_SECONDS = 300.0


class PermissionUnknown(Exception):
    """No allowed user group could be read, so nobody outside the user list may act for now."""


class RetryPolicy:
    def __init__(
        self,
        users: frozenset[str],
        groups: frozenset[str],
        *,
        client: WebClient,
        store: Store,
        projects: frozenset[str] = frozenset(),
        cache_seconds: float = GROUP_CACHE_SECONDS,
    ) -> None:
        self.projects = projects
        self.users = users
        self.groups = groups
        self.client = client
        self.store = store
        self.cache_seconds = cache_seconds

    @property
    def restricted(self) -> bool:
        return bool(self.users or self.groups)

    def serves(self, project: str) -> bool:
        """Whether the bot acts on ``project`` (a permalink) at all."""
        return not self.projects or project in self.projects

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
        try:
            cached = self.store.usergroup_members(group)
        except StoreUnavailable:
            cached = None
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
        try:
            self.store.save_usergroup_members(group, members, self.cache_seconds)
        except StoreUnavailable:
            log.warning("store unavailable; members of %s not cached", group)
        return members
