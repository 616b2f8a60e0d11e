"""The Bolt app and the Slack Web API client it uses."""

from __future__ import annotations

import logging
import threading

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk import WebClient

from bot.background import Pools
from bot.cards import Cards, slack_error
from bot.config import Settings
from bot.deployhq import DeployHQ
from bot.identity import Identity
from bot.listeners import actions, commands
from bot.retries import Retries

log = logging.getLogger(__name__)


def build_app(
    settings: Settings,
    *,
    client: WebClient,
    identity: Identity,
    retries: Retries,
    deployhq: DeployHQ,
    cards: Cards,
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
    actions.register(app, retries, pools.retries)
    commands.register(app, deployhq=deployhq, retries=retries, cards=cards, pools=pools)
    return app


def start_socket_mode(app: App, app_token: str, stop: threading.Event) -> SocketModeHandler:
    """Take Slack's requests over Socket Mode too: the same listeners and acks, no public URL.

    Connects in the background, retried until Slack answers, so a Slack hiccup never stops a
    worker from booting; the built-in client reconnects by itself after that.
    """
    handler = SocketModeHandler(app, app_token)

    def connect() -> None:
        wait = 1.0
        while not stop.is_set():
            try:
                handler.connect()  # type: ignore[no-untyped-call]
            except Exception as exc:  # anything the connection raises: log it and try again
                log.warning(
                    "Socket Mode did not connect (%s); again in %.0f s", slack_error(exc), wait
                )
            else:
                log.info("connected to Slack over Socket Mode")
                return
            stop.wait(wait)
            wait = min(wait * 2, 60.0)

    threading.Thread(target=connect, name="socket-mode", daemon=True).start()
    return handler
