"""Pause auto-deploy and Resume auto-deploy (a card's buttons, ``/deployhq freeze`` and
``unfreeze``) as actions of the one pipeline: one change of one server's or group's automatic
deployments to one state, however many ask.

Its claim is the change (``AutoDeployTarget.key``); it holds its deployable (so a pause and a
resume of it are never in flight together, while a deploy there never stands in a pause's
way); its preflight finds DeployHQ still showing the other state; its call sets it, as
DeployHQ's CLI does, then reads DeployHQ back: only DeployHQ's record showing the new state
makes it done. A lost answer is settled from that record. Done, it frees the change the other
way (a pause, once resumed, may be asked for again), keeps who did it, and every card showing
that deployable shows it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import datetime

from bot.actions.action import Answer, Checked, Go, Hold, Proof, Stop
from bot.actions.claims import WITHOUT_STORE, ActionClaim, Claims
from bot.cards.auto_deploys import AutoDeployments
from bot.cards.changes import Cards
from bot.deployhq.auto_deploys import Deployable
from bot.deployhq.client import DeployHQ, DeployHQError
from bot.messages import approvals
from bot.messages import auto_deploys as auto_messages
from bot.words import states as s
from bot.words.actions import PAUSE, RESUME, ActionName
from bot.words.buttons import AutoDeployTarget

log = logging.getLogger(__name__)


class AutoDeployView:
    """A change's progress on every card that shows its deployable (and in the thread of the
    card it was asked from); from the keyboard, the person is told."""

    def __init__(
        self, cards: Cards, claims: Claims, lists: AutoDeployments, target: AutoDeployTarget
    ) -> None:
        self.cards = cards
        self.claims = claims
        self.lists = lists
        self.target = target

    def show(self, state: s.CardState, note: str, answer: object = None) -> bool:
        target = self.target
        return self.cards.on_auto_deploy(
            target.project,
            target.identifier,
            lambda auto: replace(auto, doing=state),
            note,
            target.card,
        ) and bool(target.card)

    def settled(self, found: Deployable) -> None:
        """Every card shows ``found`` as DeployHQ's record now has it, nothing under way."""
        shown = self.lists.shown(self.target.project, found)
        self.cards.on_auto_deploy(self.target.project, found.identifier, lambda _: shown)

    def done(self, claim: ActionClaim, answer: Answer, at: datetime) -> tuple[s.CardState, bool]:
        assert isinstance(answer, Deployable)  # DeployHQ's record of it, read back
        target = self.target
        self.lists.ledger.record(
            target.project,
            target.identifier,
            on=answer.auto_deploy,
            by=claim.user_id,
            at=at.timestamp(),
        )
        with WITHOUT_STORE.step("kept", target.opposite):  # it may be asked for again
            self.claims.forget_done(target.opposite)
        toggled = s.Toggled(claim.user_id, at, answer.auto_deploy, answer.name, claim.approved_by)
        shown = s.AutoDeploy(
            target.project,
            answer.identifier,
            answer.name,
            answer.branch,
            answer.auto_deploy,
            claim.user_id,
            at,
        )
        note = auto_messages.toggled_note(toggled, answer.branch)
        ok = self.cards.on_auto_deploy(
            target.project, target.identifier, lambda _: shown, note, target.card
        )
        return toggled, ok and bool(target.card)


class AutoDeployChange:
    """One change of one deployable's automatic deployments, sent once."""

    on_card = False  # its outcome is shown beside the card's state, never as it

    def __init__(self, deployhq: DeployHQ, lists: AutoDeployments, view: AutoDeployView) -> None:
        self.deployhq = deployhq
        self.lists = lists
        self.view = view
        self.target = view.target
        self.name: ActionName = RESUME if self.target.on else PAUSE
        self.key = self.target.key
        self.project = self.target.project
        self.deployment = self.target.card
        # Approval: a resume is gated by the server or group it names; a pause never waits.
        self.approval_servers = frozenset({self.target.identifier})
        self._name = ""  # its name, once DeployHQ's list has given it

    @property
    def recipe(self) -> str:
        return json.dumps({"kind": "auto-deploy", "target": self.target.encode()})

    @property
    def subject(self) -> str:
        """What it changes, in words: the automatic deployments of its server or group."""
        named = self._name or self.target.identifier
        return "the automatic deployments of " + approvals.deployable_subject(self.project, named)

    def preflight(self, hold: Hold, user_id: str) -> Checked:
        """DeployHQ's record, read now, still shows the other state."""
        target = self.target
        busy = hold.servers(frozenset({f"auto-deploy:{target.identifier}"}))
        if busy is not None:
            return busy
        found = self.find()
        if found is None:
            return Stop("superseded", auto_messages.not_listed(target.identifier))
        self._name = found.name
        if found.auto_deploy == target.on:
            log.info("%s of %s not sent: DeployHQ already shows it", self.name, self.key)
            self.view.settled(found)
            return Stop("superseded", auto_messages.already(found))
        return Go(lambda: self._send(found))

    def _send(self, found: Deployable) -> Deployable:
        """Set it, then read DeployHQ back: a change DeployHQ skipped, or whose record does not
        show it, is DeployHQ's refusal, in its auto_messages."""
        target = self.target
        skipped = self.deployhq.set_auto_deploy(target.project, target.identifier, target.on)
        if skipped:
            raise DeployHQError(skipped, status=422)
        now = self.find()
        if now is None or now.auto_deploy != target.on:
            raise DeployHQError(auto_messages.not_taken(found), status=422)
        return now

    def prove(self, claim: ActionClaim) -> Proof:
        """DeployHQ's record shows the new state, or (a setting, not a queue) it did not
        happen."""
        found = self.find()
        if found is not None and found.auto_deploy == self.target.on:
            return Proof(done=found)
        return Proof(absent=True)

    def find(self) -> Deployable | None:
        """Its server or group in DeployHQ's list, read now; ``DeployHQError`` when it cannot
        be read."""
        listed = self.lists.listed(self.project, fresh=True)
        return next((d for d in listed if d.identifier == self.target.identifier), None)


class AutoDeploys:
    """Makes the change a button (or ``/deployhq freeze|unfreeze``) names."""

    def __init__(
        self, deployhq: DeployHQ, cards: Cards, claims: Claims, lists: AutoDeployments
    ) -> None:
        self.deployhq = deployhq
        self.cards = cards
        self.claims = claims
        self.lists = lists

    def decode(self, value: str, on: bool) -> AutoDeployChange:
        """``ValueError`` when the button names nothing it could, or the other direction than
        the button pressed (``on``: Resume)."""
        target = AutoDeployTarget.decode(value)
        if target.on != on:
            raise ValueError("the value names the other direction than the button")
        return self.of(target)

    def of(self, target: AutoDeployTarget) -> AutoDeployChange:
        view = AutoDeployView(self.cards, self.claims, self.lists, target)
        return AutoDeployChange(self.deployhq, self.lists, view)

    def for_command(
        self, project: str, words_: tuple[str, ...], on: bool
    ) -> tuple[list[AutoDeployChange], str] | str:
        """The changes ``/deployhq freeze`` (``on`` False) or ``unfreeze`` asks for, and a line
        on what it leaves alone; or what to tell the person when there is none. Named (by name
        or identifier): that server or group. Unnamed, a freeze pauses every one that is on; an
        unfreeze resumes only those the bot paused (its ledger) that DeployHQ still shows off:
        one somebody turned off in DeployHQ stays off until it is named. ``DeployHQError`` when
        DeployHQ cannot list them."""
        listed = self.lists.listed(project, fresh=True)
        named = " ".join(words_).strip().lower()
        left: list[Deployable] = []
        if named:
            chosen = [d for d in listed if named in (d.identifier.lower(), d.name.lower())]
            if not chosen:
                return auto_messages.none_named(" ".join(words_), listed)
        else:
            chosen = [d for d in listed if d.auto_deploy != on]
            if on:
                left = [d for d in chosen if not self._paused_by_us(project, d)]
                chosen = [d for d in chosen if d not in left]
            if not chosen:
                return auto_messages.none_to_change(project, on, left)
        changes = [self.of(AutoDeployTarget(project, d.identifier, on)) for d in chosen]
        return changes, auto_messages.left_off(project, left)

    def _paused_by_us(self, project: str, found: Deployable) -> bool:
        """Whether the bot's ledger says it paused ``found`` (so DeployHQ shows it off because
        of the bot); not known (the store lost it) counts as not."""
        entry = self.lists.ledger.entry(project, found.identifier)  # None: not known
        return entry is not None and not entry[0]
