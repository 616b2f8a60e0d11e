"""Preview: what a Roll back, a Deploy latest or a ``/deployhq deploy`` would change, asked of
DeployHQ as a preview deployment of exactly that action (same servers, same revisions) and
posted where the action's outcome would be: the card's thread, or privately to the person.

A preview is never an action: it takes no claim and holds no server, and nothing the bot
decides reads it (DeployHQ lists no previews, and the servers' history skips them). One preview
per action at a time, across processes (a hold renewed while it is followed, so one whose
process died frees itself): a second press is told of the one under way.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from bot.actions.claims import WITHOUT_STORE
from bot.actions.deploy_plan import Deploys
from bot.actions.permissions import AccessPolicy, Tell
from bot.cards.changes import Cards
from bot.cards.store import CardStore
from bot.deployhq.client import DeployHQ, DeployHQError
from bot.deployhq.deployment import Deployment
from bot.messages import changes, replies
from bot.messages.text import mention, outside
from bot.runtime.background import Runner
from bot.store.shared import Holds
from bot.words.buttons import PREVIEW_ROLLBACK_ACTION, DeployTarget, RollbackTarget

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0  # DeployHQ's record of the preview is read this often at first,
PATIENCE_SECONDS = 60.0  # for this long; then the person hears it is still preparing,
SLOW_POLL_SECONDS = 15.0  # and it is read this often,
GIVE_UP_SECONDS = 15 * 60.0  # until this long after it was asked for.


@dataclass(frozen=True)
class Subject:
    """What a Preview button stands for: the action it previews, and where its outcome goes."""

    key: str  # one preview of this action at a time
    project: str
    what: str  # "the roll back to `a1b2c3d`", escaped mrkdwn
    servers: tuple[tuple[str, str], ...]  # identifier → name, to name the preview's servers
    ask: Callable[[DeployHQ], str]  # asks DeployHQ for the preview; its identifier
    card: str = ""  # the card whose thread gets the outcome; "" for the person alone


@dataclass(frozen=True)
class Timing:
    poll: float = POLL_SECONDS
    patience: float = PATIENCE_SECONDS
    slow_poll: float = SLOW_POLL_SECONDS
    give_up: float = GIVE_UP_SECONDS

    @classmethod
    def of(cls, patience: float) -> Timing:
        """Followed closely for ``patience`` seconds (``DEPLOYHQ_PREVIEW_SECONDS``), the rest
        in proportion."""
        return cls(
            min(POLL_SECONDS, patience / 10),
            patience,
            min(SLOW_POLL_SECONDS, patience / 4),
            patience * GIVE_UP_SECONDS / PATIENCE_SECONDS,
        )


def _names(deployment: Deployment) -> tuple[tuple[str, str], ...]:
    return tuple(zip(deployment.server_ids, deployment.servers, strict=False))


class Previews:
    def __init__(
        self,
        deployhq: DeployHQ,
        cards: Cards,
        store: CardStore,
        deploys: Deploys,
        holds: Holds,
        policy: AccessPolicy,
        follow: Runner,
        timing: Timing = Timing(),
    ) -> None:
        self.deployhq = deployhq
        self.cards = cards
        self.store = store
        self.deploys = deploys
        self.holds = holds
        self.policy = policy
        self.follow = follow  # where a preview is followed until DeployHQ has it
        self.timing = timing

    def of_card(self, action_id: str, value: str, tell: Tell) -> Subject | None:
        """The card's Roll back or Deploy latest that a Preview button names, as the card still
        offers it; None (the person told why) when it no longer does. ``ValueError`` for a
        value that names nothing."""
        rollback = action_id == PREVIEW_ROLLBACK_ACTION
        target = RollbackTarget.decode(value) if rollback else DeployTarget.decode(value)
        card = self.store.card(target.deployment)
        failure = card.deployment if card else None
        if card is None or failure is None or failure.run_key != target.run_key:
            tell(replies.preview_out_of_date())
            return None
        if isinstance(target, RollbackTarget):
            good = card.rollback_to
            if good is None or good.identifier != target.to:
                tell(replies.preview_out_of_date())
                return None
            ref = good.end_revision.short_ref if good.end_revision else good.short_id
            to = target.to
            return Subject(
                f"preview:rollback:{target.run_key}:{to}",
                target.project,
                f"the roll back to `{outside(ref, 7)}`",
                _names(good),
                lambda dhq: dhq.preview_rollback(target.project, to),
                target.deployment,
            )
        assert isinstance(target, DeployTarget)
        latest = card.latest
        if latest is None or latest.ref != target.ref or not failure.parent:
            tell(replies.preview_out_of_date())
            return None
        parent, branch, ref = failure.parent, failure.branch, target.ref
        return Subject(
            f"preview:deploy:{target.run_key}:{ref}",
            target.project,
            f"deploying the latest commit `{outside(ref[:7], 7)}`",
            _names(failure),
            lambda dhq: dhq.preview_deploy(target.project, parent, branch, "", ref),
            target.deployment,
        )

    def of_order(self, token: str, tell: Tell) -> Subject | None:
        """The ``/deployhq deploy`` order a confirm's Preview names; None when it is gone."""
        order = self.deploys.order(token)
        if order is None:
            tell(replies.preview_out_of_date())
            return None
        names = {s: s for s in order.servers}
        if len(order.servers) == 1:
            names[order.servers[0]] = order.name
        return Subject(
            f"preview:{order.key}",
            order.project,
            f"deploying `{outside(order.ref[:7], 7)}` of `{outside(order.branch, 100)}` to "
            f"*{outside(order.name, 200)}*",
            tuple(names.items()),
            lambda dhq: dhq.preview_deploy(
                order.project, order.parent, order.branch, "", order.ref
            ),
        )

    def press(self, subject: Subject, user_id: str, tell: Tell) -> None:
        """Ask DeployHQ for the preview, unless one of this action is under way, and follow it
        until DeployHQ has it."""
        if not self.policy.check(user_id, tell, subject.project):
            return
        held = None
        with WITHOUT_STORE.step("preview", subject.key) as store:
            held = self.holds.take(subject.key, json.dumps({"by": user_id}), self._hold_seconds)
        if store.missing:
            tell(replies.store_unavailable())
            return
        if held is not None:
            by = json.loads(held).get("by")
            tell(changes.preview_under_way(subject.what, mention(by) if by else ""))
            return
        try:
            identifier = subject.ask(self.deployhq)
        except DeployHQError as error:
            log.info("DeployHQ gave no preview of %s: %s", subject.key, error)
            self.holds.drop(subject.key)
            tell(changes.preview_refused(subject.what, error.message))
            return
        log.info("preview %s asked of DeployHQ by %s", identifier, user_id)
        where = "in the card's thread" if subject.card else "here"
        tell(changes.preview_asked(subject.what, where))
        kept = json.dumps({"by": user_id, "id": identifier})
        self._later(self.timing.poll, subject, identifier, time.monotonic(), False, tell, kept)

    @property
    def _hold_seconds(self) -> float:
        return 3 * max(self.timing.poll, self.timing.slow_poll) + 30.0

    def _later(self, delay: float, *args: object) -> None:
        self.follow.later(delay, "following a preview", self._follow, *args)

    def _follow(
        self,
        subject: Subject,
        identifier: str,
        started: float,
        slow_told: bool,
        tell: Tell,
        kept: str,
    ) -> None:
        elapsed = time.monotonic() - started
        try:
            preview = self.deployhq.preview(subject.project, identifier)
        except DeployHQError as error:
            if error.status == 404:
                self._end(subject, changes.preview_refused(subject.what, error.message), tell)
                return
            log.info("could not read preview %s: %s", identifier, error)
            preview = None
        if preview is not None and preview.finished:
            names = dict(subject.servers)
            self._end(subject, changes.preview_result(subject.what, preview, names), tell)
            return
        if elapsed >= self.timing.give_up:
            self._end(subject, changes.preview_lost(subject.what, elapsed / 60), tell)
            return
        if elapsed >= self.timing.patience and not slow_told:
            self._show(subject, changes.preview_slow(subject.what, elapsed), tell)
            slow_told = True
        # Followed all the same if the store cannot keep it: a second press may ask again.
        with WITHOUT_STORE.step("kept", subject.key):
            self.holds.keep(subject.key, kept, self._hold_seconds)
        delay = self.timing.poll if elapsed < self.timing.patience else self.timing.slow_poll
        self._later(delay, subject, identifier, started, slow_told, tell, kept)

    def _end(self, subject: Subject, note: str, tell: Tell) -> None:
        self._show(subject, note, tell)
        self.holds.drop(subject.key)

    def _show(self, subject: Subject, note: str, tell: Tell) -> None:
        if not (subject.card and self.cards.on_note(subject.card, note)):
            tell(note)
