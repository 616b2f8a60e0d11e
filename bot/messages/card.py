"""The card: the one message that tracks a deployment, drawn from what its record holds.

What failed, what was done about it, and the buttons: Retry and, once something to go back to
is known, Roll back (each with a confirm dialog naming what DeployHQ will do), and a link to
the deployment in DeployHQ.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from bot.deployhq.commits import Summary
from bot.deployhq.deployment import Deployment, Revision
from bot.messages import approvals, auto_deploys, changes
from bot.messages.approvals import approved_by
from bot.messages.notes import ENDED_BY_ITSELF, event_note
from bot.messages.text import (
    Block,
    Message,
    action_button,
    clip,
    duration_text,
    mention,
    mrkdwn_text,
    outside,
    plain_text,
    when,
)
from bot.words import states as s
from bot.words.actions import ABORT, DEPLOY, RETRY, ROLLBACK
from bot.words.buttons import (
    OPEN_ACTION,
    PREVIEW_DEPLOY_ACTION,
    PREVIEW_ROLLBACK_ACTION,
    AbortTarget,
    ActionTarget,
    DeployTarget,
    RollbackTarget,
)
from bot.words.states import CardState

MAX_SERVERS_SHOWN = 5
UNDER_WAY = ("pending", "running")  # a deployment in one of these can be aborted

_HEADLINES = {
    "failed": (":x:", "Deployment failed"),
    "running": (":arrow_forward:", "Deploying"),
    "pending": (":hourglass_flowing_sand:", "Deployment queued"),
    "completed": (":white_check_mark:", "Deployment completed"),
    "cancelled": (":no_entry_sign:", "Deployment aborted"),  # DeployHQ's word for an abort
}


def deployment_card(
    deployment: Deployment,
    state: CardState,
    *,
    page_url: str,
    confirmed: bool = True,
    rollback_to: Deployment | None = None,
    latest: Revision | None = None,
    running: Deployment | None = None,
    aborted: CardState | None = None,
    undoes: Summary | None = None,
    adds: Summary | None = None,
    auto: s.AutoDeploy | None = None,
) -> Message:
    """The message that tracks one deployment: what failed, what was done, and Retry.

    ``confirmed`` is False while the deployment is known only from a notification: the card
    then says so and offers no Retry until DeployHQ's API has confirmed it. ``latest``: the
    branch's newest commit, offered as Deploy latest beside Retry; ``running``: the deployment
    under way the card follows, offered as Abort; ``aborted``: how an abort of it went;
    ``undoes`` and ``adds``: the commits Roll back undoes and Deploy latest adds, for their
    confirms; ``auto``: its server or group's automatic deployments, with Pause auto-deploy or
    Resume auto-deploy.
    """
    stopped = _stopped(deployment, running, aborted)
    headline = _HEADLINES["cancelled"] if stopped else _headline(deployment, state)
    auto_line = auto_deploys.line(auto) if auto else ""
    tag = _fingerprint(deployment, state, auto_line)
    blocks = _about(deployment, headline, tag)
    line = _state_line(deployment, aborted if stopped and aborted else state)
    if not confirmed:
        line += " · :hourglass: Not yet confirmed with DeployHQ; Retry appears once it is."
    elements = [mrkdwn_text(line, 3000)]
    if aborted is not None and not stopped:
        elements.append(mrkdwn_text(_state_line(running or deployment, aborted), 3000))
    block_id = f"state.{tag}{'' if confirmed else '.u'}"
    blocks.append({"type": "context", "block_id": block_id, "elements": elements})
    buttons = _buttons(deployment, state, confirmed, rollback_to, latest, undoes, adds)
    abortable = aborted is None or isinstance(aborted, s.NotDone)
    if running is not None and running.status in UNDER_WAY and abortable:
        buttons.append(_abort_button(deployment.identifier, running))
    if auto is not None:
        line_block = [mrkdwn_text(auto_line, 3000)]
        blocks.append({"type": "context", "block_id": f"auto.{tag}", "elements": line_block})
        buttons += auto_deploys.buttons(auto, deployment.identifier)
    buttons.append(open_button(page_url))
    blocks.append({"type": "actions", "block_id": f"actions.{tag}", "elements": buttons})
    return {"text": _fallback(deployment, headline[1], state), "blocks": blocks}


def _stopped(deployment: Deployment, running: Deployment | None, aborted: CardState | None) -> bool:
    """The run the bot aborted reads as an abort, whether DeployHQ says failed or cancelled."""
    return (
        isinstance(aborted, s.Aborted)
        and aborted.status not in ENDED_BY_ITSELF
        and deployment.status in ("failed", "cancelled")
        and (running is None or running.identifier == deployment.identifier)
    )


def _about(deployment: Deployment, headline: tuple[str, str], tag: str) -> list[Block]:
    """The card's header, its facts, and the commit's first line."""
    blocks: list[Block] = [
        {
            "type": "header",
            "block_id": f"head.{tag}",
            "text": plain_text(f"{headline[0]} {headline[1]}: {deployment.project_name}", 150),
        },
        {
            "type": "section",
            "block_id": f"facts.{tag}",
            "fields": [
                mrkdwn_text(f"*{name}*\n{value}", 2000) for name, value in facts(deployment)
            ],
        },
    ]
    if deployment.end_revision and deployment.end_revision.headline:
        blocks.append(
            {
                "type": "section",
                "block_id": f"commit.{tag}",
                "text": mrkdwn_text(
                    f"*Commit*\n>{outside(deployment.end_revision.headline, 500)}", 3000
                ),
            }
        )
    return blocks


def _buttons(
    deployment: Deployment,
    state: CardState,
    confirmed: bool,
    rollback_to: Deployment | None,
    latest: Revision | None,
    undoes: Summary | None = None,
    adds: Summary | None = None,
) -> list[Block]:
    """What a failure offers: Retry, Roll back, Deploy latest (each of the last two with its
    Preview); none until DeployHQ's record confirms it, while an action is under way, or for an
    archived deployment (DeployHQ refuses both retry and rollback of one)."""
    if isinstance(state, s.Awaiting):  # the action's buttons give way to Approve and Deny
        return approvals.buttons(state.request)
    buttons: list[Block] = []
    open_to_act = isinstance(state, s.OPEN_STATES)
    if confirmed and open_to_act and deployment.status == "failed" and not deployment.archived:
        buttons.append(retry_button(deployment))
        previews = []
        if rollback_to is not None:
            rollback = _rollback_button(deployment, rollback_to, undoes)
            buttons.append(rollback)
            previews.append(_preview_button(PREVIEW_ROLLBACK_ACTION, "roll back", rollback))
        if latest is not None and deployment.parent and not _runs(deployment, latest.ref):
            deploy = _deploy_latest_button(deployment, latest, adds)
            buttons.append(deploy)
            previews.append(_preview_button(PREVIEW_DEPLOY_ACTION, "deploy latest", deploy))
        buttons += previews
    return buttons


def _preview_button(action_id: str, what: str, of: Block) -> Block:
    """Preview: what the button beside it would change, asked of DeployHQ; it acts on
    nothing, so it needs no confirm."""
    return {
        "type": "button",
        "action_id": action_id,
        "text": plain_text(f"Preview {what}", 75),
        "value": of["value"],
    }


def facts(deployment: Deployment) -> list[tuple[str, str]]:
    """The deployment's facts, as labelled fields (the card's and a status reply's)."""
    found = [("Project", outside(deployment.project_name, 200))]
    if deployment.branch:
        found.append(("Branch", f"`{outside(deployment.branch, 200)}`"))
    start, end = deployment.start_revision, deployment.end_revision
    if end:
        revisions = f"`{outside(end.short_ref, 7)}`"
        if start and start.ref != end.ref:
            revisions = f"`{outside(start.short_ref, 7)}` → {revisions}"
        found.append(("Revisions", revisions))
    if deployment.servers:
        shown = ", ".join(outside(name, 100) for name in deployment.servers[:MAX_SERVERS_SHOWN])
        hidden = len(deployment.servers) - MAX_SERVERS_SHOWN
        found.append(("Servers", shown + (f" and {hidden} more" if hidden > 0 else "")))
    found.append(("Deployed by", outside(deployment.deployer, 200) if deployment.deployer else "—"))
    finished = deployment.completed_at or deployment.started_at
    if deployment.status in ("failed", "completed") and finished:
        moment = when(finished)
        if deployment.duration is not None:
            moment += f" after {duration_text(deployment.duration)}"
        found.append((deployment.status.capitalize(), moment))
    elif deployment.queued_at:
        found.append(("Queued", when(deployment.queued_at)))
    return found


def open_button(page_url: str) -> Block:
    return {
        "type": "button",
        "action_id": OPEN_ACTION,
        "text": plain_text("Open in DeployHQ", 75),
        "url": page_url[:3000],
    }


def retry_button(deployment: Deployment) -> Block:
    servers = ", ".join(deployment.servers[:MAX_SERVERS_SHOWN]) or "its servers"
    branch = f" ({deployment.branch})" if deployment.branch else ""
    return {
        **action_button(RETRY),
        "style": "primary",
        "value": ActionTarget.of(deployment).encode(),
        "confirm": {
            "title": plain_text("Retry this deployment?", 100),
            "text": plain_text(
                f"DeployHQ will run {deployment.project_name}{branch} again on {servers}.", 300
            ),
            "confirm": plain_text("Retry", 30),
            "deny": plain_text("Cancel", 30),
        },
    }


def _rollback_button(deployment: Deployment, good: Deployment, undoes: Summary | None) -> Block:
    servers = ", ".join(good.servers[:MAX_SERVERS_SHOWN]) or "its servers"
    ref = good.end_revision.short_ref if good.end_revision else good.short_id
    done = good.completed_at or good.started_at
    deployed = f", deployed {done.astimezone(UTC).strftime('%Y-%m-%d %H:%M UTC')}" if done else ""
    target = RollbackTarget(
        deployment.project_permalink, deployment.identifier, deployment.run_key, good.identifier
    )
    return {
        **action_button(ROLLBACK),
        "style": "danger",
        "value": target.encode(),
        "confirm": {
            "title": plain_text("Roll back?", 100),
            "text": plain_text(
                f"DeployHQ will put {servers} back on {ref}{deployed}, as a new deployment."
                + changes.undoes(undoes),
                300,
            ),
            "confirm": plain_text("Roll back", 30),
            "deny": plain_text("Cancel", 30),
            "style": "danger",
        },
    }


def _deploy_latest_button(deployment: Deployment, latest: Revision, adds: Summary | None) -> Block:
    servers = ", ".join(deployment.servers[:MAX_SERVERS_SHOWN]) or "its servers"
    said = f": “{latest.headline}”" if latest.headline else ""
    said += f" by {latest.author}" if latest.author else ""
    target = DeployTarget(
        deployment.project_permalink, deployment.identifier, deployment.run_key, latest.ref
    )
    return {
        **action_button(DEPLOY),
        "value": target.encode(),
        "confirm": {
            "title": plain_text("Deploy the latest commit?", 100),
            "text": plain_text(
                f"DeployHQ will deploy {latest.short_ref} of {deployment.branch} to {servers}, "
                f"as a new deployment{said}." + changes.adds(adds),
                300,
            ),
            "confirm": plain_text("Deploy", 30),
            "deny": plain_text("Cancel", 30),
        },
    }


def _abort_button(card: str, running: Deployment) -> Block:
    servers = ", ".join(running.servers[:MAX_SERVERS_SHOWN]) or "its servers"
    branch = f" ({running.branch})" if running.branch else ""
    return {
        **action_button(ABORT),
        "style": "danger",
        "value": AbortTarget.of_run(card, running).encode(),
        "confirm": {
            "title": plain_text("Abort this deployment?", 100),
            "text": plain_text(
                f"DeployHQ will stop deployment {running.short_id} of {running.project_name}"
                f"{branch} on {servers} now, wherever it has got to.",
                300,
            ),
            "confirm": plain_text("Abort", 30),
            "deny": plain_text("Cancel", 30),
            "style": "danger",
        },
    }


def _runs(deployment: Deployment, ref: str) -> bool:
    """Whether ``ref`` is the revision the failed run deployed (nothing newer to deploy)."""
    return deployment.end_revision is not None and deployment.end_revision.ref == ref


def _headline(deployment: Deployment, state: CardState) -> tuple[str, str]:
    match state:
        case s.Awaiting():
            return ":closed_lock_with_key:", "Waiting for approval"
        case s.Requested(action="deploy") | s.DeployedLatest():
            return ":rocket:", "Deploying the latest commit"
        case s.Requested(action="rollback"):
            return ":hourglass_flowing_sand:", "Rolling back"
        case s.Requested() | s.InDoubt():
            return ":hourglass_flowing_sand:", "Retrying deployment"
        case s.RolledBack():
            return ":rewind:", "Rolled back"
        case s.Retried():
            return ":arrows_counterclockwise:", "Deployment retried"
        case s.Failed(again=True):
            return ":x:", "Deployment failed again"
    status = clip(deployment.status, 50)
    return _HEADLINES.get(deployment.status, (":grey_question:", f"Deployment {status}"))


def _state_line(deployment: Deployment, state: CardState) -> str:
    ref = f"Deployment `{outside(deployment.short_id, 8)}`"
    match state:
        case s.Failed(again=True, retried_by=user_id):
            after = f" after the retry by {mention(user_id)}" if user_id else ""
            return f":x: Failed again{after}. Retry is available."
        case s.Failed():
            return f"{ref} · not retried yet"
        case s.Progress(user_id, at):
            return _progress_line(deployment, user_id, at)
        case s.Requested(user_id, at, action, approver):
            return (
                f":hourglass_flowing_sand: {_word(action)} requested by {mention(user_id)} "
                f"{when(at)}{approved_by(approver)}"
            )
        case s.Awaiting():
            return approvals.awaiting_line(state)
        case s.Denied():
            return approvals.denied_line(state) + " The failure's buttons are back."
        case s.DeployedLatest(user_id, at, ref, status, deployment_id, approver):
            return (
                f":rocket: Latest commit `{outside(ref[:7], 7)}` deployed by {mention(user_id)} "
                f"{when(at)}{approved_by(approver)} · new deployment "
                f"`{outside(deployment_id[:8], 8)}`: "
                f"*{outside(status, 50)}*"
            )
        case s.Aborted(user_id, at, status) if status in ENDED_BY_ITSELF:
            return (
                f":information_source: The deployment finished (*{outside(status, 50)}*) before "
                f"the abort {mention(user_id)} asked for {when(at)} took effect"
            )
        case s.Aborted(user_id, at, status):
            return (
                f":no_entry_sign: Aborted by {mention(user_id)} {when(at)} · DeployHQ status: "
                f"*{outside(status, 50)}*"
            )
        case s.RolledBack(user_id, at, ref, status, deployment_id, approver):
            return (
                f":rewind: Rolled back by {mention(user_id)}{approved_by(approver)} {when(at)} "
                "to "
                f"`{outside(ref[:7], 7)}` · new deployment `{outside(deployment_id[:8], 8)}`: "
                f"*{outside(status, 50)}*"
            )
        case s.Overtaken(newer_id, newer_status, newer_at):
            since = f", {when(newer_at)}" if newer_at else ""
            return (
                f":no_entry: Retry is no longer safe: deployment `{outside(newer_id[:8], 8)}` "
                f"({outside(newer_status, 50)}{since}) has run on these servers since, so a "
                "retry would put older code back. Deploy afresh from DeployHQ."
            )
    return _answer_line(deployment, state)


def _answer_line(deployment: Deployment, state: CardState) -> str:
    """What came of an action DeployHQ was asked for: in doubt, unknown, done or refused."""
    match state:
        case s.InDoubt(user_id, at, action, said) if said:
            return (
                f":hourglass_flowing_sand: {outside(said, 700)} It may still have queued the "
                f"{action} requested by {mention(user_id)} {when(at)}: the bot is checking "
                "DeployHQ's record and will show what it finds here."
            )
        case s.InDoubt(user_id, at, action):
            return (
                f":hourglass_flowing_sand: DeployHQ did not answer the {action} requested by "
                f"{mention(user_id)} {when(at)}. It may have queued it: the bot is checking "
                "DeployHQ and will show what it finds here."
            )
        case s.Unknown(user_id, at, action):
            return (
                f":grey_question: DeployHQ never answered the {action} requested by "
                f"{mention(user_id)} {when(at)}, and its record cannot tell whether it "
                "happened: another deployment has run on these servers since. Nothing more "
                "will be sent; check the deployments in DeployHQ."
            )
        case s.Retried(user_id, at, approver):
            return (
                f":white_check_mark: Retried by {mention(user_id)}{approved_by(approver)} "
                f"{when(at)} · "
                f"DeployHQ status: *{outside(deployment.status, 50)}*"
            )
        case s.Refused(user_id, reason, action):
            return (
                f":no_entry: DeployHQ refused the {action} requested by {mention(user_id)}: "
                f"“{outside(reason, 500)}”"
            )
        case s.NotDone(user_id, problem, action):
            return (
                f":warning: The {action} requested by {mention(user_id)} did not go through: "
                f"{outside(problem, 600)} You can press {_word(action)} again."
            )
    raise AssertionError(state)  # pragma: no cover - every state is matched above


def _word(action: str) -> str:
    return "Deploy latest" if action == DEPLOY else action.capitalize()


def _progress_line(deployment: Deployment, user_id: str | None, at: datetime | None) -> str:
    line = event_note(deployment)
    if user_id and at:
        line += f" Retried by {mention(user_id)} {when(at)}"
        if deployment.status == "completed" and deployment.completed_at:
            taken = (deployment.completed_at - at).total_seconds()
            if taken >= 0:
                line += f"; done {duration_text(taken)} later"
        line += "."
    return line


def _fallback(deployment: Deployment, headline: str, state: CardState) -> str:
    text = f"{headline}: {outside(deployment.project_name, 200)}"
    if deployment.branch:
        text += f" ({outside(deployment.branch, 200)})"
    if isinstance(state, s.Retried):
        text += f", retried by {mention(state.user_id)}: {outside(deployment.status, 50)}"
    return text


def _fingerprint(deployment: Deployment, state: CardState, auto: str = "") -> str:
    """Changes whenever what a block shows changes, so Slack redraws updated blocks."""
    seed = f"{deployment.run_key}|{deployment.status}|{s.fingerprint_seed(state)}"
    if auto:  # added later: cards without it keep their block ids
        seed += f"|{auto}"
    return hashlib.sha1(seed.encode(), usedforsecurity=False).hexdigest()[:10]
