"""What the App Home shows, as pure values: gathered by ``overview``, drawn by
``messages.home``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from bot.deployhq.auto_deploys import Deployable, ServerFigures


@dataclass(frozen=True)
class OpenFailure:
    project: str
    name: str  # what failed, as the card's header says it
    branch: str
    servers: tuple[str, ...]
    failed_at: datetime | None
    link: str  # the card in Slack, "" when Slack gave none


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


@dataclass(frozen=True)
class Health:
    deployhq: str  # "" when DeployHQ answered with the bot's key, else what went wrong
    store: str  # "" when the store answered, else what went wrong
    backend: str
    socket_mode: str  # "" when not used; else its state
    last_notification: datetime | None
