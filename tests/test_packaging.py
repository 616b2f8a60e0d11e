"""The Procfile, the Slack app manifest and the settings, as a user meets them."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import yaml

from bot.bolt.listeners.commands import COMMAND
from bot.config import ConfigError, Settings
from bot.web.factory import SLACK_EVENTS_PATH, create_app
from tests.support.cards import first_card, retry_value, state_line
from tests.support.fakes import FakeDeployHQ, FakeSlack
from tests.support.gunicorn import ROOT, Gunicorn, procfile_command
from tests.support.redis_server import free_port
from tests.support.signed import WEBHOOK_SECRET, click_body, delivery, slack_headers


def test_the_procfile_command_serves_the_bot_on_port_with_workers(
    env: dict, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    server = Gunicorn(env, workers=2)
    try:
        server.wait_ready()
        posted = requests.post(
            f"{server.url}/deployhq/webhook?token={WEBHOOK_SECRET}", json=delivery(), timeout=10
        )
        assert posted.status_code == 200
        value = retry_value(first_card(fake_slack))
        body = click_body(value, response_url=fake_slack.response_url())
        ack = requests.post(
            server.url + SLACK_EVENTS_PATH, data=body, headers=slack_headers(body), timeout=10
        )
        assert ack.status_code == 200
        fake_slack.wait_for(
            lambda: any("Retried by" in state_line(u) for u in fake_slack.api_calls("chat.update"))
        )
        assert len(fake_deployhq.retries()) == 1
        assert len(server.workers()) == 2  # WEB_CONCURRENCY honoured
    finally:
        output = server.stop()
    assert "xoxb-test-token" not in output and "k" * 40 not in output


def test_the_procfile_command_stops_once_on_bad_settings(tmp_path: Path):
    env = {
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "PORT": str(free_port()),
        "SLACK_CHANNEL": "general",
    }
    result = subprocess.run(
        ["bash", "-c", f"exec {procfile_command()}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert result.stderr.count("the bot cannot start") == 1
    for name in (
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "SLACK_CHANNEL",
        "DEPLOYHQ_ACCOUNT",
        "DEPLOYHQ_USERNAME",
        "DEPLOYHQ_API_KEY",
    ):
        assert name in result.stderr
    assert "Booting worker" not in result.stderr
    assert "Traceback" not in result.stderr


def test_the_manifest_points_slack_at_our_routes_with_only_the_scopes_used(settings: Settings):
    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text())
    routes = {rule.rule for rule in create_app(settings).url_map.iter_rules()}

    interactivity = manifest["settings"]["interactivity"]
    assert interactivity["is_enabled"] is True
    assert urlsplit(interactivity["request_url"]).path in routes
    assert urlsplit(interactivity["request_url"]).path == SLACK_EVENTS_PATH
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == COMMAND
    assert urlsplit(command["url"]).path == SLACK_EVENTS_PATH
    assert command["usage_hint"]
    # chat.postMessage/chat.update, the slash command, usergroups.users.list, and
    # conversations.history (a card's lost post), users.lookupByEmail (the deployer told):
    # and nothing more
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == [
        "channels:history",
        "chat:write",
        "commands",
        "groups:history",
        "usergroups:read",
        "users:read",
        "users:read.email",
    ]
    assert manifest["settings"]["socket_mode_enabled"] is False
    # The App Home: its tab, and the event that publishes it (views.publish and
    # chat.getPermalink need no scope of their own).
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    events = manifest["settings"]["event_subscriptions"]
    assert events["bot_events"] == ["app_home_opened"]
    assert urlsplit(events["request_url"]).path == SLACK_EVENTS_PATH


def test_settings_name_every_problem_at_once():
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(
            {
                "SLACK_BOT_TOKEN": "xoxp-user-token",
                "SLACK_CHANNEL": "#deploys",
                "DEPLOYHQ_ACCOUNT": "acme.deployhq.com",
                "REDIS_URL": "http://x",
                "DEPLOYHQ_PUBLIC_KEY": "not a key",
                "SLACK_API_URL": "ftp://x",
            }
        )
    problems = "\n".join(raised.value.problems)
    for expected in (
        "xoxb-",
        "SLACK_SIGNING_SECRET is not set",
        "channel id",
        "subdomain only",
        "REDIS_URL",
        "DEPLOYHQ_PUBLIC_KEY",
        "SLACK_API_URL",
        "DEPLOYHQ_USERNAME is not set",
        "DEPLOYHQ_API_KEY is not set",
    ):
        assert expected in problems
    assert len(raised.value.problems) == 9


def test_settings_keep_secrets_out_of_their_repr(settings: Settings):
    shown = repr(settings)
    assert "acme" in shown
    for secret in (
        settings.slack_bot_token,
        settings.slack_signing_secret,
        settings.deployhq_api_key,
        str(settings.deployhq_webhook_secret),
    ):
        assert secret not in shown


def test_settings_default_to_slack_and_the_account_api(env: dict):
    env = {k: v for k, v in env.items() if k not in ("SLACK_API_URL", "DEPLOYHQ_BASE_URL")}
    settings = Settings.from_env(env)
    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.deployhq_base_url == "https://acme.deployhq.com"
    assert shlex.split(procfile_command())[0] == "gunicorn"
