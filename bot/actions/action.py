"""What an action is to the pipeline: a small object that names its claim, checks DeployHQ's
record before it is sent (its preflight), makes its one call, and says what in DeployHQ's record
proves it happened. Where its outcome is shown (a card, or a channel message) is its ``view``.

The pipeline (``pipeline.Pipeline``) owns everything else: who may act, the claim and its
servers, failpoints, leases, the doubt window, counters and logging.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from bot.actions.claims import ActionClaim
from bot.deployhq.auto_deploys import Deployable
from bot.deployhq.deployment import Deployment
from bot.words.actions import ActionName, Outcome
from bot.words.states import CardState

# What DeployHQ answers an action with: a deployment (a retry, a rollback, a deploy, an abort's
# run), or the server or group whose automatic deployments were turned off or on, read back.
Answer = Deployment | Deployable


@dataclass(frozen=True)
class Go:
    """The preflight passed: ``send`` makes the one call and returns DeployHQ's answer;
    ``ref`` is the revision a new deployment carries, by which DeployHQ's record proves it."""

    send: Callable[[], Answer]
    ref: str = ""


@dataclass(frozen=True)
class Stop:
    """Nothing is sent: ``outcome`` as counted; ``why`` is told to the person privately;
    ``state`` and ``deployment`` what the caller may show."""

    outcome: Outcome
    why: str = ""
    state: CardState | None = None
    deployment: Deployment | None = None


@dataclass(frozen=True)
class Lapsed:
    """The preflight could not keep its claim until its next call: nothing may be sent (the
    pipeline tells the card so, and counts it as failed)."""


LAPSED = Lapsed()
# What a preflight decides: go (and how), stop (and why), or nothing at all, its claim lost.
Checked = Go | Stop | Lapsed


@dataclass(frozen=True)
class Proof:
    """What DeployHQ's record shows of an action whose answer was lost: ``done``, the record
    that proves it happened; ``other``, something else that ran on those servers since, so the
    record cannot tell; ``absent``, the record proves it did not happen (an abort whose run is
    still going), so nobody need wait out the doubt window."""

    done: Answer | None = None
    other: Deployment | None = None
    absent: bool = False


class Hold(Protocol):
    """What the pipeline lends a preflight between its calls to DeployHQ."""

    def renew(self) -> bool:
        """Keep the claim for the next call; False when it lapsed (send nothing)."""
        ...

    def servers(self, servers: frozenset[str]) -> Stop | Lapsed | None:
        """Hold the servers the action will change (a group counts as each of its servers)
        until DeployHQ's record shows what it did; None when held, else why not (another
        action under way holds one of them, or the claim lapsed)."""
        ...


class View(Protocol):
    """Where an action's outcome is shown."""

    def show(self, state: CardState, note: str, answer: Deployment | None = None) -> bool:
        """Show ``state`` (``note`` is its line for a thread); False when nobody saw it, so the
        person who asked is told directly."""
        ...

    def done(self, claim: ActionClaim, answer: Answer, at: datetime) -> tuple[CardState, bool]:
        """Show that DeployHQ did it (``answer``, its record), and follow what it queued."""
        ...


class Action(Protocol):
    @property
    def name(self) -> ActionName: ...
    @property
    def key(self) -> str:
        """Its claim: one action per failure, one abort per run, one deploy per order."""
        ...

    @property
    def project(self) -> str: ...
    @property
    def deployment(self) -> str:
        """The deployment it is about, for logs ("" for a deployment not made yet)."""
        ...

    @property
    def view(self) -> View: ...
    @property
    def recipe(self) -> str:
        """How to make this action again (what a request for approval keeps)."""
        ...

    @property
    def on_card(self) -> bool:
        """Whether a card follows it (none follows a ``/deployhq deploy``)."""
        ...

    def preflight(self, hold: Hold, user_id: str) -> Checked:
        """DeployHQ's record, read now, says whether to act; ``DeployHQError`` when it cannot
        be read."""
        ...

    def prove(self, claim: ActionClaim) -> Proof:
        """What DeployHQ's record shows of this action, sent by ``claim``; ``DeployHQError``
        when it cannot be read."""
        ...
