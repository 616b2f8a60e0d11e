"""Slack's Web API clients, made from the settings, and what their errors mean."""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from bot.config import Settings

# What the Web API client can raise: API errors, and network errors after its own retries.
SLACK_ERRORS = (SlackClientError, OSError)
# Errors that say a message can never be updated again: post a fresh one instead.
MESSAGE_GONE = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})


def slack_client(settings: Settings) -> WebClient:
    """Retries connection errors, 429s (after Retry-After) and 5xx, a couple of times each."""
    return WebClient(
        token=settings.slack_bot_token,
        base_url=settings.slack_api_url,
        timeout=int(settings.slack_timeout),
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=1),
            RateLimitErrorRetryHandler(max_retry_count=2),
            ServerErrorRetryHandler(max_retry_count=2),
        ],
    )


def slack_poster(settings: Settings) -> WebClient:
    """For chat.postMessage, which has no idempotency key: a post whose answer was lost may
    have been taken, so the client never re-sends it by itself (the card's metadata finds it
    instead), nor waits out a 429 while the card's push holds its lease: the outbox comes back
    after a back-off."""
    return WebClient(
        token=settings.slack_bot_token,
        base_url=settings.slack_api_url,
        timeout=int(settings.slack_timeout),
        retry_handlers=[],
    )


def slack_error(exc: BaseException) -> str:
    """A short reason, e.g. ``channel_not_found``, without tokens or bodies."""
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error") or f"HTTP {exc.response.status_code}")
    return type(exc).__name__


def refused(exc: BaseException) -> bool:
    """Slack answered and did not take the call (an error it named, or a 429): as opposed to
    a lost answer or a server error, after which it may have."""
    if not isinstance(exc, SlackApiError):
        return False
    status = exc.response.status_code
    return status == 429 or (status < 500 and exc.response.get("ok") is False)


def how_to_fix(error: str, channel: str) -> str:
    """What an operator should do about a post Slack refused for its channel."""
    if error == "not_in_channel":
        return f"invite the bot to {channel} (in that channel: /invite @DeployHQ)"
    if error == "channel_not_found":
        return (
            f"the bot sees no channel {channel}; check SLACK_CHANNEL (or the webhook URL's "
            "?channel=), and invite the bot if the channel is private"
        )
    return ""
