"""What the App Home shows, gathered at bounded cost: per project (``DEPLOYHQ_PROJECTS``, or
those the bot has posted cards for) its open failures (with a link to each card, from
``chat.getPermalink``, kept a day), its paused automatic deployments (DeployHQ's list, kept
30 s, and who paused them), and DeployHQ's insights for the last 30 days (read at most once
per ``INSIGHTS_SECONDS`` per project across processes, however many people open Home); and
the bot's health. Then ``views.publish`` for the person who opened it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from slack_sdk import WebClient

from bot import metrics
from bot.cards.auto_deploys import AutoDeployments
from bot.cards.rules import Card
from bot.cards.store import WITHOUT_STORE, CardStore
from bot.deployhq.auto_deploys import ServerFigures
from bot.deployhq.client import DeployHQ, DeployHQError
from bot.deployhq.deployment import FAILED
from bot.messages import home as home_messages
from bot.messages.home import Health, OpenFailure, Paused, ProjectView
from bot.messages.replies import describe_error
from bot.slack.client import SLACK_ERRORS, slack_error
from bot.slack.socket_mode import SocketMode
from bot.store.kv import Missing
from bot.store.shared import Store
from bot.words.states import OPEN_STATES

log = logging.getLogger(__name__)

INSIGHTS_SECONDS = 300.0
# A DeployHQ that could not give them is asked again this soon, not at once by everyone.
INSIGHTS_ERROR_SECONDS = 30.0
PERMALINK_SECONDS = 86400.0
PROBE_SECONDS = 60.0
PERMALINK_WAIT = 5.0
PERIOD_DAYS = 30


class Gatekeeper(Protocol):
    """Who may look deployments up (the actions' access policy, given at wiring time)."""

    def check(self, user_id: str, tell: Callable[[str], None], project: str = "") -> bool: ...


class NoLink(Exception):
    """Slack answered chat.getPermalink without a link."""


class Home:
    def __init__(
        self,
        client: WebClient,
        store: Store,
        records: CardStore,
        deployhq: DeployHQ,
        lists: AutoDeployments,
        *,
        projects: frozenset[str],
        policy: Gatekeeper | None = None,
        socket_mode: SocketMode | None = None,
    ) -> None:
        self.client = client
        self.store = store
        self.records = records  # the cards' records
        self.deployhq = deployhq
        self.lists = lists
        self.projects = projects
        self.policy = policy  # who may look deployments up: the same people as /deployhq
        self.socket_mode = socket_mode

    def publish(self, user_id: str) -> bool:
        """Publish the Home tab of ``user_id``; False when Slack refused it."""
        self.store.ledger.heard("home", time.time())
        refused: list[str] = []
        if self.policy is None or self.policy.check(user_id, refused.append):
            projects, health = self.gather()
            view = home_messages.home_view(projects, health, datetime.now(UTC))
        else:  # nothing of DeployHQ is read for them
            view = home_messages.refused_view(refused[0] if refused else "")
        try:
            self.client.views_publish(user_id=user_id, view=view)
        except SLACK_ERRORS as exc:
            log.warning("could not publish the Home tab: %s", slack_error(exc))
            metrics.HOME_VIEWS.labels("failed").inc()
            return False
        metrics.HOME_VIEWS.labels("published").inc()
        return True

    def gather(self) -> tuple[list[ProjectView], Health]:
        seen = self.projects
        with WITHOUT_STORE.step("home") as store:
            seen = self.projects or frozenset(self.records.projects())
        store_problem = _problem(store)
        views = [self._project(p) for p in sorted(seen)]
        reached = [v for v in views if not v.problem]
        deployhq = "" if reached else views[0].problem if views else self._probe()
        return views, self._health(deployhq, store_problem)

    def _probe(self) -> str:
        """With no project to read: whether DeployHQ answers the bot's key (``GET /projects``),
        asked at most once per ``PROBE_SECONDS`` across processes. "" when it does, else what
        went wrong."""

        def read() -> str:
            try:
                self.deployhq.projects()
            except DeployHQError as error:
                return describe_error(error)
            return ""

        wait = self.deployhq.deadline + 1
        return self.store.answers.fetch(("deployhq-probe",), read, PROBE_SECONDS, wait)

    def _project(self, project: str) -> ProjectView:
        failures = self._failures(project)
        try:
            listed = self.lists.listed(project)
            figures = self._figures(project)
        except DeployHQError as error:
            return ProjectView(project, failures, problem=describe_error(error))
        paused = []
        for d in listed:
            if not d.auto_deploy:
                shown = self.lists.shown(project, d)
                paused.append(Paused(d, shown.by, shown.at))
        return ProjectView(project, failures, paused, figures)

    def _failures(self, project: str) -> list[OpenFailure]:
        none: list[Card] = []
        cards = WITHOUT_STORE.read("home", lambda: self.records.project_cards(project), none)
        found = []
        for card in cards:
            d = card.deployment
            if d.status != FAILED or not isinstance(card.state, OPEN_STATES) or not card.ts:
                continue
            when = d.completed_at or d.queued_at
            link = self._permalink(card.channel, card.ts)
            found.append(OpenFailure(project, d.project_name, d.branch, d.servers, when, link))
        return sorted(found, key=lambda f: f.failed_at or datetime.min.replace(tzinfo=UTC))[::-1]

    def _permalink(self, channel: str, ts: str) -> str:
        """The card's link, asked of Slack once per card a day across processes (a burst of
        Home opens waits for the first answer); "" when Slack gives none."""

        def read() -> str:
            answer = self.client.chat_getPermalink(channel=channel, message_ts=ts)
            link = str(answer.get("permalink") or "")
            if not link.startswith("https://"):
                raise NoLink(f"Slack answered {link[:40]!r}")
            return link

        try:
            return self.store.answers.fetch(
                ("permalink", channel, ts), read, PERMALINK_SECONDS, PERMALINK_WAIT
            )
        except (*SLACK_ERRORS, NoLink) as exc:
            log.info("no permalink for a card: %s", slack_error(exc))
            return ""

    def _figures(self, project: str) -> list[ServerFigures]:
        """DeployHQ's insights, one read per project per ``INSIGHTS_SECONDS`` across
        processes; a failure is kept briefly too, so a burst of Home opens asks once."""
        name = ("insights", project)

        def read() -> str:
            try:
                figures = self.deployhq.insights(project, PERIOD_DAYS)
            except DeployHQError as error:
                return json.dumps({"error": describe_error(error), "status": error.status})
            return json.dumps({"servers": [vars(f) for f in figures]})

        raw = self.store.answers.fetch(name, read, INSIGHTS_SECONDS, self.deployhq.deadline + 1)
        kept = json.loads(raw)
        if "error" in kept:
            self.store.answers.keep(name, raw, INSIGHTS_ERROR_SECONDS)
            raise DeployHQError(str(kept["error"]), status=kept.get("status"))
        return [ServerFigures(**f) for f in kept["servers"]]

    def _health(self, deployhq: str, store: str) -> Health:
        if not store:
            with WITHOUT_STORE.step("home") as missing:
                self.store.ping()
            store = _problem(missing)
        socket = ""
        if self.socket_mode is not None:
            state = self.socket_mode.status()
            socket = "connected" if state.connected else f"down for {state.down_for:.0f} s"
        heard = self.store.ledger.last_heard("notification")
        last = datetime.fromtimestamp(heard, UTC) if heard else None
        return Health(deployhq, store, self.store.backend, socket, last)


def _problem(store: Missing) -> str:
    """What the Home says of a store that did not answer ("" when it did)."""
    if not store.missing:
        return ""
    return str(store.error or "") or "the store did not answer"
