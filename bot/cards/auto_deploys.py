"""What a failure card shows of its server's or group's automatic deployments: DeployHQ's list
of them (read at most once per ``LIST_SECONDS`` across processes for drawing cards, afresh
before and after any change), the one the failed deployment went to, and who paused it from
Slack (``AutoDeployLedger``), shown only while DeployHQ's record agrees."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime

from bot.cards import rules as card_rules
from bot.cards.lookups import Lookups
from bot.cards.rules import Card
from bot.cards.store import CardStore
from bot.deployhq.auto_deploys import Deployable, deployables
from bot.deployhq.client import DeployHQ, DeployHQError
from bot.deployhq.deployment import Deployment
from bot.store.shared import Answers, AutoDeployLedger
from bot.words import states as s

log = logging.getLogger(__name__)

# DeployHQ's list of a project's automatic deployments is kept this long for card lookups.
LIST_SECONDS = 30.0


class AutoDeployments:
    """DeployHQ's automatic deployments of a project, read at most once per ``LIST_SECONDS``
    across processes for drawing cards; read afresh before and after any change."""

    def __init__(self, deployhq: DeployHQ, answers: Answers, ledger: AutoDeployLedger) -> None:
        self.deployhq = deployhq
        self.answers = answers
        self.lookups = Lookups(deployhq, answers)  # one read per project; a refusal kept
        self.ledger = ledger

    def listed(self, project: str, *, fresh: bool = False) -> list[Deployable]:
        """``DeployHQError`` when DeployHQ cannot list them."""
        name = ("auto-deployments", project)
        if fresh:
            found = self.deployhq.auto_deployments(project)
            self.answers.keep(name, _to_json(found), LIST_SECONDS)
            return found

        def read() -> str:
            return _to_json(self.deployhq.auto_deployments(project))

        return _from_json(self.lookups.read(name, read, LIST_SECONDS))

    def forget(self, project: str) -> None:
        self.answers.forget("auto-deployments", project)

    def shown(self, project: str, found: Deployable) -> s.AutoDeploy:
        """``found`` as a card shows it: who changed it and when, if the bot did and DeployHQ's
        record still agrees."""
        entry = self.ledger.entry(project, found.identifier)
        by, at = "", None
        if entry is not None and entry[0] == found.auto_deploy:
            by, at = entry[1], datetime.fromtimestamp(entry[2], tz=UTC)
        return s.AutoDeploy(
            project, found.identifier, found.name, found.branch, found.auto_deploy, by, at
        )

    def deployable_of(self, deployment: Deployment, listed: list[Deployable]) -> Deployable | None:
        """What the failed deployment went to, as DeployHQ's automatic deployments list it:
        its server or group, else the first of its servers listed."""
        by_id = {d.identifier: d for d in listed}
        for identifier in (deployment.parent, *deployment.server_ids, *deployment.server_groups):
            if identifier and identifier in by_id:
                return by_id[identifier]
        return None


class AutoDeployLookup:
    """Once a failure's card is out, the card learns its deployable's automatic deployments
    (so it can offer Pause auto-deploy, or show who paused them)."""

    def __init__(self, lists: AutoDeployments, store: CardStore) -> None:
        self.lists = lists
        self.store = store

    def look_up(self, card: Card) -> bool:
        """True when the card changed (so it is to be shown again)."""
        deployment = card.deployment
        project = deployment.project_permalink
        try:
            found = self.lists.deployable_of(deployment, self.lists.listed(project))
        except DeployHQError as error:
            log.info("no automatic deployments of %s: %s", project, error)
            return False
        if found is None:
            return False
        shown = self.lists.shown(project, found)

        def show(current: Card) -> Card | None:
            if current.auto == shown:
                return None
            if current.auto is not None and current.auto.doing is not None:
                return None  # a change under way tells the card itself
            return card_rules.auto_deploy(current, shown)

        return self.store.edit(deployment.identifier, show) is not None


def _to_json(found: list[Deployable]) -> str:
    return json.dumps(
        {
            "at": time.time(),
            "deployables": [
                {
                    "identifier": d.identifier,
                    "name": d.name,
                    "type": d.kind,
                    "auto_deploy": d.auto_deploy,
                    "preferred_branch": d.branch,
                }
                for d in found
            ],
        }
    )


def _from_json(raw: str) -> list[Deployable]:
    return deployables(json.loads(raw))
