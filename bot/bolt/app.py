"""The Bolt app and the Slack Web API client it uses."""

from __future__ import annotations

import logging

from slack_bolt import App
from slack_sdk import WebClient

from bot.actions.parts import ActionParts
from bot.bolt.listeners import actions as action_listeners
from bot.bolt.listeners import commands as command_listeners
from bot.config import Settings
from bot.deployhq.client import DeployHQ
from bot.runtime.background import Pools
from bot.slack.identity import Identity

log = logging.getLogger(__name__)


def build_app(
    settings: Settings,
    client: WebClient,
    identity: Identity,
    parts: ActionParts,
    deployhq: DeployHQ,
    pools: Pools,
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
    action_listeners.register(app, parts, pools.actions)
    command = command_listeners.SlashCommand(deployhq, parts, settings.deployhq_web_url, pools)
    command_listeners.register(app, command)
    return app
