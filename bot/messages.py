"""Pure Block Kit builders: what the bot says, with no I/O.

Text from outside (project and branch names, commit messages, DeployHQ's reasons) is escaped
and every mrkdwn object is ``verbatim``, so it shows as text: it cannot mention anyone, name a
channel or turn into a link. The only links are our own, and those go in button ``url`` fields.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypedDict

from bot.commands import USAGE
from bot.deployhq import DeployHQError
from bot.deployments import Deployment, Step
from bot.routing import OPEN_ACTION, RETRY_ACTION, ROLLBACK_ACTION, RetryTarget, RollbackTarget

Block = dict[str, Any]

_USER_ID = re.compile(r"[UW][A-Z0-9]{2,30}")
_STATUS_EMOJI = {
    "failed": ":x:",
    "completed": ":white_check_mark:",
    "running": ":arrow_forward:",
    "pending": ":hourglass_flowing_sand:",
    "cancelled": ":no_entry:",
}
_MAX_SERVERS_SHOWN = 5


class Message(TypedDict):
    text: str
    blocks: list[Block]


# --- what has happened on a card -------------------------------------------------------------


@dataclass(frozen=True)
class Failed:
    """Failed, and nobody is retrying it; ``again`` when it failed after a retry."""

    again: bool = False
    retried_by: str | None = None


@dataclass(frozen=True)
class Progress:
    """DeployHQ reported a later status (running, completed, …) for the card's deployment."""

    retried_by: str | None = None
    retried_at: datetime | None = None


@dataclass(frozen=True)
class Retrying:
    """Someone asked for a retry (or, with ``action`` "rollback", a rollback) of the failure."""

    user_id: str
    at: datetime
    action: str = "retry"


@dataclass(frozen=True)
class InDoubt:
    """DeployHQ's answer to the retry never came: it may have been queued; the bot checks."""

    user_id: str
    at: datetime
    action: str = "retry"


@dataclass(frozen=True)
class Retried:
    """DeployHQ accepted the retry; the card's deployment carries DeployHQ's new status."""

    user_id: str
    at: datetime


@dataclass(frozen=True)
class RetryRefused:
    """DeployHQ answered 422: this deployment cannot be retried (or rolled back), for
    ``reason``."""

    user_id: str
    reason: str
    action: str = "retry"


@dataclass(frozen=True)
class RetryFailed:
    """The retry (or rollback) did not go through (timeout, 5xx, auth); both are offered
    again."""

    user_id: str
    problem: str
    action: str = "retry"


@dataclass(frozen=True)
class RolledBack:
    """DeployHQ queued a rollback to ``ref`` as a new deployment, whose status the card follows."""

    user_id: str
    at: datetime
    ref: str
    status: str
    deployment_id: str


@dataclass(frozen=True)
class Unknown:
    """The action's answer was lost and DeployHQ's record cannot say whether it happened
    (another deployment has run on those servers since): nothing more is sent."""

    user_id: str
    at: datetime
    action: str = "retry"


@dataclass(frozen=True)
class Overtaken:
    """A newer deployment has run on the same servers: retrying would put older code back."""

    newer_id: str
    newer_status: str
    newer_at: datetime | None = None


CardState = (
    Failed
    | Retrying
    | InDoubt
    | Retried
    | RetryRefused
    | RetryFailed
    | Progress
    | RolledBack
    | Overtaken
    | Unknown
)

_HEADLINES = {
    "failed": (":x:", "Deployment failed"),
    "running": (":arrow_forward:", "Deploying"),
    "pending": (":hourglass_flowing_sand:", "Deployment queued"),
    "completed": (":white_check_mark:", "Deployment completed"),
    "cancelled": (":no_entry_sign:", "Deployment aborted"),  # DeployHQ's word for an abort
}


# --- the deployment card ---------------------------------------------------------------------


def deployment_card(
    deployment: Deployment,
    state: CardState,
    *,
    page_url: str,
    confirmed: bool = True,
    rollback_to: Deployment | None = None,
) -> Message:
    """The message that tracks one deployment: what failed, what was done, and Retry.

    ``confirmed`` is False while the deployment is known only from a notification: the card
    then says so and offers no Retry until DeployHQ's API has confirmed it.
    """
    project = deployment.project_name
    headline = _headline(deployment, state)
    tag = _fingerprint(deployment, state)

    blocks: list[Block] = [
        {
            "type": "header",
            "block_id": f"head.{tag}",
            "text": _plain(f"{headline[0]} {headline[1]}: {project}", 150),
        },
        {
            "type": "section",
            "block_id": f"facts.{tag}",
            "fields": [_mrkdwn(f"*{name}*\n{value}", 2000) for name, value in _facts(deployment)],
        },
    ]
    if deployment.end_revision and deployment.end_revision.headline:
        blocks.append(
            {
                "type": "section",
                "block_id": f"commit.{tag}",
                "text": _mrkdwn(
                    f"*Commit*\n>{_outside(deployment.end_revision.headline, 500)}", 3000
                ),
            }
        )
    line = _state_line(deployment, state)
    if not confirmed:
        line += " · :hourglass: Not yet confirmed with DeployHQ; Retry appears once it is."
    blocks.append(
        {
            "type": "context",
            "block_id": f"state.{tag}{'' if confirmed else '.u'}",
            "elements": [_mrkdwn(line, 3000)],
        }
    )
    buttons: list[Block] = []
    retryable = isinstance(state, Failed | Retrying | RetryFailed)
    # An archived deployment can be neither retried nor rolled back (DeployHQ refuses both).
    if confirmed and retryable and deployment.status == "failed" and not deployment.archived:
        buttons.append(_retry_button(deployment))
        if rollback_to is not None:
            buttons.append(_rollback_button(deployment, rollback_to))
    buttons.append(_open_button(page_url))
    blocks.append({"type": "actions", "block_id": f"actions.{tag}", "elements": buttons})
    return {"text": _fallback(deployment, headline[1], state), "blocks": blocks}


def _headline(deployment: Deployment, state: CardState) -> tuple[str, str]:
    match state:
        case Retrying(action="rollback"):
            return ":hourglass_flowing_sand:", "Rolling back"
        case Retrying() | InDoubt():
            return ":hourglass_flowing_sand:", "Retrying deployment"
        case RolledBack():
            return ":rewind:", "Rolled back"
        case Retried():
            return ":arrows_counterclockwise:", "Deployment retried"
        case Failed(again=True):
            return ":x:", "Deployment failed again"
    status = _clip(deployment.status, 50)
    return _HEADLINES.get(deployment.status, (":grey_question:", f"Deployment {status}"))


def _facts(deployment: Deployment) -> list[tuple[str, str]]:
    facts = [("Project", _outside(deployment.project_name, 200))]
    if deployment.branch:
        facts.append(("Branch", f"`{_outside(deployment.branch, 200)}`"))
    start, end = deployment.start_revision, deployment.end_revision
    if end:
        revisions = f"`{_outside(end.short_ref, 7)}`"
        if start and start.ref != end.ref:
            revisions = f"`{_outside(start.short_ref, 7)}` → {revisions}"
        facts.append(("Revisions", revisions))
    if deployment.servers:
        shown = ", ".join(_outside(s, 100) for s in deployment.servers[:_MAX_SERVERS_SHOWN])
        hidden = len(deployment.servers) - _MAX_SERVERS_SHOWN
        facts.append(("Servers", shown + (f" and {hidden} more" if hidden > 0 else "")))
    facts.append(
        ("Deployed by", _outside(deployment.deployer, 200) if deployment.deployer else "—")
    )
    finished = deployment.completed_at or deployment.started_at
    if deployment.status in ("failed", "completed") and finished:
        when = _when(finished)
        if deployment.duration is not None:
            when += f" after {duration_text(deployment.duration)}"
        facts.append((deployment.status.capitalize(), when))
    elif deployment.queued_at:
        facts.append(("Queued", _when(deployment.queued_at)))
    return facts


def _state_line(deployment: Deployment, state: CardState) -> str:
    ref = f"Deployment `{_outside(deployment.short_id, 8)}`"
    match state:
        case Failed(again=True, retried_by=user_id):
            after = f" after the retry by {mention(user_id)}" if user_id else ""
            return f":x: Failed again{after}. Retry is available."
        case Failed():
            return f"{ref} · not retried yet"
        case Progress(user_id, at):
            return _progress_line(deployment, user_id, at)
        case Retrying(user_id, at, action):
            return (
                f":hourglass_flowing_sand: {action.capitalize()} requested by {mention(user_id)} "
                f"{_when(at)}"
            )
        case RolledBack(user_id, at, ref, status, deployment_id):
            return (
                f":rewind: Rolled back by {mention(user_id)} {_when(at)} to "
                f"`{_outside(ref[:7], 7)}` · new deployment `{_outside(deployment_id[:8], 8)}`: "
                f"*{_outside(status, 50)}*"
            )
        case Overtaken(newer_id, newer_status, newer_at):
            when = f", {_when(newer_at)}" if newer_at else ""
            return (
                f":no_entry: Retry is no longer safe: deployment `{_outside(newer_id[:8], 8)}` "
                f"({_outside(newer_status, 50)}{when}) has run on these servers since, so a "
                "retry would put older code back. Deploy afresh from DeployHQ."
            )
        case InDoubt(user_id, at, action):
            return (
                f":hourglass_flowing_sand: DeployHQ did not answer the {action} requested by "
                f"{mention(user_id)} {_when(at)}. It may have queued it: the bot is checking "
                "DeployHQ and will show what it finds here."
            )
        case Unknown(user_id, at, action):
            return (
                f":grey_question: DeployHQ never answered the {action} requested by "
                f"{mention(user_id)} {_when(at)}, and its record cannot tell whether it "
                "happened: another deployment has run on these servers since. Nothing more "
                "will be sent; check the deployments in DeployHQ."
            )
        case Retried(user_id, at):
            return (
                f":white_check_mark: Retried by {mention(user_id)} {_when(at)} · "
                f"DeployHQ status: *{_outside(deployment.status, 50)}*"
            )
        case RetryRefused(user_id, reason, action):
            return (
                f":no_entry: DeployHQ refused the {action} requested by {mention(user_id)}: "
                f"“{_outside(reason, 500)}”"
            )
        case RetryFailed(user_id, problem, action):
            return (
                f":warning: The {action} requested by {mention(user_id)} did not go through: "
                f"{_outside(problem, 600)} You can press {action.capitalize()} again."
            )
    raise AssertionError(state)  # pragma: no cover - every state is matched above


def _open_button(page_url: str) -> Block:
    return {
        "type": "button",
        "action_id": OPEN_ACTION,
        "text": _plain("Open in DeployHQ", 75),
        "url": page_url[:3000],
    }


def _progress_line(deployment: Deployment, user_id: str | None, at: datetime | None) -> str:
    line = event_note(deployment)
    if user_id and at:
        line += f" Retried by {mention(user_id)} {_when(at)}"
        if deployment.status == "completed" and deployment.completed_at:
            taken = (deployment.completed_at - at).total_seconds()
            if taken >= 0:
                line += f"; done {duration_text(taken)} later"
        line += "."
    return line


def _retry_button(deployment: Deployment) -> Block:
    servers = ", ".join(deployment.servers[:_MAX_SERVERS_SHOWN]) or "its servers"
    branch = f" ({deployment.branch})" if deployment.branch else ""
    return {
        "type": "button",
        "action_id": RETRY_ACTION,
        "text": _plain("Retry", 75),
        "style": "primary",
        "value": RetryTarget.of(deployment).encode(),
        "confirm": {
            "title": _plain("Retry this deployment?", 100),
            "text": _plain(
                f"DeployHQ will run {deployment.project_name}{branch} again on {servers}.", 300
            ),
            "confirm": _plain("Retry", 30),
            "deny": _plain("Cancel", 30),
        },
    }


def _rollback_button(deployment: Deployment, good: Deployment) -> Block:
    servers = ", ".join(good.servers[:_MAX_SERVERS_SHOWN]) or "its servers"
    ref = good.end_revision.short_ref if good.end_revision else good.short_id
    when = good.completed_at or good.started_at
    deployed = f", deployed {when.astimezone(UTC).strftime('%Y-%m-%d %H:%M UTC')}" if when else ""
    target = RollbackTarget(
        deployment.project_permalink, deployment.identifier, deployment.run_key, good.identifier
    )
    return {
        "type": "button",
        "action_id": ROLLBACK_ACTION,
        "text": _plain("Roll back", 75),
        "style": "danger",
        "value": target.encode(),
        "confirm": {
            "title": _plain("Roll back?", 100),
            "text": _plain(
                f"DeployHQ will put {servers} back on {ref}{deployed}, as a new deployment.", 300
            ),
            "confirm": _plain("Roll back", 30),
            "deny": _plain("Cancel", 30),
            "style": "danger",
        },
    }


def _fallback(deployment: Deployment, headline: str, state: CardState) -> str:
    text = f"{headline}: {_outside(deployment.project_name, 200)}"
    if deployment.branch:
        text += f" ({_outside(deployment.branch, 200)})"
    if isinstance(state, Retried):
        text += f", retried by {mention(state.user_id)}: {_outside(deployment.status, 50)}"
    return text


def _fingerprint(deployment: Deployment, state: CardState) -> str:
    """Changes whenever what a block shows changes, so Slack redraws updated blocks."""
    seed = f"{deployment.run_key}|{deployment.status}|{state!r}"
    return hashlib.sha1(seed.encode(), usedforsecurity=False).hexdigest()[:10]


# --- the card's thread: one short reply per thing that happened ------------------------------


def requested(user_id: str, action: str) -> str:
    what = "roll this deployment back" if action == "rollback" else "retry this deployment"
    return f":hourglass_flowing_sand: {mention(user_id)} asked DeployHQ to {what}."


def event_note(deployment: Deployment) -> str:
    """What a later notification says happened to the deployment."""
    status = deployment.status
    if status == "failed":
        when = f" {_when(deployment.completed_at)}" if deployment.completed_at else ""
        return f":x: Failed again{when}."
    if status == "running":
        since = f" since {_when(deployment.started_at)}" if deployment.started_at else ""
        return f":arrow_forward: Running{since}."
    if status == "pending":
        return ":hourglass_flowing_sand: Queued in DeployHQ."
    if status == "completed":
        when = f" {_when(deployment.completed_at)}" if deployment.completed_at else ""
        took = (
            f" in {duration_text(deployment.duration)}" if deployment.duration is not None else ""
        )
        return f":white_check_mark: Completed{when}{took}."
    if status == "cancelled":
        return ":no_entry_sign: Cancelled."
    return f":grey_question: DeployHQ status: *{_outside(status, 50)}*."


def failure_log(step: Step, lines: list[str], *, max_lines: int = 12) -> str:
    """Why it failed: the failing step and the end of its log, inside Block Kit's limits."""
    where = f" on {_outside(step.server, 100)}" if step.server else ""
    lead = f":mag: *Why it failed:* the step _{_outside(step.description, 200)}_{where} failed."
    tail = [_clip(line, 200) for line in lines[-max_lines:]]
    text = "\n".join(tail)
    if len(text) > 2400:
        text = "…" + text[-2399:]
    # Backticks would end the code block early; a look-alike keeps the log readable.
    body = escape(text).replace("`", "ˋ")
    return f"{lead}\n```{body}```" if body else f"{lead}\nIts log is empty."


# --- answers to /deployhq ----------------------------------------------------------------------


def usage(problem: str = "") -> Message:
    """The command's usage; ``problem`` (plain text, may quote the user) says what was wrong."""
    lead = f":grey_question: Sorry, {_outside(problem, 300)}\n\n" if problem else ""
    return notice(lead + USAGE)


def deployment_summary(deployment: Deployment, *, page_url: str) -> Message:
    """One deployment, for the person who asked for its status."""
    status = _outside(deployment.status, 50)
    facts = _facts(deployment)
    facts.insert(
        1, ("Status", f"{_STATUS_EMOJI.get(deployment.status, ':grey_question:')} {status}")
    )
    for label, moment in (("Queued", deployment.queued_at), ("Started", deployment.started_at)):
        if moment and label not in dict(facts):
            facts.append((label, _when(moment)))
    blocks: list[Block] = [
        {
            "type": "section",
            "text": _mrkdwn(
                f"*{_outside(deployment.project_name, 200)}* · deployment "
                f"`{_outside(deployment.short_id, 8)}` is *{status}*",
                3000,
            ),
        },
        {"type": "section", "fields": [_mrkdwn(f"*{n}*\n{v}", 2000) for n, v in facts[:10]]},
        {"type": "actions", "elements": [_open_button(page_url)]},
    ]
    return {
        "text": f"{_outside(deployment.project_name, 200)} {deployment.short_id}: {status}",
        "blocks": blocks,
    }


def failed_list(project: str, deployments: list[Deployment], page_urls: list[str]) -> Message:
    """Recent failures of a project, each with its own Retry."""
    if not deployments:
        return notice(f"No failed deployments found recently in *{_outside(project, 200)}*.")
    name = _outside(deployments[0].project_name, 200)
    blocks: list[Block] = [
        {"type": "section", "text": _mrkdwn(f"*Last failed deployments of {name}*", 3000)}
    ]
    for deployment, url in zip(deployments, page_urls, strict=True):
        parts = [f"<{url}|`{_outside(deployment.short_id, 8)}`>"]
        if deployment.branch:
            parts.append(f"`{_outside(deployment.branch, 100)}`")
        if deployment.end_revision and deployment.end_revision.headline:
            parts.append(_outside(deployment.end_revision.headline, 150))
        if deployment.deployer:
            parts.append(f"by {_outside(deployment.deployer, 100)}")
        moment = deployment.completed_at or deployment.started_at
        if moment:
            parts.append(_when(moment))
        blocks.append(
            {
                "type": "section",
                "text": _mrkdwn(" · ".join(parts), 3000),
                "accessory": _retry_button(deployment),
            }
        )
    return {"text": f"Last failed deployments of {name}", "blocks": blocks}


def command_outcome(user_id: str, deployment: Deployment, outcome: str, reason: str = "") -> str:
    """What everyone in the channel sees after ``/deployhq retry``."""
    what = f"{_outside(deployment.project_name, 200)} `{_outside(deployment.short_id, 8)}`"
    who = mention(user_id)
    if outcome == "retried":
        status = _outside(deployment.status, 50)
        return f":arrows_counterclockwise: {who} retried {what}: *{status}*"
    return f":no_entry: {who} asked to retry {what}; DeployHQ refused: “{_outside(reason, 500)}”"


# --- private answers to whoever clicked or typed ---------------------------------------------


def retry_note(state: CardState | None, deployment: Deployment | None) -> str:
    """The outcome of a retry, privately, for someone who cannot see it on a card."""
    match state:
        case Retried():
            status = _outside(deployment.status, 50) if deployment else "pending"
            return f":white_check_mark: Retried. DeployHQ status: *{status}*"
        case RetryRefused(_, reason, action):
            return f":no_entry: DeployHQ refused the {action}: “{_outside(reason, 500)}”"
        case RetryFailed(_, problem, action):
            return f":warning: The {action} did not go through: {_outside(problem, 600)}"
        case InDoubt(_, _, action):
            return in_doubt(action)
        case Unknown(_, _, action):
            return (
                f":grey_question: DeployHQ never answered the {action}, and its record cannot "
                "tell whether it happened. Nothing more will be sent; check DeployHQ."
            )
    return ""


def in_doubt(action: str = "retry") -> str:
    return (
        f":hourglass_flowing_sand: DeployHQ did not answer in time, so the {action} may have "
        "been queued. The bot is checking DeployHQ and will show the outcome on the card; "
        "nothing more will be sent for this failure until it knows."
    )


def never_queued(action: str = "retry") -> str:
    done = "retried" if action == "retry" else "rolled back"
    return f"DeployHQ's record shows the {action} was never queued, so nothing was {done}."


def rollback_target_moved(good: Deployment | None) -> str:
    """The Roll back button named a deployment DeployHQ no longer gives as the last good one."""
    now = (
        f" DeployHQ's last good deployment there is now `{_outside(good.short_id, 8)}`."
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
        f"archived deployment cannot be {'retried' if action == 'retry' else 'rolled back'}."
    )


def not_retried(record: Deployment, action: str = "retry") -> str:
    """Why nothing was sent: DeployHQ's own record shows the failure is no longer current."""
    status = _outside(record.status, 50)
    nothing = f"Nothing was {'retried' if action == 'retry' else 'rolled back'}"
    if record.status == "failed":
        when = f" {_when(record.completed_at)}" if record.completed_at else ""
        return (
            f":information_source: {nothing}: this deployment has failed again "
            f"since{when}. The card now shows that failure, with its own Retry."
        )
    since = record.completed_at or record.started_at or record.queued_at
    return (
        f":information_source: {nothing}: DeployHQ shows this deployment as "
        f"*{status}*{f' (since {_when(since)})' if since else ''}, so that failure is no "
        f"longer there to {'retry' if action == 'retry' else 'roll back'}."
    )


def nothing_to_roll_back_to(deployment: Deployment) -> str:
    return (
        f":information_source: Nothing was rolled back: no completed deployment of "
        f"*{_outside(deployment.project_name, 200)}* on the same servers was found in its recent "
        "history."
    )


def overtaken(newer: Deployment, action: str = "retry") -> str:
    moment = newer.completed_at or newer.started_at or newer.queued_at
    when = f" {_when(moment)}" if moment else ""
    done = "retried" if action == "retry" else "rolled back"
    return (
        f":no_entry: Nothing was {done}: deployment `{_outside(newer.short_id, 8)}` "
        f"({_outside(newer.status, 50)}{when}) has run on these servers since this failure, and "
        f"a {action} would act on what is no longer the latest word there. Deploy afresh from "
        "DeployHQ instead."
    )


def rollback_note(state: CardState | None, deployment: Deployment | None) -> str:
    """The outcome of a rollback, for the thread or a person who cannot see the card."""
    match state:
        case RolledBack(user_id, _, ref, status, deployment_id):
            return (
                f":rewind: {mention(user_id)} rolled back to `{_outside(ref[:7], 7)}`: DeployHQ "
                f"queued deployment `{_outside(deployment_id[:8], 8)}`, *{_outside(status, 50)}*."
            )
    return retry_note(state, deployment)


def lock_lapsed(action: str = "retry") -> str:
    return (
        f"The bot's hold on this {action} lapsed before it could ask DeployHQ (the calls "
        "before it took longer than the hold lasts), so it asked nothing."
    )


def project_not_served(project: str) -> str:
    return (
        f":no_entry_sign: This bot does not act on the project *{_outside(project, 100)}* "
        "(it is not in DEPLOYHQ_PROJECTS; give its permalink), so nothing was done."
    )


def not_allowed() -> str:
    return (
        ":no_entry_sign: You are not among the people allowed to retry deployments (or look "
        "them up with /deployhq), so nothing was done. An admin can add you to "
        "DEPLOYHQ_RETRY_ALLOWED_USERS or to an allowed user group."
    )


def permission_unknown() -> str:
    return (
        ":warning: Nothing was retried: the bot could not check whether you may retry "
        "(Slack did not list the allowed user groups). Try again in a minute."
    )


def already_acted(
    user_id: str, at: datetime, action: str, *, done: bool, in_doubt: bool = False
) -> str:
    """What a later clicker is told, privately, about the retry or rollback under way."""
    if action == "rollback" and in_doubt:
        return (
            f"{mention(user_id)} asked DeployHQ to roll this deployment back {_when(at)} and "
            "its answer never came; nothing more is sent until DeployHQ's record shows what "
            "happened. The card will show it."
        )
    if action == "rollback":
        verb = "rolled this deployment back" if done else "started rolling this deployment back"
        return f"{mention(user_id)} already {verb} {_when(at)}; nothing more was done."
    return already_retried(user_id, at, done=done, in_doubt=in_doubt)


def already_retried(user_id: str, at: datetime, *, done: bool, in_doubt: bool = False) -> str:
    if in_doubt:
        return (
            f"{mention(user_id)} asked DeployHQ to retry this deployment {_when(at)} and its "
            "answer never came; DeployHQ still shows no outcome, so nothing more is sent until "
            "it does. The card will show what happened."
        )
    verb = "retried this deployment" if done else "started retrying this deployment"
    return f"{mention(user_id)} already {verb} {_when(at)}; it is retried only once."


def store_unavailable() -> str:
    return (
        ":warning: Nothing was retried: the bot cannot reach its Redis, which it needs to make "
        "sure a deployment is retried only once. Try again in a minute."
    )


def notice(mrkdwn: str) -> Message:
    """A short private answer; ``mrkdwn`` is ours, with any outside text in it escaped."""
    return {"text": mrkdwn, "blocks": [{"type": "section", "text": _mrkdwn(mrkdwn, 3000)}]}


def describe_error(error: DeployHQError) -> str:
    """Plain text for people about a DeployHQ call that failed (never with credentials).

    It may quote DeployHQ, so escape it before it goes into mrkdwn.
    """
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
    if error.status == 404:
        return "DeployHQ says that project or deployment was not found."
    if error.status == 429 or error.kind == "busy":
        return f"DeployHQ is limiting requests; wait{wait} before trying again."
    if error.status == 503 and error.retry_after:
        return f"DeployHQ is busy ({error.message}); wait{wait} before trying again."
    if error.kind in ("timeout", "dropped"):
        return "DeployHQ did not answer in time."
    if error.kind == "connect":
        return "The bot could not reach DeployHQ; nothing was retried."
    if error.status is not None and error.status >= 500:
        return f"DeployHQ had an error (HTTP {error.status}): {error.message}. Nothing was retried."
    return f"DeployHQ answered: {error.message}"


# --- text helpers ----------------------------------------------------------------------------


def escape(text: str) -> str:
    """Slack's three control characters, so outside text can never become markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mention(user_id: str) -> str:
    return f"<@{user_id}>" if _USER_ID.fullmatch(user_id) else escape(user_id)


def duration_text(seconds: float) -> str:
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def _when(moment: datetime) -> str:
    """A time each reader sees in their own time zone, with a UTC fallback."""
    fallback = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} at {{time}}|{fallback}>"


def _outside(text: str, limit: int) -> str:
    """Text from outside, shortened then escaped (shortening after could split an entity)."""
    return escape(_clip(text, limit))


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _plain(text: str, limit: int) -> Block:
    return {"type": "plain_text", "text": _clip(text, limit) or " ", "emoji": True}


def _mrkdwn(text: str, limit: int) -> Block:
    return {"type": "mrkdwn", "text": _clip(text, limit), "verbatim": True}
