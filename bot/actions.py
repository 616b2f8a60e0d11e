"""One action per failure (a retry, a rollback or a Deploy latest), and one abort per run under
way, however many ask, whatever breaks.

Every action goes through one pipeline: claim -> preflight -> "sending" -> the call -> settle.

- The **claim** (``claims``, keyed by the failure) lets one person at a time act on it.
- The **preflight** reads DeployHQ's record: the failure must still be the latest word on its
  servers (nothing queued on any of them since, by DeployHQ's own clock, whatever became of
  it), and a rollback's target, recomputed now, must be what the button named. So a claim
  Redis lost, an old button, or an action someone took elsewhere never causes a second one.
- The claim is marked **sending** before the call goes out. From then on only DeployHQ's record
  frees the failure: a holder that dies, a 5xx, a 504 page, a dropped connection or a lost
  answer leaves it **in doubt**, and it is **settled** from DeployHQ's record (``settle``).

The actions differ only in their preflight (``preflights`` for Deploy latest and Abort) and in
that proof.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from bot import card_rules, failpoints, metrics, preflights
from bot import card_states as s
from bot.background import Runner
from bot.card_states import ROLLBACK, CardState
from bot.cards import Cards
from bot.claims import ActionClaim, Claims
from bot.deployhq import DeployHQ, DeployHQError
from bot.deployments import FAILED, Deployment, Revision
from bot.history import last_good, newer_on_servers
from bot.kv import StoreUnavailable
from bot.messages import notes, replies
from bot.permissions import AccessPolicy, Tell
from bot.reconcile import Reconciler
from bot.routing import AbortTarget, ActionTarget, DeployTarget, RollbackTarget
from bot.settle import Settler

log = logging.getLogger(__name__)

# An action whose answer was lost is still looked for in DeployHQ's record this long after.
MIN_DOUBT_SECONDS = 60.0
# A sending claim's holder has this long past DeployHQ's deadline to record the answer.
LEASE_MARGIN_SECONDS = 2.0
# An action in doubt is looked for again this soon (the reconciler's own pass is slower).
RECHECK_SECONDS = 10.0


@dataclass(frozen=True)
class ActionResult:
    """What happened: ``outcome`` is one of ``retried``, ``rolled-back``, ``refused``,
    ``failed``, ``in-doubt``, ``superseded`` (DeployHQ's record had moved on), ``overtaken``,
    ``out-of-date``, ``busy``, ``unavailable``, ``forbidden``; ``deployment`` is DeployHQ's
    answer when it acted."""

    outcome: str
    state: CardState | None = None
    deployment: Deployment | None = None
    card_updated: bool = False


@dataclass(frozen=True)
class _Preflight:
    record: Deployment  # DeployHQ's record of the failure, read now
    good: Deployment | None = None  # a rollback's target, recomputed now


class Actions:
    def __init__(
        self,
        deployhq: DeployHQ,
        claims: Claims,
        cards: Cards,
        settler: Settler,
        reconciler: Reconciler,
        *,
        policy: AccessPolicy | None = None,
        rechecks: Runner | None = None,
        doubt_seconds: float = MIN_DOUBT_SECONDS,
        deadline_seconds: float = 20.0,
    ) -> None:
        self.deployhq = deployhq
        self.claims = claims
        self.cards = cards
        self.settler = settler
        # An action in doubt is checked again shortly, on ``rechecks``, by the reconciler.
        self.reconciler = reconciler
        self.rechecks = rechecks
        self.recheck_after = min(RECHECK_SECONDS, deadline_seconds + 1)
        self.policy = policy
        self.doubt_seconds = doubt_seconds
        # How long the holder of a sending claim may take to hear DeployHQ's answer.
        self.lease_seconds = deadline_seconds + LEASE_MARGIN_SECONDS

    def retry(self, target: ActionTarget, user_id: str, tell: Tell) -> ActionResult:
        """Retry ``target`` on behalf of ``user_id``, counted by outcome."""
        return _counted(s.RETRY, target, user_id, self._act(s.RETRY, target, user_id, tell))

    def rollback(self, target: RollbackTarget, user_id: str, tell: Tell) -> ActionResult:
        """Roll ``target`` back on behalf of ``user_id``, counted by outcome."""
        return _counted(ROLLBACK, target, user_id, self._act(ROLLBACK, target, user_id, tell))

    def deploy_latest(self, target: DeployTarget, user_id: str, tell: Tell) -> ActionResult:
        """Deploy the failure's branch's newest commit to its servers, as a new deployment."""
        return _counted(s.DEPLOY, target, user_id, self._act(s.DEPLOY, target, user_id, tell))

    def abort(self, target: AbortTarget, user_id: str, tell: Tell) -> ActionResult:
        """Abort the run under way that ``target`` names, once."""
        return _counted(s.ABORT, target, user_id, self._act(s.ABORT, target, user_id, tell))

    def retry_command(
        self, project: str, deployment_id: str, user_id: str, tell: Tell
    ) -> tuple[Deployment, ActionResult]:
        """``/deployhq retry``: the failure as DeployHQ gives it now (so a click on the card and
        this command about the same failure share one claim), retried. ``DeployHQError`` when
        it cannot be read."""
        deployment = self.deployhq.deployment(project, deployment_id)
        return deployment, self.retry(ActionTarget.of(deployment), user_id, tell)

    def rollback_command(
        self, project: str, deployment_id: str, user_id: str, tell: Tell
    ) -> ActionResult | None:
        """``/deployhq rollback``: back to the last good deployment DeployHQ gives on the
        failure's servers, as the card's button would; None when there is none (the person is
        told). ``DeployHQError`` when DeployHQ cannot be read."""
        deployment = self.deployhq.deployment(project, deployment_id)
        good = last_good(self.deployhq.history(project, to=deployment.parent), deployment)
        if good is None:
            tell(replies.nothing_to_roll_back_to(deployment))
            return None
        target = RollbackTarget(project, deployment.identifier, deployment.run_key, good.identifier)
        return self.rollback(target, user_id, tell)

    # --- the pipeline ---------------------------------------------------------------------------

    def _act(self, action: str, target: ActionTarget, user_id: str, tell: Tell) -> ActionResult:
        """Claim, preflight, mark sending, call DeployHQ, settle. ``tell`` hears why nothing
        was sent; the outcome of a call is returned, for the caller."""
        if self.policy is not None and not self.policy.check(user_id, tell, target.project):
            return ActionResult("forbidden")
        try:
            acquired, claim = self.claims.take(target.run_key, user_id, action)
        except StoreUnavailable:
            log.error("store unavailable; %s of %s by %s refused", action, target.run_key, user_id)
            tell(replies.store_unavailable())
            return ActionResult("unavailable")
        if not acquired:
            return self._busy(target, claim, user_id, tell, action)
        failpoints.reach("claimed")
        log.info("%s of deployment %s for %s", action, target.run_key, user_id)
        requested = s.Requested(user_id, claim.at, action)
        self.cards.on_action(target, requested, notes.requested(user_id, action))

        checked = self._preflight(action, target, claim, user_id, tell)
        if isinstance(checked, ActionResult):
            return checked
        failpoints.reach("preflight")

        ref = target.ref if isinstance(target, DeployTarget) else ""
        if checked.good is not None and checked.good.end_revision is not None:
            ref = checked.good.end_revision.ref
        try:
            sending = self.claims.mark_sending(
                target.run_key, claim, self.lease_seconds, self.doubt_seconds, ref
            )
        except StoreUnavailable:
            sending = None
        if sending is None:
            return self._lapsed(target, user_id, action)
        failpoints.reach("sending")

        try:
            if action == ROLLBACK:
                assert checked.good is not None
                answer = self.deployhq.rollback(target.project, checked.good.identifier)
            elif isinstance(target, DeployTarget):
                record = checked.record
                answer = self.deployhq.deploy(
                    target.project, record.parent, record.branch, target.ref
                )
            elif isinstance(target, AbortTarget):
                status = self.deployhq.abort(target.project, target.run)
                answer = replace(checked.record, status=status)
            else:
                answer = self.deployhq.retry(target.project, target.deployment)
        except DeployHQError as error:
            if error.may_have_happened:
                return self._in_doubt(target, sending, user_id, error, action)
            return self._not_sent(target, sending, user_id, error, action)
        failpoints.reach("answered")

        try:
            self.claims.finish(target.run_key, sending)
        except StoreUnavailable:
            log.warning("store unavailable; %s of %s done but not recorded", action, target)
        failpoints.reach("finished")
        state, updated = self.settler.show_done(target, sending, answer, datetime.now(UTC))
        failpoints.reach("card-saved")
        return ActionResult(_DONE[action], state, answer, card_updated=updated)

    def _preflight(
        self, action: str, target: ActionTarget, claim: ActionClaim, user_id: str, tell: Tell
    ) -> _Preflight | ActionResult:
        """DeployHQ's record, read now, says whether acting is still right: the failure the
        person saw is still there, nothing newer has run on its servers, and a rollback's target
        is still the last good deployment. Two calls: the record, and the recent deployments;
        a Deploy latest reads the branch's newest commit too, and an Abort only the run."""
        if isinstance(target, AbortTarget):
            return self._preflight_abort(target, claim, user_id, tell)
        try:
            record = self.deployhq.deployment(target.project, target.deployment)
        except DeployHQError as error:
            return self._not_sent(target, claim, user_id, error, action)
        if record.status != FAILED or record.run_key != target.run_key:
            self._release(target, claim)
            shows = f"{record.status} ({record.run_key}) to {user_id}"
            log.info("%s of %s not sent: DeployHQ shows it %s", action, target.run_key, shows)
            self._put_back(target, record)
            tell(replies.failure_moved_on(record, action))
            return ActionResult("superseded", deployment=record)
        if not self._still_ours(target, claim):  # the next read may take a whole deadline too
            return self._lapsed(target, user_id, action)
        if record.archived:
            self._release(target, claim)
            tell(replies.archived(action))
            self._put_back(target, record)
            return ActionResult("refused", deployment=record)
        # One read of the deployments to its servers, newest first, usually one page: what was
        # queued since the failure, then (for a rollback) the last good one before it.
        listed = iter(self.deployhq.history(target.project, to=record.parent))
        try:
            newer = newer_on_servers(listed, record)
            good = last_good(listed, record) if action == ROLLBACK and newer is None else None
        except DeployHQError as error:
            return self._not_sent(target, claim, user_id, error, action)
        if newer is not None:
            # Never older code over newer, and never a second action after a first one whose
            # own deployment (a rollback's, say) failed too.
            self._release(target, claim)
            log.info("%s of %s not sent: overtaken by %s", action, target.run_key, newer.identifier)
            state = s.Overtaken(newer.identifier, newer.status, newer.finished_at)
            self.cards.on_action(target, state, replies.overtaken(newer, action))
            tell(replies.overtaken(newer, action))
            return ActionResult("overtaken", state, newer)
        if isinstance(target, DeployTarget):
            try:
                stop = preflights.deploy_latest(self.deployhq, target, record, listed)
            except DeployHQError as error:
                return self._not_sent(target, claim, user_id, error, action)
            if stop is None:
                return _Preflight(record)
            self._release(target, claim)
            log.info("deploy of %s to %s not sent: %s", target.ref, target.run_key, stop.why)
            if stop.latest:
                self.cards.on_latest(target, Revision(stop.latest), record)
            else:
                self._put_back(target, record)
            tell(stop.why)
            return ActionResult("out-of-date", deployment=record)
        if action != ROLLBACK:
            return _Preflight(record)
        assert isinstance(target, RollbackTarget)
        if good is None or good.identifier != target.to:
            self._release(target, claim)
            now = good.identifier if good else None
            log.info("rollback of %s not sent: DeployHQ now gives %s", target, now)
            self.cards.on_rollback_target(target, good, record)
            tell(replies.rollback_target_moved(good))
            return ActionResult("out-of-date", deployment=record)
        return _Preflight(record, good)

    def _preflight_abort(
        self, target: AbortTarget, claim: ActionClaim, user_id: str, tell: Tell
    ) -> _Preflight | ActionResult:
        """The run named is still pending or running, by DeployHQ's record read now."""
        try:
            record = self.deployhq.deployment(target.project, target.run)
        except DeployHQError as error:
            return self._not_sent(target, claim, user_id, error, s.ABORT)
        stop = preflights.abort(target, record)
        if stop is None:
            return _Preflight(record)
        self._release(target, claim)
        log.info("abort of %s not sent: DeployHQ shows it %s", target.run_key, record.status)
        shows = f"DeployHQ shows the deployment as {record.status}."
        self.cards.on_action(target, s.NotDone(user_id, shows, s.ABORT), stop.why)
        self.cards.on_record(record)
        tell(stop.why)
        return ActionResult("superseded", deployment=record)

    def _busy(
        self, target: ActionTarget, claim: ActionClaim, user_id: str, tell: Tell, action: str
    ) -> ActionResult:
        log.info("%s of %s by %s: already claimed", action, target.run_key, user_id)
        if claim.in_doubt:  # a new click re-checks DeployHQ before anything else
            settled = self.settler.resolve(target, claim)
            if settled is None:
                tell(":information_source: " + notes.never_queued(claim.action))
                return ActionResult("busy")
            claim = settled
        tell(
            replies.already_acted(
                claim.user_id, claim.at, claim.action, done=claim.done, in_doubt=claim.in_doubt
            )
        )
        return ActionResult("busy")

    def _still_ours(self, target: ActionTarget, claim: ActionClaim) -> bool:
        """Renew the claim (nothing is sent yet) for the next call to DeployHQ."""
        try:
            return self.claims.renew(target.run_key, claim)
        except StoreUnavailable:
            return False

    def _lapsed(self, target: ActionTarget, user_id: str, action: str) -> ActionResult:
        log.error("%s of %s abandoned: its claim lapsed before DeployHQ was called", action, target)
        lapsed = s.NotDone(user_id, notes.claim_lapsed(action), action)
        updated = self.cards.on_action(target, lapsed, notes.outcome_note(lapsed, None))
        return ActionResult("failed", lapsed, card_updated=updated)

    def _not_sent(
        self,
        target: ActionTarget,
        claim: ActionClaim,
        user_id: str,
        error: DeployHQError,
        action: str,
    ) -> ActionResult:
        """DeployHQ refused, or could not be asked: the failure is free to act on again."""
        self._release(target, claim)
        state: CardState
        if error.status == 422:
            state = s.Refused(user_id, error.message, action)
            outcome = "refused"
        else:
            state = s.NotDone(user_id, replies.describe_error(error), action)
            outcome = "failed"
        log.warning("%s of %s failed: HTTP %s %s", action, target.run_key, error.status, error.kind)
        updated = self.cards.on_action(target, state, notes.outcome_note(state, None))
        return ActionResult(outcome, state, card_updated=updated)

    def _in_doubt(
        self,
        target: ActionTarget,
        claim: ActionClaim,
        user_id: str,
        error: DeployHQError,
        action: str,
    ) -> ActionResult:
        log.warning("%s of %s in doubt: %s", action, target.run_key, error)
        try:
            claim = self.claims.doubt(target.run_key, claim)
        except StoreUnavailable:
            log.error("store unavailable; in-doubt %s of %s not recorded", action, target.run_key)
        state = s.InDoubt(user_id, claim.at, action)
        updated = self.cards.on_action(target, state, notes.outcome_note(state, None))
        if self.rechecks is not None:
            self.rechecks.later(
                self.recheck_after,
                f"re-checking an in-doubt {action}",
                self.reconciler.check,
                target.deployment,
            )
        return ActionResult("in-doubt", state, card_updated=updated)

    def _put_back(self, target: ActionTarget, record: Deployment) -> None:
        """The card leaves "retry requested" for what DeployHQ's record shows."""
        if not self.cards.on_record(record):
            state = card_rules.resting_state(record)
            self.cards.on_action(target, state, replies.failure_moved_on(record), record)

    def _release(self, target: ActionTarget, claim: ActionClaim) -> None:
        try:
            self.claims.release(target.run_key, claim)
        except StoreUnavailable:
            log.warning("store unavailable; the claim of %s frees itself when it expires", target)


_DONE = {s.RETRY: "retried", ROLLBACK: "rolled-back", s.DEPLOY: "deployed", s.ABORT: "aborted"}


def _counted(action: str, target: ActionTarget, user_id: str, result: ActionResult) -> ActionResult:
    counter = {
        ROLLBACK: metrics.ROLLBACKS,
        s.DEPLOY: metrics.DEPLOYS,
        s.ABORT: metrics.ABORTS,
    }.get(action, metrics.RETRIES)
    counter.labels(result.outcome).inc()
    log.info(
        "%s of %s by %s: %s",
        action,
        target.run_key,
        user_id,
        result.outcome,
        extra={"deployment": target.deployment, "user": user_id, "outcome": result.outcome},
    )
    return result
