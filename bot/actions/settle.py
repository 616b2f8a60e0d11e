"""Actions whose answer was lost, settled from DeployHQ's record, and done ones shown.

Each action says what in DeployHQ's record proves it (``Action.prove``): a retry, the failure's
run changing; a rollback or a deploy, a new deployment to its revision on its servers; an abort,
the run no longer under way. Only when the record shows nothing happened for the whole doubt
window (counted from when the answer was lost) is the action free again; a record that cannot
tell (another deployment ran there since) leaves the outcome unknown, and nothing more is sent.
Each settlement happens once, by whoever settles the claim as read.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bot.actions.claims import WITHOUT_STORE, ActionClaim, Claims
from bot.deployhq.client import DeployHQError
from bot.messages import notes
from bot.words import states as s

if TYPE_CHECKING:
    from bot.actions.action import Action

log = logging.getLogger(__name__)


class Settler:
    def __init__(self, claims: Claims) -> None:
        self.claims = claims

    def resolve(self, action: Action, claim: ActionClaim) -> ActionClaim | None:
        """Settle an in-doubt action from DeployHQ's record; the claim as it now stands (None
        when the action is free again). A claim already done is shown again.

        Proven: the claim becomes done and the view says who acted. Nothing in the record once
        the doubt window has passed: never queued, and the action is offered again. A record
        that cannot tell: the outcome is unknown, and nothing more is sent.
        """
        try:
            proof = action.prove(claim)
        except DeployHQError as error:
            log.warning("in-doubt %s of %s still unknown: %s", claim.action, action.key, error)
            return claim
        key, view = action.key, action.view
        with WITHOUT_STORE.step("settle", key) as store:
            if claim.done:  # settled, but its holder died before the view said so
                if proof.done is not None:
                    view.done(claim, proof.done, claim.at)
                return claim
            if proof.done is not None:
                log.info("in-doubt %s of %s went through", claim.action, key)
                done = self.claims.settle(key, claim, done=True)
                if done is not None:
                    view.done(done, proof.done, claim.at)
                return done or self.claims.held(key)
            if not (proof.absent or claim.doubt_over()):
                return claim
            if proof.other is not None and not proof.absent:
                done = self.claims.settle(key, claim, done=True)
                if done is not None:
                    log.warning("%s of %s: outcome unknown", claim.action, key)
                    unknown = s.Unknown(claim.user_id, claim.at, claim.action)
                    view.show(unknown, notes.outcome_note(unknown, None))
                return done or self.claims.held(key)
            if self.claims.settle(key, claim, done=False) is None:
                return self.claims.held(key)
        if store.missing:
            return claim
        log.warning("in-doubt %s of %s was never queued", claim.action, key)
        lost = s.NotDone(claim.user_id, notes.never_queued(claim.action), claim.action)
        view.show(lost, notes.outcome_note(lost, None))
        return None
