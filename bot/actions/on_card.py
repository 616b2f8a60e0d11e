"""The actions a failure card offers: Retry, Roll back and Deploy latest (one per failure: they
share its claim) and Abort (one per run under way). Each supplies its preflight, its call and
its proof to the pipeline; the card is where their outcome is shown.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from itertools import takewhile

from bot.actions import preflights
from bot.actions.action import LAPSED, Answer, Checked, Go, Hold, Lapsed, Proof, Stop
from bot.actions.claims import ActionClaim
from bot.cards import rules as card_rules
from bot.cards.changes import Cards
from bot.deployhq.client import DeployHQ, DeployHQError
from bot.deployhq.deployment import FAILED, Deployment, Revision
from bot.deployhq.history import last_good, newer_on_servers, reach, rolled_back_by
from bot.messages import approvals, notes, replies
from bot.words import states as s
from bot.words.actions import ABORT, DEPLOY, RETRY, ROLLBACK, ActionName, UnknownAction, spec_of
from bot.words.buttons import AbortTarget, ActionTarget, DeployTarget, RollbackTarget

log = logging.getLogger(__name__)


class CardView:
    """An action's outcome, on the failure's card and in its thread."""

    def __init__(self, cards: Cards, target: ActionTarget) -> None:
        self.cards = cards
        self.target = target

    def show(self, state: s.CardState, note: str, answer: Deployment | None = None) -> bool:
        return self.cards.on_action(self.target, state, note, answer)

    def done(self, claim: ActionClaim, answer: Answer, at: datetime) -> tuple[s.CardState, bool]:
        """The card says who acted, and follows what DeployHQ queued."""
        assert isinstance(answer, Deployment)  # a card's own actions answer with deployments
        if claim.action == ABORT:
            aborted = s.Aborted(claim.user_id, at, answer.status)
            shown = self.show(aborted, notes.outcome_note(aborted, answer))
            self.cards.on_record(answer)  # the card shows the run as DeployHQ now gives it
            return aborted, shown
        if claim.action in (ROLLBACK, DEPLOY):
            ref = answer.end_revision.ref if answer.end_revision else claim.ref
            queued = s.DeployedLatest if claim.action == DEPLOY else s.RolledBack
            rolled = queued(
                claim.user_id, at, ref, answer.status, answer.identifier, claim.approved_by
            )
            note = notes.outcome_note(rolled, answer)
            return rolled, self.cards.on_action(self.target, rolled, note, rolled_back=answer)
        retried = s.Retried(claim.user_id, at, claim.approved_by)
        return retried, self.show(retried, notes.outcome_note(retried, answer), answer)


class _OnCard:
    """An action a card's button names: its claim is the button's target, its view the card."""

    on_card = True
    name: ActionName

    def __init__(self, deployhq: DeployHQ, cards: Cards, target: ActionTarget) -> None:
        self.deployhq = deployhq
        self.cards = cards
        self.target = target
        self.key = target.run_key
        self.project = target.project
        self.deployment = target.deployment
        self.view = CardView(cards, target)

    @property
    def recipe(self) -> str:
        return json.dumps({"kind": "card", "action": self.name, "target": self.target.encode()})

    @property
    def subject(self) -> str:
        """What it acts on, in words (a request's own message names it)."""
        return approvals.deployment_subject(self.project, self.deployment)


class _OnFailure(_OnCard):
    """What Retry, Roll back and Deploy latest share: the failure's claim, and a preflight that
    finds it still the latest word on its servers, and holds them."""

    name: ActionName = "retry"

    def preflight(self, hold: Hold, user_id: str) -> Checked:
        checked = self._failure(hold)
        if isinstance(checked, Stop | Lapsed):
            return checked
        record, listed = checked
        return self.go(record, listed)

    def go(self, record: Deployment, older: Iterator[Deployment]) -> Go | Stop:
        """The action's own check and call; ``older``: the rest of the servers' history."""
        return Go(lambda: self.deployhq.retry(self.project, self.target.deployment))

    def prove(self, claim: ActionClaim) -> Proof:
        """A retry shows as the failure's run changing."""
        record = self.deployhq.deployment(self.project, self.target.deployment)
        moved = record.status != FAILED or record.run_key != self.target.run_key
        return Proof(done=record if moved else None)

    def _failure(self, hold: Hold) -> tuple[Deployment, Iterator[Deployment]] | Stop | Lapsed:
        """DeployHQ's record of the failure, read now: still failed, still this run, not
        archived, and nothing queued on any of its servers since, by DeployHQ's own clock,
        whatever became of it. Its servers are held from before that history is read, so no
        other action can be queued on them meanwhile. Two calls: the record, and the recent
        deployments to its servers (usually one page)."""
        target, action = self.target, self.name
        record = self.deployhq.deployment(target.project, target.deployment)
        if record.status != FAILED or record.run_key != target.run_key:
            shows = f"{record.status} ({record.run_key})"
            log.info("%s of %s not sent: DeployHQ shows it %s", action, target.run_key, shows)
            self._put_back(record)
            return Stop("superseded", replies.failure_moved_on(record, action), deployment=record)
        if not hold.renew():  # the next read may take a whole deadline too
            return LAPSED
        if record.archived:
            self._put_back(record)
            return Stop("refused", replies.archived(action), deployment=record)
        busy = hold.servers(record.server_keys)
        if busy is not None:
            return busy
        listed = iter(self.deployhq.history(target.project, to=reach(record), whole=True))
        newer = newer_on_servers(listed, record)
        if newer is not None:
            # Never older code over newer, and never a second action after a first one whose
            # own deployment (a rollback's, say) failed too.
            log.info("%s of %s not sent: overtaken by %s", action, target.run_key, newer.short_id)
            state = s.Overtaken(newer.identifier, newer.status, newer.finished_at)
            self.cards.on_action(target, state, replies.overtaken(newer, action))
            return Stop("overtaken", replies.overtaken(newer, action), state, newer)
        return record, _older(listed)

    def _put_back(self, record: Deployment) -> None:
        """The card leaves "requested" for what DeployHQ's record shows."""
        if not self.cards.on_record(record):
            state = card_rules.resting_state(record)
            self.cards.on_action(self.target, state, replies.failure_moved_on(record), record)


def _older(listed: Iterator[Deployment]) -> Iterator[Deployment]:
    """What the list holds past the failure, ending quietly at DeployHQ's bound: nothing
    older can make acting unsafe, only what to roll back to unknown."""
    try:
        yield from listed
    except DeployHQError as error:
        if error.kind != "too-long":
            raise


class Retry(_OnFailure):
    name: ActionName = "retry"


class _NewDeployment(_OnFailure):
    """A rollback or a Deploy latest: a new deployment on the failure's servers, to ``ref``."""

    def prove(self, claim: ActionClaim) -> Proof:
        """A new deployment on the failure's servers, to the claim's revision, queued after it;
        anything else queued there since leaves the record unable to tell."""
        record = self.deployhq.deployment(self.project, self.target.deployment)
        listed = self.deployhq.history(self.project, to=reach(record), whole=True)
        history = list(takewhile(lambda d: d.identifier != record.identifier, listed))
        done = rolled_back_by(history, record, claim.ref) if claim.ref else None
        return Proof(done=done, other=newer_on_servers(history, record))


class Rollback(_NewDeployment):
    name: ActionName = "rollback"
    target: RollbackTarget

    def go(self, record: Deployment, older: Iterator[Deployment]) -> Go | Stop:
        """The last good deployment, recomputed now, is still the one the button named."""
        good = last_good(older, record)
        if good is None or good.identifier != self.target.to:
            now = good.identifier if good else None
            log.info("rollback of %s not sent: DeployHQ now gives %s", self.key, now)
            self.cards.on_rollback_target(self.target, good, record)
            return Stop("out-of-date", replies.rollback_target_moved(good), deployment=record)
        ref = good.end_revision.ref if good.end_revision else ""
        return Go(lambda: self.deployhq.rollback(self.project, good.identifier), ref)


class DeployLatest(_NewDeployment):
    name: ActionName = "deploy"
    target: DeployTarget

    def go(self, record: Deployment, older: Iterator[Deployment]) -> Go | Stop:
        """The commit the button named is still the branch's newest, and new to the servers."""
        target = self.target
        stop = preflights.deploy_latest(self.deployhq, target, record, older)
        if stop is None:
            return Go(
                lambda: self.deployhq.deploy(
                    self.project, record.parent, record.branch, target.ref
                ),
                target.ref,
            )
        log.info("deploy of %s to %s not sent: %s", target.ref[:7], self.key, stop.why)
        if stop.latest:
            self.cards.on_latest(target, Revision(stop.latest), record)
        else:
            self._put_back(record)
        return Stop("out-of-date", stop.why, deployment=record)


class Abort(_OnCard):
    """Abort the run under way that the card's button names, once per run. It queues nothing,
    so it holds no servers, and it is never in the way of stopping."""

    name: ActionName = "abort"
    target: AbortTarget

    def preflight(self, hold: Hold, user_id: str) -> Checked:
        """The run named is still pending or running, by DeployHQ's record read now."""
        target = self.target
        record = self.deployhq.deployment(target.project, target.run)
        stop = preflights.abort(target, record)
        if stop is None:
            return Go(lambda: replace(record, status=self.deployhq.abort(self.project, target.run)))
        log.info("abort of %s not sent: DeployHQ shows it %s", target.run_key, record.status)
        shows = f"DeployHQ shows the deployment as {record.status}."
        self.cards.on_action(target, s.NotDone(user_id, shows, ABORT), stop.why)
        self.cards.on_record(record)
        return Stop("superseded", stop.why, deployment=record)

    def prove(self, claim: ActionClaim) -> Proof:
        """Proven once the run is no longer under way; disproven while it still is (an abort
        DeployHQ took stops the run at once)."""
        record = self.deployhq.deployment(self.project, self.target.run)
        if preflights.abort(self.target, record) is None:
            return Proof(absent=True)
        return Proof(done=record)


class CardActions:
    """Makes the action a card's button (or ``/deployhq retry|rollback``) names."""

    def __init__(self, deployhq: DeployHQ, cards: Cards) -> None:
        self.deployhq = deployhq
        self.cards = cards

    def retry_command(self, project: str, deployment_id: str) -> tuple[Deployment, Retry]:
        """``/deployhq retry``: the failure as DeployHQ gives it now, so a click on its card and
        this command share one claim. ``DeployHQError`` when it cannot be read."""
        deployment = self.deployhq.deployment(project, deployment_id)
        return deployment, Retry(self.deployhq, self.cards, ActionTarget.of(deployment))

    def rollback_command(self, project: str, deployment_id: str) -> Rollback | Deployment:
        """``/deployhq rollback``: back to the last good deployment DeployHQ gives on the
        failure's servers, as the card's button would; the failure when there is none.
        ``DeployHQError`` when DeployHQ cannot be read."""
        deployment = self.deployhq.deployment(project, deployment_id)
        good = last_good(self.deployhq.history(project, to=reach(deployment)), deployment)
        if good is None:
            return deployment
        target = RollbackTarget(project, deployment.identifier, deployment.run_key, good.identifier)
        return Rollback(self.deployhq, self.cards, target)

    def decode(self, name: str, value: str) -> Retry | Rollback | DeployLatest | Abort:
        """The action ``name`` on what a button's ``value`` names; ``ValueError`` when it names
        nothing the button could, ``UnknownAction`` (one) when no card action has that name."""
        target = spec_of(name).target.decode(value)
        if not isinstance(target, ActionTarget):
            raise UnknownAction(f"{name} is no action on a card")
        return self.of(target, name)

    def of(self, target: ActionTarget, name: str) -> Retry | Rollback | DeployLatest | Abort:
        """The action ``name`` on ``target`` (whose kind the button's decoding chose);
        ``UnknownAction`` when no card action has that name."""
        kind = ON_CARD.get(name)
        if kind is None:
            raise UnknownAction(f"no action on a card is called {name!r}")
        if isinstance(target, AbortTarget) or kind is Abort:
            assert isinstance(target, AbortTarget), "an abort is for a run under way"
            return Abort(self.deployhq, self.cards, target)
        return kind(self.deployhq, self.cards, target)


# The actions a card's buttons name (their entries in words/actions.py say what they carry).
ON_CARD: dict[str, type[Retry | Rollback | DeployLatest] | type[Abort]] = {
    RETRY: Retry,
    ROLLBACK: Rollback,
    DEPLOY: DeployLatest,
    ABORT: Abort,
}
