"""Bad input is refused with a clear 4xx; nothing reaches Slack, nothing is retried."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives import hashes

from bot.config import Settings
from tests.conftest import BotServer
from tests.support.cards import retry_value
from tests.support.fakes import FakeDeployHQ, FakeSlack
from tests.support.signed import SigningKey, click_body, delivery


@pytest.fixture
def card_value(bot: BotServer, fake_slack: FakeSlack) -> str:
    bot.webhook(delivery())
    value = retry_value(fake_slack.api_calls("chat.postMessage")[0])
    fake_slack.calls.clear()
    return value


def nothing_happened(bot: BotServer, slack: FakeSlack, deployhq: FakeDeployHQ) -> None:
    bot.settle()  # whatever a refused request wrongly started has run, or is scheduled
    # auth.test is Bolt's identity check (read-only); anything else would be a post or reply.
    assert [c.path for c in slack.calls if c.path != "/api/auth.test"] == []
    assert deployhq.retries() == []


# --- Slack requests ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"secret": "not-the-signing-secret"},
        {"timestamp": int(time.time()) - 6 * 60},  # replayed: older than Slack's 5 minutes
    ],
    ids=["bad-signature", "stale-timestamp"],
)
def test_a_click_that_is_not_from_slack_is_refused(
    bot: BotServer,
    fake_slack: FakeSlack,
    fake_deployhq: FakeDeployHQ,
    card_value: str,
    options: dict,
):
    body = click_body(card_value, response_url=fake_slack.response_url())

    response = bot.slack_post(body, **options)

    assert response.status_code == 401
    nothing_happened(bot, fake_slack, fake_deployhq)


def test_an_unsigned_click_is_refused(
    bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ, card_value: str
):
    body = click_body(card_value, response_url=fake_slack.response_url())
    response = bot.http.post(
        bot.url + "/slack/events",
        data=body,
        timeout=5,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 401
    nothing_happened(bot, fake_slack, fake_deployhq)


def test_an_unknown_action_gets_a_4xx_not_a_500(
    bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ, card_value: str
):
    body = click_body(card_value, response_url=fake_slack.response_url(), action_id="mystery")
    response = bot.slack_post(body)
    assert response.status_code == 404
    nothing_happened(bot, fake_slack, fake_deployhq)


def test_a_huge_slack_body_is_refused(
    bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    response = bot.slack_post("payload=" + "x" * (1024 * 1024 + 1))
    assert response.status_code == 413
    nothing_happened(bot, fake_slack, fake_deployhq)


# --- DeployHQ webhooks ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "status"), [(None, 401), ("wrong-token", 403)], ids=["no-token", "bad-token"]
)
def test_a_webhook_without_the_secret_is_refused(
    bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ, token, status
):
    response = bot.webhook(delivery(), token=token)
    assert response.status_code == status
    assert "token" in response.json()["error"]
    nothing_happened(bot, fake_slack, fake_deployhq)


def test_basic_auth_may_carry_the_secret(bot: BotServer, fake_slack: FakeSlack, env: dict):
    response = bot.http.post(
        bot.url + "/deployhq/webhook",
        json=delivery(),
        timeout=5,
        auth=("deployhq", env["DEPLOYHQ_WEBHOOK_SECRET"]),
    )
    bot.settle()
    assert response.status_code == 200
    assert len(fake_slack.api_calls("chat.postMessage")) == 1


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b"[1, 2, 3]", "application/json", 400),
        (b'{"status": "failed"}', "application/json", 400),  # no identifier
        (b'{"payload": "not json either"}', "application/json", 400),
        (b"[" * 100_000, "application/json", 400),  # nesting deeper than any parser's stack
        (b"<xml/>", "text/xml", 415),
        (b"x" * (1024 * 1024 + 1), "application/json", 413),
    ],
    ids=["malformed", "not-object", "no-identifier", "bad-payload", "deep", "xml", "huge"],
)
def test_a_malformed_webhook_is_refused(
    bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ, body, content_type, status
):
    response = bot.webhook(body, content_type=content_type)
    assert response.status_code == status
    assert response.json()["ok"] is False and response.json()["error"]
    nothing_happened(bot, fake_slack, fake_deployhq)


def test_a_json_webhook_is_refused_when_no_secret_is_configured(
    start_bot: Callable[..., BotServer],
    env: dict,
    fake_slack: FakeSlack,
    fake_deployhq: FakeDeployHQ,
):
    env = {k: v for k, v in env.items() if k != "DEPLOYHQ_WEBHOOK_SECRET"}
    bot = start_bot(Settings.from_env(env))
    response = bot.webhook(delivery(), token=None)
    assert response.status_code == 403
    assert "DEPLOYHQ_WEBHOOK_SECRET" in response.json()["error"]
    nothing_happened(bot, fake_slack, fake_deployhq)


# --- signed form deliveries ----------------------------------------------------------------


@pytest.mark.parametrize("algorithm", [hashes.SHA256(), hashes.SHA1()], ids=["sha256", "sha1"])  # noqa: S303
def test_a_correctly_signed_form_delivery_is_accepted(
    bot: BotServer, fake_slack: FakeSlack, signing_key: SigningKey, algorithm
):
    response = bot.webhook(signing_key.form(delivery(), algorithm))
    assert response.status_code == 200, response.text
    assert len(fake_slack.api_calls("chat.postMessage")) == 1


def test_a_signed_form_delivery_wrapped_as_deployhqs_example_shows_it_is_accepted(
    bot: BotServer, fake_slack: FakeSlack, signing_key: SigningKey
):
    """DeployHQ's HTTP POST page prints its example payload as {"payload": {...}}."""
    response = bot.webhook(signing_key.form({"payload": delivery()}))
    assert response.status_code == 200, response.text
    assert response.json()["result"] == "accepted"


def test_a_signed_form_delivery_needs_no_secret_when_none_is_set(
    start_bot: Callable[..., BotServer], env: dict, fake_slack: FakeSlack, signing_key: SigningKey
):
    env = {k: v for k, v in env.items() if k != "DEPLOYHQ_WEBHOOK_SECRET"}
    bot = start_bot(Settings.from_env(env))
    assert bot.webhook(signing_key.form(delivery()), token=None).status_code == 200
    assert len(fake_slack.api_calls("chat.postMessage")) == 1


def test_a_tampered_form_delivery_is_refused(
    bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ, signing_key: SigningKey
):
    original = json.dumps(delivery(status="completed")).encode()
    signature = signing_key.sign(original)
    tampered = original.replace(b'"completed"', b'"failed"')
    body = urlencode({"payload": tampered, "signature": signature}).encode()
    response = bot.webhook(body)
    assert response.status_code == 403
    assert "signature" in response.json()["error"]
    nothing_happened(bot, fake_slack, fake_deployhq)


def test_a_form_delivery_signed_by_another_key_is_refused(
    bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    response = bot.webhook(SigningKey().form(delivery()))
    assert response.status_code == 403
    nothing_happened(bot, fake_slack, fake_deployhq)


def test_an_unsigned_form_delivery_is_refused_even_with_the_secret(
    bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    response = bot.webhook(urlencode({"payload": json.dumps(delivery())}).encode())
    assert response.status_code == 401
    nothing_happened(bot, fake_slack, fake_deployhq)
