"""One pipeline for every action (Retry, Roll back, Deploy latest, Abort, ``/deployhq deploy``,
and ``/deployhq retry|rollback``), however many ask, whatever breaks:

who may act -> claim -> preflight against DeployHQ's record (holding the servers it changes)
-> [approval, on chosen servers: wait for a second person, then the preflight again]
-> renew -> durable "sending" -> the call -> finish, or doubt -> settled from DeployHQ's record.

- The **claim** (``claims``, keyed by what was asked) lets one person at a time act on it; the
  **servers** an action will change are held too, so no two actions are in flight on one server.
- The **preflight** reads DeployHQ's record: the failure must still be the latest word on its
  servers, and what the button named (a rollback's target, a commit) still what DeployHQ gives.
  So a claim Redis lost, an old button, or an action someone took elsewhere never causes a
  second one.
- The claim is marked **sending** before the call goes out. From then on only DeployHQ's record
  frees it: a holder that dies, a 5xx, a 504 page, a dropped connection or a lost answer leaves
  it **in doubt**, and it is **settled** from DeployHQ's record (``settle``).

What differs between actions (their key, preflight, call and proof) is in ``kinds``; where the
outcome is shown is each action's view.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot import metrics
from bot.actions.action import LAPSED, Action, Go, Lapsed, Stop
from bot.actions.approvals import Approvals
from bot.actions.claims import WITHOUT_STORE, ActionClaim, Claims
from bot.actions.permissions import AccessPolicy, Tell
from bot.actions.settle import Settler
from bot.deployhq.client import DeployHQError
from bot.deployhq.deployment import Deployment
from bot.messages import approvals as approval_messages
from bot.messages import notes, replies
from bot.runtime import failpoints
from bot.runtime.background import Runner
from bot.words import states as s
from bot.words.actions import Outcome, spec_of
from bot.words.states import CardState

log = logging.getLogger(__name__)

# An action whose answer was lost is still looked for in DeployHQ's record this long after.
MIN_DOUBT_SECONDS = 60.0
# A sending claim's holder has this long past DeployHQ's deadline to record the answer.
LEASE_MARGIN_SECONDS = 2.0
# An action in doubt is looked for again this soon (the reconciler's own pass is slower).
RECHECK_SECONDS = 10.0


@dataclass(frozen=True)
class ActionResult:
    """What happened (``outcome``), what was shown (``state``, and whether a view showed it),
    and DeployHQ's answer when it acted."""

    outcome: Outcome
    state: CardState | None = None
    deployment: Deployment | None = None
    card_updated: bool = False
    told: bool = False  # the person was told already (where a request for approval waits)


class _Hold:
    """The claim as the preflight keeps it: renewed before each call, and the servers held."""

    def __init__(self, claims: Claims, key: str, claim: ActionClaim) -> None:
        self.claims = claims
        self.key = key
        self.claim = claim

    def renew(self) -> bool:
        return WITHOUT_STORE.read(
            "keep claim", lambda: self.claims.renew(self.key, self.claim), False, self.key
        )

    def servers(self, servers: frozenset[str]) -> Stop | Lapsed | None:
        if not servers:
            return None
        with WITHOUT_STORE.step("keep claim", self.key) as store:
            mine, holder = self.claims.hold_servers(self.key, self.claim, servers)
        if store.missing:
            return LAPSED
        if mine is not None:
            self.claim = mine
            return None
        if holder is None:
            return LAPSED
        log.info("%s held off %s: %s holds its servers", self.claim.action, self.key, holder)
        return Stop("busy", replies.servers_busy(holder.user_id, holder.action, holder.at))


class Pipeline:
    def __init__(
        self,
        claims: Claims,
        settler: Settler,
        *,
        policy: AccessPolicy | None = None,
        approvals: Approvals | None = None,
        rechecks: Runner | None = None,
        doubt_seconds: float = MIN_DOUBT_SECONDS,
        deadline_seconds: float = 20.0,
    ) -> None:
        self.claims = claims
        self.settler = settler
        # An action in doubt is settled again shortly, on ``rechecks``.
        self.rechecks = rechecks
        self.recheck_after = min(RECHECK_SECONDS, deadline_seconds + 1)
        self.policy = policy
        self.approvals = approvals  # four eyes on chosen servers, when set
        self.doubt_seconds = doubt_seconds
        # How long the holder of a sending claim may take to hear DeployHQ's answer.
        self.lease_seconds = deadline_seconds + LEASE_MARGIN_SECONDS

    def run(self, action: Action, user_id: str, tell: Tell) -> ActionResult:
        """Do ``action`` once on behalf of ``user_id``; ``tell`` hears why nothing was sent.
        Counted by outcome."""
        return self._counted(action, user_id, self._act(action, user_id, tell))

    def proceed(self, action: Action, claim: ActionClaim, tell: Tell) -> ActionResult:
        """An action a second person approved (``claim``, running again): its preflight run
        now, against DeployHQ's record at approval time, then the call, as any other."""
        user_id = claim.user_id
        requested = s.Requested(user_id, claim.at, action.name, claim.approved_by)
        action.view.show(
            requested, approval_messages.approved_note(user_id, claim.approved_by, action.name)
        )
        result = self._checked(action, _Hold(self.claims, action.key, claim), user_id, tell)
        return self._counted(action, user_id, result)

    def _counted(self, action: Action, user_id: str, result: ActionResult) -> ActionResult:
        metrics.ACTIONS[spec_of(action.name).metric].labels(result.outcome).inc()
        log.info(
            "%s of %s by %s: %s",
            action.name,
            action.key,
            user_id,
            result.outcome,
            extra={
                "action": action.name,
                "deployment": action.deployment,
                "user": user_id,
                "outcome": result.outcome,
            },
        )
        return result

    def _act(self, action: Action, user_id: str, tell: Tell) -> ActionResult:
        if self.policy is not None and not self.policy.check(user_id, tell, action.project):
            return ActionResult("forbidden")
        with WITHOUT_STORE.step("claim", action.key) as store:
            acquired, claim = self.claims.take(action.key, user_id, action.name)
        if store.missing:
            tell(replies.store_unavailable())
            return ActionResult("unavailable")
        if not acquired:
            return self._busy(action, claim, tell)
        failpoints.reach("claimed")
        log.info("%s of %s for %s", action.name, action.key, user_id)
        requested = s.Requested(user_id, claim.at, action.name)
        action.view.show(requested, notes.requested(user_id, action.name))
        return self._checked(action, _Hold(self.claims, action.key, claim), user_id, tell)

    def _checked(self, action: Action, hold: _Hold, user_id: str, tell: Tell) -> ActionResult:
        """The preflight, then (unless its servers need an approver first) the call."""
        try:
            checked = action.preflight(hold, user_id)
        except DeployHQError as error:
            return self._not_sent(action, hold.claim, user_id, error)
        if isinstance(checked, Lapsed):
            return self._lapsed(action, hold.claim, user_id)
        if isinstance(checked, Stop):
            self._release(action, hold.claim)
            if checked.why:
                tell(checked.why)
            return ActionResult(checked.outcome, checked.state, checked.deployment)
        failpoints.reach("preflight")
        if self.approvals is not None and not hold.claim.approved_by:
            asked = self.approvals.ask(action, hold.claim, checked, tell)
            if asked is not None:
                return ActionResult(
                    asked.outcome, asked.state, card_updated=asked.shown, told=asked.told
                )
        return self._send(action, hold.claim, checked, user_id)

    def _send(self, action: Action, claim: ActionClaim, go: Go, user_id: str) -> ActionResult:
        sending = WITHOUT_STORE.read(
            "keep claim",
            lambda: self.claims.mark_sending(
                action.key, claim, self.lease_seconds, self.doubt_seconds, go.ref
            ),
            None,
            action.key,
        )
        if sending is None:
            return self._lapsed(action, claim, user_id)
        failpoints.reach("sending")
        try:
            answer = go.send()
        except DeployHQError as error:
            if error.may_have_happened:
                return self._in_doubt(action, sending, user_id, error)
            return self._not_sent(action, sending, user_id, error)
        failpoints.reach("answered")
        with WITHOUT_STORE.step("finish", action.key):
            self.claims.finish(action.key, sending)
        failpoints.reach("finished")
        state, shown = action.view.done(sending, answer, datetime.now(UTC))
        failpoints.reach("card-saved")
        deployment = answer if isinstance(answer, Deployment) else None
        return ActionResult(spec_of(action.name).done, state, deployment, card_updated=shown)

    def _busy(self, action: Action, claim: ActionClaim, tell: Tell) -> ActionResult:
        log.info("%s of %s: already claimed by %s", action.name, action.key, claim.user_id)
        if claim.awaiting:
            link = self.approvals.link_of(claim.token) if self.approvals is not None else ""
            tell(approval_messages.awaiting_reply(claim.user_id, claim.action, claim.until, link))
            return ActionResult("busy")
        if claim.in_doubt:  # a new click re-checks DeployHQ before anything else
            settled = self.settler.resolve(action, claim)
            if settled is None:
                tell(":information_source: " + notes.never_queued(claim.action))
                return ActionResult("busy")
            claim = settled
        tell(
            replies.already_acted(
                claim.user_id,
                claim.at,
                claim.action,
                done=claim.done,
                in_doubt=claim.in_doubt,
                on_card=action.on_card,
            )
        )
        return ActionResult("busy")

    def _lapsed(self, action: Action, claim: ActionClaim, user_id: str) -> ActionResult:
        log.error(
            "%s of %s abandoned: its claim lapsed before DeployHQ was called",
            action.name,
            action.key,
        )
        self._release(action, claim)  # only if it is still ours (its servers, say)
        lapsed = s.NotDone(user_id, notes.claim_lapsed(action.name), action.name)
        shown = action.view.show(lapsed, notes.outcome_note(lapsed, None))
        return ActionResult("failed", lapsed, card_updated=shown)

    def _not_sent(
        self, action: Action, claim: ActionClaim, user_id: str, error: DeployHQError
    ) -> ActionResult:
        """DeployHQ refused, or could not be asked: free to act on again."""
        self._release(action, claim)
        state: CardState
        outcome: Outcome
        if error.status == 422:
            state, outcome = s.Refused(user_id, error.message, action.name), "refused"
        else:
            problem = replies.describe_error(error)
            state, outcome = s.NotDone(user_id, problem, action.name), "failed"
        log.warning(
            "%s of %s failed: HTTP %s %s", action.name, action.key, error.status, error.kind
        )
        shown = action.view.show(state, notes.outcome_note(state, None))
        return ActionResult(outcome, state, card_updated=shown)

    def _in_doubt(
        self, action: Action, claim: ActionClaim, user_id: str, error: DeployHQError
    ) -> ActionResult:
        log.warning("%s of %s in doubt: %s", action.name, action.key, error)
        with WITHOUT_STORE.step("doubt", action.key):
            claim = self.claims.doubt(action.key, claim)
        state = s.InDoubt(user_id, claim.at, action.name, replies.answered(error))
        shown = action.view.show(state, notes.outcome_note(state, None))
        # Not before DeployHQ's pause is over, if it asked for one.
        self._recheck_later(action, self.recheck_after, error.retry_after or 0.0)
        return ActionResult("in-doubt", state, card_updated=shown)

    def recheck(self, action: Action) -> None:
        """Settle ``action`` from DeployHQ's record, if its answer is still lost; still in
        doubt before its doubt window ends, it is looked at again when the window ends (after
        that, DeployHQ unreadable, the reconciler's passes go on looking)."""
        claim = WITHOUT_STORE.read("settle", lambda: self.claims.held(action.key), None, action.key)
        if claim is None or not (claim.in_doubt or claim.done):
            return
        settled = self.settler.resolve(action, claim)
        if settled is not None and not settled.done and settled.in_doubt:
            lost = settled.lost()
            assert lost is not None
            ends = lost + timedelta(seconds=settled.doubt_seconds)
            left = (ends - datetime.now(UTC)).total_seconds()
            if left > 0:
                self._recheck_later(action, left + 0.5)

    def _recheck_later(self, action: Action, after: float, pause: float = 0.0) -> None:
        if self.rechecks is not None:
            after = max(after, pause + 0.5)
            self.rechecks.later(
                after, f"re-checking an in-doubt {action.name}", self.recheck, action
            )

    def _release(self, action: Action, claim: ActionClaim) -> None:
        with WITHOUT_STORE.step("release", action.key):
            self.claims.release(action.key, claim)
