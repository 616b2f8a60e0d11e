"""``/deployhq deploy <project> <server or group> [branch]``: a server or group found by name or
identifier in DeployHQ's own lists, the branch's newest commit, and a deploy of it sent once.

Nothing is sent for a server or group the project does not have, nor for a commit the target
already runs or ran before (never older code, nor the same again). The person confirms first;
the confirm's Deploy button is then one claim, keyed on project, target and commit, so however
many click, on however many processes, one deployment is created.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from bot import metrics
from bot.card_states import DEPLOY
from bot.claims import Claims
from bot.deployhq import DeployHQ, DeployHQError
from bot.deployments import Deployment, Revision
from bot.kv import StoreUnavailable
from bot.messages import deploys, replies
from bot.messages.text import escape
from bot.permissions import AccessPolicy, Tell
from bot.routing import DeployOrder
from bot.store import Orders

log = logging.getLogger(__name__)
# A confirm's order is kept this long: past it, the branch may have moved on, so the person is
# asked to run the command again.
ORDER_SECONDS = 15 * 60

# How many deployments to the target are read for "has this commit run there already".
HISTORY_PAGES = 2
_BRANCH = re.compile(r"[0-9A-Za-z._/-]{1,100}")


@dataclass(frozen=True)
class Target:
    """A server or server group of a project, as DeployHQ lists it."""

    identifier: str
    name: str
    group: bool
    preferred_branch: str = ""


@dataclass(frozen=True)
class Outcome:
    """What came of a confirmed deploy: ``outcome`` as counted, and what the channel is told
    (``said``) or only the person (``told``)."""

    outcome: str
    said: str = ""
    deployment: Deployment | None = None


def _seg(value: str) -> str:
    return quote(value, safe="")


def _targets(deployhq: DeployHQ, project: str) -> Iterator[Target]:
    base = f"/projects/{_seg(project)}"
    for server in _records(deployhq.read(base + "/servers")):
        yield Target(
            str(server["identifier"]),
            str(server.get("name") or server["identifier"]),
            False,
            str(server.get("preferred_branch") or ""),
        )
    for group in _records(deployhq.read(base + "/server_groups")):
        yield Target(
            str(group["identifier"]),
            str(group.get("name") or group["identifier"]),
            True,
            str(group.get("preferred_branch") or ""),
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
    data = deployhq.read(f"/projects/{_seg(project)}")
    repository = data.get("repository") if isinstance(data, dict) else None
    branch = repository.get("branch") if isinstance(repository, dict) else None
    return branch.strip() if isinstance(branch, str) else ""


def ran_there(deployhq: DeployHQ, project: str, parent: str, ref: str) -> Deployment | None:
    """The deployment to ``parent`` that last ran (or is running) ``ref``, if any: the newest
    one first, so "what it already runs" is found before "what it ran before"."""
    for earlier in deployhq.history(project, to=parent, max_pages=HISTORY_PAGES):
        ran = earlier.end_revision.ref if earlier.end_revision else ""
        if ran == ref and not earlier.is_preview and earlier.status != "cancelled":
            return earlier
    return None


class Deploys:
    def __init__(
        self,
        deployhq: DeployHQ,
        claims: Claims,
        orders: Orders,
        policy: AccessPolicy,
        *,
        doubt_seconds: float = 60.0,
        deadline_seconds: float = 20.0,
    ) -> None:
        self.deployhq = deployhq
        self.claims = claims
        self.orders = orders
        self.policy = policy
        self.doubt_seconds = doubt_seconds
        self.lease_seconds = deadline_seconds + 2.0

    def plan(
        self, project: str, words: tuple[str, ...], tell: Tell
    ) -> tuple[DeployOrder, Revision, str] | None:
        """What the command would deploy, for the person to confirm, with the token its
        button carries; None when nothing is to be deployed (they are told why). ``words``: the
        target's name or identifier, then perhaps a branch. ``DeployHQError`` when DeployHQ
        cannot be read; ``StoreUnavailable`` when the order cannot be kept."""
        found = list(_targets(self.deployhq, project))
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
        ref = self.deployhq.latest_revision(project, branch)
        ran = ran_there(self.deployhq, project, target.identifier, ref)
        if ran is not None:
            tell(deploys.already_there(ref, target.name, ran))
            return None
        try:
            commit = self.deployhq.commit(project, ref)
        except DeployHQError as error:  # the confirm still names the commit, without its words
            log.info("no commit_info for %s: %s", ref[:7], error)
            commit = Revision(ref)
        order = DeployOrder(project, target.identifier, target.name, branch, ref)
        return order, commit, self.orders.save(order.encode(), ORDER_SECONDS)

    def order(self, token: str) -> DeployOrder | None:
        """The order a confirm's button names by its token; None when the bot showed no such
        confirm, or it is too old (the branch may have moved on since)."""
        saved = self.orders.load(token)
        return DeployOrder.decode(saved) if saved is not None else None

    def deploy(self, order: DeployOrder, user_id: str, tell: Tell) -> Outcome:
        """The confirmed deploy, sent once across every click and process."""
        result = self._deploy(order, user_id, tell)
        metrics.DEPLOYS.labels(result.outcome).inc()
        log.info("deploy of %s to %s by %s: %s", order.ref[:7], order.parent, user_id,
                 result.outcome)  # fmt: skip
        return result

    def _deploy(self, order: DeployOrder, user_id: str, tell: Tell) -> Outcome:
        if not self.policy.check(user_id, tell, order.project):  # before any call
            return Outcome("forbidden")
        try:
            acquired, claim = self.claims.take(order.key, user_id, DEPLOY, order.ref)
        except StoreUnavailable:
            tell(replies.store_unavailable())
            return Outcome("unavailable")
        if not acquired:
            if claim.in_doubt:
                settled = self._settle(order, claim)
                if settled is None:
                    tell(deploys.never_queued())
                    return Outcome("busy")
                claim = settled
            tell(
                replies.already_acted(
                    claim.user_id,
                    claim.at,
                    DEPLOY,
                    done=claim.done,
                    in_doubt=claim.in_doubt,
                    on_card=False,
                )
            )
            return Outcome("busy")
        try:  # DeployHQ's record, read now: the commit is still new to the target
            ran = ran_there(self.deployhq, order.project, order.parent, order.ref)
        except DeployHQError as error:
            self._release(order, claim)
            tell(escape(replies.describe_error(error)))
            return Outcome("failed")
        if ran is not None:
            self._release(order, claim)
            tell(deploys.already_there(order.ref, order.name, ran))
            return Outcome("out-of-date")
        try:
            sending = self.claims.mark_sending(
                order.key, claim, self.lease_seconds, self.doubt_seconds, order.ref
            )
        except StoreUnavailable:
            sending = None
        if sending is None:
            tell(deploys.lapsed())
            return Outcome("failed")
        try:
            answer = self.deployhq.deploy(order.project, order.parent, order.branch, order.ref)
        except DeployHQError as error:
            if error.may_have_happened:
                try:
                    self.claims.doubt(order.key, sending)
                except StoreUnavailable:
                    log.error("store unavailable; in-doubt deploy of %s not recorded", order.key)
                return Outcome("in-doubt", deploys.in_doubt(user_id, order))
            self._release(order, sending)
            if error.status == 422:
                return Outcome("refused", deploys.refused(user_id, order, error.message))
            tell(escape(replies.describe_error(error)))
            return Outcome("failed")
        try:
            self.claims.finish(order.key, sending)
        except StoreUnavailable:
            log.warning("store unavailable; deploy of %s done but not recorded", order.key)
        return Outcome("deployed", deploys.deployed(user_id, order, answer), answer)

    def _settle(self, order: DeployOrder, claim: Any) -> Any:
        """An in-doubt deploy, settled from DeployHQ's record: a deployment of the commit to the
        target proves it; none by the end of the doubt window frees the order."""
        try:
            ran = ran_there(self.deployhq, order.project, order.parent, order.ref)
        except DeployHQError:
            return claim
        try:
            if ran is not None:
                return self.claims.settle(order.key, claim, True) or claim
            if claim.doubt_over():
                self.claims.settle(order.key, claim, False)
                return None
        except StoreUnavailable:
            pass
        return claim

    def _release(self, order: DeployOrder, claim: Any) -> None:
        try:
            self.claims.release(order.key, claim)
        except StoreUnavailable:
            log.warning("store unavailable; the claim on %s frees itself", order.key)
