"""Retrying a failed deployment exactly once, however many people ask at the same moment."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from bot import messages
from bot.cards import Cards
from bot.deployhq import DeployHQ, DeployHQError
from bot.deployments import Deployment
from bot.permissions import PermissionUnknown, RetryPolicy
from bot.routing import RetryTarget
from bot.store import RetryClaim, Store, StoreUnavailable

log = logging.getLogger(__name__)

Tell = Callable[[str], None]
"""Sends a private mrkdwn note to the person who asked."""


@dataclass(frozen=True)
class RetryResult:
    """What happened: ``outcome`` is one of ``retried``, ``refused``, ``failed``, ``busy``,
    ``unavailable``, ``forbidden``; ``deployment`` is DeployHQ's answer when it retried."""

    outcome: str
    state: messages.CardState | None = None
    deployment: Deployment | None = None
    card_updated: bool = False


class Retries:
    def __init__(
        self, deployhq: DeployHQ, store: Store, cards: Cards, policy: RetryPolicy | None = None
    ) -> None:
        self.deployhq = deployhq
        self.store = store
        self.cards = cards
        self.policy = policy

    def retry(self, target: RetryTarget, user_id: str, tell: Tell) -> RetryResult:
        """Retry ``target`` on behalf of ``user_id``, keeping its card (if any) current.

        ``tell`` hears why nothing was tried (not allowed, already claimed, no store); the
        outcome of a retry that was tried is returned, for the caller to report.
        """
        if not self.allowed(user_id, tell):
            return RetryResult("forbidden")
        try:
            acquired, claim = self.store.claim_retry(target.run_key, user_id)
        except StoreUnavailable:
            log.error("store unavailable; retry of %s by %s refused", target.run_key, user_id)
            tell(messages.store_unavailable())
            return RetryResult("unavailable")
        if not acquired:
            log.info("retry of %s by %s: already claimed", target.run_key, user_id)
            tell(messages.already_retried(claim.user_id, claim.at, done=claim.done))
            return RetryResult("busy")

        log.info("retrying deployment %s for %s", target.run_key, user_id)
        self.cards.on_retry(
            target, messages.Retrying(user_id, claim.at), messages.retry_requested(user_id)
        )
        # Slack may have been slow: the lock must cover the whole DeployHQ call that follows.
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

        try:
            self.store.finish_retry(target.run_key, claim)
        except StoreUnavailable:
            log.warning("store unavailable; retry of %s done but not recorded", target.run_key)
        done = messages.Retried(user_id, datetime.now(UTC))
        note = messages.retry_note(done, deployment)
        updated = self.cards.on_retry(target, done, note, deployment)
        return RetryResult("retried", done, deployment, card_updated=updated)

    def allowed(self, user_id: str, tell: Tell) -> bool:
        """Whether ``user_id`` may retry; if not, they are told why and it is logged."""
        if self.policy is None:
            return True
        try:
            allowed = self.policy.allows(user_id)
        except PermissionUnknown:
            tell(messages.permission_unknown())
            return False
        if not allowed:
            log.warning("retry refused: user %s is not allowed to retry", user_id)
            tell(messages.not_allowed())
        return allowed

    def _release(self, target: RetryTarget, claim: RetryClaim) -> None:
        try:
            self.store.release_retry(target.run_key, claim)
        except StoreUnavailable:
            log.warning("store unavailable; the lock of %s frees itself when it expires", target)
