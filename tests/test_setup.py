"""Checking a setup before the first failure: doctor, manifest, notify, and Socket Mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from bot.bolt.listeners.commands import COMMAND
from bot.config import Settings
from bot.web.factory import create_app
from tests.conftest import BotServer
from tests.support.cards import buttons, first_card, retry_value, state_line
from tests.support.fakes import FakeDeployHQ, FakeSlack, Reply
from tests.support.gunicorn import ROOT
from tests.support.redis_server import RedisServer
from tests.support.signed import DEPLOYMENT_ID, WEBHOOK_SECRET, click_body, command_body, delivery
from tests.support.socket_mode import FakeSocketMode


def bot_command(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m bot …`` as an operator runs it, with only ``env`` for settings."""
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


# --- manifest -----------------------------------------------------------------------------------


def test_the_manifest_for_an_address_points_every_request_url_at_a_route_the_app_serves(
    settings: Settings,
):
    printed = bot_command("manifest", "--url", "https://deploy-bot.example.com/")
    manifest = yaml.safe_load(printed.stdout)
    routes = {rule.rule for rule in create_app(settings).url_map.iter_rules()}

    urls = [manifest["settings"]["interactivity"]["request_url"]]
    urls += [command["url"] for command in manifest["features"]["slash_commands"]]
    assert printed.returncode == 0
    for url in urls:
        assert url.startswith("https://deploy-bot.example.com/"), url
        assert urlsplit(url).path in routes
    assert "your-app.example.com" not in printed.stdout
    assert manifest["settings"]["socket_mode_enabled"] is False
    assert manifest["features"]["slash_commands"][0]["command"] == COMMAND


def test_the_socket_mode_manifest_has_no_request_urls():
    printed = bot_command("manifest", "--socket-mode")
    manifest = yaml.safe_load(printed.stdout)

    assert manifest["settings"]["socket_mode_enabled"] is True
    assert "request_url" not in manifest["settings"]["interactivity"]
    assert "request_url" not in manifest["settings"]["event_subscriptions"]
    assert manifest["settings"]["event_subscriptions"]["bot_events"] == ["app_home_opened"]
    assert all("url" not in command for command in manifest["features"]["slash_commands"])
    assert "http" not in printed.stdout.split("oauth_config")[1]


def test_the_manifest_refuses_an_address_slack_would():
    printed = bot_command("manifest", "--url", "http://insecure.example.com")
    assert printed.returncode == 2 and "https://" in printed.stderr


# --- doctor -------------------------------------------------------------------------------------


def doctor(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = bot_command("doctor", *args, env=env)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout


def test_doctor_passes_a_working_setup(env: dict[str, str]):
    status, output = doctor(env, "--url", "https://deploy-bot.example.com")

    assert status == 0, output
    assert "✗" not in output
    for expected in (
        "✓ Slack: connected as deployhq in Acme",
        "✓ Slack: the token has every scope the bot uses",
        "✓ DeployHQ: account https://acme.deployhq.com; the API key can see 1 project",
        "✓ Redis at redis://127.0.0.1",
        "https://deployhq:<DEPLOYHQ_WEBHOOK_SECRET>@deploy-bot.example.com/deployhq/webhook",
        "All good.",
        "· App Home: no app_home_opened event has reached the bot yet",
    ):
        assert expected in output
    assert WEBHOOK_SECRET not in output and env["DEPLOYHQ_API_KEY"] not in output


def test_doctor_says_when_the_home_tab_was_last_opened(
    start_bot: Callable[..., BotServer], env: dict[str, str], fake_slack: FakeSlack
):
    bot = start_bot()
    bot.home_opened("U0VIEWER")
    bot.settle()
    _, output = doctor(env)
    assert "✓ App Home: last opened 0 min ago (Slack sends app_home_opened)" in output, output


def test_doctor_shows_the_secret_only_when_asked(env: dict[str, str]):
    assert WEBHOOK_SECRET in doctor(env, "--show-secrets")[1]


@pytest.fixture
def broken(
    request: pytest.FixtureRequest,
    env: dict[str, str],
    fake_slack: FakeSlack,
    fake_deployhq: FakeDeployHQ,
    start_redis: Callable[..., RedisServer],
) -> dict[str, str]:
    """The working setup with one fault in it."""
    fault = request.param
    if fault == "token":
        fake_slack.always("auth.test", Reply(200, {"ok": False, "error": "invalid_auth"}))
    elif fault == "scope":
        fake_slack.scopes = {"chat:write", "commands", "channels:history", "groups:history"}
    elif fault == "deployhq-key":
        fake_deployhq.always("projects", Reply(401, {"status": 401, "error": "Access denied"}))
    elif fault == "redis-down":
        server = start_redis()
        server.stop()
        env = {**env, "REDIS_URL": server.url}
    elif fault == "redis-certificate":
        env = {**env, "REDIS_URL": start_redis(tls=True).url}
    elif fault == "no-secret":
        env = {k: v for k, v in env.items() if k != "DEPLOYHQ_WEBHOOK_SECRET"}
    elif fault == "placeholder":
        env = {**env, "SLACK_SIGNING_SECRET": "your-signing-secret"}
    return env


@pytest.mark.parametrize(
    ("broken", "said", "fix"),
    [
        ("token", "Slack refused SLACK_BOT_TOKEN (invalid_auth)", "set SLACK_BOT_TOKEN"),
        ("scope", "the token lacks the scopes usergroups:read", "reinstall the app"),
        ("deployhq-key", "DeployHQ at", "check DEPLOYHQ_USERNAME"),
        ("redis-down", "Redis at redis://127.0.0.1", "check REDIS_URL"),
        ("redis-certificate", "certificate", "set REDIS_TLS_VERIFY=false"),
        ("no-secret", "DEPLOYHQ_WEBHOOK_SECRET is not set", "openssl rand -hex 32"),
        ("placeholder", "✗ settings", "SLACK_SIGNING_SECRET is not set"),
    ],
    indirect=["broken"],
)
def test_doctor_names_each_fault_and_its_fix(broken: dict[str, str], said: str, fix: str):
    status, output = doctor(broken)

    assert status == 1
    failed = [line for line in output.splitlines() if line.startswith("✗")]
    assert any(said in line for line in failed), output
    assert f"fix: {fix}" in output or fix in output
    assert "problem" in output.splitlines()[-1]


# --- notify -------------------------------------------------------------------------------------


def test_notify_posts_a_real_deployments_card_with_a_working_retry(
    env: dict[str, str], bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    fake_deployhq.record(delivery())

    result = bot_command("notify", "my-project", DEPLOYMENT_ID, env=env)

    assert result.returncode == 0, result.stderr
    assert "Posted the card of My Project 6bd5cdc4 (failed) to C0DEPLOYS" in result.stdout
    card = first_card(fake_slack)
    assert "deployhq_retry" in buttons(card)
    bot.click(retry_value(card))  # the running bot takes it from there
    fake_slack.wait_for(
        lambda: any("Retried by" in state_line(u) for u in fake_slack.api_calls("chat.update"))
    )
    assert len(fake_deployhq.retries()) == 1


def test_notify_without_the_servers_store_refuses_and_says_why(env: dict[str, str], fake_slack):
    result = bot_command(
        "notify",
        "my-project",
        DEPLOYMENT_ID,
        env={k: v for k, v in env.items() if k != "REDIS_URL"},
    )
    assert result.returncode == 1
    assert "REDIS_URL is not set" in result.stderr
    assert fake_slack.api_calls("chat.postMessage") == []


def test_notify_of_an_unknown_deployment_says_so(env: dict[str, str], fake_deployhq):
    fake_deployhq.missing.add(DEPLOYMENT_ID)
    result = bot_command("notify", "my-project", DEPLOYMENT_ID, env=env)
    assert result.returncode == 1 and "not found" in result.stderr.lower()


# --- Socket Mode --------------------------------------------------------------------------------


@pytest.fixture
def socket_mode(fake_slack: FakeSlack) -> Iterator[FakeSocketMode]:
    server = FakeSocketMode()
    fake_slack.socket_url = server.url
    yield server
    server.stop()


def test_over_socket_mode_clicks_and_commands_are_acked_and_retry_once(
    start_bot: Callable[..., BotServer],
    env: dict[str, str],
    socket_mode: FakeSocketMode,
    fake_slack: FakeSlack,
    fake_deployhq: FakeDeployHQ,
):
    bot = start_bot(Settings.from_env({**env, "SLACK_APP_TOKEN": "xapp-1-test-app-token"}))
    bot.webhook(delivery())  # DeployHQ still reaches the bot over HTTP
    value = retry_value(first_card(fake_slack))
    socket_mode.wait_connected()

    clicks = []
    for i in range(3):
        body = click_body(value, response_url=fake_slack.response_url(f"s{i}"), user_id=f"U0S{i}")
        clicks.append(socket_mode.send("interactive", json.loads(parse_qs(body)["payload"][0])))
    help_body = command_body("help", response_url=fake_slack.response_url("help"))
    asked = socket_mode.send("slash_commands", {k: v[0] for k, v in parse_qs(help_body).items()})

    for envelope_id in clicks:
        assert socket_mode.ack(envelope_id)["envelope_id"] == envelope_id
    assert "/deployhq retry" in socket_mode.ack(asked)["payload"]["text"]
    fake_slack.wait_for(
        lambda: any("Retried by" in state_line(u) for u in fake_slack.api_calls("chat.update"))
    )
    fake_slack.wait_for(lambda: len(fake_slack.responses()) >= 2)  # the other two, told
    assert len(fake_deployhq.retries()) == 1


def test_doctor_checks_the_app_level_token(
    env: dict[str, str], socket_mode: FakeSocketMode, fake_slack: FakeSlack
):
    env = {**env, "SLACK_APP_TOKEN": "xapp-1-test-app-token"}
    assert "✓ Slack: SLACK_APP_TOKEN opens a Socket Mode connection" in doctor(env)[1]
    fake_slack.socket_url = ""  # Slack now refuses it
    status, output = doctor(env)
    assert status == 1 and "Slack refused SLACK_APP_TOKEN" in output
