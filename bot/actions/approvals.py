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
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from slack_sdk import WebClient

from bot import metrics
from bot.actions.action import Action, Go
from bot.actions.claims import WITHOUT_STORE, ActionClaim, Claims
from bot.actions.deploy_plan import targets
from bot.actions.permissions import AccessPolicy, Tell
from bot.deployhq.client import DeployHQ, DeployHQError
from bot.messages import approvals as approval_messages
from bot.messages import notes
from bot.slack.client import SLACK_ERRORS
from bot.store.kv import REMEMBER_SECONDS
from bot.store.shared import Requests
from bot.words import states as s
from bot.words.actions import ABORT, PAUSE, ActionName, Outcome, action_named

if TYPE_CHECKING:
    from bot.actions.deploy import ChannelMessages

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Request:
    """What an Approve or Deny button stands for, kept under its id: the action's claim and how
    to make the action again (``recipe``); ``ended`` once decided or lapsed. A request no card
    shows has a channel message of its own (``channel``, ``ts``, ``link``), which says who
    asked (``user``) for what (``ref``, ``subject``)."""

    key: str
    action: ActionName
    recipe: str
    until: float
    ended: str = ""  # approved, denied, lapsed, gone
    by: str = ""
    at: float = 0.0
    user: str = ""
    ref: str = ""
    subject: str = ""
    channel: str = ""
    ts: str = ""
    link: str = ""

    @property
    def first_line(self) -> str:
        return approval_messages.asked_line(self.user, self.action, self.ref, self.subject)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> Request | None:
        try:
            data = json.loads(raw)
            text = {k: str(data.get(k) or "") for k in _TEXTS}
            return cls(
                key=str(data["key"]),
                action=action_named(data.get("action")),
                recipe=str(data["recipe"]),
                until=float(data["until"]),
                at=float(data.get("at") or 0.0),
                **text,
            )
        except (ValueError, KeyError, TypeError):
            return None


_TEXTS = ("ended", "by", "user", "ref", "subject", "channel", "ts", "link")


def load_request(requests: Requests, request_id: str) -> Request | None:
    """The request kept under ``request_id`` and where its own message is, if it has one;
    None when the bot does not know it. ``StoreUnavailable`` when the store does not answer."""
    raw = requests.load(request_id)
    request = Request.from_json(raw) if raw else None
    post = requests.load_post(request_id) if request is not None else None
    if request is None or not post:
        return request
    try:
        where = json.loads(post)
        channel, ts, link = (str(where.get(k) or "") for k in ("channel", "ts", "link"))
        return replace(request, channel=channel, ts=ts, link=link)
    except (ValueError, TypeError, AttributeError):
        return request


@dataclass(frozen=True)
class Asked:
    """What came of asking: the pipeline's outcome, what was shown, and whether the person was
    told already (where the request's own message is, or why none could be posted)."""

    outcome: Outcome
    state: s.CardState
    shown: bool
    told: bool = False


class Posts:
    """A request's own message in the project's channel, for a request no card shows (asked
    for from the keyboard, or whose card is gone): posted with Approve and Deny, then edited to
    say how it ended."""

    def __init__(
        self, messages: ChannelMessages, client: WebClient, channel_for: Callable[[str], str]
    ) -> None:
        self.messages = messages
        self.client = client
        self.channel_for = channel_for

    def post(self, project: str, text: str, request_id: str) -> tuple[str, str, str]:
        """``(channel, ts, link)`` of the message posted; ts "" when none could be."""
        channel, ts = self.messages.post(
            self.channel_for(project), text, approval_messages.buttons(request_id)
        )
        if not ts:
            return channel, ts, ""
        try:
            link = str(self.client.chat_getPermalink(channel=channel, message_ts=ts)["permalink"])
        except (*SLACK_ERRORS, KeyError, TypeError) as exc:
            log.warning("no link to request %s's message: %s", request_id, exc)
            link = ""
        return channel, ts, link

    def end(self, request: Request, outcome: str) -> None:
        """The request's message says what became of it, without its buttons."""
        if request.ts:
            text = approval_messages.request_closed(request.first_line, outcome)
            self.messages.update(request.channel, request.ts, text)


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
        return approval_messages.approvers(self.approvers.users, self.approvers.groups)

    def may_approve(self, user_id: str) -> bool:
        """``PermissionUnknown`` when Slack could not list any approver group."""
        return not self.nobody and self.approvers.allows(user_id)

    def gates(self, action: ActionName, project: str, servers: frozenset[str]) -> bool:
        """Whether ``action`` on ``servers`` (identifiers, or names where DeployHQ gave none;
        a group's identifier counts as each of its servers) waits for approval, decided on
        DeployHQ's lists read now: a server moved into a named group since is gated at once.
        When DeployHQ cannot say what the names stand for, it waits."""
        if not self.servers or action in (ABORT, PAUSE):  # never in the way of stopping
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

    def __init__(
        self, gate: Gate, claims: Claims, requests: Requests, posts: Posts | None = None
    ) -> None:
        self.gate = gate
        self.claims = claims
        self.requests = requests
        self.posts = posts  # a request no card shows gets a channel message of its own

    def ask(self, action: Action, claim: ActionClaim, go: Go, tell: Tell) -> Asked | None:
        """Keep ``action`` waiting for an approver instead of sending it; None when its servers
        need no approval. The claim, as the preflight left it, holds the servers."""
        # What it changes: the servers it holds, or (a resume) the server or group it names.
        servers = frozenset(getattr(action, "approval_servers", claim.servers))
        if not self.gate.gates(action.name, action.project, servers):
            return None
        if self.gate.nobody:
            log.warning(
                "%s of %s refused: approval is on and nobody may approve", action.name, action.key
            )
            metrics.APPROVALS.labels("refused").inc()
            return self._not_asked(action, claim, approval_messages.nobody_may_approve(), tell)
        until = datetime.now(UTC) + timedelta(minutes=self.gate.minutes)
        request = Request(
            action.key,
            action.name,
            action.recipe,
            until.timestamp(),
            user=claim.user_id,
            ref=go.ref,
            subject=str(getattr(action, "subject", "")),
        )
        waiting = None
        with WITHOUT_STORE.step("request", action.key) as store:
            waiting = self.claims.await_approval(action.key, claim, until)
            if waiting is not None:
                self.requests.save(waiting.token, request.to_json(), self._keep_seconds())
        if store.missing:
            waiting = None
        if waiting is None:
            return self._not_asked(action, claim, approval_messages.request_gone(), tell)
        state = s.Awaiting(claim.user_id, claim.at, action.name, until, waiting.token, go.ref)
        shown = action.view.show(state, approval_messages.awaiting_note(state, self.gate.who()))
        log.info(
            "%s of %s by %s waits for approval: request %s",
            action.name,
            action.key,
            claim.user_id,
            waiting.token,
        )
        if shown:
            return Asked("awaiting-approval", state, shown)
        return self._posted(action, waiting, request, state, tell)

    def _posted(
        self,
        action: Action,
        waiting: ActionClaim,
        request: Request,
        state: s.Awaiting,
        tell: Tell,
    ) -> Asked:
        """No card shows the request: it gets a message of its own in the project's channel,
        with Approve and Deny, and the requester is told where it is. A request that could not
        be posted ends at once, nothing sent, so nobody waits on what no approver can see."""
        channel = ts = link = ""
        if self.posts is not None:
            text = approval_messages.request_message(state, request.subject, self.gate.who())
            channel, ts, link = self.posts.post(action.project, text, waiting.token)
        if not ts:
            with WITHOUT_STORE.step("release", action.key):
                self.claims.withdraw(action.key, waiting)
            log.warning(
                "request %s could not be posted; %s of %s not asked for",
                waiting.token,
                action.name,
                action.key,
            )
            tell(approval_messages.request_unposted())
            unposted = s.NotDone(waiting.user_id, approval_messages.request_unposted(), action.name)
            return Asked("refused", unposted, False, told=True)
        where = json.dumps({"channel": channel, "ts": ts, "link": link})
        with WITHOUT_STORE.step("kept", waiting.token):
            self.requests.save_post(waiting.token, where, self._keep_seconds())
        tell(approval_messages.request_posted(link, channel, self.gate.who()))
        return Asked("awaiting-approval", state, False, told=True)

    def link_of(self, request_id: str) -> str:
        """The link to a request's own message, when it has one."""
        request = WITHOUT_STORE.read("kept", lambda: load_request(self.requests, request_id), None)
        return request.link if request is not None else ""

    def _not_asked(self, action: Action, claim: ActionClaim, why: str, tell: Tell) -> Asked:
        with WITHOUT_STORE.step("release", action.key):
            self.claims.release(action.key, claim)
        tell(why)
        state = s.NotDone(claim.user_id, why, action.name)
        return Asked("refused", state, action.view.show(state, notes.outcome_note(state, None)))

    def _keep_seconds(self) -> float:
        """A request is remembered past its lapse, so a late press learns what became of it."""
        return self.gate.minutes * 60 + REMEMBER_SECONDS
