"""The card's thread: one short reply per thing that happened, so the thread is the audit trail.

An action's outcome is written here too, for the thread and for a person who cannot see it on
a card (``outcome_note``).
"""

from __future__ import annotations

from bot.deployhq.deployment import Deployment, Step
from bot.messages import approvals, auto_deploys
from bot.messages.text import clip, duration_text, escape, mention, outside, when
from bot.words import states as s
from bot.words.actions import ABORT, DEPLOY, PAUSE, RESUME, RETRY, ROLLBACK
from bot.words.states import CardState

_ASKED = {
    RETRY: "retry this deployment",
    ROLLBACK: "roll this deployment back",
    DEPLOY: "deploy the branch's latest commit",
    ABORT: "abort the deployment under way",
    PAUSE: "pause auto-deploy",
    RESUME: "resume auto-deploy",
}
DONE_WORD = {
    RETRY: "retried",
    ROLLBACK: "rolled back",
    DEPLOY: "deployed",
    ABORT: "aborted",
    PAUSE: "paused",
    RESUME: "resumed",
}


# A run that ended so, under an abort, ended by itself: the abort did not stop it. (A run the
# bot aborted may read ``failed`` as well as ``cancelled``: DeployHQ does not say which.)
ENDED_BY_ITSELF = ("completed",)


def requested(user_id: str, action: str) -> str:
    what = _ASKED.get(action, _ASKED[RETRY])
    return f":hourglass_flowing_sand: {mention(user_id)} asked DeployHQ to {what}."


def event_note(deployment: Deployment) -> str:
    """What a later notification says happened to the deployment."""
    status = deployment.status
    if status == "failed":
        at = f" {when(deployment.completed_at)}" if deployment.completed_at else ""
        return f":x: Failed again{at}."
    if status == "running":
        since = f" since {when(deployment.started_at)}" if deployment.started_at else ""
        return f":arrow_forward: Running{since}."
    if status == "pending":
        return ":hourglass_flowing_sand: Queued in DeployHQ."
    if status == "completed":
        at = f" {when(deployment.completed_at)}" if deployment.completed_at else ""
        took = (
            f" in {duration_text(deployment.duration)}" if deployment.duration is not None else ""
        )
        return f":white_check_mark: Completed{at}{took}."
    if status == "cancelled":
        return ":no_entry_sign: Cancelled."
    return f":grey_question: DeployHQ status: *{outside(status, 50)}*."


def aborted_run(user_id: str, deployment: Deployment) -> str:
    """The run the bot aborted, as DeployHQ reports it once stopped."""
    return (
        f":no_entry_sign: Stopped by the abort {mention(user_id)} asked for. DeployHQ status: "
        f"*{outside(deployment.status, 50)}*."
    )


def deployer_told(member: str) -> str:
    """The failure's thread mentions the member whose Slack email is the deployer's."""
    return f":wave: {mention(member)}, your deployment failed."


def rollback_moved(deployment: Deployment) -> str:
    """A later state of the deployment a rollback queued, which the failure's card follows."""
    return ":rewind: The rollback: " + event_note(deployment)


def failure_log(step: Step, lines: list[str], *, max_lines: int = 12) -> str:
    """Why it failed: the failing step and the end of its log, inside Block Kit's limits."""
    where = f" on {outside(step.server, 100)}" if step.server else ""
    lead = f":mag: *Why it failed:* the step _{outside(step.description, 200)}_{where} failed."
    tail = [clip(line, 200) for line in lines[-max_lines:]]
    text = "\n".join(tail)
    if len(text) > 2400:
        text = "…" + text[-2399:]
    # Backticks would end the code block early; a look-alike keeps the log readable.
    body = escape(text).replace("`", "ˋ")
    return f"{lead}\n```{body}```" if body else f"{lead}\nIts log is empty."


def outcome_note(state: CardState | None, deployment: Deployment | None) -> str:
    """The outcome of an action, for the thread or a person who cannot see it on a card."""
    match state:
        case s.DeployedLatest(user_id, _, ref, status, deployment_id, approver):
            return (
                f":rocket: {mention(user_id)} deployed the latest commit `{outside(ref[:7], 7)}`"
                f"{approvals.approved_by(approver)}: DeployHQ queued deployment "
                f"`{outside(deployment_id[:8], 8)}`, *{outside(status, 50)}*."
            )
        case s.Aborted(user_id, _, status) if status in ENDED_BY_ITSELF:
            return (
                f":information_source: The deployment finished (*{outside(status, 50)}*) before "
                f"the abort {mention(user_id)} asked for took effect."
            )
        case s.Aborted(user_id, _, status):
            return (
                f":no_entry_sign: {mention(user_id)} aborted the deployment. DeployHQ status: "
                f"*{outside(status, 50)}*."
            )
        case s.RolledBack(user_id, _, ref, status, deployment_id, approver):
            return (
                f":rewind: {mention(user_id)} rolled back to `{outside(ref[:7], 7)}`"
                f"{approvals.approved_by(approver)}: DeployHQ queued deployment "
                f"`{outside(deployment_id[:8], 8)}`, *{outside(status, 50)}*."
            )
        case s.Retried(user_id, _, approver):
            status = outside(deployment.status, 50) if deployment else "pending"
            by = f" by {mention(user_id)}{approvals.approved_by(approver)}" if approver else ""
            return f":white_check_mark: Retried{by}. DeployHQ status: *{status}*"
        case s.Awaiting():
            return approvals.awaiting_line(state)
        case s.Denied():
            return approvals.denied_line(state)
        case s.Refused(_, reason, action):
            return f":no_entry: DeployHQ refused the {action}: “{outside(reason, 500)}”"
        case s.NotDone(_, problem, action):
            return f":warning: The {action} did not go through: {outside(problem, 600)}"
        case s.InDoubt(_, _, action, said):
            return in_doubt(action, said)
        case s.Toggled():
            return auto_deploys.toggled_note(state, "")
        case s.Unknown(_, _, action):
            return (
                f":grey_question: DeployHQ never answered the {action}, and its record cannot "
                "tell whether it happened. Nothing more will be sent; check DeployHQ."
            )
    return ""


def in_doubt(action: str = RETRY, said: str = "") -> str:
    """``said``: what DeployHQ answered instead (``replies.answered``), or "" for no answer."""
    if said:
        return (
            f":hourglass_flowing_sand: {outside(said, 700)} It may still have queued the "
            f"{action}: the bot is checking DeployHQ's record and will show the outcome on the "
            "card; nothing more will be sent for it until it knows."
        )
    return (
        f":hourglass_flowing_sand: DeployHQ did not answer in time, so the {action} may have "
        "been queued. The bot is checking DeployHQ and will show the outcome on the card; "
        "nothing more will be sent for this failure until it knows."
    )


def never_queued(action: str = RETRY) -> str:
    done = DONE_WORD.get(action, "retried")
    return f"DeployHQ's record shows the {action} was never queued, so nothing was {done}."


def claim_lapsed(action: str = RETRY) -> str:
    """Why nothing was sent when the claim could not be kept until the call: it outlived its
    hold (the calls before took longer), or the store stopped answering."""
    return (
        f"The bot's hold on this {action} lapsed before it could ask DeployHQ (the calls "
        "before it took longer than the hold lasts), so it asked nothing."
    )


def interrupted(action: str) -> str:
    """An action whose holder died before DeployHQ was asked (nothing was sent)."""
    done = DONE_WORD.get(action, "retried")
    return f":warning: The {action} was interrupted before DeployHQ was asked; nothing was {done}."
