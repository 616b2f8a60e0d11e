"""The DeployHQ client and the store, made from the settings: the web app and the command line
alike (Slack's clients are made in ``slack_client``)."""

from __future__ import annotations

import logging

from bot.config import Settings
from bot.deployhq.client import DeployHQ, SharedPause
from bot.store.kv import MemoryKeyValue, RedisKeyValue, open_redis
from bot.store.shared import Store

log = logging.getLogger(__name__)


def deployhq_client(settings: Settings, pauses: SharedPause | None = None) -> DeployHQ:
    return DeployHQ(
        settings.deployhq_base_url,
        settings.deployhq_username,
        settings.deployhq_api_key,
        timeout=settings.deployhq_timeouts,
        deadline=settings.deployhq_timeout,
        pauses=pauses,
    )


def open_store(settings: Settings) -> Store:
    if settings.redis_url:
        client = open_redis(settings.redis_url, tls_verify=settings.redis_tls_verify)
        return Store.on(RedisKeyValue(client))
    # gunicorn's master says so once, and runs a single worker (see gunicorn_conf).
    log.info("REDIS_URL is not set: using the in-process store")
    return Store.on(MemoryKeyValue())
