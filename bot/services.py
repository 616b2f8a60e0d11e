"""The clients a process needs, made from the settings: the web app and the command line alike."""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from bot.config import Settings
from bot.deployhq import DeployHQ
from bot.store import MemoryKeyValue, RedisKeyValue, Store, open_redis

log = logging.getLogger(__name__)


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


def deployhq_client(settings: Settings) -> DeployHQ:
    return DeployHQ(
        settings.deployhq_base_url,
        settings.deployhq_username,
        settings.deployhq_api_key,
        timeout=settings.deployhq_timeouts,
        deadline=settings.deployhq_timeout,
    )


def open_store(settings: Settings) -> Store:
    lock = settings.retry_lock_seconds
    if settings.redis_url:
        client = open_redis(settings.redis_url, tls_verify=settings.redis_tls_verify)
        return Store(RedisKeyValue(client), retry_lock_seconds=lock)
    # gunicorn's master says so once, and runs a single worker (see gunicorn_conf).
    log.info("REDIS_URL is not set: using the in-process store")
    return Store(MemoryKeyValue(), retry_lock_seconds=lock)
