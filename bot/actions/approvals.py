"""Four eyes: an action on chosen servers waits for a second person's Approve.

DeployHQ has no approval of its own, so the bot holds it, inside the one pipeline: the action
is claimed and its preflight run as for any other, its servers held; then, instead of the call,
the claim waits (``awaiting``, see ``claims``) and the view shows Approve and Deny. An
approver's Approve, as ``decisions`` takes it, moves the claim on and runs the preflight again,
at approval time, before anything is sent. Abort is never held up.

Which actions wait: those whose servers overlap ``DEPLOYHQ_APPROVAL_SERVERS``, named as servers
or server groups (a group counts as each of its servers, as DeployHQ lists them when the action
is asked for: read then, never kept), or ``*``. What an action changes counts the same way: a
resume of a group's automatic deployments changes each of its servers.
"""

from __future__ import annotations

import json
import logging
from contextlib import suppress
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

from bot import metrics
from bot.actions.claims import ActionClaim, Claims
from bot.actions.deploy_plan import targets
from bot.actions.kinds import Action, Go, Outcome
from bot.actions.permissions import AccessPolicy, Tell
from bot.cards import states as s
from bot.deployhq.client import DeployHQ, DeployHQError
from bot.messages import approvals as words
from bot.messages import notes
from bot.store.kv import REMEMBER_SECONDS, StoreUnavailable
from bot.store.shared import Requests

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Request:
    """What an Approve or Deny button stands for, kept under its id: the action's claim and how
    to make the action again (``recipe``); ``ended`` once decided or lapsed."""

    key: str
    action: s.ActionName
    recipe: str
    until: float
    ended: str = ""  # approved, denied, lapsed
    by: str = ""
    at: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> Request | None:
        try:
            data = json.loads(raw)
            return cls(
                key=str(data["key"]),
                action=s.action_named(data.get("action")),
                recipe=str(data["recipe"]),
                until=float(data["until"]),
                ended=str(data.get("ended") or ""),
                by=str(data.get("by") or ""),
                at=float(data.get("at") or 0.0),
            )
        except (ValueError, KeyError, TypeError):
            return None


@dataclass(frozen=True)
class Asked:
    """What came of asking: the pipeline's outcome and what was shown."""

    outcome: Outcome
    state: s.CardState
    shown: bool


class Gate:
    """Which actions need a second person, and who that may be."""

    def __init__(
        self,
        servers: frozenset[str],
        approvers: AccessPolicy,
        deployhq: DeployHQ,
        *,
        minutes: float = 30.0,
    ) -> None:
        self.servers = servers  # names in lower case, identifiers, or "*"
        self.approvers = approvers
        self.deployhq = deployhq
        self.minutes = minutes

    @property
    def on(self) -> bool:
        return bool(self.servers)

    @property
    def nobody(self) -> bool:
        """Approval is on and nobody may approve: every gated action is refused."""
        return not (self.approvers.users or self.approvers.groups)

    def who(self) -> str:
        return words.approvers(self.approvers.users, self.approvers.groups)

    def may_approve(self, user_id: str) -> bool:
        """``PermissionUnknown`` when Slack could not list any approver group."""
        return not self.nobody and self.approvers.allows(user_id)

    def gates(self, action: s.ActionName, project: str, servers: frozenset[str]) -> bool:
        """Whether ``action`` on ``servers`` (identifiers, or names where DeployHQ gave none;
        a group's identifier counts as each of its servers) waits for approval, decided on
        DeployHQ's lists read now: a server moved into a named group since is gated at once.
        When DeployHQ cannot say what the names stand for, it waits."""
        if not self.servers or action in (s.ABORT, s.PAUSE):  # never in the way of stopping
            return False
        if "*" in self.servers or {server.lower() for server in servers} & self.servers:
            return True
        try:
            listed = list(targets(self.deployhq, project))
        except DeployHQError as error:
            log.warning("approval: %s's servers unreadable (%s); the action waits", project, error)
            return True
        changed = set(servers)
        for target in listed:  # a group it changes: each of its servers, as listed now
            if target.identifier in servers:
                changed |= set(target.servers)
        guarded: set[str] = set()
        for target in listed:  # each server named, and each server of each group named
            if target.identifier.lower() in self.servers or target.name.lower() in self.servers:
                guarded |= {target.identifier, *target.servers}
        return bool(changed & guarded)


class Approvals:
    """Asks for approval in place of sending, when the gate says so."""

    def __init__(self, gate: Gate, claims: Claims, requests: Requests) -> None:
        self.gate = gate
        self.claims = claims
        self.requests = requests

    def ask(self, action: Action, claim: ActionClaim, go: Go, tell: Tell) -> Asked | None:
        """Keep ``action`` waiting for an approver instead of sending it; None when its servers
        need no approval. The claim, as the preflight left it, holds the servers."""
        # What it changes: the servers it holds, or (a resume) the server or group it names.
        servers = frozenset(getattr(action, "approval_servers", claim.servers))
        if not self.gate.gates(action.name, action.project, servers):
            return None
        if self.gate.nobody:
            log.warning("%s of %s refused: approval is on and nobody may approve", action.name,
                        action.key)  # fmt: skip
            metrics.APPROVALS.labels("refused").inc()
            return self._not_asked(action, claim, words.nobody_may_approve(), tell)
        until = datetime.now(UTC) + timedelta(minutes=self.gate.minutes)
        try:
            waiting = self.claims.await_approval(action.key, claim, until)
            if waiting is not None:
                request = Request(action.key, action.name, action.recipe, until.timestamp())
                self.requests.save(waiting.token, request.to_json(), self._keep_seconds())
        except StoreUnavailable:
            waiting = None
        if waiting is None:
            return self._not_asked(action, claim, words.request_gone(), tell)
        state = s.Awaiting(claim.user_id, claim.at, action.name, until, waiting.token, go.ref)
        shown = action.view.show(state, words.awaiting_note(state, self.gate.who()))
        log.info("%s of %s by %s waits for approval: request %s", action.name, action.key,
                 claim.user_id, waiting.token)  # fmt: skip
        return Asked("awaiting-approval", state, shown)

    def _not_asked(self, action: Action, claim: ActionClaim, why: str, tell: Tell) -> Asked:
        with suppress(StoreUnavailable):  # it then lapses by itself
            self.claims.release(action.key, claim)
        tell(why)
        state = s.NotDone(claim.user_id, why, action.name)
        return Asked("refused", state, action.view.show(state, notes.outcome_note(state, None)))

    def _keep_seconds(self) -> float:
        """A request is remembered past its lapse, so a late press learns what became of it."""
        return self.gate.minutes * 60 + REMEMBER_SECONDS
