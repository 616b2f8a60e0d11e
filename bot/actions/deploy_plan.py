"""``/deployhq deploy <project> <server or group> [branch]``: the server or group found by name
or identifier in DeployHQ's own lists, and the branch's newest commit, for the person to
confirm.

Nothing is offered for a server or group the project does not have, nor for a commit the
target already runs or ran before (never older code, nor the same again). The confirm's
Deploy button carries only a token for the order kept here; pressing it runs the order through
the one action pipeline (``actions.deploy``), so however many click, on however many
processes, one deployment is created.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from bot.actions.permissions import Tell
from bot.cards.what_changed import RecentCommits
from bot.deployhq.client import DeployHQ, DeployHQError
from bot.deployhq.commits import Range
from bot.deployhq.deployment import Deployment, Revision
from bot.messages import deploys
from bot.store.shared import Orders
from bot.words.buttons import DeployOrder

log = logging.getLogger(__name__)
# A confirm's order is kept this long: past it, the branch may have moved on, so the person is
# asked to run the command again.
ORDER_SECONDS = 15 * 60

# How many pages of 50 deployments are read for "has this commit run there already".
HISTORY_PAGES = 5
_BRANCH = re.compile(r"[0-9A-Za-z._/-]{1,100}")


@dataclass(frozen=True)
class Target:
    """A server or server group of a project, as DeployHQ lists it."""

    identifier: str
    name: str
    group: bool
    preferred_branch: str = ""
    servers: tuple[str, ...] = ()  # the servers it names: itself, or the group's


def _seg(value: str) -> str:
    return quote(value, safe="")


def _read(deployhq: DeployHQ, path: str, what: str) -> Any:
    try:
        return _records(deployhq.read(path))
    except DeployHQError as error:
        raise error.reading(what) from None


def targets(deployhq: DeployHQ, project: str) -> Iterator[Target]:
    """The project's servers, then its server groups (each with its servers), as DeployHQ
    lists them; ``DeployHQError`` when it cannot."""
    base = f"/projects/{_seg(project)}"
    for server in _read(deployhq, base + "/servers", f"{project}'s servers"):
        yield Target(
            str(server["identifier"]),
            str(server.get("name") or server["identifier"]),
            False,
            str(server.get("preferred_branch") or ""),
            (str(server["identifier"]),),
        )
    for group in _read(deployhq, base + "/server_groups", f"{project}'s server groups"):
        members = group.get("servers")
        yield Target(
            str(group["identifier"]),
            str(group.get("name") or group["identifier"]),
            True,
            str(group.get("preferred_branch") or ""),
            tuple(s["identifier"] for s in _records(members if isinstance(members, list) else [])),
        )


def _records(data: Any) -> list[dict[str, Any]]:
    if not isinstance(data, list):
        raise DeployHQError("DeployHQ sent an unexpected list of servers", kind="invalid")
    return [d for d in data if isinstance(d, dict) and isinstance(d.get("identifier"), str)]


def find_target(found: list[Target], word: str) -> Target | None:
    """The server or group ``word`` names: its identifier, else its name (case aside); None
    when there is none, or more than one, by that name."""
    for target in found:
        if target.identifier == word:
            return target
    named = [t for t in found if t.name.casefold() == word.casefold()]
    return named[0] if len(named) == 1 else None


def project_branch(deployhq: DeployHQ, project: str) -> str:
    """The project's branch, from its repository as DeployHQ gives it; "" when none."""
    try:
        data = deployhq.read(f"/projects/{_seg(project)}")
    except DeployHQError as error:
        raise error.reading(f"the project {project}") from None
    repository = data.get("repository") if isinstance(data, dict) else None
    branch = repository.get("branch") if isinstance(repository, dict) else None
    return branch.strip() if isinstance(branch, str) else ""


def ran_there(
    deployhq: DeployHQ, project: str, servers: frozenset[str], ref: str
) -> Deployment | None:
    """The deployment on any of ``servers`` (by itself, or in a group) that last ran (or is
    running) ``ref``, if any: the newest one first, so "what it already runs" is found before
    "what it ran before". Read from the project's whole list (whatever DeployHQ's ``to=``
    counts as deployed to a server), at most ``HISTORY_PAGES`` pages."""
    for earlier in deployhq.history(project, max_pages=HISTORY_PAGES):
        ran = earlier.end_revision.ref if earlier.end_revision else ""
        overlaps = bool(earlier.server_keys & servers)
        if overlaps and ran == ref and not earlier.is_preview and earlier.status != "cancelled":
            return earlier
    return None


@dataclass(frozen=True)
class There:
    """What one reading of the project's list says of a commit on some servers: ``ran``, the
    newest deployment there that ran (or is running) it; ``now``, the newest completed one
    (what they run now); ``newest``, the newest deployment queued there at all."""

    ran: Deployment | None = None
    now: Deployment | None = None
    newest: Deployment | None = None


def runs_there(deployhq: DeployHQ, project: str, servers: frozenset[str], ref: str) -> There:
    """As ``ran_there``, and in the same reading what the servers run now and the newest
    deployment queued on them, from which a deploy of ``ref`` adds commits, and after which
    nothing else may have been queued there when it is sent."""
    now = newest = None
    for earlier in deployhq.history(project, max_pages=HISTORY_PAGES):
        if earlier.is_preview or not earlier.server_keys & servers:
            continue
        newest = newest or earlier
        ran = earlier.end_revision.ref if earlier.end_revision else ""
        if ran == ref and earlier.status != "cancelled":
            return There(earlier, now, newest)
        if now is None and earlier.status == "completed" and earlier.end_revision:
            now = earlier
    return There(None, now, newest)


class Deploys:
    """What ``/deployhq deploy`` offers to deploy, and the orders its confirms name."""

    def __init__(
        self, deployhq: DeployHQ, orders: Orders, recent: RecentCommits | None = None
    ) -> None:
        self.deployhq = deployhq
        self.orders = orders
        self.recent = recent  # the branch's recent commits: what a deploy adds

    def _adds(self, project: str, branch: str, now: Deployment | None, ref: str) -> Range | None:
        """The commits a deploy of ``ref`` adds to what the target runs now, when known."""
        if self.recent is None or now is None or now.end_revision is None:
            return None
        try:
            return self.recent.ranges(project, branch, (now.end_revision.ref, ref))[0]
        except DeployHQError as error:  # the confirm goes without them
            log.info("no recent commits of %s: %s", branch, error)
            return None

    def plan(
        self, project: str, words: tuple[str, ...], tell: Tell
    ) -> tuple[DeployOrder, Revision, str, Range | None] | None:
        """What the command would deploy, for the person to confirm: the order, the commit,
        the token its button carries and the commits it adds (when DeployHQ's recent commits
        tell); None when nothing is to be deployed (they are told why). ``words``: the target's
        name or identifier, then perhaps a branch. ``DeployHQError`` when DeployHQ cannot be
        read; ``StoreUnavailable`` when the order cannot be kept."""
        found = list(targets(self.deployhq, project))
        target, branch = find_target(found, " ".join(words)), ""
        if target is None and len(words) > 1 and _BRANCH.fullmatch(words[-1]):
            target, branch = find_target(found, " ".join(words[:-1])), words[-1]
        if target is None:
            tell(deploys.no_such_target(project, " ".join(words)))
            return None
        branch = branch or project_branch(self.deployhq, project) or target.preferred_branch
        if not branch:
            tell(deploys.no_branch(target.name))
            return None
        try:
            ref = self.deployhq.latest_revision(project, branch)
        except DeployHQError as error:
            raise error.reading(f"the latest commit of {branch}") from None
        there = runs_there(self.deployhq, project, frozenset(target.servers), ref)
        if there.ran is not None:
            tell(deploys.already_there(ref, target.name, there.ran))
            return None
        try:
            commit = self.deployhq.commit(project, ref)
        except DeployHQError as error:  # the confirm still names the commit, without its words
            log.info("no commit_info for %s: %s", ref[:7], error)
            commit = Revision(ref)
        after = there.newest.identifier if there.newest else ""
        order = DeployOrder(
            project, target.identifier, target.name, branch, ref, target.servers, after
        )
        adds = self._adds(project, branch, there.now, ref)
        return order, commit, self.orders.save(order.encode(), ORDER_SECONDS), adds

    def order(self, token: str) -> DeployOrder | None:
        """The order a confirm's button names by its token; None when the bot showed no such
        confirm, or it is too old (the branch may have moved on since)."""
        saved = self.orders.load(token)
        return DeployOrder.decode(saved) if saved is not None else None
