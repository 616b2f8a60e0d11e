"""The core loop over real HTTP: failure webhook → card → Retry click → DeployHQ → card."""

from __future__ import annotations

import base64
import time

from slack_sdk.models.blocks import Block

from tests.conftest import BotServer
from tests.support.cards import buttons, retry_value, state_line
from tests.support.fakes import FakeDeployHQ, FakeSlack, Reply
from tests.support.signed import DEPLOYMENT_ID, delivery


def post_failure(bot: BotServer, slack: FakeSlack) -> dict:
    response = bot.webhook(delivery())
    assert response.status_code == 200, response.text
    assert response.json()["result"] == "accepted"
    return slack.api_calls("chat.postMessage")[-1]


def test_failure_webhook_posts_one_card_with_a_retry_button(bot: BotServer, fake_slack: FakeSlack):
    card = post_failure(bot, fake_slack)

    assert card["channel"] == "C0DEPLOYS"
    assert card["text"] == "Deployment failed: My Project (main)"
    assert {"deployhq_retry", "deployhq_open"} <= set(buttons(card))
    assert buttons(card)["deployhq_retry"]["confirm"]["title"]["text"] == "Retry this deployment?"
    assert buttons(card)["deployhq_open"]["url"] == (
        f"https://acme.deployhq.com/projects/my-project/deployments/{DEPLOYMENT_ID}"
    )
    shown = str(card["blocks"])
    for fact in (
        "My Project",
        "`main`",
        "`abc123d` → `def456a`",
        "Production Server",
        "Adam",
        "Fix login",
        "after 1m 8s",
    ):
        assert fact in shown
    for block in card["blocks"]:
        Block.parse(block).to_dict()  # raises on any Block Kit limit breach


def test_a_click_retries_once_with_the_api_credentials_and_shows_pending(
    bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    card = post_failure(bot, fake_slack)

    ack = bot.click(retry_value(card))

    assert ack.status_code == 200
    updates = fake_slack.wait_for(
        lambda: [u for u in fake_slack.api_calls("chat.update") if "pending" in state_line(u)]
    )
    (retry,) = fake_deployhq.retries()
    assert retry.path == f"/projects/my-project/deployments/{DEPLOYMENT_ID}/retry"
    assert (
        retry.headers["Authorization"]
        == "Basic " + base64.b64encode(b"ops@example.com:" + b"k" * 40).decode()
    )
    assert retry.headers["Accept"] == "application/json"
    first, *_ = fake_slack.api_calls("chat.update")
    assert "Retry requested by <@U0CLICKER>" in state_line(first)
    assert updates[-1]["ts"] == "1700000000.000001"
    assert "Retried by <@U0CLICKER>" in state_line(updates[-1])
    assert "deployhq_retry" not in buttons(updates[-1])


def test_a_slow_deployhq_still_gets_the_click_acknowledged_at_once(
    bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    card = post_failure(bot, fake_slack)
    fake_deployhq.script("retry", Reply(200, None, delay=5.0))  # body None → default after delay

    started = time.monotonic()
    ack = bot.click(retry_value(card))
    elapsed = time.monotonic() - started

    assert ack.status_code == 200
    assert elapsed < 3.0, f"ack took {elapsed:.2f}s; Slack gives up after 3 s"
    fake_slack.wait_for(
        lambda: any("Retried by" in state_line(u) for u in fake_slack.api_calls("chat.update")),
        timeout=10,
    )


def test_when_slack_refuses_the_post_the_card_is_posted_once_slack_takes_it(
    reconciling_bot: BotServer, fake_slack: FakeSlack
):
    fake_slack.script("chat.postMessage", Reply(200, {"ok": False, "error": "not_in_channel"}))

    accepted = reconciling_bot.webhook(delivery(), settle="now")  # Slack's refusal is in
    again = reconciling_bot.webhook(delivery(), settle="now")

    assert accepted.json()["result"] == "accepted"
    assert again.json()["result"] == "duplicate"
    assert "/invite @DeployHQ" in again.json()["warning"]  # the fix, while Slack refuses
    posted = fake_slack.wait_for(
        lambda: [m for m in fake_slack.api_calls("chat.postMessage") if "thread_ts" not in m][1:]
    )
    assert len(posted) == 1  # the second try landed; no more after it
