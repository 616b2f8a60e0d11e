"""Fixtures: a private redis-server, fake Slack and DeployHQ servers, and the bot itself served
over real HTTP by a real WSGI server."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode

import pytest
import redis
import requests
from werkzeug.serving import make_server

from bot.config import Settings
from bot.web.factory import BotApp, create_app
from tests.support.fakes import FakeDeployHQ, FakeSlack
from tests.support.redis_server import RedisServer
from tests.support.signed import (
    SIGNING_SECRET,
    WEBHOOK_SECRET,
    SigningKey,
    click_body,
    command_body,
    slack_headers,
)


class BotServer:
    """The bot's WSGI app on a free port, with helpers that speak to it like Slack and DeployHQ."""

    def __init__(self, app: BotApp, slack: FakeSlack, deployhq: FakeDeployHQ | None = None) -> None:
        self.app = app
        self.slack = slack
        self.deployhq = deployhq
        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        self.http = requests.Session()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def stop(self) -> None:
        self._server.shutdown()
        self.app.bot.stop()  # nothing of it may reach a later test

    def slack_post(self, body: str, **header_options: Any) -> requests.Response:
        return self.http.post(
            self.url + "/slack/events",
            data=body.encode(),
            headers=slack_headers(body, **header_options),
            timeout=10,
        )

    def click(
        self,
        value: str,
        *,
        user_id: str = "U0CLICKER",
        key: str = "r1",
        action_id: str = "deployhq_retry",
    ) -> requests.Response:
        body = click_body(
            value, response_url=self.slack.response_url(key), user_id=user_id, action_id=action_id
        )
        return self.slack_post(body)

    def command(
        self, text: str, *, user_id: str = "U0TYPIST", key: str = "c1"
    ) -> requests.Response:
        body = command_body(text, response_url=self.slack.response_url(key), user_id=user_id)
        return self.slack_post(body)

    def home_opened(self, user_id: str = "U0VIEWER", tab: str = "home") -> requests.Response:
        """Slack's ``app_home_opened`` event, as the Events API delivers it."""
        event = {
            "type": "app_home_opened",
            "user": user_id,
            "channel": "D0HOME",
            "tab": tab,
            "event_ts": f"{time.time():.6f}",
        }
        body = json.dumps(
            {
                "token": "legacy-verification-token",
                "team_id": "T1",
                "api_app_id": "A1",
                "event": event,
                "type": "event_callback",
                "event_id": f"Ev{time.time_ns()}",
                "event_time": int(time.time()),
            }
        )
        return self.slack_post(body, content_type="application/json")

    def webhook(
        self,
        data: bytes | dict[str, Any],
        *,
        token: str | None = WEBHOOK_SECRET,
        content_type: str | None = None,
        record: bool = True,
        settle: bool | str = True,
        **query: str,
    ) -> requests.Response:
        """Deliver a notification; DeployHQ's record then matches it, unless ``record=False``
        (a delivery that claims what DeployHQ does not show). The bot answers before it posts;
        with ``settle`` this returns once the work after the answer is done too (``"now"``:
        not what that scheduled for later)."""
        if record and self.deployhq is not None:
            sent = data if isinstance(data, dict) else _form_payload(data)
            if isinstance(sent, dict) and "identifier" in sent:
                self.deployhq.record(sent)
        if token is not None:
            query["token"] = token
        url = self.url + "/deployhq/webhook" + ("?" + urlencode(query) if query else "")
        if isinstance(data, dict):
            response = self.http.post(url, json=data, timeout=10)
        else:
            headers = {"Content-Type": content_type or "application/x-www-form-urlencoded"}
            response = self.http.post(url, data=data, headers=headers, timeout=10)
        if settle:
            self.settle(later=settle != "now")
        return response

    def settle(self, timeout: float = 15.0, *, later: bool = True) -> None:
        """Wait until the work the bot started after answering is done, including what it
        scheduled for later (a card pushed again, an in-doubt action checked again) and what
        that started in turn, unless ``later=False``; fails if it is still going after
        ``timeout`` seconds."""
        pools = self.app.bot.pools

        def left() -> int:
            return pools.unfinished if later else pools.pending

        deadline = time.monotonic() + timeout
        while left():
            assert time.monotonic() < deadline, f"{left()} task(s) still unfinished"
            time.sleep(0.01)


def _form_payload(body: bytes) -> Any:
    try:
        return json.loads(parse_qs(body.decode())["payload"][0])
    except (KeyError, ValueError, UnicodeDecodeError):
        return None


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def start_redis() -> Iterator[Callable[..., RedisServer]]:
    """A redis-server of the test's own, which it may stop and start without disturbing others."""
    servers: list[RedisServer] = []

    def start(**options: Any) -> RedisServer:
        server = RedisServer(**options)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


_DATABASES = itertools.cycle(range(16))


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """A database of the shared redis-server, emptied, and a different one from the last test's:
    a bot a test leaves behind may still finish a task, and its writes must not reach the next
    test."""
    database = next(_DATABASES)
    url = redis_server.url.rsplit("/", 1)[0] + f"/{database}"
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    server = FakeSlack().start()
    yield server
    server.stop()


@pytest.fixture
def fake_deployhq() -> Iterator[FakeDeployHQ]:
    server = FakeDeployHQ().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    return SigningKey()


@pytest.fixture
def env(
    fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ, redis_url: str, signing_key: SigningKey
) -> dict[str, str]:
    """The environment a user would set, pointing at the fakes."""
    return {
        "SLACK_BOT_TOKEN": "xoxb-test-token",
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.url + "/api/",
        "SLACK_CHANNEL": "C0DEPLOYS",
        "DEPLOYHQ_ACCOUNT": "acme",
        "DEPLOYHQ_BASE_URL": fake_deployhq.url,
        "DEPLOYHQ_USERNAME": "ops@example.com",
        "DEPLOYHQ_API_KEY": "k" * 40,
        "DEPLOYHQ_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "DEPLOYHQ_PUBLIC_KEY": signing_key.public_pem,
        "REDIS_URL": redis_url,
        # What changed adds a note of its own to every failure's thread; its tests (and the
        # gunicorn ones, which run the defaults) turn it on.
        "DEPLOYHQ_WHAT_CHANGED": "false",
        # So does a failure card's auto-deploy line (one more read of DeployHQ); its tests turn
        # it on.
        "DEPLOYHQ_PAUSE_AUTO_DEPLOY": "false",
    }


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    return Settings.from_env(env)


@pytest.fixture
def start_bot(
    settings: Settings, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
) -> Iterator[Callable[..., BotServer]]:
    servers: list[BotServer] = []

    def start(bot_settings: Settings | None = None, **collaborators: Any) -> BotServer:
        app = create_app(bot_settings or settings, **collaborators)
        server = BotServer(app, fake_slack, fake_deployhq)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def bot(start_bot: Callable[..., BotServer]) -> BotServer:
    return start_bot()


@pytest.fixture
def reconciling_bot(start_bot: Callable[..., BotServer], env: dict[str, str]) -> BotServer:
    """A bot whose reconciler runs every 0.3 s instead of every minute."""
    return start_bot(Settings.from_env({**env, "RECONCILE_INTERVAL": "0.3"}))
