"""The App Home tab, drawn from what ``cards.home`` gathered (the values below): per project
its open failures (each with a link to its card and its age), its paused automatic
deployments and who paused them, and DeployHQ's figures for the last 30 days per server; then
the bot's health. Within Block Kit's 100 blocks for a Home view: past a section's share, "and
N more". Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from bot.deployhq.auto_deploys import Deployable, ServerFigures
from bot.messages.text import Block, ago, mention, mrkdwn_text, outside, plain_text, when

MAX_BLOCKS = 100  # Slack's limit for a Home view
MAX_FAILURES = 8  # per project
MAX_SERVER_FIELDS = 10  # a section's fields
HEALTH_BLOCKS = 3  # the divider, its title and its facts
HEAD_BLOCKS = 2  # the header and when it was read


@dataclass(frozen=True)
class OpenFailure:
    project: str
    name: str  # what failed, as the card's header says it
    branch: str
    servers: tuple[str, ...]
    failed_at: datetime | None
    link: str  # the card in Slack, "" when Slack gave none
    channel: str = ""  # where the card is, for its link
    ts: str = ""


@dataclass(frozen=True)
class Paused:
    deployable: Deployable
    by: str = ""
    at: datetime | None = None


@dataclass(frozen=True)
class ProjectView:
    project: str
    failures: list[OpenFailure] = field(default_factory=list)
    paused: list[Paused] = field(default_factory=list)
    figures: list[ServerFigures] = field(default_factory=list)
    problem: str = ""  # why DeployHQ's figures or list are missing
    unread: bool = False  # DeployHQ had not answered by the Home's deadline (read for next time)


@dataclass(frozen=True)
class Health:
    deployhq: str  # "" when DeployHQ answered with the bot's key, else what went wrong
    store: str  # "" when the store answered, else what went wrong
    backend: str
    socket_mode: str  # "" when not used; else its state
    last_notification: datetime | None


def home_view(projects: list[ProjectView], health: Health, now: datetime) -> dict[str, object]:
    blocks: list[Block] = [
        {"type": "header", "text": plain_text("DeployHQ deployments", 150)},
        _context(f"As DeployHQ and the bot show it {when(now)}. Reopen this tab to refresh."),
    ]
    if not projects:
        blocks.append(_section("No project yet: cards appear here once DeployHQ reports one."))
    shown = shown_projects(projects)
    for project in projects[:shown]:
        blocks += _project(project)
    if shown < len(projects):
        left = len(projects) - shown
        blocks.append(_context(f"…and {left} more project{'s' * (left != 1)} not shown."))
    blocks += _health(health)
    return {"type": "home", "blocks": blocks[:MAX_BLOCKS]}


def shown_projects(projects: list[ProjectView]) -> int:
    """How many of ``projects`` (in order) the Home has room for, within Slack's 100 blocks:
    only their failures are shown, so only theirs need a link."""
    room = MAX_BLOCKS - HEAD_BLOCKS - HEALTH_BLOCKS - 1  # one for "and N more projects"
    for n, project in enumerate(projects):
        room -= len(_project(project))
        if room < 0:
            return n
    return len(projects)


def shown_failures(view: ProjectView) -> list[OpenFailure]:
    """The failures of a project the Home draws (the newest first)."""
    return view.failures[:MAX_FAILURES]


def refused_view(why: str) -> dict[str, object]:
    """The Home of someone who may not look deployments up: why, and nothing else."""
    return {
        "type": "home",
        "blocks": [
            {"type": "header", "text": plain_text("DeployHQ deployments", 150)},
            _section(why or "You may not look deployments up here."),
        ],
    }


def _project(view: ProjectView) -> list[Block]:
    blocks: list[Block] = [
        {"type": "divider"},
        _section(f"*{outside(view.project, 100)}*"),
    ]
    if view.failures:
        blocks += [_failure(f) for f in view.failures[:MAX_FAILURES]]
        more = len(view.failures) - MAX_FAILURES
        if more > 0:
            blocks.append(_context(f"…and {more} more open failure{'s' * (more != 1)}."))
    else:
        blocks.append(_context(":white_check_mark: No open failures."))
    if view.problem:
        blocks.append(_context(f":warning: DeployHQ: {outside(view.problem, 500)}"))
        return blocks
    if view.unread:
        blocks.append(
            _context(
                ":hourglass: DeployHQ has not answered yet for this project (paused "
                "auto-deploys, 30-day figures); reopen this tab in a moment."
            )
        )
        return blocks
    if view.paused:
        blocks.append(_section(_paused(view.paused)))
    if view.figures:
        fields = [mrkdwn_text(_figures(f), 2000) for f in view.figures[:MAX_SERVER_FIELDS]]
        blocks.append({"type": "section", "fields": fields})
        more = len(view.figures) - MAX_SERVER_FIELDS
        if more > 0:
            blocks.append(_context(f"…and {more} more server{'s' * (more != 1)}."))
    return blocks


def _failure(failure: OpenFailure) -> Block:
    servers = ", ".join(outside(s, 60) for s in failure.servers[:3]) or "its servers"
    branch = f" (`{outside(failure.branch, 100)}`)" if failure.branch else ""
    age = f", {ago(failure.failed_at)}" if failure.failed_at else ""
    link = f" · <{failure.link}|Open the card>" if _safe_link(failure.link) else ""
    return _section(f":x: *{outside(failure.name, 150)}*{branch} failed on {servers}{age}{link}")


def _paused(paused: list[Paused]) -> str:
    named = []
    for p in paused[:10]:
        by = f" by {mention(p.by)} {ago(p.at)}" if p.by and p.at else " (in DeployHQ)"
        named.append(f"*{outside(p.deployable.name, 100)}*{by}")
    more = f" …and {len(paused) - 10} more" if len(paused) > 10 else ""
    return ":double_vertical_bar: Auto-deploy paused: " + "; ".join(named) + more


def _figures(f: ServerFigures) -> str:
    parts = [f"latest *{outside(f.latest_status, 30)}*" if f.latest_status else "no deploys"]
    if f.reliability is not None:
        share = f.reliability * 100 if f.reliability <= 1 else f.reliability
        parts.append(f"{share:.0f}% succeeded")
    if f.deploys_per_week is not None:
        parts.append(f"{f.deploys_per_week:.1f} deploys a week")
    return f"*{outside(f.name, 100)}* (30 days)\n" + " · ".join(parts)


def _health(health: Health) -> list[Block]:
    facts = [
        "DeployHQ: " + _fact(health.deployhq, "answers with the bot's key"),
        f"Store ({outside(health.backend, 20)}): " + _fact(health.store, "answers"),
    ]
    if health.socket_mode:
        ok = health.socket_mode == "connected"
        facts.append(f"Socket Mode: {':white_check_mark:' if ok else ':x:'} {health.socket_mode}")
    heard = health.last_notification
    facts.append(
        "Last notification from DeployHQ: " + (ago(heard) if heard else "none received yet")
    )
    return [
        {"type": "divider"},
        _section("*The bot*"),
        {"type": "section", "fields": [mrkdwn_text(f, 2000) for f in facts]},
    ]


def _fact(problem: str, fine: str) -> str:
    return f":x: {outside(problem, 300)}" if problem else f":white_check_mark: {fine}"


def _safe_link(link: str) -> bool:
    return link.startswith("https://") and not any(c in link for c in "<>| \n")


def _section(mrkdwn: str) -> Block:
    return {"type": "section", "text": mrkdwn_text(mrkdwn, 3000)}


def _context(mrkdwn: str) -> Block:
    return {"type": "context", "elements": [mrkdwn_text(mrkdwn, 3000)]}
