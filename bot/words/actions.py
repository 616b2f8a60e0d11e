"""The table of actions: every action the bot can take, declared once.

An action's entry says its name (as its claims, requests and card states store it), its button
(the ``action_id`` Slack sends back, and the label people read), what that button carries, what
the action is counted as once DeployHQ did it and in which counter, and where its outcome is
shown. A new action is one entry here and its own module in ``actions/``. A name the table does
not hold fails loudly (``UnknownAction``); only a record stored before names were stored, which
names none, still reads as a retry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from bot.words.buttons import (
    AbortTarget,
    ActionTarget,
    AutoDeployTarget,
    DeployTarget,
    RollbackTarget,
)

ActionName = Literal["retry", "rollback", "deploy", "abort", "pause", "resume"]
RETRY: Final = "retry"
ROLLBACK: Final = "rollback"
# Deploying the branch's latest commit is a failure's action too (it shares the claim), and so
# is /deployhq deploy's confirmed order; an abort is the action on a run under way, one per run.
DEPLOY: Final = "deploy"
ABORT: Final = "abort"
# Automatic deployments of one server or group, turned off (the safe direction) or back on.
PAUSE: Final = "pause"
RESUME: Final = "resume"

# What became of an action, as counted (each counter's ``outcome`` label) and told.
Outcome = Literal[
    "retried",
    "rolled-back",
    "deployed",
    "aborted",
    "paused",  # automatic deployments off, by DeployHQ's record
    "resumed",  # and back on
    "refused",
    "failed",
    "in-doubt",
    "superseded",  # DeployHQ's record had moved on
    "overtaken",  # something newer ran on those servers
    "out-of-date",  # what the button named is no longer what DeployHQ gives
    "busy",  # someone else's action holds it
    "unavailable",  # the store did not answer
    "forbidden",
    "awaiting-approval",  # its servers need a second person: it waits for an Approve
]
# Where an action's outcome is shown: its card, or (for /deployhq deploy's order, which has no
# card) its own message in the channel.
View = Literal["card", "card or channel message"]
Target = type[ActionTarget] | type[AutoDeployTarget]


@dataclass(frozen=True)
class ActionSpec:
    name: ActionName
    button: str  # its button's action_id
    label: str  # what its button (and a request for approval) calls it
    target: Target  # what its button carries
    done: Outcome  # what it is counted as once DeployHQ did it
    metric: str  # the counter it is counted in, by name (bot/metrics.py)
    view: View


TABLE: tuple[ActionSpec, ...] = (
    ActionSpec(
        RETRY,
        "deployhq_retry",
        "Retry",
        ActionTarget,
        "retried",
        "deployhq_bot_retries_total",
        "card",
    ),
    ActionSpec(
        ROLLBACK,
        "deployhq_rollback",
        "Roll back",
        RollbackTarget,
        "rolled-back",
        "deployhq_bot_rollbacks_total",
        "card",
    ),
    ActionSpec(
        DEPLOY,
        "deployhq_deploy_latest",
        "Deploy latest",
        DeployTarget,
        "deployed",
        "deployhq_bot_deploys_total",
        "card or channel message",
    ),
    ActionSpec(
        ABORT,
        "deployhq_abort",
        "Abort",
        AbortTarget,
        "aborted",
        "deployhq_bot_aborts_total",
        "card",
    ),
    ActionSpec(
        PAUSE,
        "deployhq_pause_auto_deploy",
        "Pause auto-deploy",
        AutoDeployTarget,
        "paused",
        "deployhq_bot_auto_deploy_changes_total",
        "card",
    ),
    ActionSpec(
        RESUME,
        "deployhq_resume_auto_deploy",
        "Resume auto-deploy",
        AutoDeployTarget,
        "resumed",
        "deployhq_bot_auto_deploy_changes_total",
        "card",
    ),
)
ACTIONS: tuple[ActionName, ...] = tuple(spec.name for spec in TABLE)
_BY_NAME = {spec.name: spec for spec in TABLE}


class UnknownAction(ValueError):
    """A name the table of actions does not hold."""


def spec_of(name: str) -> ActionSpec:
    """The entry of action ``name``; ``UnknownAction`` when there is none."""
    try:
        return _BY_NAME[name]  # type: ignore[index]
    except KeyError:
        raise UnknownAction(f"no action is called {name!r}") from None


def action_named(stored: object) -> ActionName:
    """An action's name as a record stored it. A record from before the name was stored (none
    given) was a retry; any other name the table lacks fails loudly (``UnknownAction``)."""
    if stored is None:
        return RETRY
    return spec_of(str(stored)).name
