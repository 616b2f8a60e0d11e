"""``/deployhq deploy``: the confirm shown only to the person, and what is said after it."""

from __future__ import annotations

from bot.deployhq.commits import Range
from bot.deployhq.deployment import Deployment, Revision
from bot.messages import approvals, changes
from bot.messages.text import Block, Message, mention, mrkdwn_text, outside, plain_text, when
from bot.words import states as s
from bot.words.buttons import (
    DEPLOY_CANCEL_ACTION,
    DEPLOY_CONFIRM_ACTION,
    PREVIEW_ORDER_ACTION,
    DeployOrder,
)


def _what(order: DeployOrder) -> str:
    return (
        f"`{outside(order.ref[:7], 7)}` of `{outside(order.branch, 100)}` to "
        f"*{outside(order.name, 200)}*"
    )


def confirm(order: DeployOrder, commit: Revision, token: str, adds: Range | None = None) -> Message:
    """The private confirm: what will be deployed where, and the commits it adds, with Deploy,
    Preview and Cancel; Deploy and Preview carry only ``token``, which names the order the bot
    kept."""
    said = f"Deploy {_what(order)}?"
    if commit.message:
        said += f"\n> {outside(commit.message.splitlines()[0], 200)}"
    if commit.author:
        said += f"\nby {outside(commit.author, 100)}"
    said += changes.adds_lines(adds)
    buttons: list[Block] = [
        {
            "type": "button",
            "action_id": DEPLOY_CONFIRM_ACTION,
            "text": plain_text("Deploy", 75),
            "style": "primary",
            "value": token,
        },
        {
            "type": "button",
            "action_id": PREVIEW_ORDER_ACTION,
            "text": plain_text("Preview", 75),
            "value": token,
        },
        {
            "type": "button",
            "action_id": DEPLOY_CANCEL_ACTION,
            "text": plain_text("Cancel", 75),
            "value": "cancel",
        },
    ]
    return {
        "text": f"Deploy {order.ref[:7]} of {order.branch[:100]} to {order.name[:200]}?",
        "blocks": [
            {"type": "section", "text": mrkdwn_text(said, 3000)},
            {"type": "actions", "elements": buttons},
        ],
    }


def expired() -> str:
    return (
        ":information_source: Nothing was deployed: this confirm is too old, or not one the "
        "bot showed. Run `/deployhq deploy` again to see what it would deploy now."
    )


def cancelled() -> str:
    return ":information_source: Nothing was deployed."


def no_such_target(project: str, word: str) -> str:
    word = word.replace("`", "'")  # a backtick would end the code span early
    return (
        f":no_entry: Nothing was deployed: {outside(project, 100)} has no server or server group "
        f"named `{outside(word, 100)}`."
    )


def no_branch(name: str) -> str:
    return (
        f":no_entry: Nothing was deployed: DeployHQ names no branch for {outside(name, 200)}; "
        "name one: `/deployhq deploy <project> <server or group> <branch>`."
    )


def already_there(ref: str, name: str, ran: Deployment) -> str:
    moment = ran.finished_at or ran.queued_at
    at = f" {when(moment)}" if moment else ""
    return (
        f":no_entry: Nothing was deployed: `{outside(ref[:7], 7)}` already went to "
        f"{outside(name, 200)} in deployment `{outside(ran.short_id, 8)}`{at} "
        f"(*{outside(ran.status, 50)}*), so it is not newer than what it runs."
    )


def queued_since(order: DeployOrder, newest: Deployment) -> str:
    """Something was queued on the order's servers since its confirm was drawn."""
    moment = newest.queued_at
    at = f" {when(moment)}" if moment else ""
    return (
        f":no_entry: Nothing was deployed: deployment `{outside(newest.short_id, 8)}` "
        f"(*{outside(newest.status, 50)}*) was queued on *{outside(order.name, 200)}*{at}, "
        f"after this deploy of `{outside(order.ref[:7], 7)}` was asked for, so it could put "
        "older code over newer. Run `/deployhq deploy` again to deploy what is newest now."
    )


def branch_moved(order: DeployOrder, latest: str) -> str:
    """The branch's newest commit is no longer the one the order names."""
    return (
        f":information_source: Nothing was deployed: `{outside(order.branch, 100)}` has moved "
        f"on to `{outside(latest[:7], 7)}` since this deploy of `{outside(order.ref[:7], 7)}` "
        "was asked for. Run `/deployhq deploy` again to deploy the newest commit."
    )


def deployed(user_id: str, order: DeployOrder, answer: Deployment, approver: str = "") -> str:
    return (
        f":rocket: {mention(user_id)} deployed {_what(order)}{approvals.approved_by(approver)}"
        f" · new deployment `{outside(answer.short_id, 8)}`: *{outside(answer.status, 50)}*"
    )


def refused(user_id: str, order: DeployOrder, reason: str) -> str:
    return (
        f":no_entry: {mention(user_id)} asked to deploy {_what(order)}; DeployHQ refused: "
        f"“{outside(reason, 500)}”"
    )


def in_doubt(user_id: str, order: DeployOrder, said: str = "") -> str:
    if said:
        return (
            f":hourglass_flowing_sand: {outside(said, 700)} It may still have queued "
            f"{mention(user_id)}'s deploy of {_what(order)}: nothing more is sent for it until "
            "DeployHQ's record shows what happened."
        )
    return (
        f":hourglass_flowing_sand: DeployHQ did not answer {mention(user_id)}'s deploy of "
        f"{_what(order)}. It may have queued it: nothing more is sent for it until DeployHQ's "
        "record shows what happened."
    )


def unknown(user_id: str, order: DeployOrder) -> str:
    return (
        f":grey_question: DeployHQ never answered {mention(user_id)}'s deploy of {_what(order)}, "
        "and its record cannot tell whether it happened. Nothing more will be sent; check "
        "DeployHQ."
    )


def outcome(state: s.CardState, order: DeployOrder) -> str:
    """What the channel is told of a confirmed deploy, once DeployHQ was asked."""
    match state:
        case s.InDoubt(user_id, _, _, said):
            return in_doubt(user_id, order, said)
        case s.Refused(user_id, reason):
            return refused(user_id, order, reason)
        case s.Unknown(user_id):
            return unknown(user_id, order)
        case s.NotDone(user_id, problem):
            return (
                f":warning: {mention(user_id)}'s deploy of {_what(order)} did not go through: "
                f"{outside(problem, 600)}"
            )
        case s.Awaiting(user_id, _, _, until):
            return (
                f":closed_lock_with_key: {mention(user_id)} asked to deploy {_what(order)} · "
                f"waiting for approval (until {when(until)})"
            )
        case s.Denied():
            return approvals.denied_line(state) + f" ({_what(order)})"
    return ""
