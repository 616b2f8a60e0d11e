"""The Bolt app and the Slack Web API client it uses."""

from __future__ import annotations

import logging

from slack_bolt import App
from slack_sdk import WebClient

from bot.actions.auto_deploy import AutoDeploys
from bot.actions.decisions import Decisions
from bot.actions.deploy import DeployOrders
from bot.actions.deploy_plan import Deploys
from bot.actions.on_card import CardActions
from bot.actions.permissions import AccessPolicy
from bot.actions.pipeline import Actions
from bot.actions.previews import Previews
from bot.config import Settings
from bot.deployhq.client import DeployHQ
from bot.runtime.background import Pools
from bot.slack.identity import Identity
from bot.slack.listeners import actions as action_listeners
from bot.slack.listeners import commands as command_listeners

log = logging.getLogger(__name__)


def build_app(
    settings: Settings,
    *,
    client: WebClient,
    identity: Identity,
    actions: Actions,
    decisions: Decisions,
    kinds: CardActions,
    orders: DeployOrders,
    policy: AccessPolicy,
    deployhq: DeployHQ,
    pools: Pools,
    deploys: Deploys,
    previews: Previews,
    autos: AutoDeploys,
) -> App:
    app = App(
        # Bolt copies this client's settings for each request; the token comes from
        # ``authorize``, which answers from the identity learnt at start-up, so no request ever
        # waits for auth.test.
        client=WebClient(
            base_url=client.base_url, timeout=client.timeout, retry_handlers=client.retry_handlers
        ),
        # Bolt passes arguments by name, and would pass a bound method's ``self`` too.
        authorize=lambda enterprise_id, team_id, user_id: identity.authorize(
            enterprise_id, team_id, user_id
        ),
        signing_secret=settings.slack_signing_secret,
        # Checked on the raw body before Bolt parses anything (see slack_adapter).
        request_verification_enabled=False,
        # Listeners run in the request thread and the answer leaves when they return; each
        # acks, then hands its slow work to a pool.
        process_before_response=True,
    )
    action_listeners.register(app, actions, kinds, decisions, previews, pools.actions, autos)
    keyboard = command_listeners.Keyboard(
        deployhq=deployhq,
        actions=actions,
        kinds=kinds,
        orders=orders,
        policy=policy,
        deploys=deploys,
        web_url=settings.deployhq_web_url,
        pools=pools,
        autos=autos,
    )
    command_listeners.register(app, keyboard)
    return app
