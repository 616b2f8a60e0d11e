"""Four eyes, in words and buttons: a request waiting for approval, its Approve and Deny, and
what each person is told. Pure text; nothing here reaches Slack or DeployHQ."""

from __future__ import annotations

from datetime import datetime

from bot.messages.text import Block, mention, outside, plain_text, when
from bot.words import states as s
from bot.words.actions import DEPLOY, PAUSE, RESUME, RETRY, ROLLBACK, spec_of
from bot.words.buttons import APPROVE_ACTION, DENY_ACTION

_NOUN = {
    RETRY: "retry",
    ROLLBACK: "roll back",
    DEPLOY: "deploy",
    PAUSE: "pause of auto-deploy",
    RESUME: "resume of auto-deploy",
}


def noun(action: str) -> str:
    return _NOUN.get(action, action)


def approvers(users: frozenset[str], groups: frozenset[str]) -> str:
    """Who may approve, named (a group by its id, never pinged); "nobody" when none is set."""
    named = [mention(user) for user in sorted(users)]
    named += [f"a member of the user group `{outside(group, 30)}`" for group in sorted(groups)]
    if not named:
        return "nobody (no approver is set)"
    return named[0] if len(named) == 1 else ", ".join(named[:-1]) + " or " + named[-1]


def _asked(action: str, ref: str) -> str:
    what = f"*{spec_of(action).label}*"
    if ref and action == ROLLBACK:
        return f"{what} to `{outside(ref[:7], 7)}`"
    if ref and action == DEPLOY:
        return f"{what} `{outside(ref[:7], 7)}`"
    return what


def awaiting_line(state: s.Awaiting) -> str:
    """The card's line while a request waits."""
    return (
        f":closed_lock_with_key: {_asked(state.action, state.ref)} requested by "
        f"{mention(state.user_id)} · waiting for approval (until {when(state.until)})"
    )


def awaiting_note(state: s.Awaiting, who: str) -> str:
    """The thread's record of the request: who asked, and who can approve."""
    return (
        f":closed_lock_with_key: {mention(state.user_id)} asked for "
        f"{_asked(state.action, state.ref)} on servers that need a second person's approval. "
        "Nothing is sent to DeployHQ until "
        f"{who} approves it, by {when(state.until)}."
    )


def denied_line(state: s.Denied) -> str:
    what = noun(state.action)
    if not state.by:
        return (
            f":hourglass: The {what} {mention(state.user_id)} asked for lapsed: nobody approved "
            "it in time. Nothing was sent."
        )
    if state.by == state.user_id:
        return (
            f":leftwards_arrow_with_hook: {mention(state.by)} withdrew the {what} they asked for."
        )
    return f":no_entry: {mention(state.by)} denied the {what} {mention(state.user_id)} asked for."


def approved_by(approver: str) -> str:
    """What follows "… by @ann" once the action ran: who approved it."""
    return f", approved by {mention(approver)}" if approver else ""


def approved_note(user_id: str, approver: str, action: str) -> str:
    return (
        f":white_check_mark: {mention(approver)} approved the {noun(action)} "
        f"{mention(user_id)} asked for; DeployHQ's record is read again before it is sent."
    )


def buttons(request: str) -> list[Block]:
    """Approve and Deny: each carries only the request's id, which the bot looks up."""
    return [
        {
            "type": "button",
            "action_id": APPROVE_ACTION,
            "text": plain_text("Approve", 75),
            "style": "primary",
            "value": request,
            "confirm": {
                "title": plain_text("Approve this action?", 100),
                "text": plain_text(
                    "The bot reads DeployHQ's record again and, if nothing has changed, sends it.",
                    300,
                ),
                "confirm": plain_text("Approve", 30),
                "deny": plain_text("Cancel", 30),
            },
        },
        {
            "type": "button",
            "action_id": DENY_ACTION,
            "text": plain_text("Deny", 75),
            "style": "danger",
            "value": request,
        },
    ]


# --- what a person is told, privately ---------------------------------------------------------


def own_request() -> str:
    return (
        ":no_entry_sign: You cannot approve your own request: a second person must. You can "
        "withdraw it with Deny."
    )


def not_an_approver(who: str) -> str:
    return f":no_entry_sign: Only {who} may approve or deny this request; nothing was done."


def nobody_may_approve() -> str:
    return (
        ":no_entry_sign: Nothing was sent: these servers need a second person's approval and "
        "nobody may approve (an admin sets DEPLOYHQ_APPROVERS_USERS or "
        "DEPLOYHQ_APPROVERS_USERGROUPS)."
    )


def request_gone() -> str:
    return ":information_source: This request is no longer open, so nothing was done."


def request_ended(how: str, by: str, at: datetime | None) -> str:
    """A request that was decided already, or lapsed."""
    moment = f" {when(at)}" if at else ""
    if how == "approved":
        return f":information_source: {mention(by)} already approved this request{moment}."
    if how == "lapsed":
        return f":information_source: This request lapsed undecided{moment}; nothing was sent."
    return f":information_source: {mention(by)} already denied this request{moment}."


def awaiting_reply(user_id: str, action: str, until: datetime | None, link: str = "") -> str:
    """A later click (or command) on something whose action waits for approval: where the
    request is (``link``, when it has a message of its own), else on the card."""
    moment = f" (until {when(until)})" if until else ""
    where = f"<{link}|in its message>" if link else "on the card"
    return (
        f":closed_lock_with_key: {mention(user_id)} already asked for a {noun(action)}: it is "
        f"waiting for approval{moment}. Approve or Deny it {where}."
    )


# --- a request no card shows: a channel message of its own -------------------------------------


def deployment_subject(project: str, deployment: str) -> str:
    return f"deployment `{outside(deployment[:8], 8)}` of `{outside(project, 100)}`"


def deployable_subject(project: str, identifier: str) -> str:
    return f"`{outside(identifier, 60)}` of `{outside(project, 100)}`"


def asked_line(user_id: str, action: str, ref: str, subject: str) -> str:
    """Who asked for what, on what: the first line of a request's own message."""
    on = f" on {subject}" if subject else ""
    return f":closed_lock_with_key: {mention(user_id)} asked for {_asked(action, ref)}{on}."


def request_message(state: s.Awaiting, subject: str, who: str) -> str:
    """A request's own message (no card shows it): who asked, what it would do, until when."""
    return (
        f"{asked_line(state.user_id, state.action, state.ref, subject)} Its servers need a "
        f"second person's approval: nothing is sent to DeployHQ until {who} approves it, by "
        f"{when(state.until)}."
    )


def request_posted(link: str, channel: str, who: str) -> str:
    """The requester, told where their request waits."""
    where = f"<{link}|in this message>" if link else "in a message"
    return (
        f":closed_lock_with_key: Your request waits for a second person's approval {where} in "
        f"<#{channel}>. Nothing is sent to DeployHQ until {who} approves it."
    )


def request_unposted() -> str:
    return (
        ":warning: Nothing was sent: these servers need a second person's approval, and the "
        "request could not be posted in Slack for an approver to see. Try again in a moment."
    )


def request_closed(first: str, outcome: str) -> str:
    """A request's own message once it ended: what was asked, then what became of it."""
    return f"{first}\n{outcome}" if outcome else first


def request_lost() -> str:
    """An Approve or Deny on a request's message that the bot no longer knows (its store lost
    it): the message says so, and how to ask again."""
    return (
        ":information_source: The bot no longer knows this request (its store was reset), so "
        "nothing was sent and nothing will be. Ask again (the same button or command) to make "
        "a new request."
    )


def request_interrupted_line() -> str:
    return (
        ":information_source: This request ended before it was decided (the bot was "
        "interrupted); nothing was sent. Ask again to make a new one."
    )


def done_by_record(action: str) -> str:
    """An approved action whose answer was lost (or whose process died), found in DeployHQ's
    record."""
    return f"DeployHQ's record shows the {noun(action)} went through."


def nothing_done_line() -> str:
    return (
        "DeployHQ's record shows nothing was done for it (the bot was interrupted, or DeployHQ "
        "never queued it). Ask again to make a new request."
    )


def approved_outcome(approver: str, outcome: str) -> str:
    """A request's own message once approved: who approved it, and what DeployHQ then did
    (or why nothing was sent)."""
    return f":white_check_mark: Approved by {mention(approver)}. {outcome}".rstrip()
