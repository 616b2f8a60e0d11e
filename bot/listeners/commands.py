"""``/deployhq``: help is answered in the acknowledgement itself; the rest after it.

Every subcommand but ``help`` is checked against the bot's scope (DEPLOYHQ_PROJECTS, and the
allowed users and groups when set) before any call to DeployHQ.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, Respond

from bot import commands, messages
from bot.background import Pools
from bot.cards import Cards
from bot.deployhq import DeployHQ, DeployHQError
from bot.deployments import last_good
from bot.listeners.actions import tell
from bot.retries import Retries
from bot.routing import RetryTarget, RollbackTarget

log = logging.getLogger(__name__)

COMMAND = "/deployhq"


def register(app: App, *, deployhq: DeployHQ, retries: Retries, cards: Cards, pools: Pools) -> None:
    def on_command(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        command = commands.parse(str(body.get("text", "")))
        user_id = str(body.get("user_id", ""))
        if isinstance(command, commands.Help):
            # Pure and quick: the answer goes back with the acknowledgement, waiting on nothing.
            ack(response_type="ephemeral", **messages.usage(command.problem))
            return
        ack()  # the answer leaves when this returns; the command runs after it
        acting = isinstance(command, commands.Retry | commands.Rollback)
        pool = pools.retries if acting else pools.commands
        pool.run(COMMAND, run, command, user_id, respond)

    def run(command: commands.Command, user_id: str, respond: Respond) -> None:
        log.info("%s by %s: %s", COMMAND, user_id, type(command).__name__)

        def note(text: str) -> None:
            tell(respond, text)

        project = getattr(command, "project", "")
        if not retries.allowed(user_id, note, project):  # before any call to DeployHQ
            return
        try:
            match command:
                case commands.Status(project, deployment_id):
                    deployment = deployhq.deployment(project, deployment_id)
                    _private(
                        respond,
                        messages.deployment_summary(
                            deployment, page_url=cards.page_url(deployment)
                        ),
                    )
                case commands.ListFailed(project, count):
                    failed = deployhq.failed_deployments(project, count)
                    urls = [cards.page_url(d) for d in failed]
                    _private(respond, messages.failed_list(project, failed, urls))
                case commands.Retry(project, deployment_id):
                    _retry(project, deployment_id, user_id, respond)
                case commands.Rollback(project, deployment_id):
                    _rollback(project, deployment_id, user_id, respond)
        except DeployHQError as error:
            tell(respond, messages.escape(messages.describe_error(error)))

    def _retry(project: str, deployment_id: str, user_id: str, respond: Respond) -> None:
        # Which failure to lock comes from DeployHQ, so a click on the card and this command
        # about the same failure share one lock.
        deployment = deployhq.deployment(project, deployment_id)
        result = retries.retry(RetryTarget.of(deployment), user_id, lambda t: tell(respond, t))
        if result.outcome == "retried" and result.deployment is not None:
            text = messages.command_outcome(user_id, result.deployment, "retried")
        elif isinstance(result.state, messages.RetryRefused):
            text = messages.command_outcome(user_id, deployment, "refused", result.state.reason)
        else:
            if result.state is not None:
                tell(respond, messages.retry_note(result.state, result.deployment))
            return
        _say(respond, text)

    def _rollback(project: str, deployment_id: str, user_id: str, respond: Respond) -> None:
        deployment = deployhq.deployment(project, deployment_id)
        good = last_good(deployhq.history(project, to=deployment.parent), deployment)
        if good is None:
            tell(respond, messages.nothing_to_roll_back_to(deployment))
            return
        target = RollbackTarget(project, deployment.identifier, deployment.run_key, good.identifier)
        result = retries.rollback(target, user_id, lambda t: tell(respond, t))
        if result.state is not None:
            note = messages.rollback_note(result.state, result.deployment)
            if result.outcome == "rolled-back":
                _say(respond, note)
            else:
                tell(respond, note)

    app.command(COMMAND)(on_command)


def _private(respond: Respond, message: messages.Message) -> None:
    _send(respond, response_type="ephemeral", **message)


def _say(respond: Respond, mrkdwn: str) -> None:
    _send(respond, response_type="in_channel", **messages.notice(mrkdwn))


def _send(respond: Respond, **message: Any) -> None:
    try:
        respond(**message)
    except Exception:
        log.exception("could not answer %s through its response URL", COMMAND)
