"""The Bolt app and the Slack Web API client it uses."""

from __future__ import annotations

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from bot.background import Background
from bot.cards import Cards
from bot.config import Settings
from bot.deployhq import DeployHQ
from bot.listeners import actions, commands
from bot.retries import Retries

SLACK_TIMEOUT_SECONDS = 10


def slack_client(settings: Settings) -> WebClient:
    """Retries connection errors, 429s (after Retry-After) and 5xx, a couple of times each."""
    return WebClient(
        token=settings.slack_bot_token,
        base_url=settings.slack_api_url,
        timeout=SLACK_TIMEOUT_SECONDS,
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=1),
            RateLimitErrorRetryHandler(max_retry_count=2),
            ServerErrorRetryHandler(max_retry_count=2),
        ],
    )


def build_app(
    settings: Settings,
    *,
    client: WebClient,
    retries: Retries,
    deployhq: DeployHQ,
    cards: Cards,
    background: Background,
) -> App:
    app = App(
        client=client,
        signing_secret=settings.slack_signing_secret,
        # Listeners run in the request thread and the answer leaves when they return; each
        # acks, then hands its slow work to ``background``.
        process_before_response=True,
        # No auth.test call while a worker boots: a Slack hiccup must not stop a deploy.
        token_verification_enabled=False,
    )
    actions.register(app, retries, background)
    commands.register(app, deployhq=deployhq, retries=retries, cards=cards, background=background)
    return app
