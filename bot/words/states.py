"""What has happened on a card: its states, pure values, and how they are stored.

Each state is stored with an explicit tag. The tags are the names the states were first stored
under (then their class names) and never change, whatever a class is called: renaming a class
must not make a stored card unreadable, nor what a newer process writes unreadable to an older
one beside it during a deploy. ``action`` names the action (an ``ActionName``): one failure gets
one action, so the states of an action say which it was (the names are words/actions.py's).
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from datetime import UTC, datetime
from typing import Any, ClassVar

from bot.words.actions import DEPLOY, RETRY, ActionName, action_named


@dataclass(frozen=True)
class Failed:
    """Failed, and nobody is acting on it; ``again`` when it failed after a retry."""

    TAG: ClassVar[str] = "Failed"
    DATES: ClassVar[tuple[str, ...]] = ()

    again: bool = False
    retried_by: str | None = None


@dataclass(frozen=True)
class Progress:
    """DeployHQ reported a later status (running, completed, …) for the card's deployment."""

    TAG: ClassVar[str] = "Progress"
    DATES: ClassVar[tuple[str, ...]] = ("retried_at",)

    retried_by: str | None = None
    retried_at: datetime | None = None


@dataclass(frozen=True)
class Requested:
    """Someone asked for an action (``action`` says which); it is under way. ``approved_by``:
    the second person who approved it, when its servers need one."""

    TAG: ClassVar[str] = "Retrying"
    DATES: ClassVar[tuple[str, ...]] = ("at",)
    LATER: ClassVar[tuple[str, ...]] = ("approved_by",)

    user_id: str
    at: datetime
    action: ActionName = RETRY
    approved_by: str = ""


@dataclass(frozen=True)
class Awaiting:
    """Someone asked for an action on servers that need a second person's approval: nothing
    is sent until an approver approves it, by ``until``. ``request``: the id its Approve and
    Deny buttons carry; ``ref``: the revision it would deploy (a roll back's, a commit)."""

    TAG: ClassVar[str] = "Awaiting"
    DATES: ClassVar[tuple[str, ...]] = ("at", "until")

    user_id: str
    at: datetime
    action: ActionName
    until: datetime
    request: str
    ref: str = ""


@dataclass(frozen=True)
class Denied:
    """A request for approval that ended with nothing sent: denied by ``by``, withdrawn by its
    requester (``by`` is the requester), or lapsed undecided (``by`` is ""). The failure's
    buttons are offered again."""

    TAG: ClassVar[str] = "Denied"
    DATES: ClassVar[tuple[str, ...]] = ("at",)

    user_id: str
    action: ActionName
    by: str
    at: datetime


@dataclass(frozen=True)
class InDoubt:
    """No proper answer to the action came: it may have been queued; the bot checks.
    ``said``: what DeployHQ answered instead, in its words (its status, how long it asked to
    wait), or "" when it did not answer at all."""

    TAG: ClassVar[str] = "InDoubt"
    DATES: ClassVar[tuple[str, ...]] = ("at",)
    LATER: ClassVar[tuple[str, ...]] = ("said",)

    user_id: str
    at: datetime
    action: ActionName = RETRY
    said: str = ""


@dataclass(frozen=True)
class Retried:
    """DeployHQ accepted the retry; the card's deployment carries DeployHQ's new status."""

    TAG: ClassVar[str] = "Retried"
    DATES: ClassVar[tuple[str, ...]] = ("at",)
    LATER: ClassVar[tuple[str, ...]] = ("approved_by",)

    user_id: str
    at: datetime
    approved_by: str = ""


@dataclass(frozen=True)
class Refused:
    """DeployHQ answered 422: this deployment cannot be retried (or rolled back), for
    ``reason``."""

    TAG: ClassVar[str] = "RetryRefused"
    DATES: ClassVar[tuple[str, ...]] = ()

    user_id: str
    reason: str
    action: ActionName = RETRY


@dataclass(frozen=True)
class NotDone:
    """The action did not go through (not sent, credentials refused, never queued): both
    buttons are offered again."""

    TAG: ClassVar[str] = "RetryFailed"
    DATES: ClassVar[tuple[str, ...]] = ()

    user_id: str
    problem: str
    action: ActionName = RETRY


@dataclass(frozen=True)
class RolledBack:
    """DeployHQ queued a rollback to ``ref`` as a new deployment, whose status the card follows."""

    TAG: ClassVar[str] = "RolledBack"
    DATES: ClassVar[tuple[str, ...]] = ("at",)
    LATER: ClassVar[tuple[str, ...]] = ("approved_by",)

    user_id: str
    at: datetime
    ref: str
    status: str
    deployment_id: str
    approved_by: str = ""


@dataclass(frozen=True)
class DeployedLatest:
    """DeployHQ queued the branch's latest commit ``ref`` afresh, as a new deployment whose status
    the card follows.

    Stored as the first versions wrote it, a roll back whose ``action`` is ``"deploy"``, so that
    a process of those versions still reads it (as such) during a deploy."""

    TAG: ClassVar[str] = RolledBack.TAG
    DATES: ClassVar[tuple[str, ...]] = ("at",)
    LATER: ClassVar[tuple[str, ...]] = ("approved_by",)
    STORED_WITH: ClassVar[dict[str, str]] = {"action": DEPLOY}

    user_id: str
    at: datetime
    ref: str
    status: str
    deployment_id: str
    approved_by: str = ""


@dataclass(frozen=True)
class Aborted:
    """DeployHQ aborted the run under way at someone's request; ``status`` is its answer."""

    TAG: ClassVar[str] = "Aborted"
    DATES: ClassVar[tuple[str, ...]] = ("at",)

    user_id: str
    at: datetime
    status: str = "cancelled"


@dataclass(frozen=True)
class Unknown:
    """The action's answer was lost and DeployHQ's record cannot say whether it happened
    (another deployment has run on those servers since): nothing more is sent."""

    TAG: ClassVar[str] = "Unknown"
    DATES: ClassVar[tuple[str, ...]] = ("at",)

    user_id: str
    at: datetime
    action: ActionName = RETRY


@dataclass(frozen=True)
class Overtaken:
    """A newer deployment has run on the same servers: acting would put older code back."""

    TAG: ClassVar[str] = "Overtaken"
    DATES: ClassVar[tuple[str, ...]] = ("newer_at",)

    newer_id: str
    newer_status: str
    newer_at: datetime | None = None


@dataclass(frozen=True)
class Toggled:
    """DeployHQ's record shows automatic deployments of ``name`` turned ``on`` (or off) at
    ``user_id``'s request."""

    TAG: ClassVar[str] = "AutoDeploy"
    DATES: ClassVar[tuple[str, ...]] = ("at",)
    LATER: ClassVar[tuple[str, ...]] = ("approved_by",)

    user_id: str
    at: datetime
    on: bool
    name: str
    approved_by: str = ""


CardState = (
    Failed
    | Requested
    | Awaiting
    | Denied
    | InDoubt
    | Retried
    | Refused
    | NotDone
    | Progress
    | RolledBack
    | DeployedLatest
    | Overtaken
    | Unknown
    | Aborted
    | Toggled
)
# The states that still offer the card's buttons.
OPEN_STATES = (Failed, Requested, NotDone, Denied)

BY_TAG: dict[str, type[CardState]] = {
    cls.TAG: cls
    for cls in (
        Failed,
        Progress,
        Requested,
        Awaiting,
        Denied,
        InDoubt,
        Retried,
        Refused,
        NotDone,
        RolledBack,
        Overtaken,
        Unknown,
        Aborted,
        Toggled,
    )
}


# States stored under another state's tag, told apart by what they are stored with.
SHARING_A_TAG: tuple[type[DeployedLatest], ...] = (DeployedLatest,)


def _stored_class(data: dict[str, Any]) -> type[CardState]:
    tag = str(data.get("kind"))
    for cls in SHARING_A_TAG:
        if tag == cls.TAG and all(data.get(k) == v for k, v in cls.STORED_WITH.items()):
            return cls
    return BY_TAG[tag]


def to_json(state: CardState) -> dict[str, Any]:
    """The state as stored: its tag under ``kind``, then its fields; times as Unix seconds."""
    data: dict[str, Any] = {"kind": state.TAG}
    later: tuple[str, ...] = getattr(state, "LATER", ())
    for f in fields(state):
        value = getattr(state, f.name)
        if f.name in later and value == f.default:
            continue
        if f.name in state.DATES and value is not None:
            value = value.timestamp()
        data[f.name] = value
    data.update(getattr(state, "STORED_WITH", {}))
    return data


def from_json(data: dict[str, Any]) -> CardState:
    """A stored state; a field the record lacks takes its default."""
    cls = _stored_class(data)
    values: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in data and (f.default is not MISSING or f.default_factory is not MISSING):
            continue
        value = data.get(f.name)
        if f.name in cls.DATES and isinstance(value, int | float):
            value = datetime.fromtimestamp(value, UTC)
        if f.name == "action":
            value = action_named(value)
        values[f.name] = value
    return cls(**values)


def fingerprint_seed(state: CardState) -> str:
    """The state as text for a card's block ids: its tag and its fields, so that renaming a
    class changes no block id."""
    later: tuple[str, ...] = getattr(state, "LATER", ())
    items = [
        (f.name, getattr(state, f.name))
        for f in fields(state)
        if not (f.name in later and getattr(state, f.name) == f.default)
    ]
    items += getattr(state, "STORED_WITH", {}).items()
    shown = ", ".join(f"{name}={value!r}" for name, value in items)
    return f"{state.TAG}({shown})"


@dataclass(frozen=True)
class AutoDeploy:
    """A card's server or group as DeployHQ's automatic deployments list it: whether a push to
    ``branch`` deploys there by itself (``on``), who turned it off or on and when (``by``,
    ``at``, when the bot did and DeployHQ's record still agrees), and a pause or resume under
    way, or how the last one ended (``doing``)."""

    project: str
    identifier: str
    name: str
    branch: str
    on: bool
    by: str = ""
    at: datetime | None = None
    doing: CardState | None = None


def auto_to_json(auto: AutoDeploy) -> dict[str, Any]:
    data: dict[str, Any] = {
        "project": auto.project,
        "identifier": auto.identifier,
        "name": auto.name,
        "branch": auto.branch,
        "on": auto.on,
    }
    if auto.by:
        data["by"] = auto.by
    if auto.at is not None:
        data["at"] = auto.at.timestamp()
    if auto.doing is not None:
        data["doing"] = to_json(auto.doing)
    return data


def auto_from_json(data: Any) -> AutoDeploy | None:
    """A stored auto-deploy record; None for anything else."""
    if not isinstance(data, dict):
        return None
    try:
        at = data.get("at")
        doing = data.get("doing")
        return AutoDeploy(
            project=str(data["project"]),
            identifier=str(data["identifier"]),
            name=str(data.get("name") or data["identifier"]),
            branch=str(data.get("branch") or ""),
            on=data.get("on") is True,
            by=str(data.get("by") or ""),
            at=datetime.fromtimestamp(at, UTC) if isinstance(at, int | float) else None,
            doing=from_json(doing) if isinstance(doing, dict) else None,
        )
    except (KeyError, TypeError, ValueError):
        return None
