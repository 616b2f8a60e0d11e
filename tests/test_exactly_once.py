"""Exactly once, whatever happens: DeployHQ's own record decides every retry and every card.

DeployHQ answering after the client gave up, an answer that trickles in, Redis forgetting its
keys, deliveries that claim what DeployHQ does not show, notifications that never come and
Slack refusing updates: one retry at most, and the card ends on DeployHQ's truth.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from bot.config import Settings
from tests.conftest import BotServer
from tests.support.cards import buttons, first_card, retry_value, state_line, updates
from tests.support.fakes import FakeDeployHQ, FakeSlack, Reply
from tests.support.redis_server import RedisServer
from tests.support.signed import DEPLOYMENT_ID, delivery


def headline(message: dict) -> str:
    return str(message["blocks"][0]["text"]["text"])


@pytest.fixture
def impatient_bot(start_bot: Callable[..., BotServer], env: dict[str, str]) -> BotServer:
    """DeployHQ gets 1 s for each call."""
    return start_bot(Settings.from_env({**env, "DEPLOYHQ_TIMEOUT": "1"}))


# --- DeployHQ answering late ------------------------------------------------------------------


def test_a_retry_answered_after_the_timeout_then_a_second_click_retries_once(
    impatient_bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    impatient_bot.webhook(delivery())
    value = retry_value(first_card(fake_slack))
    # DeployHQ queues the retry at once but answers after the client has given up.
    fake_deployhq.script("retry", Reply(200, None, delay=2.5))

    impatient_bot.click(value, user_id="U0FIRST")
    (doubt,) = fake_slack.wait_for(lambda: updates(fake_slack, "may have queued it"))
    assert "deployhq_retry" not in buttons(doubt)  # nothing more is sent while in doubt

    impatient_bot.click(value, user_id="U0SECOND", key="second")

    note = fake_slack.wait_for(lambda: fake_slack.responses("second"))[0]
    assert "<@U0FIRST> already retried" in note["text"]
    done = fake_slack.wait_for(lambda: updates(fake_slack, "Retried by <@U0FIRST>"))[-1]
    assert "DeployHQ status: *pending*" in state_line(done)
    time.sleep(1.5)  # the late answer arrives; it must change nothing
    assert len(fake_deployhq.retries()) == 1


def test_an_answer_trickling_in_is_cut_at_the_deadline_and_settled_from_deployhqs_record(
    impatient_bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    impatient_bot.webhook(delivery())
    value = retry_value(first_card(fake_slack))
    # A byte every 0.3 s never trips a per-read timeout; the whole answer would take minutes.
    fake_deployhq.script("retry", Reply(200, None, trickle=0.3))

    started = time.monotonic()
    impatient_bot.click(value, user_id="U0FIRST")
    fake_slack.wait_for(lambda: updates(fake_slack, "may have queued it"))
    took = time.monotonic() - started

    assert took < 3.0  # the 1 s deadline held, whatever the server did
    # Within seconds the bot reads DeployHQ's record by itself and shows the truth.
    fake_slack.wait_for(lambda: updates(fake_slack, "Retried by <@U0FIRST>"), timeout=15)
    impatient_bot.click(value, user_id="U0LATE", key="late")
    fake_slack.wait_for(lambda: fake_slack.responses("late"))
    assert len(fake_deployhq.retries()) == 1


def test_a_retry_deployhq_never_queued_is_offered_again_once_the_doubt_has_run_out(
    start_bot: Callable[..., BotServer],
    env: dict[str, str],
    fake_slack: FakeSlack,
    fake_deployhq: FakeDeployHQ,
):
    bot = start_bot(Settings.from_env({**env, "DEPLOYHQ_TIMEOUT": "1"}))
    bot.app.bot.actions.doubt_seconds = 2.0  # a minute, in production
    bot.webhook(delivery())
    value = retry_value(first_card(fake_slack))
    # Timed out, and DeployHQ never processed it: its record keeps showing the failure.
    fake_deployhq.script("retry", Reply(500, {"error": "x"}, delay=2.5))

    bot.click(value, user_id="U0FIRST")
    fake_slack.wait_for(lambda: updates(fake_slack, "may have queued it"))

    # The bot re-reads DeployHQ by itself; once the doubt has run out, Retry is back.
    again = fake_slack.wait_for(lambda: updates(fake_slack, "never queued"), timeout=15)[-1]
    assert "deployhq_retry" in buttons(again)
    bot.click(retry_value(again), user_id="U0SECOND", key="second")
    fake_slack.wait_for(lambda: updates(fake_slack, "Retried by <@U0SECOND>"))
    assert len(fake_deployhq.retries()) == 2  # the one never queued, and the real one


# --- Redis forgetting -------------------------------------------------------------------------


def test_after_redis_loses_its_keys_an_old_button_of_a_completed_deployment_sends_nothing(
    bot: BotServer,
    fake_slack: FakeSlack,
    fake_deployhq: FakeDeployHQ,
    redis_server: RedisServer,
):
    bot.webhook(delivery())
    value = retry_value(first_card(fake_slack))
    bot.click(value, user_id="U0FIRST")
    fake_slack.wait_for(lambda: updates(fake_slack, "Retried by <@U0FIRST>"))
    fake_deployhq.set_status(DEPLOYMENT_ID, "completed", completed_at=datetime.now(UTC).isoformat())

    redis_server.flush()  # a restart without persistence, or eviction
    bot.click(value, user_id="U0OLDBUTTON", key="old")

    note = fake_slack.wait_for(lambda: fake_slack.responses("old"))[0]
    assert "Nothing was retried" in note["text"] and "*completed*" in note["text"]
    assert len(fake_deployhq.retries()) == 1


# --- deliveries DeployHQ does not back ----------------------------------------------------------


def test_a_delivery_with_a_false_project_name_shows_deployhqs(
    bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    fake_deployhq.record(delivery())  # DeployHQ's record: "My Project"
    forged = delivery(project={"name": "Staging blog", "permalink": "my-project"})

    assert bot.webhook(forged, record=False).json()["result"] == "accepted"

    card = first_card(fake_slack)
    assert headline(card) == ":x: Deployment failed: My Project"
    assert "Staging blog" not in str(card)


def test_a_delivery_for_a_deployment_the_account_does_not_have_gets_no_card(
    bot: BotServer,
    fake_slack: FakeSlack,
    fake_deployhq: FakeDeployHQ,
    caplog: pytest.LogCaptureFixture,
):
    fake_deployhq.missing.add(DEPLOYMENT_ID)

    response = bot.webhook(delivery(), record=False)

    assert response.status_code == 200
    assert fake_slack.api_calls("chat.postMessage") == []
    assert "DeployHQ has no deployment" in caplog.text
    assert fake_deployhq.retries() == []


def test_a_failure_older_than_the_max_delivery_age_is_not_posted(
    bot: BotServer, fake_slack: FakeSlack
):
    old = datetime.now(UTC) - timedelta(days=14)
    replayed = delivery(
        timestamps={"queued_at": old.isoformat(), "completed_at": old.isoformat(), "duration": 5}
    )

    assert bot.webhook(replayed).json()["result"] == "too-old"
    assert fake_slack.api_calls("chat.postMessage") == []


def test_while_deployhq_is_unreachable_the_card_is_posted_without_retry_then_offers_it(
    reconciling_bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    fake_deployhq.script("show", Reply(503, raw=b"<html>down</html>"))

    reconciling_bot.webhook(delivery())

    card = first_card(fake_slack)
    assert "deployhq_retry" not in buttons(card)
    assert "Not yet confirmed with DeployHQ" in state_line(card)
    confirmed = fake_slack.wait_for(
        lambda: [u for u in fake_slack.api_calls("chat.update") if "deployhq_retry" in buttons(u)]
    )[0]
    assert "Not yet confirmed" not in state_line(confirmed)


def test_button_and_command_share_one_lock_even_when_the_delivery_lacks_its_finish_time(
    bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    fake_deployhq.record(delivery())  # DeployHQ knows when it failed
    vague = delivery(timestamps={"queued_at": delivery()["timestamps"]["queued_at"]})
    bot.webhook(vague, record=False)
    value = retry_value(first_card(fake_slack))
    fake_deployhq.script("retry", Reply(200, None, delay=0.5))

    bot.click(value, user_id="U0CLICKER")
    bot.command(f"retry my-project {DEPLOYMENT_ID}", user_id="U0TYPIST")

    fake_slack.wait_for(lambda: fake_slack.responses("c1"))
    fake_slack.wait_for(lambda: updates(fake_slack, "Retried by"))
    assert len(fake_deployhq.retries()) == 1


# --- no card left behind ------------------------------------------------------------------------


def test_a_lost_completed_notification_still_reaches_the_card(
    reconciling_bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    reconciling_bot.webhook(delivery())
    reconciling_bot.click(retry_value(first_card(fake_slack)))
    fake_slack.wait_for(lambda: updates(fake_slack, "Retried by"))

    # DeployHQ runs and completes the retry; neither notification ever arrives.
    finished = datetime.now(UTC).isoformat()
    fake_deployhq.set_status(DEPLOYMENT_ID, "completed", started_at=finished, completed_at=finished)

    completed = fake_slack.wait_for(
        lambda: [u for u in fake_slack.api_calls("chat.update") if "completed" in headline(u)]
    )[-1]
    assert headline(completed) == ":white_check_mark: Deployment completed: My Project"
    assert "Retried by <@U0CLICKER>" in state_line(completed)


def test_slack_refusing_the_outcome_then_accepting_it_lands_the_outcome(
    reconciling_bot: BotServer, fake_slack: FakeSlack
):
    reconciling_bot.webhook(delivery())
    down = Reply(503, {"ok": False, "error": "service_unavailable"})
    fake_slack.script("chat.update", Reply(200, None), *[down] * 6)

    reconciling_bot.click(retry_value(first_card(fake_slack)))

    fake_slack.wait_for(lambda: len(updates(fake_slack, "Retried by")) >= 7, timeout=20)
    fake_slack.wait_for(  # and the thread's note, held back until the card was drawn
        lambda: [
            m
            for m in fake_slack.api_calls("chat.postMessage")
            if "thread_ts" in m and "Retried. DeployHQ status" in m["text"]
        ]
    )
