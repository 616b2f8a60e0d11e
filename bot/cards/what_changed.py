"""What changed: once a failure is explained, the commits since the last good deployment (or
since what the servers had) go to its thread, with DeployHQ's own overview, and the card's
confirms learn what Roll back undoes and Deploy latest adds.

A branch's recent commits are read once per ``cache_seconds`` across processes (a burst of
failures on one branch reads them once); DeployHQ's overview is asked for at most once per
failure, only when its record of the deployment carries none, and not for an hour after
DeployHQ said it gives none for the project (AI features off, or no cloned repository)."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace

from bot.cards import rules as card_rules
from bot.cards.lookups import Lookups
from bot.cards.rules import Card
from bot.cards.store import CardStore
from bot.deployhq import commits
from bot.deployhq.client import DeployHQ, DeployHQError, deployment_page_url
from bot.deployhq.commits import Range, Summary, between
from bot.deployhq.deployment import FAILED, Revision
from bot.messages import changes
from bot.store.shared import Answers

log = logging.getLogger(__name__)

CACHE_SECONDS = 60.0
# A kept list younger than this is not read again for a commit it lacks: DeployHQ just said so.
FRESH_SECONDS = 10.0
# An account whose AI features are off (DeployHQ's 400 or 422) is not asked again for this long.
AI_OFF_SECONDS = 3600.0


class RecentCommits:
    """A branch's recent commits, newest first, kept briefly for every process."""

    def __init__(
        self, deployhq: DeployHQ, answers: Answers, *, cache_seconds: float = CACHE_SECONDS
    ) -> None:
        self.deployhq = deployhq
        self.answers = answers
        self.lookups = Lookups(deployhq, answers)  # one read per branch; a refusal kept
        self.cache_seconds = cache_seconds

    def of(self, project: str, branch: str, *, fresh: bool = False) -> tuple[list[Revision], float]:
        """The commits, and how many seconds ago DeployHQ listed them; ``DeployHQError`` when it
        cannot. ``fresh``: not the kept list."""
        name = ("recent-commits", project, branch)
        if fresh:
            self.answers.forget(*name)

        def read() -> str:
            listed = self.deployhq.recent_commits(project, branch)
            return json.dumps({"at": time.time(), "commits": [commits.to_json(c) for c in listed]})

        kept = json.loads(
            self.lookups.read(name, read, self.cache_seconds, refusal=("recent-commits", project))
        )
        return [Revision(**c) for c in kept["commits"]], time.time() - float(kept["at"])

    def ranges(self, project: str, branch: str, *ends: tuple[str, str]) -> list[Range]:
        """Each ``(base, end)`` on ``branch``. A kept list that does not hold them all is read
        afresh once, unless DeployHQ listed it only moments ago (a burst asks once)."""
        listed, age = self.of(project, branch)
        found = [between(listed, base, end) for base, end in ends]
        if not all(r.known for r in found) and age > FRESH_SECONDS:
            listed, _ = self.of(project, branch, fresh=True)
            found = [between(listed, base, end) for base, end in ends]
        return found


class WhatChanged:
    def __init__(
        self, deployhq: DeployHQ | None, store: CardStore, recent: RecentCommits, web_url: str
    ) -> None:
        self.deployhq = deployhq
        self.store = store
        self.recent = recent
        self.web_url = web_url

    def claim(self, deployment_id: str) -> Card | None:
        """The failure to tell what changed for, claimed on its record so that it is looked up
        once; None when there is none (or it was, or it names no branch and revision)."""
        if self.deployhq is None:
            return None

        def claim(card: Card) -> Card | None:
            deployment = card.deployment
            if (
                not card.confirmed
                or deployment.status != FAILED
                or card.explained != deployment.run_key  # why it failed comes first
                or card.changes_told == deployment.run_key
                or not (deployment.branch and deployment.end_revision)
            ):
                return None
            return replace(card, changes_told=deployment.run_key)

        edited = self.store.edit(deployment_id, claim)
        return edited[0] if edited is not None else None

    def look_up(self, card: Card) -> bool:
        """Note what changed in the failure's thread, and what its Roll back undoes and its
        Deploy latest adds on the card; True when the card changed (to be shown again)."""
        deployment = card.deployment
        assert deployment.end_revision is not None
        project, branch, end = (
            deployment.project_permalink,
            deployment.branch,
            deployment.end_revision.ref,
        )
        good = card.rollback_to
        base_revision = good.end_revision if good is not None else deployment.start_revision
        base = base_revision.ref if base_revision else ""
        since = "the last good deployment" if good else "the revision the servers ran before"
        undoes = adds = None
        wanted = [(base, end)] if base else []
        if card.latest is not None:
            wanted.append((end, card.latest.ref))
        if not wanted:
            return False
        try:
            found_all = self.recent.ranges(project, branch, *wanted)
        except DeployHQError as error:
            log.info("could not read the recent commits of %s: %s", branch, error)
            return self._save(card, changes.unreadable(branch, error.message), None, None)
        if card.latest is not None and found_all[-1].known:
            adds = Summary.of(found_all[-1].commits)
        if not base:
            return self._save(card, "", None, adds)
        found = found_all[0]
        if good is not None and found.known:
            undoes = Summary.of(found.commits)
        overview = deployment.overview or self._overview(project, found)
        url = deployment_page_url(self.web_url, project, deployment.identifier)
        note = changes.what_changed(
            found, since=since, branch=branch, overview=overview, more_url=url
        )
        return self._save(card, note, undoes, adds)

    def _overview(self, project: str, found: Range) -> str:
        """DeployHQ's overview of the range, when it gives one (its AI features may be off):
        asked once per range across processes, its answer (or its refusal) kept."""
        if not (found.known and found.commits):
            return ""
        deployhq, answers = self.deployhq, self.recent.answers
        assert deployhq is not None
        if answers.kept("ai-off", project) is not None:
            return ""

        def read() -> str:
            try:
                return json.dumps(
                    {"overview": deployhq.ai_overview(project, found.base, found.end)}
                )
            except DeployHQError as error:
                if error.status not in (400, 422):
                    raise
                # Off for the account, or no cloned repository: not asked again for a while.
                answers.keep(("ai-off", project), error.message[:200], AI_OFF_SECONDS)
                return json.dumps({"off": error.message[:200]})

        try:
            name = ("ai-overview", project, found.base, found.end)
            raw = answers.fetch(name, read, AI_OFF_SECONDS, deployhq.deadline + 1.0)
        except DeployHQError as error:
            log.info("DeployHQ gave no overview: %s", error)
            return ""
        kept = json.loads(raw)
        if "off" in kept:
            log.info("DeployHQ gives no overview for %s: %s", project, kept["off"])
        return str(kept.get("overview") or "")

    def _save(self, card: Card, note: str, undoes: Summary | None, adds: Summary | None) -> bool:
        identifier, run_key = card.deployment.identifier, card.deployment.run_key
        if not note and undoes is None and adds is None:
            return False

        def save(current: Card) -> Card | None:
            if current.deployment.run_key != run_key:
                return None
            if note:
                current = current.noting(note)
            # What Roll back undoes (Deploy latest adds) holds only while its target is the same.
            kept_undoes = undoes if current.rollback_to == card.rollback_to else None
            kept_adds = adds if current.latest == card.latest else None
            if (kept_undoes, kept_adds) != (current.undoes, current.adds):
                current = card_rules.changed(current, undoes=kept_undoes, adds=kept_adds)
            return current

        return self.store.edit(identifier, save) is not None
