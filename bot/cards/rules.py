"""The card's record, and how it moves: pure functions, no store, Slack or DeployHQ.

A card is what a deployment's Slack message should show (its deployment as DeployHQ last
showed it, and a state) plus how much of that Slack has: each change of what it shows is a new
``version``, not yet ``drawn``. Events are applied only when newer than the card (DeployHQ's
later timestamp first, then how far the status had got), so duplicates, late deliveries and
an action's answer arriving after DeployHQ's "completed" never move a card back.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from bot.deployhq.commits import Summary
from bot.deployhq.deployment import FAILED, FINAL_STATUSES, Deployment, Revision
from bot.messages import notes
from bot.messages.notes import ENDED_BY_ITSELF
from bot.words import states as s
from bot.words.actions import ABORT
from bot.words.states import CardState

MAX_PENDING_NOTES = 20


@dataclass(frozen=True)
class Card:
    """A deployment's message: what it should show, and how much of that Slack has.

    The record is written before Slack is called, so nothing is lost when Slack refuses or a
    process dies: ``drawn`` is False until Slack shows this version, ``notes`` are thread
    replies still to post, and ``confirmed`` says the deployment was read from DeployHQ's API
    (a delivery's word alone never offers Retry). ``ts`` is None until the first post lands.
    """

    channel: str
    deployment: Deployment
    state: CardState = field(default_factory=s.Failed)
    ts: str | None = None
    confirmed: bool = True
    drawn: bool = False
    notes: tuple[str, ...] = ()
    retried_by: str | None = None
    retried_at: datetime | None = None
    explained: str = ""  # the run whose failure log (and last good deployment) was looked up
    rollback_to: Deployment | None = None  # the last good deployment on the same servers
    rolled_back: Deployment | None = None  # the deployment a rollback queued, followed here
    version: int = 0  # counts changes of what the card shows; a push marks drawn only its own
    posting: bool = False  # a first post went out and its outcome is unknown until found
    latest: Revision | None = None  # the branch's newest commit, when it is not the failure's
    aborted: CardState | None = None  # an abort of the run under way: requested, done, …
    mentioned: str = ""  # the run whose deployer was looked up in Slack (and told, if found)
    changes_told: str = ""  # the run whose commits (what changed) were looked up
    undoes: Summary | None = None  # what Roll back undoes: the commits since its target
    adds: Summary | None = None  # what Deploy latest adds: the commits since the failed run
    auto: s.AutoDeploy | None = None  # its server or group's automatic deployments

    @property
    def live(self) -> bool:
        """DeployHQ may still move it on: an action or the deployment itself is under way."""
        doing = self.auto.doing if self.auto else None
        if isinstance(self.state, s.Requested | s.InDoubt | s.Awaiting) or any(
            isinstance(other, s.Requested | s.InDoubt) for other in (self.aborted, doing)
        ):
            return True
        if self.rolled_back is not None:
            return self.rolled_back.status not in FINAL_STATUSES
        return self.deployment.status not in FINAL_STATUSES

    @property
    def abort_held(self) -> bool:
        """The bot aborted the run the card follows (DeployHQ took it): whatever status
        DeployHQ then reports for that run, failed or cancelled, it was an abort."""
        return isinstance(self.aborted, s.Aborted) and self.aborted.status not in ENDED_BY_ITSELF

    @property
    def settled(self) -> bool:
        """Nothing left to do unless a notification or a click arrives."""
        return self.confirmed and self.drawn and not self.notes and not self.live

    @property
    def wants_explaining(self) -> bool:
        """Out in Slack as a confirmed failure whose failing step has not been looked up."""
        return (
            self.drawn
            and not self.notes
            and self.confirmed
            and self.deployment.status == FAILED
            and self.explained != self.deployment.run_key
            and not self.abort_held  # an aborted run did not fail by itself
        )

    def noting(self, note: str) -> Card:
        """This card with one more thread reply to post (the oldest go when too many wait)."""
        return replace(self, notes=(*self.notes, note)[-MAX_PENDING_NOTES:])


def resting_state(record: Deployment) -> CardState:
    """What a card shows when nothing is being done: the failure, or DeployHQ's later status."""
    return s.Failed() if record.status == FAILED else s.Progress()


def changed(card: Card, **changes: object) -> Card:
    """The card with ``changes`` to what it shows: a new version, not yet drawn."""
    return replace(card, **changes, version=card.version + 1, drawn=False)  # type: ignore[arg-type]


def keep_names(record: Deployment, shown: Deployment) -> Deployment:
    """DeployHQ's answers to retry and list calls may omit the project's name; keep ours."""
    if record.project_name == record.project_permalink and shown.project_name:
        return replace(record, project_name=shown.project_name)
    return record


def advance(card: Card, deployment: Deployment, *, trusted: bool) -> Card | None:
    """The card moved on to ``deployment``, or None when that is not newer than the card.
    ``trusted``: DeployHQ's own record, as opposed to a delivery's word."""
    if deployment.progress <= card.deployment.progress:
        return None
    if card.abort_held and deployment.queued_at != card.deployment.queued_at:
        card = replace(card, aborted=None)  # a new run since the abort: its own story
    if card.abort_held and deployment.status in (FAILED, "cancelled"):
        return _aborted_run(card, deployment, trusted=trusted)
    state: CardState
    if deployment.status == FAILED:
        state = s.Failed(again=True, retried_by=card.retried_by)
    else:
        state = s.Progress(card.retried_by, card.retried_at)
    # A failure offers Retry only once DeployHQ's record confirms it.
    confirmed = trusted or deployment.status != FAILED
    if trusted:
        deployment = keep_names(deployment, card.deployment)
    if deployment.status == FAILED:  # a new failure: its own Deploy latest and Abort, if any
        card = replace(card, latest=None, aborted=None, adds=None)
    return changed(card, deployment=deployment, state=state, confirmed=confirmed).noting(
        notes.event_note(deployment)
    )


def _aborted_run(card: Card, deployment: Deployment, *, trusted: bool) -> Card:
    """The run the bot aborted, as DeployHQ now reports it (``failed`` or ``cancelled``): still
    an abort, by whoever asked for it, and never a failure of its own."""
    assert isinstance(card.aborted, s.Aborted)
    aborted = replace(card.aborted, status=deployment.status)
    if trusted:
        deployment = keep_names(deployment, card.deployment)
    state = s.Progress(card.retried_by, card.retried_at)
    return changed(card, deployment=deployment, state=state, aborted=aborted).noting(
        notes.aborted_run(aborted.user_id, deployment)
    )


def follow_rollback(card: Card, deployment: Deployment) -> Card | None:
    """A later state of the deployment a rollback queued, shown on the failure's card; None
    when it is not newer than what the card knows of it."""
    if card.rolled_back is None or deployment.progress <= card.rolled_back.progress:
        return None
    state = card.state
    if isinstance(state, s.RolledBack | s.DeployedLatest):
        state = replace(state, status=deployment.status)
    return changed(card, rolled_back=deployment, state=state).noting(
        notes.rollback_moved(deployment)
    )


def confirmed(card: Card, record: Deployment) -> Card:
    """The card confirmed by DeployHQ's record: never older than what it shows, except for the
    run it describes, where DeployHQ's record wins (its times name the run, so a delivery's
    own times never make a later click take the failure for another one)."""
    shown = card.deployment
    same_run = record.identifier == shown.identifier and record.status == shown.status
    if record.progress < shown.progress and not same_run:
        return replace(card, confirmed=True)
    state = card.state
    if record.status != FAILED:
        state = s.Progress(card.retried_by, card.retried_at)
    return changed(card, deployment=record, state=state, confirmed=True)


def acted(
    card: Card,
    run_key: str,
    state: CardState,
    note: str,
    deployment: Deployment | None = None,
    rolled_back: Deployment | None = None,
) -> Card:
    """The card after an action's progress on the failure ``run_key``, with ``note`` for its
    thread. ``deployment``: DeployHQ's record in the answer; ``rolled_back``: the deployment a
    rollback queued, which the card follows from now on.

    The card is redrawn only while it still shows the failure acted on; a card that has moved
    on (say, to ``running``) keeps its state and gets the note. An abort's progress is shown
    beside the card's state, whatever that is.
    """
    if isinstance(state, s.Aborted) or getattr(state, "action", None) == ABORT:
        if isinstance(card.aborted, s.Aborted) and not isinstance(state, s.Aborted):
            return card  # the run is aborted: a late word of an earlier try changes nothing
        return changed(card, aborted=state).noting(note)
    if isinstance(state, s.Retried):
        card = replace(card, retried_by=state.user_id, retried_at=state.at)
    if rolled_back is not None:
        card = replace(card, rolled_back=rolled_back)
    if (
        deployment is not None
        and card.deployment.run_key != run_key
        and deployment.progress < card.deployment.progress
    ):
        # A late answer: the card has moved on from the failure acted on (DeployHQ's later
        # notifications came first), so it keeps the newer state and only says who acted.
        if isinstance(card.state, s.Progress) and card.retried_by:
            card = replace(card, state=s.Progress(card.retried_by, card.retried_at))
        return changed(card).noting(note)
    if card.deployment.run_key == run_key or deployment is not None:
        if deployment is not None:
            card = replace(card, deployment=keep_names(deployment, card.deployment))
        return changed(card, state=state).noting(note)
    return card.noting(note)


def target_moved(card: Card, good: Deployment | None, record: Deployment) -> Card:
    """The Roll back button named another target than DeployHQ gives now: the card back on
    the failure, offering the one DeployHQ gives (or none), whose commits are not yet known."""
    return changed(card, state=resting_state(record), rollback_to=good, undoes=None)


def latest_moved(card: Card, latest: Revision | None, record: Deployment) -> Card:
    """The Deploy latest button named another commit than DeployHQ gives now: the card back
    on the failure, offering the one it gives (or none, when it is the failure's own); what the
    old one added no longer says what this one adds."""
    return changed(card, state=resting_state(record), latest=latest, adds=None)


def auto_deploy(card: Card, auto: s.AutoDeploy, note: str = "") -> Card:
    """The card showing its server or group's automatic deployments as ``auto``, with
    ``note`` for its thread; the card unchanged when that is what it shows."""
    if auto == card.auto:
        return card.noting(note) if note else card
    moved = changed(card, auto=auto)
    return moved.noting(note) if note else moved
