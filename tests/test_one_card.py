"""One card per deployment, never going backwards: a post Slack took but whose answer was lost
(or whose process died) is found by its metadata, not posted again; a rate-limited Slack holds
up no delivery; a late answer never moves a card back."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator

import pytest
import requests

from bot.config import Settings
from tests.conftest import BotServer
from tests.support.cards import buttons, first_card, headers, retry_value, state_line
from tests.support.fakes import FakeDeployHQ, FakeSlack, Reply
from tests.support.gunicorn import Gunicorn
from tests.support.redis_server import RedisServer
from tests.support.signed import DEPLOYMENT_ID, WEBHOOK_SECRET, delivery


@pytest.fixture
def procfile_env(env: dict[str, str], start_redis: Callable[..., RedisServer]) -> dict[str, str]:
    return {
        **env,
        "REDIS_URL": start_redis().url,
        "SLACK_TIMEOUT": "2",
        "RECONCILE_INTERVAL": "0.5",
        "BOT_FAILPOINT_DIR": tempfile.mkdtemp(prefix="bot-failpoint-"),
    }


@pytest.fixture
def killed_after_post(procfile_env: dict[str, str]) -> Iterator[Gunicorn]:
    """The Procfile's gunicorn, whose first worker dies the moment Slack has taken a card's
    post, before the message's ts is saved."""
    server = Gunicorn({**procfile_env, "BOT_FAILPOINT": "posted"}, workers=1)
    server.wait_ready()
    yield server
    server.stop()


def test_a_worker_killed_after_slack_took_the_post_leaves_one_card(
    killed_after_post: Gunicorn, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    (worker,) = killed_after_post.wait_workers(1)
    answer = requests.post(
        f"{killed_after_post.url}/deployhq/webhook?token={WEBHOOK_SECRET}",
        json=delivery(),
        timeout=10,
    )
    assert answer.json()["result"] == "accepted"
    fake_slack.wait_for(lambda: killed_after_post.workers() not in ([], [worker]), timeout=20)

    # The new worker's reconciler finds the card unsettled, finds Slack's message by its
    # metadata, and draws the card there.
    fake_slack.wait_for(lambda: fake_slack.api_calls("chat.update"), timeout=30)
    assert len(fake_slack.cards_taken(DEPLOYMENT_ID)) == 1
    assert {u["ts"] for u in fake_slack.api_calls("chat.update")} == {
        fake_slack.cards_taken(DEPLOYMENT_ID)[0]["ts"]
    }
    assert fake_slack.api_calls("conversations.history")[0]["include_all_metadata"] in (
        True,
        "true",
        "1",
    )


def test_a_post_whose_answer_is_lost_is_found_not_posted_again(
    bot: BotServer, fake_slack: FakeSlack
):
    fake_slack.script("chat.postMessage", Reply(200, None, drop=True))  # taken, then hung up

    bot.webhook(delivery())

    fake_slack.wait_for(lambda: fake_slack.api_calls("chat.update"), timeout=15)
    assert len(fake_slack.cards_taken(DEPLOYMENT_ID)) == 1
    (card,) = fake_slack.cards_taken(DEPLOYMENT_ID)
    assert card["metadata"] == {
        "event_type": "deployhq_card",
        "event_payload": {"deployment": DEPLOYMENT_ID},
    }
    assert fake_slack.api_calls("chat.update")[-1]["ts"] == card["ts"]


def test_a_slack_rate_limit_longer_than_the_card_lock_holds_up_no_delivery(
    bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    bot.webhook(delivery())
    fake_slack.rate_limit("chat.update", seconds=5, retry_after=6)  # longer than the lock (5 s)
    bot.click(retry_value(first_card(fake_slack)))  # its redraw waits out Retry-After
    fake_deployhq.wait_for(fake_deployhq.retries)
    time.sleep(0.5)

    again = delivery(
        status="failed",
        timestamps={"queued_at": fake_deployhq.now(), "completed_at": fake_deployhq.now()},
    )
    started = time.monotonic()
    answer = bot.webhook(again, settle=False)
    took = time.monotonic() - started

    assert took < 1.0, f"the delivery was answered after {took:.1f} s"
    assert answer.json()["result"] in ("updated", "queued")
    fake_slack.wait_for(lambda: any("failed again" in h for h in headers(fake_slack)), timeout=40)
    assert len(fake_slack.cards_taken(DEPLOYMENT_ID)) == 1  # never a second, untracked card


def test_a_retrys_late_answer_never_moves_a_completed_card_back(
    start_bot: Callable[..., BotServer],
    env: dict[str, str],
    fake_slack: FakeSlack,
    fake_deployhq: FakeDeployHQ,
):
    bot = start_bot(Settings.from_env({**env, "DEPLOYHQ_TIMEOUT": "10"}))
    bot.webhook(delivery())
    fake_deployhq.script("retry", Reply(200, None, delay=4))  # queued at once, answered late
    bot.click(retry_value(first_card(fake_slack)))
    fake_deployhq.wait_for(fake_deployhq.actions)
    queued = fake_deployhq.deployments[DEPLOYMENT_ID]["timestamps"]["queued_at"]

    running = delivery(status="running", timestamps={"queued_at": queued, "started_at": queued})
    completed = delivery(
        status="completed",
        timestamps={"queued_at": queued, "started_at": queued, "completed_at": queued},
    )
    assert bot.webhook(running, record=False).json()["result"] in ("updated", "queued")
    assert bot.webhook(completed, record=False).json()["result"] in ("updated", "queued")
    fake_slack.wait_for(lambda: any("completed" in h for h in headers(fake_slack)))

    fake_slack.wait_for(
        lambda: any("Retried. DeployHQ status" in m.get("text", "") for m in thread(fake_slack)),
        timeout=15,
    )
    bot.settle()
    last = fake_slack.api_calls("chat.update")[-1]
    assert (
        last["blocks"][0]["text"]["text"] == ":white_check_mark: Deployment completed: My Project"
    )
    assert "Retried by <@U0CLICKER>" in state_line(last)
    assert "deployhq_retry" not in buttons(last)


def thread(slack: FakeSlack) -> list[dict]:
    return [m for m in slack.api_calls("chat.postMessage") if "thread_ts" in m]
