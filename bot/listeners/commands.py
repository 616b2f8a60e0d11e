"""``/deployhq``: help is answered in the acknowledgement itself; the rest after it. And the
confirm ``/deployhq deploy`` shows: Deploy (after the answer, on the retries pool) or Cancel.

Every subcommand but ``help`` is checked against the bot's scope (DEPLOYHQ_PROJECTS, and the
allowed users and groups when set) before any call to DeployHQ.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, Respond

from bot import commands
from bot.actions import Actions
from bot.actions.deploy import DeployOrders
from bot.actions.on_card import CardActions
from bot.background import Pools
from bot.card_states import Refused
from bot.deployhq import DeployHQ, DeployHQError, deployment_page_url
from bot.deployments import Deployment
from bot.kv import StoreUnavailable
from bot.listeners.actions import tell, told_privately
from bot.messages import deploys as deploy_messages
from bot.messages import notes, replies
from bot.messages.text import Message, escape, notice
from bot.permissions import AccessPolicy
from bot.routing import DEPLOY_CANCEL_ACTION, DEPLOY_CONFIRM_ACTION
from bot.targets import Deploys

log = logging.getLogger(__name__)

COMMAND = "/deployhq"


def register(
    app: App,
    *,
    deployhq: DeployHQ,
    actions: Actions,
    kinds: CardActions,
    orders: DeployOrders,
    policy: AccessPolicy,
    deploys: Deploys,
    web_url: str,
    pools: Pools,
) -> None:
    def on_command(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        command = commands.parse(str(body.get("text", "")))
        user_id = str(body.get("user_id", ""))
        if isinstance(command, commands.Help):
            # Pure and quick: the answer goes back with the acknowledgement, waiting on nothing.
            ack(response_type="ephemeral", **replies.usage(commands.USAGE, command.problem))
            return
        ack()  # the answer leaves when this returns; the command runs after it
        acting = isinstance(command, commands.Retry | commands.Rollback | commands.Deploy)
        pool = pools.retries if acting else pools.commands
        pool.run(COMMAND, run, command, user_id, respond)

    def run(command: commands.Command, user_id: str, respond: Respond) -> None:
        log.info("%s by %s: %s", COMMAND, user_id, type(command).__name__)

        def note(text: str) -> None:
            tell(respond, text)

        def page_url(project: str, deployment: str) -> str:
            return deployment_page_url(web_url, project, deployment)

        project = getattr(command, "project", "")
        if not policy.check(user_id, note, project):  # before any call to DeployHQ
            return
        try:
            match command:
                case commands.Status(project, deployment_id):
                    d = deployhq.deployment(project, deployment_id)
                    url = page_url(d.project_permalink, d.identifier)
                    _private(respond, replies.deployment_summary(d, page_url=url))
                case commands.ListFailed(project, count):
                    failed = deployhq.failed_deployments(project, count)
                    urls = [page_url(d.project_permalink, d.identifier) for d in failed]
                    _private(respond, replies.failed_list(project, failed, urls))
                case commands.Retry(project, deployment_id):
                    deployment, retry = kinds.retry_command(project, deployment_id)
                    result = actions.run(retry, user_id, note)
                    if result.outcome == "retried" and result.deployment is not None:
                        said = replies.command_outcome(user_id, result.deployment, "retried")
                    elif isinstance(result.state, Refused):
                        reason = result.state.reason
                        said = replies.command_outcome(user_id, deployment, "refused", reason)
                    else:
                        if result.state is not None:
                            note(notes.outcome_note(result.state, result.deployment))
                        return
                    _say(respond, said)
                case commands.Deploy(project, words):
                    try:
                        planned = deploys.plan(project, words, note)
                    except StoreUnavailable:
                        note(replies.store_unavailable())
                        return
                    if planned is not None:
                        _private(respond, deploy_messages.confirm(*planned))
                case commands.Rollback(project, deployment_id):
                    rollback = kinds.rollback_command(project, deployment_id)
                    if isinstance(rollback, Deployment):
                        note(replies.nothing_to_roll_back_to(rollback))
                        return
                    rolled = actions.run(rollback, user_id, note)
                    if rolled.state is not None:
                        said = notes.outcome_note(rolled.state, rolled.deployment)
                        if rolled.outcome == "rolled-back":
                            _say(respond, said)
                        else:
                            note(said)
        except DeployHQError as error:
            tell(respond, escape(replies.describe_error(error)))

    def deploy_confirmed(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        pools.retries.run("deploy confirm", confirmed, body, respond)

    def confirmed(body: dict[str, Any], respond: Respond) -> None:
        user_id = str((body.get("user") or {}).get("id", ""))
        value = str(((body.get("actions") or [{}])[0]).get("value", ""))
        try:
            order = deploys.order(value)
        except (ValueError, StoreUnavailable) as exc:
            log.warning("deploy confirm by %s could not be read: %s", user_id, exc)
            order = None
        if order is None:
            tell(respond, deploy_messages.expired())
            return
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
            "channel_id"
        )
        action = orders.of(order, str(channel or ""))
        told_privately(respond, actions.run(action, user_id, lambda text: tell(respond, text)))

    def deploy_cancelled(ack: Ack, respond: Respond) -> None:
        ack()
        _send(respond, response_type="ephemeral", replace_original=True,
              **notice(deploy_messages.cancelled()))  # fmt: skip

    app.command(COMMAND)(on_command)
    app.action(DEPLOY_CONFIRM_ACTION)(deploy_confirmed)
    app.action(DEPLOY_CANCEL_ACTION)(deploy_cancelled)


def _private(respond: Respond, message: Message) -> None:
    _send(respond, response_type="ephemeral", **message)


def _say(respond: Respond, mrkdwn: str) -> None:
    _send(respond, response_type="in_channel", **notice(mrkdwn))


def _send(respond: Respond, **message: Any) -> None:
    try:
        respond(**message)
    except Exception:
        log.exception("could not answer %s through its response URL", COMMAND)
