"""No card left behind: every open card is brought back in line with DeployHQ and Slack.

Every ``interval`` seconds one process (whichever takes the turn in the store) goes through the
cards that are not settled: one whose record Slack has not shown yet is pushed again; one whose
action is in doubt is settled from DeployHQ's record; one whose deployment or action is under way
is compared with DeployHQ's record and redrawn when DeployHQ has moved on. So a notification
that never came, a Slack outage, or a process that died mid-retry still ends on the truth.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable

from bot.actions.claims import WITHOUT_STORE
from bot.actions.kept import Kept
from bot.actions.parts import ActionParts
from bot.cards import rules as card_rules
from bot.cards.changes import Cards
from bot.cards.outbox import Outbox
from bot.cards.rules import Card
from bot.deployhq.client import DeployHQ, DeployHQError
from bot.deployhq.history import newer_on_servers, reach
from bot.messages import notes
from bot.words import states as s
from bot.words.actions import ABORT, DEPLOY, RESUME, ROLLBACK
from bot.words.buttons import AbortTarget, ActionTarget, AutoDeployTarget

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 60.0


class Reconciler:
    def __init__(
        self,
        kept: Kept,
        cards: Cards,
        outbox: Outbox,
        deployhq: DeployHQ,
        parts: ActionParts,
        interval: float = DEFAULT_INTERVAL,
    ) -> None:
        self.store = kept  # its turn, open orders and requests
        self.claims = kept.claims
        self.records = kept.cards  # the cards' records
        self.cards = cards
        self.outbox = outbox  # pushes a card Slack has not shown yet, in this thread
        self.deployhq = deployhq
        # Settles an action in doubt from DeployHQ's record, lapses a request for approval
        # whose time is up, and ends a pause or resume of automatic deployments left under way.
        self.parts = parts
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Reconcile in a daemon thread of this process until ``stop``."""
        self._thread = threading.Thread(target=self._loop, name="reconcile", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        # Processes started together spread out, so the turn does not always fall to one.
        while not self._stop.wait(self.interval * random.uniform(0.8, 1.2)):
            try:
                self.run_once()
            except Exception:
                log.exception("reconciling cards failed")

    def run_once(self) -> int:
        """Check every open card, if this process has the turn; how many were checked."""
        turn = self.interval * 0.8
        token, open_cards, open_orders, open_requests = None, [], [], []
        with WITHOUT_STORE.step("reconcile") as store:
            token = self.store.turns.take("reconcile", turn)
            if token is None:
                return 0
            open_cards = sorted(self.records.open_cards())
            open_orders = sorted(self.store.orders.open_runs())
            open_requests = sorted(self.store.requests.open_posted())
        if store.missing or token is None:
            return 0
        work: list[tuple[Callable[[str], None], str]] = [(self.check, c) for c in open_cards]
        work += [(self.check_order, o) for o in open_orders]
        # A request for approval with a message of its own: lapsed once its time is up.
        work += [(self.parts.decisions.check_posted, r) for r in open_requests]
        for check, name in work:
            if self._stop.is_set():
                break
            # A slow pass keeps its turn, so the next one does not start beside it.
            with WITHOUT_STORE.step("reconcile") as store:
                kept = self.store.turns.keep("reconcile", token, turn)
            if store.missing:
                return 0
            if not kept:
                log.warning("reconciling took longer than its turn; the rest waits")
                break
            try:
                with WITHOUT_STORE.step("reconcile", name) as store:
                    check(name)
                if store.missing:
                    return 0
            except Exception:
                log.exception("reconciling %s failed", name)
        return len(work)

    def check_order(self, key: str) -> None:
        """A confirmed ``/deployhq deploy`` whose outcome the channel was not told: settled
        from DeployHQ's record once its answer is lost (its holder died, say)."""
        action = self.parts.orders.kept(key)
        claim = self.claims.held(key)
        awaiting = action.view.awaiting() if action is not None else None
        waiting = awaiting is not None and (claim is None or claim.awaiting)
        # A request for approval: lapsed once its time is up, else left to wait.
        if action is not None and awaiting is not None and waiting:  # noqa: SIM102
            if self.parts.decisions.lapse(action, awaiting) or claim is not None:
                return
        if action is None or claim is None:
            self.store.orders.close_run(key)  # nothing under way: nothing to tell
            return
        if claim.in_doubt or claim.done:
            self.parts.settler.resolve(action, claim)

    def _check_request(self, card: Card, target: ActionTarget, awaiting: s.Awaiting) -> None:
        """A card waiting for an approver: lapsed once its time is up; back on its failure if
        its claim is gone before that (its approver's process died before DeployHQ was asked,
        or the store lost it), as for any action interrupted before it was sent."""
        if self.parts.decisions.lapse(
            self.parts.card_actions.of(target, awaiting.action), awaiting
        ):
            return
        claim = self.claims.held(target.run_key)
        if claim is None:
            state = card_rules.resting_state(card.deployment)
            self.cards.on_action(target, state, notes.interrupted(awaiting.action))

    def check(self, deployment_id: str) -> None:
        card = self.records.card(deployment_id)
        if card is None:
            self.records.drop_card(deployment_id)  # expired: take it off the list
            return
        if not (card.confirmed and card.drawn and not card.notes):
            self.outbox.push_now(deployment_id)
            card = self.records.card(deployment_id) or card
        if not card.live:
            return
        target = ActionTarget.of(card.deployment)
        if isinstance(card.state, s.Awaiting):
            self._check_request(card, target, card.state)
            return
        if isinstance(card.aborted, s.Requested | s.InDoubt):
            running = card.rolled_back or card.deployment
            abort = AbortTarget.of_run(card.deployment.identifier, running)
            claim = self.claims.held(abort.run_key)
            if claim is not None and (claim.in_doubt or claim.done):
                self.parts.settler.resolve(self.parts.card_actions.of(abort, ABORT), claim)
                return
        auto = card.auto
        if auto is not None and isinstance(auto.doing, s.Requested | s.InDoubt | s.Awaiting):
            self._check_auto(card, auto, auto.doing)
        if isinstance(card.state, s.Requested | s.InDoubt):
            claim = self.claims.held(target.run_key)
            if claim is not None and (claim.in_doubt or claim.done):
                # settled from DeployHQ's record
                self.parts.settler.resolve(self.parts.card_actions.of(target, claim.action), claim)
                return
            if claim is not None and not claim.done:
                return  # its holder is still asking DeployHQ
        self._follow(card, target)

    def _check_auto(
        self, card: Card, auto: s.AutoDeploy, doing: s.Requested | s.InDoubt | s.Awaiting
    ) -> None:
        """A pause or resume the card shows under way: settled from DeployHQ's record when its
        answer was lost, lapsed when it waited past its time, and the card back on DeployHQ's
        record when its claim is gone (its holder died before anything was sent)."""
        on = doing.action == RESUME
        target = AutoDeployTarget(auto.project, auto.identifier, on, card.deployment.identifier)
        action = self.parts.autos.of(target)
        if isinstance(doing, s.Awaiting):
            self.parts.decisions.lapse(action, doing)
            return
        claim = self.claims.held(target.key)
        if claim is not None and (claim.in_doubt or claim.done):
            self.parts.settler.resolve(action, claim)
        elif claim is None:
            try:
                found = action.find()
            except DeployHQError as error:
                log.warning("could not check %s's automatic deployments: %s", auto.name, error)
                return
            if found is not None:
                action.view.settled(found)

    def _follow(self, card: Card, target: ActionTarget) -> None:
        """Redraw the card when DeployHQ's record has moved on from what it shows."""
        # After a rollback the card follows the deployment the rollback queued.
        deployment = card.rolled_back or card.deployment
        try:
            record = self.deployhq.deployment(deployment.project_permalink, deployment.identifier)
        except DeployHQError as error:
            log.warning("could not check deployment %s: %s", deployment.identifier, error)
            return
        if self.cards.on_record(record):
            log.info("card of %s caught up with DeployHQ: %s", deployment.identifier, record.status)
            return
        if isinstance(card.state, s.Requested) and record.run_key == target.run_key:
            # Its claim is gone: its holder died before marking it sending (so nothing was
            # sent), or the store lost it. A rollback leaves the failure's record as it was, so
            # only the servers' history can tell; anything newer there and nothing is said.
            action = card.state.action
            if action in (ROLLBACK, DEPLOY):
                try:
                    history = self.deployhq.history(
                        deployment.project_permalink, to=reach(record), whole=True
                    )
                    if newer_on_servers(history, record) is not None:
                        return
                except DeployHQError:
                    return
            state = card_rules.resting_state(record)
            self.cards.on_action(target, state, notes.interrupted(action))
