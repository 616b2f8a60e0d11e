"""Actions whose answer was lost, settled from DeployHQ's record, and done ones shown.

A retry is proven by the deployment's run changing; a rollback by a deployment on the failure's
servers, to the target's revision, queued after the failure. Only when the record shows nothing
happened for the whole doubt window (counted from when the answer was lost) is the failure free
again; a record that cannot tell (another deployment ran since) leaves the outcome unknown, and
nothing more is sent. Each settlement happens once, by whoever settles the claim as read.
"""

from __future__ import annotations

import logging
from datetime import datetime
from itertools import takewhile

from bot import card_states as s
from bot import preflights
from bot.cards import Cards
from bot.claims import ActionClaim, Claims
from bot.deployhq import DeployHQ, DeployHQError
from bot.deployments import FAILED, Deployment
from bot.history import newer_on_servers, rolled_back_by
from bot.kv import StoreUnavailable
from bot.messages import notes
from bot.routing import AbortTarget, ActionTarget

log = logging.getLogger(__name__)


class Settler:
    def __init__(self, deployhq: DeployHQ, claims: Claims, cards: Cards) -> None:
        self.deployhq = deployhq
        self.claims = claims
        self.cards = cards

    def resolve(self, target: ActionTarget, claim: ActionClaim) -> ActionClaim | None:
        """Settle an in-doubt action from DeployHQ's record; the claim as it now stands (None
        when the failure is free again). A claim already done is shown on the card again.

        Proven (the retried run, the rollback's or Deploy latest's new deployment, or the
        aborted run no longer under way, is in DeployHQ's record): the
        claim becomes done and the card says who acted. Nothing in the record once the doubt
        window has passed: never queued, and the failure is offered again. A record that
        cannot tell: the outcome is unknown, and nothing more is sent.
        """
        try:
            proof: Deployment | None = None
            other: Deployment | None = None
            if isinstance(target, AbortTarget):  # proven once the run is no longer under way
                record = self.deployhq.deployment(target.project, target.run)
                proof = record if preflights.abort(target, record) is not None else None
            elif claim.action in (s.ROLLBACK, s.DEPLOY):  # a new deployment, to claim.ref
                record = self.deployhq.deployment(target.project, target.deployment)
                listed = self.deployhq.history(target.project, to=record.parent)
                history = list(takewhile(lambda d: d.identifier != record.identifier, listed))
                proof = rolled_back_by(history, record, claim.ref) if claim.ref else None
                other = newer_on_servers(history, record)
            else:
                record = self.deployhq.deployment(target.project, target.deployment)
                if record.status != FAILED or record.run_key != target.run_key:
                    proof = record
        except DeployHQError as error:
            log.warning("in-doubt %s of %s still unknown: %s", claim.action, target.run_key, error)
            return claim
        try:
            if claim.done:  # settled, but its holder died before the card said so
                if proof is not None:
                    self.show_done(target, claim, proof, claim.at)
                return claim
            if proof is not None:
                log.info("in-doubt %s of %s went through", claim.action, target.run_key)
                done = self.claims.settle(target.run_key, claim, done=True)
                if done is not None:
                    self.show_done(target, done, proof, claim.at)
                return done or self.claims.held(target.run_key)
            if not claim.doubt_over():
                return claim
            if other is not None:
                done = self.claims.settle(target.run_key, claim, done=True)
                if done is not None:
                    log.warning("%s of %s: outcome unknown", claim.action, target.run_key)
                    unknown = s.Unknown(claim.user_id, claim.at, claim.action)
                    self.cards.on_action(target, unknown, notes.outcome_note(unknown, None))
                return done or self.claims.held(target.run_key)
            if self.claims.settle(target.run_key, claim, done=False) is None:
                return self.claims.held(target.run_key)
        except StoreUnavailable:
            return claim
        log.warning("in-doubt %s of %s was never queued", claim.action, target.run_key)
        lost = s.NotDone(claim.user_id, notes.never_queued(claim.action), claim.action)
        self.cards.on_action(target, lost, notes.outcome_note(lost, None))
        return None

    def show_done(
        self, target: ActionTarget, claim: ActionClaim, answer: Deployment, at: datetime
    ) -> tuple[s.CardState, bool]:
        """The card says who acted, and follows what DeployHQ queued: the state shown, and
        whether a card showed it."""
        if claim.action == s.ABORT:
            aborted = s.Aborted(claim.user_id, at, answer.status)
            shown = self.cards.on_action(target, aborted, notes.outcome_note(aborted, answer))
            self.cards.on_record(answer)  # the card shows the run as DeployHQ now gives it
            return aborted, shown
        if claim.action in (s.ROLLBACK, s.DEPLOY):
            ref = answer.end_revision.ref if answer.end_revision else claim.ref
            rolled = s.RolledBack(
                claim.user_id, at, ref, answer.status, answer.identifier, claim.action
            )
            note = notes.outcome_note(rolled, answer)
            return rolled, self.cards.on_action(target, rolled, note, rolled_back=answer)
        done = s.Retried(claim.user_id, at)
        note = notes.outcome_note(done, answer)
        return done, self.cards.on_action(target, done, note, answer)
