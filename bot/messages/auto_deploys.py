"""Automatic deployments in words and buttons: the card's line about them, Pause auto-deploy
and Resume auto-deploy with their confirms, the thread's notes, and what ``/deployhq freeze``,
``unfreeze`` and ``status <project>`` answer. Pure text; nothing here reaches Slack or DeployHQ.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from bot.deployhq.auto_deploys import Deployable
from bot.messages import approvals
from bot.messages.text import Block, action_button, ago, mention, outside, plain_text, when
from bot.words import states as s
from bot.words.actions import PAUSE, RESUME, ActionName, spec_of
from bot.words.buttons import AutoDeployTarget

MAX_LISTED = 20


def _branch(branch: str) -> str:
    return f"`{outside(branch, 100)}`" if branch else "its branch"


def line(auto: s.AutoDeploy) -> str:
    """The card's line: a change under way or how it ended, else the state DeployHQ shows."""
    name = f"*{outside(auto.name, 100)}*"
    match auto.doing:
        case s.Requested(user_id, at, action):
            verb = "Pausing" if action == PAUSE else "Resuming"
            asked = f"for {mention(user_id)} {when(at)}"
            return f":hourglass_flowing_sand: {verb} auto-deploy of {name} {asked}…"
        case s.Awaiting() as waiting:
            return approvals.awaiting_line(waiting)
        case s.InDoubt(user_id, at, action, said):
            first = outside(said, 300) + " " if said else "DeployHQ did not answer. "
            return (
                f":hourglass_flowing_sand: {first}The {approvals.noun(action)} of {name} "
                f"{mention(user_id)} asked for {when(at)} may have gone through: the bot is "
                "checking DeployHQ's record."
            )
        case s.Refused(user_id, reason, action):
            return (
                f":no_entry: DeployHQ refused the {approvals.noun(action)} of {name} asked for by "
                f"{mention(user_id)}: “{outside(reason, 500)}”"
            )
        case s.NotDone(user_id, problem, action):
            return (
                f":warning: The {approvals.noun(action)} of {name} asked for by "
                f"{mention(user_id)} did not go through: {outside(problem, 500)}"
            )
        case s.Unknown(user_id, at, action):
            return (
                f":grey_question: DeployHQ never answered the {approvals.noun(action)} of {name} "
                f"{mention(user_id)} asked for {when(at)}; check it in DeployHQ."
            )
        case s.Denied() as denied:
            return approvals.denied_line(denied)
    return state_line(auto)


def state_line(auto: s.AutoDeploy) -> str:
    """What DeployHQ's record shows, and who made it so from Slack (when the bot knows)."""
    name = f"*{outside(auto.name, 100)}*"
    by = f" by {mention(auto.by)} {ago(auto.at)}" if auto.by and auto.at else ""
    if auto.on:
        return (
            f":arrow_forward: Auto-deploy is on for {name}{by and ' (resumed' + by + ')'}: "
            f"pushes to {_branch(auto.branch)} deploy there by themselves."
        )
    if by:
        return f":double_vertical_bar: Auto-deploy paused{by} for {name}."
    return f":double_vertical_bar: Auto-deploy is off for {name} in DeployHQ."


def buttons(auto: s.AutoDeploy, card: str) -> list[Block]:
    """Pause auto-deploy (while on) or Resume auto-deploy (while off), unless a change is
    under way; a waiting resume's Approve and Deny."""
    if isinstance(auto.doing, s.Awaiting):
        return approvals.buttons(auto.doing.request)
    if isinstance(auto.doing, s.Requested | s.InDoubt):
        return []
    target = AutoDeployTarget(auto.project, auto.identifier, not auto.on, card)
    where, branch = outside(auto.name, 100), auto.branch or "its branch"
    if auto.on:
        text = (
            f"New pushes to `{branch}` will no longer deploy to {where} by themselves until "
            "someone resumes them."
        )
        return [_button(PAUSE, target, text)]
    text = f"New pushes to `{branch}` will deploy to {where} by themselves again."
    return [_button(RESUME, target, text)]


def _button(name: ActionName, target: AutoDeployTarget, text: str) -> Block:
    label = spec_of(name).label
    return {
        **action_button(name),
        "value": target.encode(),
        "confirm": {
            "title": plain_text(f"{label}?", 100),
            "text": plain_text(text, 300),
            "confirm": plain_text(label.split()[0], 30),
            "deny": plain_text("Cancel", 30),
        },
    }


def toggled_note(toggled: s.Toggled, branch: str) -> str:
    """The thread's note once DeployHQ's record shows the change."""
    name = f"*{outside(toggled.name, 100)}*"
    by = f"{mention(toggled.user_id)}{approvals.approved_by(toggled.approved_by)}"
    if toggled.on:
        return (
            f":arrow_forward: {by} resumed auto-deploy of {name}: pushes to {_branch(branch)} "
            "deploy there by themselves again (DeployHQ shows it on)."
        )
    return (
        f":double_vertical_bar: {by} paused auto-deploy of {name}: new pushes to "
        f"{_branch(branch)} no longer deploy there by themselves (DeployHQ shows it off)."
    )


def requested(user_id: str, action: str) -> str:
    return f":hourglass_flowing_sand: {mention(user_id)} asked for the {approvals.noun(action)}."


def already(found: Deployable) -> str:
    state = "on" if found.auto_deploy else "off"
    return (
        f":information_source: DeployHQ already shows auto-deploy {state} for "
        f"*{outside(found.name, 100)}*: nothing was sent."
    )


def not_listed(identifier: str) -> str:
    return (
        f":warning: DeployHQ no longer lists `{outside(identifier, 60)}` among the project's "
        "automatic deployments: nothing was sent."
    )


def not_taken(found: Deployable) -> str:
    state = "on" if found.auto_deploy else "off"
    return f"DeployHQ answered, but its record still shows auto-deploy {state} for {found.name}."


def none_named(named: str, listed: Sequence[Deployable]) -> str:
    names = ", ".join(f"`{outside(d.name, 60)}`" for d in listed[:MAX_LISTED]) or "none"
    return (
        f":warning: No server or group called `{outside(named, 100)}` has automatic deployments "
        f"in DeployHQ. It lists: {names}."
    )


def none_to_change(project: str, on: bool, left: Sequence[Deployable] = ()) -> str:
    state = "off" if on else "on"
    if left:
        return (
            f":information_source: Nothing the bot paused in `{outside(project, 100)}` is off: "
            "nothing was resumed." + left_off(project, left)
        )
    return (
        f":information_source: No server or group of `{outside(project, 100)}` has auto-deploy "
        f"{state} in DeployHQ: nothing to {'resume' if on else 'pause'}."
    )


def left_off(project: str, left: Sequence[Deployable]) -> str:
    """What an unnamed unfreeze left off: turned off by somebody else than the bot."""
    if not left:
        return ""
    names = ", ".join(f"*{outside(d.name, 60)}*" for d in left[:MAX_LISTED])
    more = f" and {len(left) - MAX_LISTED} more" if len(left) > MAX_LISTED else ""
    first = outside(left[0].name, 60)
    return (
        f" Left off: {names}{more}, which the bot did not pause; to turn one on, name it "
        f"(`/deployhq unfreeze {outside(project, 100)} {first}`)."
    )


def now_shows(project: str, listed: Sequence[Deployable], who: dict[str, tuple[str, float]]) -> str:
    """What DeployHQ shows for every server and group of ``project``: on or off, and who paused
    it from Slack (``who``: by identifier, for those DeployHQ still shows off)."""
    if not listed:
        return f"DeployHQ lists no automatic deployments for `{outside(project, 100)}`."
    lines = [f"*Automatic deployments of `{outside(project, 100)}`, as DeployHQ shows them:*"]
    for d in listed[:MAX_LISTED]:
        name = f"*{outside(d.name, 100)}*"
        if d.auto_deploy:
            lines.append(f"• {name}: :arrow_forward: on ({_branch(d.branch)})")
            continue
        by = who.get(d.identifier)
        paused = f" by {mention(by[0])} {ago(datetime.fromtimestamp(by[1], UTC))}" if by else ""
        lines.append(f"• {name}: :double_vertical_bar: paused{paused}")
    if len(listed) > MAX_LISTED:
        lines.append(f"…and {len(listed) - MAX_LISTED} more.")
    return "\n".join(lines)
