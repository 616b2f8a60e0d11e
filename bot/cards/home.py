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
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import replace
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from slack_sdk import WebClient

from bot import metrics
from bot.cards.auto_deploys import AutoDeployments
from bot.cards.rules import Card
from bot.cards.store import WITHOUT_STORE, CardStore
from bot.deployhq.auto_deploys import ServerFigures
from bot.deployhq.client import DeployHQ, DeployHQError
from bot.deployhq.deployment import FAILED
from bot.messages import home as home_messages
from bot.messages.home import (
    Health,
    OpenFailure,
    Paused,
    ProjectView,
    shown_failures,
    shown_projects,
)
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
# The Home is published within this many seconds, whatever DeployHQ takes: a project not read
# by then is shown as not read yet, and the read goes on for the next open.
HOME_SECONDS = 2.5
READERS = 8

# What DeployHQ said of a project: its paused deployables and its figures, or a problem.
Read = tuple[list[Paused], list[ServerFigures]] | str
T = TypeVar("T")
U = TypeVar("U")


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
        # DeployHQ's reads and Slack's links for the Home, made at once; one that outlives the
        # Home's deadline goes on here, and its answer is kept for the next open.
        self._readers = ThreadPoolExecutor(READERS, thread_name_prefix="home-deployhq")
        self._linkers = ThreadPoolExecutor(READERS, thread_name_prefix="home-slack")

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
        """Every project's view: its DeployHQ reads made at once and waited for until the
        Home's deadline (what is not in by then is shown as not read yet, and read on for the
        next open), and links asked of Slack at once for the cards the Home has room for."""
        deadline = time.monotonic() + HOME_SECONDS
        seen = self.projects
        with WITHOUT_STORE.step("home") as store:
            seen = self.projects or frozenset(self.records.projects())
        store_problem = _problem(store)
        projects = sorted(seen)
        reads = {p: self._readers.submit(self._read, p) for p in projects}
        failures = {p: self._failures(p) for p in projects}
        links = self._links([ProjectView(p, failures[p]) for p in projects])
        views = [self._project(p, failures[p], reads[p], deadline) for p in projects]
        views = _linked(views, links, deadline)
        reached = [v for v in views if not v.problem]
        deployhq = "" if reached else views[0].problem if views else self._probe()
        return views, self._health(deployhq, store_problem)

    def _links(self, views: list[ProjectView]) -> dict[tuple[str, str], Future[str]]:
        """Each card the Home may have room for, its link asked of Slack now, all at once (the
        room as if no project had any of DeployHQ's lines: they can only leave less)."""
        shown = [f for v in views[: shown_projects(views)] for f in shown_failures(v)]
        ask = self._linkers.submit
        return {(f.channel, f.ts): ask(self._permalink, f.channel, f.ts) for f in shown}

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

    def _project(
        self, project: str, failures: list[OpenFailure], read: Future[Read], deadline: float
    ) -> ProjectView:
        got: Read | None = _within(read, deadline, None)
        if got is None:
            return ProjectView(project, failures, unread=True)
        if isinstance(got, str):
            return ProjectView(project, failures, problem=got)
        paused, figures = got
        return ProjectView(project, failures, paused, figures)

    def _read(self, project: str) -> Read:
        """What DeployHQ says of a project for its Home: its paused automatic deployments
        (and who paused them) and its 30-day figures; or what went wrong, in words."""
        try:
            listed = self.lists.listed(project)
            figures = self._figures(project)
        except DeployHQError as error:
            return describe_error(error)
        paused = []
        for d in listed:
            if not d.auto_deploy:
                shown = self.lists.shown(project, d)
                paused.append(Paused(d, shown.by, shown.at))
        return paused, figures

    def _failures(self, project: str) -> list[OpenFailure]:
        none: list[Card] = []
        cards = WITHOUT_STORE.read("home", lambda: self.records.project_cards(project), none)
        found = []
        for card in cards:
            d = card.deployment
            if d.status != FAILED or not isinstance(card.state, OPEN_STATES) or not card.ts:
                continue
            when = d.completed_at or d.queued_at
            failure = OpenFailure(project, d.project_name, d.branch, d.servers, when, "")
            found.append(replace(failure, channel=card.channel, ts=card.ts))
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


def _within(future: Future[T], deadline: float, missing: U) -> T | U:
    """``future``'s result if it comes before ``deadline``, else ``missing``."""
    try:
        return future.result(timeout=max(0.0, deadline - time.monotonic()))
    except FutureTimeout:
        return missing


def _linked(
    views: list[ProjectView], asked: dict[tuple[str, str], Future[str]], deadline: float
) -> list[ProjectView]:
    """``views`` with the links Slack gave by the deadline."""
    linked = []
    for view in views:
        failures = []
        for f in view.failures:
            link = asked.get((f.channel, f.ts))
            failures.append(replace(f, link=_within(link, deadline, "")) if link else f)
        linked.append(replace(view, failures=failures))
    return linked
