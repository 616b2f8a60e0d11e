"""When Redis is unreachable: health says so, no retry is made, no failure goes unposted."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bot.config import Settings
from tests.conftest import BotServer
from tests.support.cards import retry_value, state_line
from tests.support.fakes import FakeDeployHQ, FakeSlack
from tests.support.redis_server import RedisServer
from tests.support.signed import delivery


@pytest.fixture
def own_redis(start_redis: Callable[..., RedisServer]) -> RedisServer:
    return start_redis()


@pytest.fixture
def bot_on_own_redis(
    start_bot: Callable[..., BotServer], env: dict, own_redis: RedisServer
) -> BotServer:
    return start_bot(Settings.from_env({**env, "REDIS_URL": own_redis.url}))


def test_healthz_follows_redis_down_and_back_up(
    bot_on_own_redis: BotServer, own_redis: RedisServer
):
    health = bot_on_own_redis.url + "/healthz"
    http = bot_on_own_redis.http
    assert http.get(health, timeout=5).json() == {"ok": True, "store": "redis"}

    own_redis.stop()
    down = http.get(health, timeout=10)
    assert down.status_code == 503
    assert down.json()["ok"] is False

    own_redis.start()
    assert http.get(health, timeout=10).status_code == 200


def test_no_retry_is_made_while_redis_is_down_and_the_clicker_is_told_why(
    bot_on_own_redis: BotServer,
    own_redis: RedisServer,
    fake_slack: FakeSlack,
    fake_deployhq: FakeDeployHQ,
):
    bot = bot_on_own_redis
    bot.webhook(delivery())
    value = retry_value(fake_slack.api_calls("chat.postMessage")[0])
    own_redis.stop()

    ack = bot.click(value)

    assert ack.status_code == 200
    note = fake_slack.wait_for(fake_slack.responses)[0]
    assert "cannot reach its Redis" in note["text"]
    assert "Nothing was sent to DeployHQ" in note["text"]
    assert fake_deployhq.retries() == []
    assert fake_slack.api_calls("chat.update") == []

    own_redis.start()  # and it recovers without a restart
    bot.click(value, key="again")
    fake_deployhq.wait_for(fake_deployhq.retries)


def test_a_failure_is_still_posted_while_redis_is_down(
    bot_on_own_redis: BotServer, own_redis: RedisServer, fake_slack: FakeSlack
):
    own_redis.stop()

    response = bot_on_own_redis.webhook(delivery())

    assert response.status_code == 200
    assert len(fake_slack.api_calls("chat.postMessage")) == 1


def test_without_redis_url_an_in_process_store_is_used_with_a_warning(
    start_bot: Callable[..., BotServer],
    env: dict,
    fake_slack: FakeSlack,
    fake_deployhq: FakeDeployHQ,
    caplog: pytest.LogCaptureFixture,
):
    env = {k: v for k, v in env.items() if k != "REDIS_URL"}
    bot = start_bot(Settings.from_env(env))

    assert "REDIS_URL is not set: using the in-process store" in caplog.text
    assert bot.http.get(bot.url + "/healthz", timeout=5).json()["store"] == "memory"
    bot.webhook(delivery())
    assert bot.webhook(delivery()).json()["result"] == "duplicate"
    value = retry_value(fake_slack.api_calls("chat.postMessage")[0])
    bot.click(value)
    bot.click(value, key="second")
    fake_slack.wait_for(lambda: fake_slack.responses("second"))
    fake_slack.wait_for(
        lambda: any("Retried by" in state_line(u) for u in fake_slack.api_calls("chat.update"))
    )
    assert len(fake_deployhq.retries()) == 1
