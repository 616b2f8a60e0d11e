"""One action per failure (a retry or a rollback), however many ask, whatever breaks.

Every action goes through one pipeline: claim -> preflight -> "sending" -> the call -> settle.

- The **claim** (in the store, keyed by the failure) lets one person at a time act on it.
- The **preflight** reads DeployHQ's record: the failure must still be the latest word on its
  servers (nothing queued on any of them since, by DeployHQ's own clock, whatever became of
  it), and a rollback's target, recomputed now, must be what the button named. So a claim
  Redis lost, an old button, or an action someone took elsewhere never causes a second one.
- The claim is marked **sending** before the call goes out. From then on only DeployHQ's record
  frees the failure: a holder that dies, a 5xx, a 504 page, a dropped connection or a lost
  answer leaves it **in doubt**, and it is **settled** from DeployHQ's record: a retry is proven
  by the deployment's run changing, a rollback by a deployment on those servers, to the
  target's revision, queued after the failure. Only when the record shows nothing happened
  for the whole doubt window (counted from when the answer was lost) is the failure free again.

The two actions differ only in their preflight and in that proof.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import takewhile

from bot import failpoints, messages, metrics
from bot.cards import Cards
from bot.deployhq import DeployHQ, DeployHQError
from bot.deployments import (
    FAILED,
    Deployment,
    last_good,
    newer_on_servers,
    rolled_back_by,
)
from bot.permissions import PermissionUnknown, RetryPolicy
from bot.routing import RetryTarget, RollbackTarget
from bot.store import RetryClaim, Store, StoreUnavailable

log = logging.getLogger(__name__)

Tell = Callable[[str], None]
"""Sends a private mrkdwn note to the person who asked."""

# An action whose answer was lost is still looked for in DeployHQ's record this long after.
MIN_DOUBT_SECONDS = 60.0
# A sending claim's holder has this long past DeployHQ's deadline to record the answer.
LEASE_MARGIN_SECONDS = 2.0
RETRY, ROLLBACK = "retry", "rollback"


@dataclass(frozen=True)
class RetryResult:
    """What happened: ``outcome`` is one of ``retried``, ``rolled-back``, ``refused``,
    ``failed``, ``in-doubt``, ``superseded`` (DeployHQ's record had moved on), ``overtaken``,
    ``out-of-date``, ``busy``, ``unavailable``, ``forbidden``; ``deployment`` is DeployHQ's
    answer when it acted."""

    outcome: str
    state: messages.CardState | None = None
    deployment: Deployment | None = None
    card_updated: bool = False


@dataclass(frozen=True)
class _Preflight:
    record: Deployment  # DeployHQ's record of the failure, read now
    good: Deployment | None = None  # a rollback's target, recomputed now


class Retries:
    def __init__(
        self,
        deployhq: DeployHQ,
        store: Store,
        cards: Cards,
        policy: RetryPolicy | None = None,
        *,
        doubt_seconds: float = MIN_DOUBT_SECONDS,
        deadline_seconds: float = 20.0,
        recheck: Callable[[RetryTarget], None] | None = None,
    ) -> None:
        self.deployhq = deployhq
        self.store = store
        self.cards = cards
        self.policy = policy
        self.doubt_seconds = doubt_seconds
        # How long the holder of a sending claim may take to hear DeployHQ's answer.
        self.lease_seconds = deadline_seconds + LEASE_MARGIN_SECONDS
        # Asks for an in-doubt action to be settled again shortly (the reconciler does it).
        self.recheck = recheck

    def retry(self, target: RetryTarget, user_id: str, tell: Tell) -> RetryResult:
        """Retry ``target`` on behalf of ``user_id``, counted by outcome."""
        return _counted(RETRY, target, user_id, self._act(RETRY, target, user_id, tell))

    def rollback(self, target: RollbackTarget, user_id: str, tell: Tell) -> RetryResult:
        """Roll ``target`` back on behalf of ``user_id``, counted by outcome."""
        return _counted(ROLLBACK, target, user_id, self._act(ROLLBACK, target, user_id, tell))

    # --- the pipeline ---------------------------------------------------------------------------

    def _act(self, action: str, target: RetryTarget, user_id: str, tell: Tell) -> RetryResult:
        """Claim, preflight, mark sending, call DeployHQ, settle. ``tell`` hears why nothing
        was sent; the outcome of a call is returned, for the caller."""
        if not self.allowed(user_id, tell, target.project):
            return RetryResult("forbidden")
        try:
            acquired, claim = self.store.claim_retry(target.run_key, user_id, action)
        except StoreUnavailable:
            log.error("store unavailable; %s of %s by %s refused", action, target.run_key, user_id)
            tell(messages.store_unavailable())
            return RetryResult("unavailable")
        if not acquired:
            return self._busy(target, claim, user_id, tell, action)
        failpoints.reach("claimed")
        log.info("%s of deployment %s for %s", action, target.run_key, user_id)
        requested = messages.Retrying(user_id, claim.at, action)
        self.cards.on_retry(target, requested, messages.requested(user_id, action))

        checked = self._preflight(action, target, claim, user_id, tell)
        if isinstance(checked, RetryResult):
            return checked
        failpoints.reach("preflight")

        ref = ""
        if checked.good is not None and checked.good.end_revision is not None:
            ref = checked.good.end_revision.ref
        try:
            sending = self.store.mark_sending(
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
            else:
                answer = self.deployhq.retry(target.project, target.deployment)
        except DeployHQError as error:
            if error.may_have_happened:
                return self._in_doubt(target, sending, user_id, error, action)
            return self._not_sent(target, sending, user_id, error, action)
        failpoints.reach("answered")

        try:
            self.store.finish_retry(target.run_key, sending)
        except StoreUnavailable:
            log.warning("store unavailable; %s of %s done but not recorded", action, target)
        failpoints.reach("finished")
        result = self._show_done(target, sending, answer, datetime.now(UTC))
        failpoints.reach("card-saved")
        return result

    def _preflight(
        self, action: str, target: RetryTarget, claim: RetryClaim, user_id: str, tell: Tell
    ) -> _Preflight | RetryResult:
        """DeployHQ's record, read now, says whether acting is still right: the failure the
        person saw is still there, nothing newer has run on its servers, and a rollback's target
        is still the last good deployment. Two calls: the record, and the recent deployments."""
        try:
            record = self.deployhq.deployment(target.project, target.deployment)
        except DeployHQError as error:
            return self._not_sent(target, claim, user_id, error, action)
        if record.status != FAILED or record.run_key != target.run_key:
            self._release(target, claim)
            log.info(
                "%s of %s by %s not sent: DeployHQ shows it %s (%s)",
                action,
                target.run_key,
                user_id,
                record.status,
                record.run_key,
            )
            self._put_back(target, record)
            tell(messages.not_retried(record, action))
            return RetryResult("superseded", deployment=record)
        if not self._still_ours(target, claim):  # the next read may take a whole deadline too
            return self._lapsed(target, user_id, action)
        if record.archived:
            self._release(target, claim)
            tell(messages.archived(action))
            self._put_back(target, record)
            return RetryResult("refused", deployment=record)
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
            state = messages.Overtaken(newer.identifier, newer.status, newer.finished_at)
            self.cards.on_retry(target, state, messages.overtaken(newer, action))
            tell(messages.overtaken(newer, action))
            return RetryResult("overtaken", state, newer)
        if action != ROLLBACK:
            return _Preflight(record)
        assert isinstance(target, RollbackTarget)
        if good is None or good.identifier != target.to:
            self._release(target, claim)
            log.info(
                "rollback of %s not sent: the button named %s, DeployHQ now gives %s",
                target.run_key,
                target.to,
                good.identifier if good else None,
            )
            self.cards.on_rollback_target(target, good, record)
            tell(messages.rollback_target_moved(good))
            return RetryResult("out-of-date", deployment=record)
        return _Preflight(record, good)

    def _busy(
        self, target: RetryTarget, claim: RetryClaim, user_id: str, tell: Tell, action: str
    ) -> RetryResult:
        log.info("%s of %s by %s: already claimed", action, target.run_key, user_id)
        if claim.in_doubt:  # a new click re-checks DeployHQ before anything else
            settled = self.resolve(target, claim)
            if settled is None:
                tell(":information_source: " + messages.never_queued(claim.action))
                return RetryResult("busy")
            claim = settled
        tell(
            messages.already_acted(
                claim.user_id, claim.at, claim.action, done=claim.done, in_doubt=claim.in_doubt
            )
        )
        return RetryResult("busy")

    def _show_done(
        self, target: RetryTarget, claim: RetryClaim, answer: Deployment, at: datetime
    ) -> RetryResult:
        """The card says who acted, and follows what DeployHQ queued."""
        if claim.action == ROLLBACK:
            ref = answer.end_revision.ref if answer.end_revision else claim.ref
            rolled = messages.RolledBack(claim.user_id, at, ref, answer.status, answer.identifier)
            note = messages.rollback_note(rolled, answer)
            updated = self.cards.on_retry(target, rolled, note, rolled_back=answer)
            return RetryResult("rolled-back", rolled, answer, card_updated=updated)
        done = messages.Retried(claim.user_id, at)
        note = messages.retry_note(done, answer)
        updated = self.cards.on_retry(target, done, note, answer)
        return RetryResult("retried", done, answer, card_updated=updated)

    # --- settling what is in doubt --------------------------------------------------------------

    def resolve(self, target: RetryTarget, claim: RetryClaim) -> RetryClaim | None:
        """Settle an in-doubt action from DeployHQ's record; the claim as it now stands (None
        when the failure is free again). A claim already done is shown on the card again.

        Proven (the retried run, or the rollback's deployment, is in DeployHQ's record): the
        claim becomes done and the card says who acted. Nothing in the record once the doubt
        window has passed: never queued, and the failure is offered again. A record that
        cannot tell (another deployment ran since): the outcome is unknown, and nothing more
        is sent. Each settlement happens once, by whoever settles the claim as read.
        """
        try:
            record = self.deployhq.deployment(target.project, target.deployment)
            proof: Deployment | None = None
            other: Deployment | None = None
            if claim.action == ROLLBACK:
                listed = self.deployhq.history(target.project, to=record.parent)
                history = list(takewhile(lambda d: d.identifier != record.identifier, listed))
                proof = rolled_back_by(history, record, claim.ref) if claim.ref else None
                other = newer_on_servers(history, record)
            elif record.status != FAILED or record.run_key != target.run_key:
                proof = record
        except DeployHQError as error:
            log.warning("in-doubt %s of %s still unknown: %s", claim.action, target.run_key, error)
            return claim
        try:
            if claim.done:  # settled, but its holder died before the card said so
                if proof is not None:
                    self._show_done(target, claim, proof, claim.at)
                return claim
            if proof is not None:
                log.info("in-doubt %s of %s went through", claim.action, target.run_key)
                done = self.store.settle(target.run_key, claim, done=True)
                if done is not None:
                    self._show_done(target, done, proof, claim.at)
                return done or self.store.retry_claim(target.run_key)
            if not claim.doubt_over():
                return claim
            if other is not None:
                done = self.store.settle(target.run_key, claim, done=True)
                if done is not None:
                    log.warning("%s of %s: outcome unknown", claim.action, target.run_key)
                    unknown = messages.Unknown(claim.user_id, claim.at, claim.action)
                    self.cards.on_retry(target, unknown, messages.retry_note(unknown, None))
                return done or self.store.retry_claim(target.run_key)
            if self.store.settle(target.run_key, claim, done=False) is None:
                return self.store.retry_claim(target.run_key)
        except StoreUnavailable:
            return claim
        log.warning("in-doubt %s of %s was never queued", claim.action, target.run_key)
        lost = messages.RetryFailed(
            claim.user_id, messages.never_queued(claim.action), claim.action
        )
        self.cards.on_retry(target, lost, messages.retry_note(lost, None))
        return None

    def _still_ours(self, target: RetryTarget, claim: RetryClaim) -> bool:
        """Renew the claim (nothing is sent yet) for the next call to DeployHQ."""
        try:
            return self.store.refresh_retry(target.run_key, claim)
        except StoreUnavailable:
            return False

    def _lapsed(self, target: RetryTarget, user_id: str, action: str) -> RetryResult:
        log.error("%s of %s abandoned: its claim lapsed before DeployHQ was called", action, target)
        lapsed = messages.RetryFailed(user_id, messages.lock_lapsed(action), action)
        updated = self.cards.on_retry(target, lapsed, messages.retry_note(lapsed, None))
        return RetryResult("failed", lapsed, card_updated=updated)

    def allowed(self, user_id: str, tell: Tell, project: str = "") -> bool:
        """Whether ``user_id`` may act on ``project``; if not, they are told why, and it is
        logged. Checked before any call to DeployHQ."""
        if self.policy is None:
            return True
        if project and not self.policy.serves(project):
            log.warning("refused %s: project %r is not in DEPLOYHQ_PROJECTS", user_id, project)
            tell(messages.project_not_served(project))
            return False
        try:
            allowed = self.policy.allows(user_id)
        except PermissionUnknown:
            tell(messages.permission_unknown())
            return False
        if not allowed:
            log.warning("retry refused: user %s is not allowed to retry", user_id)
            tell(messages.not_allowed())
        return allowed

    def _not_sent(
        self,
        target: RetryTarget,
        claim: RetryClaim,
        user_id: str,
        error: DeployHQError,
        action: str = RETRY,
    ) -> RetryResult:
        """DeployHQ refused, or could not be asked: the failure is free to act on again."""
        self._release(target, claim)
        state: messages.CardState
        if error.status == 422:
            state = messages.RetryRefused(user_id, error.message, action)
            outcome = "refused"
        else:
            state = messages.RetryFailed(user_id, messages.describe_error(error), action)
            outcome = "failed"
        log.warning("%s of %s failed: HTTP %s %s", action, target.run_key, error.status, error.kind)
        updated = self.cards.on_retry(target, state, messages.retry_note(state, None))
        return RetryResult(outcome, state, card_updated=updated)

    def _in_doubt(
        self,
        target: RetryTarget,
        claim: RetryClaim,
        user_id: str,
        error: DeployHQError,
        action: str = RETRY,
    ) -> RetryResult:
        log.warning("%s of %s in doubt: %s", action, target.run_key, error)
        try:
            claim = self.store.doubt_retry(target.run_key, claim)
        except StoreUnavailable:
            log.error("store unavailable; in-doubt %s of %s not recorded", action, target.run_key)
        state = messages.InDoubt(user_id, claim.at, action)
        updated = self.cards.on_retry(target, state, messages.retry_note(state, None))
        if self.recheck is not None:
            self.recheck(target)
        return RetryResult("in-doubt", state, card_updated=updated)

    def _put_back(self, target: RetryTarget, record: Deployment) -> None:
        """The card leaves "retry requested" for what DeployHQ's record shows."""
        if not self.cards.on_record(record):
            state = messages.Failed() if record.status == FAILED else messages.Progress()
            self.cards.on_retry(target, state, messages.not_retried(record), record)

    def _release(self, target: RetryTarget, claim: RetryClaim) -> None:
        try:
            self.store.release_retry(target.run_key, claim)
        except StoreUnavailable:
            log.warning("store unavailable; the lock of %s frees itself when it expires", target)


def _counted(action: str, target: RetryTarget, user_id: str, result: RetryResult) -> RetryResult:
    counter = metrics.ROLLBACKS if action == "rollback" else metrics.RETRIES
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
