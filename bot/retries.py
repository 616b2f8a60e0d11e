"""Retrying a failed deployment exactly once, however many people ask, whatever breaks.

Two safeguards make one decision. The lock (a claim in the store, keyed by the failure) lets
one person at a time act on a failure. DeployHQ's own record, read after the lock is taken and
before anything is sent, says whether the failure the person saw is still there to retry, so a
lock that Redis lost, an old button, or a retry someone else made elsewhere never causes a
second retry. When DeployHQ's answer to a retry never comes, the claim stays "in doubt" and
nothing more is sent until DeployHQ's record shows whether the retry was queued.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot import messages, metrics
from bot.cards import Cards
from bot.deployhq import DeployHQ, DeployHQError
from bot.deployments import FAILED, Deployment, overtaken_by
from bot.permissions import PermissionUnknown, RetryPolicy
from bot.routing import RetryTarget, RollbackTarget
from bot.store import RetryClaim, Store, StoreUnavailable

log = logging.getLogger(__name__)

Tell = Callable[[str], None]
"""Sends a private mrkdwn note to the person who asked."""

# A retry whose answer never came is still looked for in DeployHQ's record this long after.
MIN_DOUBT_SECONDS = 60.0


@dataclass(frozen=True)
class RetryResult:
    """What happened: ``outcome`` is one of ``retried``, ``refused``, ``failed``, ``in-doubt``,
    ``superseded`` (DeployHQ's record had moved on), ``busy``, ``unavailable``, ``forbidden``;
    ``deployment`` is DeployHQ's answer when it retried."""

    outcome: str
    state: messages.CardState | None = None
    deployment: Deployment | None = None
    card_updated: bool = False


class Retries:
    def __init__(
        self,
        deployhq: DeployHQ,
        store: Store,
        cards: Cards,
        policy: RetryPolicy | None = None,
        *,
        doubt_seconds: float = MIN_DOUBT_SECONDS,
        recheck: Callable[[RetryTarget], None] | None = None,
    ) -> None:
        self.deployhq = deployhq
        self.store = store
        self.cards = cards
        self.policy = policy
        self.doubt_seconds = doubt_seconds
        # Asks for an in-doubt retry to be settled again shortly (the reconciler does it).
        self.recheck = recheck

    def retry(self, target: RetryTarget, user_id: str, tell: Tell) -> RetryResult:
        """Retry ``target`` on behalf of ``user_id`` (see ``_retry``), counted by outcome."""
        return _counted("retry", target, user_id, self._retry(target, user_id, tell))

    def rollback(self, target: RollbackTarget, user_id: str, tell: Tell) -> RetryResult:
        """Roll ``target`` back on behalf of ``user_id`` (see ``_rollback``), counted."""
        return _counted("rollback", target, user_id, self._rollback(target, user_id, tell))

    def _retry(self, target: RetryTarget, user_id: str, tell: Tell) -> RetryResult:
        """Retry ``target`` on behalf of ``user_id``, keeping its card (if any) current.

        ``tell`` hears why nothing was tried (not allowed, already claimed, no store, DeployHQ
        has moved on); the outcome of a retry that was tried is returned, for the caller.
        """
        begun = self._begin(target, user_id, tell, "retry")
        if isinstance(begun, RetryResult):
            return begun
        claim, record = begun
        # Never put older code back: a newer deployment on these servers makes retrying unsafe.
        try:
            newer = overtaken_by(self.deployhq.history(target.project, max_pages=1), record)
        except DeployHQError as error:
            return self._not_sent(target, claim, user_id, error)
        if newer is not None:
            self._release(target, claim)
            log.info("retry of %s not sent: overtaken by %s", target.run_key, newer.identifier)
            moment = newer.completed_at or newer.started_at or newer.queued_at
            state = messages.Overtaken(newer.identifier, newer.status, moment)
            self.cards.on_retry(target, state, messages.overtaken(newer))
            tell(messages.overtaken(newer))
            return RetryResult("overtaken", state, newer)

        if not self._still_ours(target, claim):
            return self._lapsed(target, user_id, "retry")
        try:
            deployment = self.deployhq.retry(target.project, target.deployment)
        except DeployHQError as error:
            if error.may_have_happened:
                return self._in_doubt(target, claim, user_id, error)
            return self._not_sent(target, claim, user_id, error)

        try:
            self.store.finish_retry(target.run_key, claim)
        except StoreUnavailable:
            log.warning("store unavailable; retry of %s done but not recorded", target.run_key)
        done = messages.Retried(user_id, datetime.now(UTC))
        note = messages.retry_note(done, deployment)
        updated = self.cards.on_retry(target, done, note, deployment)
        return RetryResult("retried", done, deployment, card_updated=updated)

    def _rollback(self, target: RollbackTarget, user_id: str, tell: Tell) -> RetryResult:
        """Put the last good deployment's revision back on the failed one's servers, once per
        failure (a retry and a rollback of one failure exclude each other)."""
        begun = self._begin(target, user_id, tell, "rollback")
        if isinstance(begun, RetryResult):
            return begun
        claim, _ = begun
        if not self._still_ours(target, claim):
            return self._lapsed(target, user_id, "rollback")
        try:
            new = self.deployhq.rollback(target.project, target.to)
        except DeployHQError as error:
            if error.may_have_happened:
                return self._in_doubt(target, claim, user_id, error, "rollback")
            return self._not_sent(target, claim, user_id, error, "rollback")
        try:
            self.store.finish_retry(target.run_key, claim)
        except StoreUnavailable:
            log.warning("store unavailable; rollback of %s done but not recorded", target.run_key)
        ref = new.end_revision.ref if new.end_revision else target.to
        state = messages.RolledBack(user_id, datetime.now(UTC), ref, new.status, new.identifier)
        note = messages.rollback_note(state, new)
        updated = self.cards.on_retry(target, state, note, rolled_back=new)
        return RetryResult("rolled-back", state, new, card_updated=updated)

    def _begin(
        self, target: RetryTarget, user_id: str, tell: Tell, action: str
    ) -> tuple[RetryClaim, Deployment] | RetryResult:
        """Scope, the failure's claim, the card, then DeployHQ's record of the failure: the
        claim and the record when the failure is still there to act on; else the result."""
        if not self.allowed(user_id, tell, target.project):
            return RetryResult("forbidden")
        try:
            acquired, claim = self.store.claim_retry(target.run_key, user_id, action)
        except StoreUnavailable:
            log.error("store unavailable; %s of %s by %s refused", action, target.run_key, user_id)
            tell(messages.store_unavailable())
            return RetryResult("unavailable")
        if not acquired:
            log.info("%s of %s by %s: already claimed", action, target.run_key, user_id)
            if claim.in_doubt:  # a new click re-checks DeployHQ before anything else
                claim = self.resolve(target, claim) or claim
            tell(
                messages.already_acted(
                    claim.user_id, claim.at, claim.action, done=claim.done, in_doubt=claim.in_doubt
                )
            )
            return RetryResult("busy")

        log.info("%s of deployment %s for %s", action, target.run_key, user_id)
        requested = messages.Retrying(user_id, claim.at, action)
        self.cards.on_retry(target, requested, messages.requested(user_id, action))
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
            tell(messages.not_retried(record))
            return RetryResult("superseded", deployment=record)
        return claim, record

    def resolve(self, target: RetryTarget, claim: RetryClaim) -> RetryClaim | None:
        """Settle an in-doubt retry from DeployHQ's record.

        The retry went through if the record has moved on from the failure: the claim becomes
        done and the card says who retried. If the record still shows the failure once the
        doubt has lasted long enough, it was never queued: the claim is released and Retry
        offered again. Otherwise (or when DeployHQ cannot be read) it stays in doubt.
        """
        try:
            record = self.deployhq.deployment(target.project, target.deployment)
            if claim.action == "rollback":
                return self._resolve_rollback(target, claim, record)
        except DeployHQError as error:
            log.warning("in-doubt %s of %s still unknown: %s", claim.action, target.run_key, error)
            return claim
        try:
            if record.status != FAILED or record.run_key != target.run_key:
                log.info("in-doubt retry of %s went through: %s", target.run_key, record.status)
                done = self.store.finish_retry(target.run_key, claim)
                retried = messages.Retried(claim.user_id, claim.at)
                note = messages.retry_note(retried, record)
                self.cards.on_retry(target, retried, note, record)
                return done
            waited = (datetime.now(UTC) - claim.at).total_seconds()
            if waited < self.doubt_seconds:
                return claim
            log.warning("in-doubt retry of %s was never queued; Retry is offered", target.run_key)
            self.store.release_retry(target.run_key, claim)
        except StoreUnavailable:
            return claim
        lost = messages.RetryFailed(claim.user_id, messages.never_queued())
        self.cards.on_retry(target, lost, messages.retry_note(lost, None))
        return None

    def _still_ours(self, target: RetryTarget, claim: RetryClaim) -> bool:
        """Renew the claim just before the call to DeployHQ (Slack and DeployHQ may have been
        slow), so it covers the whole call that follows."""
        try:
            return self.store.refresh_retry(target.run_key, claim)
        except StoreUnavailable:
            return False

    def _lapsed(self, target: RetryTarget, user_id: str, action: str) -> RetryResult:
        log.error("%s of %s abandoned: its lock lapsed before DeployHQ was called", action, target)
        lapsed = messages.RetryFailed(user_id, messages.lock_lapsed(), action)
        updated = self.cards.on_retry(target, lapsed, messages.retry_note(lapsed, None))
        return RetryResult("failed", lapsed, card_updated=updated)

    def _resolve_rollback(
        self, target: RetryTarget, claim: RetryClaim, failed: Deployment
    ) -> RetryClaim | None:
        """A rollback queues a new deployment: one on the failure's servers, queued since the
        claim was taken, means it went through."""
        since = claim.at - timedelta(seconds=5)  # DeployHQ's clock and ours may differ a little
        new = next(
            (
                d
                for d in self.deployhq.history(target.project, max_pages=1)
                if d.identifier != failed.identifier
                and d.server_keys & failed.server_keys
                and d.queued_at is not None
                and d.queued_at >= since
            ),
            None,
        )
        try:
            if new is not None:
                done = self.store.finish_retry(target.run_key, claim)
                ref = new.end_revision.ref if new.end_revision else ""
                state = messages.RolledBack(
                    claim.user_id, claim.at, ref, new.status, new.identifier
                )
                self.cards.on_retry(
                    target, state, messages.rollback_note(state, new), rolled_back=new
                )
                return done
            if (datetime.now(UTC) - claim.at).total_seconds() < self.doubt_seconds:
                return claim
            self.store.release_retry(target.run_key, claim)
        except StoreUnavailable:
            return claim
        lost = messages.RetryFailed(claim.user_id, messages.never_queued(), "rollback")
        self.cards.on_retry(target, lost, messages.retry_note(lost, None))
        return None

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
        action: str = "retry",
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
        action: str = "retry",
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
