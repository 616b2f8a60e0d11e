"""Approve and Deny on a request for approval, and its lapse (see ``approvals``).

Each button carries only the request's id; what it stands for is looked up. A decision is one
compare-and-set on the waiting claim, so of any number of Approve and Deny presses, on any
number of processes, exactly one wins and the others are told who decided. An approved action
goes on through the one pipeline, its preflight run again now.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from bot import metrics
from bot.actions.action import Action
from bot.actions.approvals import Gate, Posts, Request, load_request
from bot.actions.auto_deploy import AutoDeploys
from bot.actions.claims import WITHOUT_STORE, ActionClaim, Claims
from bot.actions.deploy import ChannelMessages, DeployOrders
from bot.actions.on_card import CardActions
from bot.actions.permissions import PermissionUnknown, Tell
from bot.actions.pipeline import ActionResult, Pipeline
from bot.cards.changes import Cards
from bot.deployhq.client import DeployHQ, DeployHQError
from bot.messages import approvals as approval_messages
from bot.messages import notes, replies
from bot.runtime import failpoints
from bot.store.kv import REMEMBER_SECONDS
from bot.store.shared import Requests
from bot.words import states as s
from bot.words.buttons import AutoDeployTarget, DeployOrder

log = logging.getLogger(__name__)

# Makes the action a request keeps again (None when its recipe names nothing any more).
Rebuild = Callable[[str], Action | None]


@dataclass(frozen=True)
class Seen:
    """The message an Approve or Deny was pressed on, as Slack sent it back: where it is, the
    request its own Approve button carries, and (a card) the deployment its Open in DeployHQ
    link names. Only used to redraw a message whose request the bot no longer knows."""

    channel: str = ""
    ts: str = ""
    request: str = ""
    project: str = ""
    deployment: str = ""


class Redraw:
    """A message whose request the store lost goes back to what DeployHQ's record warrants: a
    card, to its failure with its buttons (read from DeployHQ now); a request's own message,
    to saying the request is gone. Nothing is ever sent to DeployHQ."""

    def __init__(
        self, deployhq: DeployHQ, cards: Cards, messages: ChannelMessages, projects: frozenset[str]
    ) -> None:
        self.deployhq = deployhq
        self.cards = cards
        self.messages = messages
        self.projects = projects  # the bot's scope (empty: every project)

    def __call__(self, seen: Seen, request_id: str) -> None:
        if not (seen.channel and seen.ts) or seen.request != request_id:
            return  # not a message that asked for this request (an edited value, say)
        if not seen.deployment:
            self.messages.update(seen.channel, seen.ts, approval_messages.request_lost())
            return
        if self.projects and seen.project not in self.projects:
            return
        try:
            record = self.deployhq.deployment(seen.project, seen.deployment)
        except DeployHQError as error:
            log.warning("could not redraw the card of %s: %s", seen.deployment, error)
            return
        with WITHOUT_STORE.step("kept", seen.deployment) as store:
            self.cards.restore(record, seen.channel, seen.ts)
        if store.missing:
            return
        log.info("card of %s redrawn from DeployHQ's record: its request was lost", seen.deployment)


class Decisions:
    def __init__(
        self,
        actions: Pipeline,
        gate: Gate,
        claims: Claims,
        requests: Requests,
        rebuild: Rebuild,
        posts: Posts | None = None,
        redraw: Redraw | None = None,
    ) -> None:
        self.actions = actions
        self.gate = gate
        self.claims = claims
        self.requests = requests
        self.rebuild = rebuild
        self.posts = posts  # a request's own message, where no card shows it
        self.redraw = redraw  # a message whose request the store lost

    def approve(
        self, request_id: str, approver: str, tell: Tell, seen: Seen | None = None
    ) -> ActionResult:
        """Run the waiting action once, if ``approver`` may approve it and did not ask for it.
        ``seen``: the message it was pressed on, redrawn if the request is unknown."""
        found = self._open(request_id, tell, seen)
        if found is None:
            return self._refused()
        request, action, claim = found
        if approver == claim.user_id:
            tell(approval_messages.own_request())
            return self._refused()
        if not self._may_decide(approver, tell):
            return self._refused()
        with WITHOUT_STORE.step("decide", request.key) as store:
            approved = self.claims.approve(request.key, claim, approver)
        if store.missing:
            tell(replies.store_unavailable())
            return self._refused()
        if approved is None:
            return self._lost(request_id, tell)
        # A request with a message of its own stays listed until the message says the outcome:
        # the reconciler finishes it if this process dies or the answer is lost.
        self._record(request_id, request, "approved", approver, close=False)
        failpoints.reach("approved")
        metrics.APPROVALS.labels("approved").inc()
        log.info(
            "request %s approved by %s: %s of %s asked for by %s",
            request_id,
            approver,
            action.name,
            action.key,
            claim.user_id,
        )
        said: list[str] = []

        def told(text: str) -> None:
            said.append(text)
            tell(text)

        result = self.actions.proceed(action, approved, told)
        if self.posts is not None and request.ts:  # its own message says what came of it
            outcome = notes.outcome_note(result.state, result.deployment) if result.state else ""
            self.posts.end(
                request, approval_messages.approved_outcome(approver, outcome or " ".join(said))
            )
            if result.outcome != "in-doubt":  # else DeployHQ's record settles it, later
                self._close(request_id)
        return result

    def deny(self, request_id: str, who: str, tell: Tell, seen: Seen | None = None) -> ActionResult:
        """End the request with nothing sent: denied by an approver, or withdrawn by its
        requester."""
        found = self._open(request_id, tell, seen)
        if found is None:
            return self._refused()
        request, action, claim = found
        if who != claim.user_id and not self._may_decide(who, tell):
            return self._refused()
        with WITHOUT_STORE.step("decide", request.key) as store:
            withdrawn = self.claims.withdraw(request.key, claim)
        if store.missing:
            tell(replies.store_unavailable())
            return self._refused()
        if not withdrawn:
            return self._lost(request_id, tell)
        self._record(request_id, request, "denied", who)
        metrics.APPROVALS.labels("denied").inc()
        log.info(
            "request %s denied by %s: %s of %s asked for by %s",
            request_id,
            who,
            action.name,
            action.key,
            claim.user_id,
        )
        return self._ended(action, claim.user_id, who, request)

    def lapse(self, action: Action, awaiting: s.Awaiting) -> bool:
        """A request shown as waiting, checked by the reconciler: once its time is up it lapses
        (freeing its claim if that is still there), the view says so and its buttons come
        back. True when it ended."""
        if datetime.now(UTC) < awaiting.until:
            return False
        claim = self.claims.held(action.key)
        if claim is not None and claim.token == awaiting.request:  # noqa: SIM102
            if not (claim.awaiting and self.claims.withdraw(action.key, claim)):
                return False  # approved meanwhile: the pipeline has it
        request = load_request(self.requests, awaiting.request)
        if request is not None:
            if request.ended:
                return False
            self._record(awaiting.request, request, "lapsed", "")
        metrics.APPROVALS.labels("expired").inc()
        log.info(
            "request %s lapsed undecided: %s of %s asked for by %s",
            awaiting.request,
            action.name,
            action.key,
            awaiting.user_id,
        )
        self._ended(action, awaiting.user_id, "")
        return True

    def _open(
        self, request_id: str, tell: Tell, seen: Seen | None = None
    ) -> tuple[Request, Action, ActionClaim] | None:
        """The request, its action and its waiting claim; None (the person told why) when it
        is not open: unknown (its message redrawn from DeployHQ's record), decided, lapsed."""
        request, action, claim = None, None, None
        with WITHOUT_STORE.step("decide", request_id) as store:
            request = load_request(self.requests, request_id)
            action = self.rebuild(request.recipe) if request else None
            claim = self.claims.held(request.key) if request else None
        if store.missing:
            tell(replies.store_unavailable())
            return None
        if request is None or action is None:
            log.warning("a decision on request %r, which the bot does not know", request_id[:40])
            tell(approval_messages.request_gone())
            if request is None and seen is not None and self.redraw is not None:
                self.redraw(seen, request_id)
            return None
        if claim is not None and claim.token == request_id and claim.awaiting:
            return request, action, claim
        if request.ended:
            tell(approval_messages.request_ended(request.ended, request.by, _moment(request.at)))
        elif claim is not None and claim.token == request_id:
            tell(approval_messages.request_ended("approved", claim.approved_by, None))
        elif datetime.now(UTC).timestamp() >= request.until:
            tell(approval_messages.request_ended("lapsed", "", _moment(request.until)))
        else:
            tell(approval_messages.request_gone())
        return None

    def _after_approval(self, request_id: str, request: Request, claim: ActionClaim | None) -> None:
        """An approved request whose message does not say the outcome yet: its approver's
        process died, or DeployHQ's answer was lost. DeployHQ's record settles it, as for any
        action, and the message then says what the record shows."""
        if claim is not None and not (claim.in_doubt or claim.done):
            return  # its approver's process is still at it (or its claim has yet to lapse)
        action = self.rebuild(request.recipe)
        if claim is not None and action is not None:
            claim = self.actions.settler.resolve(action, claim)
            if claim is not None and not claim.done:
                return  # still in doubt
        if self.posts is not None:
            done = claim is not None and claim.done
            said = (
                approval_messages.done_by_record(request.action)
                if done
                else approval_messages.nothing_done_line()
            )
            self.posts.end(request, approval_messages.approved_outcome(request.by, said))
        self._close(request_id)
        log.info(
            "approved request %s ended: DeployHQ's record shows %s",
            request_id,
            "it done" if claim is not None and claim.done else "nothing done",
        )

    def _say_ended(self, request: Request) -> None:
        """A request's own message says how it ended (denied, lapsed, gone)."""
        if self.posts is None:
            return
        if request.ended == "gone":
            self.posts.end(request, approval_messages.request_interrupted_line())
            return
        at = datetime.fromtimestamp(request.at, UTC) if request.at else datetime.now(UTC)
        ended = s.Denied(request.user, request.action, request.by, at)
        self.posts.end(request, approval_messages.denied_line(ended))

    def _close(self, request_id: str) -> None:
        with WITHOUT_STORE.step("kept", request_id):
            self.requests.close(request_id)

    def _may_decide(self, user_id: str, tell: Tell) -> bool:
        try:
            allowed = self.gate.may_approve(user_id)
        except PermissionUnknown:
            tell(replies.permission_unknown())
            return False
        if not allowed:
            log.warning("request decision refused: %s may not approve", user_id)
            tell(approval_messages.not_an_approver(self.gate.who()))
        return allowed

    def _lost(self, request_id: str, tell: Tell) -> ActionResult:
        """Someone else decided between our read and our write."""
        request = load_request(self.requests, request_id)
        if request is not None and request.ended:
            tell(approval_messages.request_ended(request.ended, request.by, _moment(request.at)))
        else:
            tell(approval_messages.request_gone())
        return self._refused()

    def _record(
        self, request_id: str, request: Request, how: str, by: str, *, close: bool = True
    ) -> None:
        """Keep how the request ended; one with a message of its own leaves the open list
        (unless ``close`` is False: its message is still to say the outcome)."""
        ended = replace(request, ended=how, by=by, at=datetime.now(UTC).timestamp())
        keep = self.gate.minutes * 60 + REMEMBER_SECONDS
        with WITHOUT_STORE.step("kept", request_id):
            listed = False if request.ts and close else None
            self.requests.save(request_id, ended.to_json(), keep, listed=listed)

    def _ended(
        self, action: Action, requester: str, by: str, request: Request | None = None
    ) -> ActionResult:
        state = s.Denied(requester, action.name, by, datetime.now(UTC))
        shown = action.view.show(state, notes.outcome_note(state, None))
        if self.posts is not None and request is not None and request.ts:
            self.posts.end(request, approval_messages.denied_line(state))
            shown = True
        return ActionResult("refused", state, card_updated=shown)

    def check_posted(self, request_id: str) -> None:
        """A request with a message of its own, checked by the reconciler: once its time is up
        it lapses (its claim freed if still waiting) and its message says so; one whose claim
        is gone undecided (its approver's process died before DeployHQ was asked, or the store
        lost it) ends as interrupted. Either way it leaves the open list."""
        request = load_request(self.requests, request_id)
        if request is None or not request.ts or request.ended not in ("", "approved"):
            if request is not None and request.ts:
                self._say_ended(request)  # decided before its message was kept: say so there
            self.requests.close(request_id)
            return
        claim = self.claims.held(request.key)
        mine = claim is not None and claim.token == request_id
        if request.ended == "approved":
            self._after_approval(request_id, request, claim if mine else None)
            return
        lapsed = datetime.now(UTC).timestamp() >= request.until
        if mine and claim is not None and not claim.awaiting:
            return  # approved: the pipeline has it, and says how it ended
        if mine and claim is not None and not lapsed:
            return  # still waiting for an approver
        if mine and claim is not None and not self.claims.withdraw(request.key, claim):
            return  # decided meanwhile
        how = "lapsed" if lapsed else "gone"
        self._record(request_id, request, how, "")
        if self.posts is not None:
            if lapsed:
                metrics.APPROVALS.labels("expired").inc()
                lapse = s.Denied(request.user, request.action, "", datetime.now(UTC))
                self.posts.end(request, approval_messages.denied_line(lapse))
            else:
                self.posts.end(request, approval_messages.request_interrupted_line())
        log.info(
            "request %s ended undecided (%s): %s of %s asked for by %s",
            request_id,
            how,
            request.action,
            request.key,
            request.user,
        )

    def _refused(self) -> ActionResult:
        metrics.APPROVALS.labels("refused").inc()
        return ActionResult("refused")


def _moment(timestamp: float) -> datetime | None:
    return datetime.fromtimestamp(timestamp, UTC) if timestamp else None


def rebuilder(kinds: CardActions, orders: DeployOrders, autos: AutoDeploys) -> Rebuild:
    """Makes an action again from the recipe a request kept (``Action.recipe``)."""

    def rebuild(recipe: str) -> Action | None:
        try:
            data = json.loads(recipe)
            if data["kind"] == "card":
                return kinds.decode(str(data["action"]), str(data["target"]))
            if data["kind"] == "auto-deploy":
                return autos.of(AutoDeployTarget.decode(str(data["target"])))
            if data["kind"] == "order":
                order = DeployOrder.decode(str(data["order"]))
                return orders.of(order, str(data.get("channel") or ""))
        except (ValueError, KeyError, TypeError):
            pass
        return None

    return rebuild
