"""``/deployhq``: help is answered in the acknowledgement itself; the rest after it. And the
confirm ``/deployhq deploy`` shows: Deploy (after the answer, on the retries pool) or Cancel.

Every subcommand but ``help`` is checked against the bot's scope (DEPLOYHQ_PROJECTS, and the
allowed users and groups when set) before any call to DeployHQ.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from slack_bolt import Ack, App, BoltContext, Respond

from bot.actions.parts import ActionParts
from bot.bolt import command_words as commands
from bot.bolt.listeners.actions import WITHOUT_STORE, Click, tell, told_privately
from bot.deployhq.client import DeployHQ, DeployHQError, deployment_page_url
from bot.deployhq.deployment import Deployment
from bot.messages import auto_deploys as auto_messages
from bot.messages import deploys as deploy_messages
from bot.messages import notes, replies
from bot.messages.text import Message, escape, notice
from bot.runtime.background import Pools
from bot.words.buttons import DEPLOY_CANCEL_ACTION, DEPLOY_CONFIRM_ACTION
from bot.words.states import Refused

log = logging.getLogger(__name__)

COMMAND = "/deployhq"


@dataclass(frozen=True)
class SlashCommand:
    """What ``/deployhq`` and its confirm's buttons do, each answer after the acknowledgement."""

    deployhq: DeployHQ
    parts: ActionParts
    web_url: str
    pools: Pools

    def on_command(self, ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        command = commands.parse(str(body.get("text", "")))
        user_id = str(body.get("user_id", ""))
        if isinstance(command, commands.Help):
            # Pure and quick: the answer goes back with the acknowledgement, waiting on nothing.
            ack(response_type="ephemeral", **replies.usage(commands.USAGE, command.problem))
            return
        ack()  # the answer leaves when this returns; the command runs after it
        acting = isinstance(
            command, commands.Retry | commands.Rollback | commands.Deploy | commands.Freeze
        )
        pool = self.pools.actions if acting else self.pools.commands
        pool.run(COMMAND, self.run, command, user_id, respond)

    def run(self, command: commands.Command, user_id: str, respond: Respond) -> None:
        log.info("%s by %s: %s", COMMAND, user_id, type(command).__name__)

        def note(text: str) -> None:
            tell(respond, text)

        if not self.parts.policy.check(user_id, note, getattr(command, "project", "")):
            return  # before any call to DeployHQ
        try:
            match command:
                case commands.Status(project, deployment_id):
                    d = self.deployhq.deployment(project, deployment_id)
                    url = self.page_url(d)
                    _private(respond, replies.deployment_summary(d, page_url=url))
                case commands.ListFailed(project, count):
                    failed = self.deployhq.failed_deployments(project, count)
                    urls = [self.page_url(d) for d in failed]
                    _private(respond, replies.failed_list(project, failed, urls))
                case commands.Retry(project, deployment_id):
                    self.retry(project, deployment_id, user_id, respond)
                case commands.Deploy(project, words):
                    self.plan(project, words, respond)
                case commands.Rollback(project, deployment_id):
                    self.rollback(project, deployment_id, user_id, respond)
                case commands.ProjectStatus(project):
                    _private(respond, notice(self.auto_deploys_now(project)))
                case commands.Freeze(project, words, on):
                    self.freeze(project, words, on, user_id, respond)
        except DeployHQError as error:
            tell(respond, escape(replies.describe_error(error)))

    def page_url(self, deployment: Deployment) -> str:
        return deployment_page_url(
            self.web_url, deployment.project_permalink, deployment.identifier
        )

    def retry(self, project: str, deployment_id: str, user_id: str, respond: Respond) -> None:
        """``/deployhq retry``: the channel hears what DeployHQ did, the person the rest."""
        deployment, retry = self.parts.card_actions.retry_command(project, deployment_id)
        result = self.parts.pipeline.run(retry, user_id, lambda text: tell(respond, text))
        if result.outcome == "retried" and result.deployment is not None:
            _say(respond, replies.command_outcome(user_id, result.deployment, "retried"))
        elif isinstance(result.state, Refused):
            reason = result.state.reason
            _say(respond, replies.command_outcome(user_id, deployment, "refused", reason))
        elif result.state is not None and not result.told:
            tell(respond, notes.outcome_note(result.state, result.deployment))

    def plan(self, project: str, words: tuple[str, ...], respond: Respond) -> None:
        """``/deployhq deploy``: what it would deploy, confirmed privately first."""
        planned = None
        with WITHOUT_STORE.step("answer", project) as store:
            planned = self.parts.deploys.plan(project, words, lambda text: tell(respond, text))
        if store.missing:
            tell(respond, replies.store_unavailable())
            return
        if planned is not None:
            _private(respond, deploy_messages.confirm(*planned))

    def rollback(self, project: str, deployment_id: str, user_id: str, respond: Respond) -> None:
        rollback = self.parts.card_actions.rollback_command(project, deployment_id)
        if isinstance(rollback, Deployment):
            tell(respond, replies.nothing_to_roll_back_to(rollback))
            return
        rolled = self.parts.pipeline.run(rollback, user_id, lambda text: tell(respond, text))
        if rolled.state is not None and not rolled.told:
            said = notes.outcome_note(rolled.state, rolled.deployment)
            if rolled.outcome == "rolled-back":
                _say(respond, said)
            else:
                tell(respond, said)

    def freeze(
        self, project: str, words: tuple[str, ...], on: bool, user_id: str, respond: Respond
    ) -> None:
        """``/deployhq freeze|unfreeze``: each change through the pipeline, then what DeployHQ
        now shows; the channel hears it when something changed."""
        chosen = self.parts.autos.for_command(project, words, on)
        if isinstance(chosen, str):
            tell(respond, chosen)
            return
        changes, left = chosen
        said = []
        for change in changes:
            result = self.parts.pipeline.run(change, user_id, lambda t: tell(respond, t))
            if result.outcome in ("paused", "resumed") and result.state is not None:
                said.append(notes.outcome_note(result.state, None))
            else:
                told_privately(respond, result)  # what never reached DeployHQ, or failed
        now = self.auto_deploys_now(project)
        lines = [left.strip()] if left else []
        if said:
            _say(respond, "\n".join([*said, *lines, now]))
        else:
            _private(respond, notice("\n".join([*lines, now])))

    def auto_deploys_now(self, project: str) -> str:
        """What DeployHQ shows of the project's automatic deployments, read now, and who
        paused those that are off (when the bot did it and DeployHQ still agrees)."""
        lists = self.parts.autos.lists
        listed = lists.listed(project, fresh=True)
        who = {}
        for d in listed:
            entry = lists.ledger.entry(project, d.identifier)
            if not d.auto_deploy and entry is not None and not entry[0]:
                who[d.identifier] = (entry[1], entry[2])
        return auto_messages.now_shows(project, listed, who)

    def deploy_confirmed(
        self, ack: Ack, pressed: Click, body: dict[str, Any], respond: Respond
    ) -> None:
        ack()
        self.pools.actions.run("deploy confirm", self.confirmed, pressed, body, respond)

    def confirmed(self, pressed: Click, body: dict[str, Any], respond: Respond) -> None:
        """The confirm's Deploy: the order it names, through the one action pipeline."""
        user_id, value = pressed.user_id, pressed.value
        order = None
        try:
            with WITHOUT_STORE.step("answer", user_id):
                order = self.parts.deploys.order(value)
        except ValueError as exc:
            log.warning("deploy confirm by %s could not be read: %s", user_id, exc)
        if order is None:
            tell(respond, deploy_messages.expired())
            return
        container = body.get("container") or {}
        channel = (body.get("channel") or {}).get("id") or container.get("channel_id")
        action = self.parts.orders.of(order, str(channel or ""))
        told_privately(
            respond, self.parts.pipeline.run(action, user_id, lambda t: tell(respond, t))
        )


def register(app: App, command: SlashCommand) -> None:
    # Bolt passes arguments by name, so each listener is a plain function of them.
    def on_command(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        command.on_command(ack, body, respond)

    def deploy_confirmed(
        ack: Ack,
        action: dict[str, Any],
        context: BoltContext,
        body: dict[str, Any],
        respond: Respond,
    ) -> None:
        command.deploy_confirmed(ack, Click.of(action, context), body, respond)

    app.command(COMMAND)(on_command)
    app.action(DEPLOY_CONFIRM_ACTION)(deploy_confirmed)
    app.action(DEPLOY_CANCEL_ACTION)(deploy_cancelled)


def deploy_cancelled(ack: Ack, respond: Respond) -> None:
    ack()
    _send(
        respond,
        response_type="ephemeral",
        replace_original=True,
        **notice(deploy_messages.cancelled()),
    )


def _private(respond: Respond, message: Message) -> None:
    _send(respond, response_type="ephemeral", **message)


def _say(respond: Respond, mrkdwn: str) -> None:
    _send(respond, response_type="in_channel", **notice(mrkdwn))


def _send(respond: Respond, **message: Any) -> None:
    try:
        respond(**message)
    except Exception:
        log.exception("could not answer %s through its response URL", COMMAND)
