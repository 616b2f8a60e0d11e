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
from datetime import UTC, datetime

from bot import messages
from bot.cards import Cards
from bot.deployhq import DeployHQ, DeployHQError
from bot.deployments import FAILED, Deployment
from bot.permissions import PermissionUnknown, RetryPolicy
from bot.routing import RetryTarget
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
        """Retry ``target`` on behalf of ``user_id``, keeping its card (if any) current.

        ``tell`` hears why nothing was tried (not allowed, already claimed, no store, DeployHQ
        has moved on); the outcome of a retry that was tried is returned, for the caller.
        """
        if not self.allowed(user_id, tell, target.project):
            return RetryResult("forbidden")
        try:
            acquired, claim = self.store.claim_retry(target.run_key, user_id)
        except StoreUnavailable:
            log.error("store unavailable; retry of %s by %s refused", target.run_key, user_id)
            tell(messages.store_unavailable())
            return RetryResult("unavailable")
        if not acquired:
            log.info("retry of %s by %s: already claimed", target.run_key, user_id)
            if claim.in_doubt:  # a new click re-checks DeployHQ before anything else
                claim = self.resolve(target, claim) or claim
            tell(
                messages.already_retried(
                    claim.user_id, claim.at, done=claim.done, in_doubt=claim.in_doubt
                )
            )
            return RetryResult("busy")

        log.info("retrying deployment %s for %s", target.run_key, user_id)
        self.cards.on_retry(
            target, messages.Retrying(user_id, claim.at), messages.retry_requested(user_id)
        )
        try:
            record = self.deployhq.deployment(target.project, target.deployment)
        except DeployHQError as error:
            return self._not_sent(target, claim, user_id, error)
        if record.status != FAILED or record.run_key != target.run_key:
            self._release(target, claim)
            log.info(
                "retry of %s by %s not sent: DeployHQ shows it %s (%s)",
                target.run_key,
                user_id,
                record.status,
                record.run_key,
            )
            self._put_back(target, record)
            tell(messages.not_retried(record))
            return RetryResult("superseded", deployment=record)

        # Slack and DeployHQ may have been slow: the lock must cover the whole call that follows.
        try:
            still_ours = self.store.refresh_retry(target.run_key, claim)
        except StoreUnavailable:
            still_ours = False
        if not still_ours:
            log.error(
                "retry of %s abandoned: its lock lapsed before DeployHQ was called", target.run_key
            )
            lapsed = messages.RetryFailed(user_id, messages.lock_lapsed())
            updated = self.cards.on_retry(target, lapsed, messages.retry_note(lapsed, None))
            return RetryResult("failed", lapsed, card_updated=updated)
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

    def resolve(self, target: RetryTarget, claim: RetryClaim) -> RetryClaim | None:
        """Settle an in-doubt retry from DeployHQ's record.

        The retry went through if the record has moved on from the failure: the claim becomes
        done and the card says who retried. If the record still shows the failure once the
        doubt has lasted long enough, it was never queued: the claim is released and Retry
        offered again. Otherwise (or when DeployHQ cannot be read) it stays in doubt.
        """
        try:
            record = self.deployhq.deployment(target.project, target.deployment)
        except DeployHQError as error:
            log.warning("in-doubt retry of %s still unknown: %s", target.run_key, error)
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
        self, target: RetryTarget, claim: RetryClaim, user_id: str, error: DeployHQError
    ) -> RetryResult:
        """DeployHQ refused, or could not be asked: the failure is free to retry again."""
        self._release(target, claim)
        state: messages.CardState
        if error.status == 422:
            state = messages.RetryRefused(user_id, error.message)
            outcome = "refused"
        else:
            state = messages.RetryFailed(user_id, messages.describe_error(error))
            outcome = "failed"
        log.warning("retry of %s failed: HTTP %s %s", target.run_key, error.status, error.kind)
        updated = self.cards.on_retry(target, state, messages.retry_note(state, None))
        return RetryResult(outcome, state, card_updated=updated)

    def _in_doubt(
        self, target: RetryTarget, claim: RetryClaim, user_id: str, error: DeployHQError
    ) -> RetryResult:
        log.warning("retry of %s in doubt: %s", target.run_key, error)
        try:
            claim = self.store.doubt_retry(target.run_key, claim)
        except StoreUnavailable:
            log.error("store unavailable; in-doubt retry of %s not recorded", target.run_key)
        state = messages.InDoubt(user_id, claim.at)
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
