"""What a person is told after a click or a ``/deployhq`` command: privately, unless the
channel should see it (``command_outcome``)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Protocol

from bot.deployhq.deployment import Deployment
from bot.messages.card import facts, open_button, retry_button
from bot.messages.notes import DONE_WORD
from bot.messages.text import Block, Message, mention, mrkdwn_text, notice, outside, when
from bot.words.actions import ABORT, DEPLOY, PAUSE, RESUME, RETRY, ROLLBACK

_STATUS_EMOJI = {
    "failed": ":x:",
    "completed": ":white_check_mark:",
    "running": ":arrow_forward:",
    "pending": ":hourglass_flowing_sand:",
    "cancelled": ":no_entry:",
}


class FailedCall(Protocol):
    """What is known of a DeployHQ call that failed (``DeployHQError`` is one)."""

    message: str
    status: int | None
    kind: str
    retry_after: float | None
    what: str


# --- answers to /deployhq ----------------------------------------------------------------------


def usage(text: str, problem: str = "") -> Message:
    """The command's usage ``text``; ``problem`` (plain text, may quote the user) says what
    was wrong."""
    lead = f":grey_question: Sorry, {outside(problem, 300)}\n\n" if problem else ""
    return notice(lead + text)


def deployment_summary(deployment: Deployment, *, page_url: str) -> Message:
    """One deployment, for the person who asked for its status."""
    status = outside(deployment.status, 50)
    shown = facts(deployment)
    shown.insert(
        1, ("Status", f"{_STATUS_EMOJI.get(deployment.status, ':grey_question:')} {status}")
    )
    for label, moment in (("Queued", deployment.queued_at), ("Started", deployment.started_at)):
        if moment and label not in dict(shown):
            shown.append((label, when(moment)))
    blocks: list[Block] = [
        {
            "type": "section",
            "text": mrkdwn_text(
                f"*{outside(deployment.project_name, 200)}* · deployment "
                f"`{outside(deployment.short_id, 8)}` is *{status}*",
                3000,
            ),
        },
        {"type": "section", "fields": [mrkdwn_text(f"*{n}*\n{v}", 2000) for n, v in shown[:10]]},
        {"type": "actions", "elements": [open_button(page_url)]},
    ]
    return {
        "text": f"{outside(deployment.project_name, 200)} {deployment.short_id}: {status}",
        "blocks": blocks,
    }


def failed_list(project: str, deployments: list[Deployment], page_urls: list[str]) -> Message:
    """Recent failures of a project, each with its own Retry."""
    if not deployments:
        return notice(f"No failed deployments found recently in *{outside(project, 200)}*.")
    name = outside(deployments[0].project_name, 200)
    blocks: list[Block] = [
        {"type": "section", "text": mrkdwn_text(f"*Last failed deployments of {name}*", 3000)}
    ]
    for deployment, url in zip(deployments, page_urls, strict=True):
        parts = [f"<{url}|`{outside(deployment.short_id, 8)}`>"]
        if deployment.branch:
            parts.append(f"`{outside(deployment.branch, 100)}`")
        if deployment.end_revision and deployment.end_revision.headline:
            parts.append(outside(deployment.end_revision.headline, 150))
        if deployment.deployer:
            parts.append(f"by {outside(deployment.deployer, 100)}")
        moment = deployment.completed_at or deployment.started_at
        if moment:
            parts.append(when(moment))
        blocks.append(
            {
                "type": "section",
                "text": mrkdwn_text(" · ".join(parts), 3000),
                "accessory": retry_button(deployment),
            }
        )
    return {"text": f"Last failed deployments of {name}", "blocks": blocks}


def command_outcome(user_id: str, deployment: Deployment, outcome: str, reason: str = "") -> str:
    """What everyone in the channel sees after ``/deployhq retry``."""
    what = f"{outside(deployment.project_name, 200)} `{outside(deployment.short_id, 8)}`"
    who = mention(user_id)
    if outcome == "retried":
        status = outside(deployment.status, 50)
        return f":arrows_counterclockwise: {who} retried {what}: *{status}*"
    return f":no_entry: {who} asked to retry {what}; DeployHQ refused: “{outside(reason, 500)}”"


# --- why nothing was sent ----------------------------------------------------------------------


def _done(action: str) -> str:
    return DONE_WORD.get(action, "retried")


def rollback_target_moved(good: Deployment | None) -> str:
    """The Roll back button named a deployment DeployHQ no longer gives as the last good one."""
    now = (
        f" DeployHQ's last good deployment there is now `{outside(good.short_id, 8)}`."
        if good is not None
        else " DeployHQ now shows no completed deployment to roll back to on those servers."
    )
    return (
        ":information_source: Nothing was rolled back: the card was out of date." + now + " "
        "The card has been redrawn; look again before you press Roll back."
    )


def archived(action: str) -> str:
    return (
        f":no_entry: Nothing was sent: DeployHQ shows this deployment as archived, and an "
        f"archived deployment cannot be {_done(action)}."
    )


def failure_moved_on(record: Deployment, action: str = RETRY) -> str:
    """Why nothing was sent: DeployHQ's own record shows the failure is no longer current."""
    status = outside(record.status, 50)
    nothing = f"Nothing was {_done(action)}"
    if record.status == "failed":
        at = f" {when(record.completed_at)}" if record.completed_at else ""
        return (
            f":information_source: {nothing}: this deployment has failed again "
            f"since{at}. The card now shows that failure, with its own Retry."
        )
    since = record.finished_at
    return (
        f":information_source: {nothing}: DeployHQ shows this deployment as "
        f"*{status}*{f' (since {when(since)})' if since else ''}, so that failure is no "
        f"longer there to {'retry' if action == RETRY else 'roll back'}."
    )


def nothing_to_roll_back_to(deployment: Deployment) -> str:
    return (
        f":information_source: Nothing was rolled back: no completed deployment of "
        f"*{outside(deployment.project_name, 200)}* on the same servers was found in its recent "
        "history."
    )


def overtaken(newer: Deployment, action: str = RETRY) -> str:
    moment = newer.finished_at
    at = f" {when(moment)}" if moment else ""
    return (
        f":no_entry: Nothing was {_done(action)}: deployment `{outside(newer.short_id, 8)}` "
        f"({outside(newer.status, 50)}{at}) has run on these servers since this failure, and "
        f"a {action} would act on what is no longer the latest word there. Deploy afresh from "
        "DeployHQ instead."
    )


def unreadable_auto_deploy_button() -> str:
    return "This button no longer names a server's automatic deployments; nothing was changed."


def unreadable_button(action: str) -> str:
    return f"This button no longer names a deployment; nothing was {_done(action)}."


def preview_out_of_date() -> str:
    return (
        ":information_source: No preview was asked for: the card no longer offers what this "
        "Preview names (or the confirm is too old). Use the buttons it shows now."
    )


# --- who may act, and who already did ----------------------------------------------------------


def project_not_served(project: str) -> str:
    return (
        f":no_entry_sign: This bot does not act on the project *{outside(project, 100)}* "
        "(it is not in DEPLOYHQ_PROJECTS; give its permalink), so nothing was done."
    )


def not_allowed() -> str:
    return (
        ":no_entry_sign: You are not among the people allowed to act on deployments (or look "
        "them up with /deployhq), so nothing was done. An admin can add you to "
        "DEPLOYHQ_ACTION_USERS or to an allowed user group."
    )


def permission_unknown() -> str:
    return (
        ":warning: Nothing was done: the bot could not check whether you may act "
        "(Slack did not list the allowed user groups). Try again in a minute."
    )


def already_acted(
    user_id: str,
    at: datetime,
    action: str,
    *,
    done: bool,
    in_doubt: bool = False,
    on_card: bool = True,
) -> str:
    """What a later clicker is told, privately, about the action under way (``on_card``: a
    card follows it, as it does not for ``/deployhq deploy``)."""
    if action in (PAUSE, RESUME):
        what = "pause" if action == PAUSE else "resume"
        if in_doubt:
            return (
                f"{mention(user_id)} asked DeployHQ to {what} auto-deploy {when(at)} and its "
                "answer never came; nothing more is sent until DeployHQ's record shows it."
            )
        verb = f"{what}d auto-deploy" if done else f"asked DeployHQ to {what} auto-deploy"
        return f"{mention(user_id)} already {verb} {when(at)}; nothing more was sent."
    if action in (DEPLOY, ABORT):
        what = "deploy the branch's latest commit" if action == DEPLOY else "abort this run"
        if in_doubt:
            return (
                f"{mention(user_id)} asked DeployHQ to {what} {when(at)} and its answer never "
                "came; nothing more is sent until DeployHQ's record shows what happened."
                + (" The card will show it." if on_card else "")
            )
        done_what = "deployed the branch's latest commit" if action == DEPLOY else "aborted it"
        verb = done_what if done else f"asked DeployHQ to {what}"
        return (
            f"{mention(user_id)} already {verb} {when(at)} (a failure gets one action, a run "
            "one abort); nothing more was done."
        )
    if action == ROLLBACK and in_doubt:
        return (
            f"{mention(user_id)} asked DeployHQ to roll this deployment back {when(at)} and "
            "its answer never came; nothing more is sent until DeployHQ's record shows what "
            "happened. The card will show it."
        )
    if action == ROLLBACK:
        verb = "rolled this deployment back" if done else "started rolling this deployment back"
        return f"{mention(user_id)} already {verb} {when(at)}; nothing more was done."
    if in_doubt:
        return (
            f"{mention(user_id)} asked DeployHQ to retry this deployment {when(at)} and its "
            "answer never came; DeployHQ still shows no outcome, so nothing more is sent until "
            "it does. The card will show what happened."
        )
    verb = "retried this deployment" if done else "started retrying this deployment"
    return f"{mention(user_id)} already {verb} {when(at)}; it is retried only once."


def servers_busy(user_id: str, action: str, at: datetime) -> str:
    """Why nothing was sent: another action under way is changing the same servers."""
    what = _ASKED_ON_SERVERS.get(action, "act")
    return (
        f":information_source: Nothing was sent: {mention(user_id)} asked DeployHQ to "
        f"{what} on these servers {when(at)}, and that is still under way. Two actions "
        "never change one server at once; look again once it has settled."
    )


_ASKED_ON_SERVERS = {
    RETRY: "retry a deployment",
    ROLLBACK: "roll back",
    DEPLOY: "deploy",
    PAUSE: "pause auto-deploy",
    RESUME: "resume auto-deploy",
}


def store_unavailable() -> str:
    return (
        ":warning: Nothing was sent to DeployHQ: the bot cannot reach its Redis, which it needs "
        "to make sure each action happens only once. Try again in a minute."
    )


def answered(error: FailedCall) -> str:
    """What DeployHQ answered instead of doing what was asked, in its words (plain text, to
    escape): "DeployHQ answered HTTP 500: “…”", and how long it asked to wait; "" when it did
    not answer at all (a timeout, a dropped connection)."""
    if error.status is None:
        return ""
    words = error.message.strip()
    quoted = f": “{words}”" if words and not words.startswith(f"HTTP {error.status}") else ""
    wait = ""
    if error.retry_after:
        wait = f", and asked to wait {math.ceil(error.retry_after)} s"
    return f"DeployHQ answered HTTP {error.status}{quoted}{wait}."


def describe_error(error: FailedCall) -> str:
    """Plain text for people about a DeployHQ call that failed (never with credentials),
    naming what was being read when the caller said.

    It may quote DeployHQ, so escape it before it goes into mrkdwn.
    """
    said = _describe(error)
    return f"Could not read {error.what} from DeployHQ. {said}" if error.what else said


def _describe(error: FailedCall) -> str:
    wait = f" for {math.ceil(error.retry_after)} s" if error.retry_after else ""
    if error.status == 401:
        return (
            f"DeployHQ refused the bot's API credentials (HTTP {error.status}); an admin should "
            "check DEPLOYHQ_USERNAME and DEPLOYHQ_API_KEY."
        )
    if error.status == 403:  # a read-only key, a plan's limit: DeployHQ says which
        return (
            f"DeployHQ refused the bot's API credentials (HTTP 403): {error.message}. An admin "
            "should check the permissions of DEPLOYHQ_USERNAME's API key."
        )
    if error.status == 404 and error.what:
        return f"DeployHQ answered HTTP 404: “{error.message}”."
    if error.status == 404:
        return "DeployHQ says that project or deployment was not found."
    if error.status == 429 or error.kind == "busy":
        return f"DeployHQ is limiting requests; wait{wait} before trying again."
    if error.status == 503 and error.retry_after:
        return f"DeployHQ is busy ({error.message}); wait{wait} before trying again."
    if error.kind in ("timeout", "dropped"):
        return "DeployHQ did not answer in time."
    if error.kind == "connect":
        return "The bot could not reach DeployHQ; nothing was sent."
    if error.status is not None and error.status >= 500:
        return f"DeployHQ had an error (HTTP {error.status}): {error.message}."
    return f"DeployHQ answered: {error.message}"
