"""Why a deployment failed: once a failure's card is out, its failing step and the end of that
step's log go to the card's thread, and the last good deployment on the same servers gives the
card its Roll back button; the branch's newest commit, when the failed run was not it, its
Deploy latest button; and the deployer, when Slack has a member with exactly their email, is
mentioned there."""

from __future__ import annotations

import json
import logging
from dataclasses import replace

from bot.cards import rules as card_rules
from bot.cards.lookups import Lookups
from bot.cards.rules import Card
from bot.cards.store import CardStore
from bot.deployhq.client import DeployHQ, DeployHQError
from bot.deployhq.deployment import Deployment, Revision
from bot.deployhq.history import last_good, reach
from bot.messages.notes import deployer_told, failure_log
from bot.slack.members import Deployers

log = logging.getLogger(__name__)

# A branch's newest commit is read once per this many seconds for drawing cards (a burst of
# failures asks once; Deploy latest's preflight reads it afresh before it deploys), and a
# commit's words once an hour.
LATEST = 15.0
COMMIT_SECONDS = 3600.0


class Explainer:
    def __init__(
        self,
        deployhq: DeployHQ | None,
        store: CardStore,
        deployers: Deployers | None = None,
        lookups: Lookups | None = None,
    ) -> None:
        self.deployhq = deployhq
        self.store = store
        self.deployers = deployers  # None: the deployer is never mentioned
        self.lookups = lookups  # the branch's newest commit, once per burst; None: read each time

    def _tell_deployer(self, card: Card) -> bool:
        """Mention the failure's deployer in its thread, once per failure (the explanation's
        claim makes this the only look-up of the run; a look-up tried again after a DeployHQ
        error finds the note already written). True when a note was added."""
        deployment = card.deployment
        if self.deployers is None or card.mentioned == deployment.run_key:
            return False
        member = self.deployers.member(deployment.deployer)

        def mention(current: Card) -> Card | None:
            run = deployment.run_key
            if current.deployment.run_key != run or current.mentioned == run:
                return None
            current = replace(current, mentioned=run)
            return current.noting(deployer_told(member)) if member is not None else current

        return self.store.edit(deployment.identifier, mention) is not None and member is not None

    def claim(self, deployment_id: str) -> Card | None:
        """The card to explain, claimed on its record so that two pushes never look it up
        twice; None when it wants no explaining (or another push has claimed it)."""
        if self.deployhq is None:
            return None

        def claim(current: Card) -> Card | None:
            if not current.wants_explaining:
                return None
            return replace(current, explained=current.deployment.run_key)

        edited = self.store.edit(deployment_id, claim)
        return edited[0] if edited is not None else None

    def _latest(self, deployment: Deployment) -> Revision | None:
        """The branch's newest commit, with its message and author, when it is not what the
        failed run deployed and there is one server or group to deploy it to: Deploy latest."""
        if not (deployment.branch and deployment.parent and deployment.end_revision):
            return None
        assert self.deployhq is not None
        project = deployment.project_permalink
        try:  # not knowing it must not cost the card its log and its Roll back
            ref = self._latest_revision(project, deployment.branch)
        except DeployHQError as error:
            log.info("no latest revision of %s: %s", deployment.branch, error)
            return None
        if ref == deployment.end_revision.ref:
            return None
        try:
            return self._commit(project, ref)
        except DeployHQError as error:  # the button still names the commit, without its words
            log.info("no commit_info for %s: %s", ref[:7], error)
            return Revision(ref)

    def _latest_revision(self, project: str, branch: str) -> str:
        assert self.deployhq is not None
        deployhq = self.deployhq
        if self.lookups is None:
            return deployhq.latest_revision(project, branch)
        name = ("latest-revision", project, branch)
        return self.lookups.read(name, lambda: deployhq.latest_revision(project, branch), LATEST)

    def _commit(self, project: str, ref: str) -> Revision:
        assert self.deployhq is not None
        deployhq = self.deployhq
        if self.lookups is None:
            return deployhq.commit(project, ref)

        def read() -> str:
            commit = deployhq.commit(project, ref)
            return json.dumps({"message": commit.message, "author": commit.author})

        name = ("commit", project, ref)  # a commit's words never change; its refusal is its own
        said = json.loads(self.lookups.read(name, read, COMMIT_SECONDS, refusal=name))
        return Revision(ref, str(said["message"]), str(said["author"]))

    def look_up(self, card: Card) -> bool:
        """Look up why the card's deployment failed, and note it on the card; True when the
        card changed (so it is to be shown again)."""
        assert self.deployhq is not None
        told = self._tell_deployer(card)
        deployment = card.deployment
        project = deployment.project_permalink
        try:
            # DeployHQ's record, read to confirm the card, names the failing step: only its
            # log is read here (else the record is read again), and the last good deployment
            # from the deployments to the same servers.
            if card.confirmed and deployment.steps_read:
                found = self.deployhq.step_log(project, deployment)
            else:
                found = self.deployhq.failure_log(project, deployment.identifier)
            good = last_good(self.deployhq.history(project, to=reach(deployment)), deployment)
            latest = self._latest(deployment)
        except DeployHQError as error:
            log.warning("could not look up deployment %s: %s", deployment.identifier, error)
            if error.kind == "too-large":
                return told  # it will not shrink: not looked up again
            run = deployment.run_key  # let a later push try again
            self.store.edit(
                deployment.identifier,
                lambda current: (
                    replace(current, explained="") if current.explained == run else None
                ),
            )
            return told
        if found is None and good is None and latest is None:
            return told  # nothing more to note, nothing to offer

        def note(current: Card) -> Card | None:
            if current.deployment.run_key != deployment.run_key:
                return None
            if found is not None:
                current = current.noting(failure_log(*found))
            if good is not None or latest is not None:
                current = card_rules.changed(current, rollback_to=good, latest=latest)
            return current

        return self.store.edit(deployment.identifier, note) is not None or told
