"""Retry clicks: outcomes on the card, private answers, and exactly-once under a click storm."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from bot.config import Settings
from tests.conftest import BotServer
from tests.support.cards import buttons, retry_value, state_line
from tests.support.fakes import FakeDeployHQ, FakeSlack, Reply
from tests.support.signed import delivery


def posted_card(bot: BotServer, slack: FakeSlack) -> dict:
    assert bot.webhook(delivery()).json()["result"] == "accepted"
    return slack.api_calls("chat.postMessage")[-1]


def final_update(slack: FakeSlack, text: str) -> dict:
    return slack.wait_for(
        lambda: next(
            (u for u in reversed(slack.api_calls("chat.update")) if text in state_line(u)), None
        )
    )


def test_the_same_failure_delivered_twice_posts_once(bot: BotServer, fake_slack: FakeSlack):
    first = bot.webhook(delivery())
    second = bot.webhook(delivery())

    assert (first.json()["result"], second.json()["result"]) == ("accepted", "duplicate")
    assert len(fake_slack.api_calls("chat.postMessage")) == 1


def test_other_statuses_are_accepted_and_post_nothing(bot: BotServer, fake_slack: FakeSlack):
    for status in ("running", "completed", "something-new"):
        response = bot.webhook(delivery(status=status))
        assert response.status_code == 200
        assert response.json()["result"] == "ignored"
    assert fake_slack.api_calls("chat.postMessage") == []


def test_a_422_shows_deployhqs_reason_word_for_word(
    bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    card = posted_card(bot, fake_slack)
    fake_deployhq.script("retry", Reply(422, {"error": "Archived deployments cannot be retried"}))

    bot.click(retry_value(card))

    update = final_update(fake_slack, "refused")
    assert "“Archived deployments cannot be retried”" in state_line(update)
    assert "deployhq_retry" not in buttons(update)


def test_a_500_leaves_the_retry_in_doubt_until_deployhqs_record_settles_it(
    start_bot: Callable[..., BotServer],
    env: dict,
    fake_slack: FakeSlack,
    fake_deployhq: FakeDeployHQ,
):
    """A 500 may stand for work done: nothing more is sent until DeployHQ's record shows the
    retry never happened (here it did not); then Retry is offered again, and works."""
    bot = start_bot(
        Settings.from_env({**env, "DEPLOYHQ_TIMEOUT": "1", "DEPLOYHQ_DOUBT_SECONDS": "1"})
    )
    card = posted_card(bot, fake_slack)
    fake_deployhq.script("retry", Reply(500, {"status": 500, "error": "Internal error"}))

    bot.click(retry_value(card))
    doubt = final_update(fake_slack, "DeployHQ answered HTTP 500: “Internal error”.")
    assert "It may still have queued the retry" in state_line(doubt)
    assert "deployhq_retry" not in buttons(doubt)
    failed = final_update(fake_slack, "never queued")
    assert "deployhq_retry" in buttons(failed)

    bot.click(retry_value(failed), user_id="U0SECOND")
    final_update(fake_slack, "Retried by <@U0SECOND>")
    assert len(fake_deployhq.retries()) == 2


def test_a_retry_in_doubt_is_offered_again_when_its_doubt_window_ends_not_at_the_next_pass(
    start_bot: Callable[..., BotServer],
    env: dict,
    fake_slack: FakeSlack,
    fake_deployhq: FakeDeployHQ,
):
    """A 500 whose record never changes: the first recheck (2 s, within the 5 s window) can
    settle nothing; the next is scheduled for the window's end, so Retry comes back then, not
    at the reconciler's next pass (an hour away here)."""
    quick = {"DEPLOYHQ_TIMEOUT": "1", "DEPLOYHQ_DOUBT_SECONDS": "5", "RECONCILE_INTERVAL": "3600"}
    bot = start_bot(Settings.from_env({**env, **quick}))
    card = posted_card(bot, fake_slack)
    fake_deployhq.script("retry", Reply(500, {"status": 500, "error": "Internal error"}))

    started = time.monotonic()
    bot.click(retry_value(card))
    final_update(fake_slack, "DeployHQ answered HTTP 500")
    back = fake_slack.wait_for(
        lambda: next(
            (
                u
                for u in reversed(fake_slack.api_calls("chat.update"))
                if "never queued" in state_line(u)
            ),
            None,
        ),
        timeout=15,  # the doubt window and 10 s
    )
    took = time.monotonic() - started
    assert "deployhq_retry" in buttons(back)
    assert 5 <= took < 15, took
    assert len(fake_deployhq.retries()) == 1


def test_credentials_refused_says_so_without_printing_them(
    bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    card = posted_card(bot, fake_slack)
    fake_deployhq.script("retry", Reply(401, {"status": 401, "error": "Access denied"}))

    bot.click(retry_value(card))

    text = state_line(final_update(fake_slack, "did not go through"))
    assert "refused the bot's API credentials" in text
    assert "k" * 40 not in str(fake_slack.calls)


def test_a_second_clicker_is_told_privately_who_retried_it(
    bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    card = posted_card(bot, fake_slack)
    bot.click(retry_value(card), user_id="U0FIRST")
    final_update(fake_slack, "Retried by <@U0FIRST>")

    bot.click(retry_value(card), user_id="U0LATE", key="late")

    note = fake_slack.wait_for(fake_slack.responses)[0]
    assert note["response_type"] == "ephemeral"
    assert note["replace_original"] is False
    assert "<@U0FIRST> already retried this deployment" in note["text"]
    assert len(fake_deployhq.retries()) == 1


def test_thirty_concurrent_clicks_on_two_app_instances_retry_once(
    start_bot: Callable[..., BotServer], fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    instances = [start_bot(), start_bot()]
    card = posted_card(instances[0], fake_slack)
    value = retry_value(card)
    fake_deployhq.script("retry", Reply(200, None, delay=0.3))  # widen the race window

    with ThreadPoolExecutor(max_workers=30) as pool:
        acks = list(
            pool.map(
                lambda i: instances[i % 2].click(value, user_id=f"U0CLICK{i:02d}", key=f"k{i}"),
                range(30),
            )
        )

    assert [a.status_code for a in acks] == [200] * 30
    final_update(fake_slack, "Retried by")
    fake_slack.wait_for(lambda: len(fake_slack.responses()) == 29)
    assert len(fake_deployhq.retries()) == 1
    assert all("already" in note["text"] for note in fake_slack.responses())


def test_an_unreadable_button_value_retries_nothing(
    bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    ack = bot.click('{"p": "x"}')

    assert ack.status_code == 200
    note = fake_slack.wait_for(fake_slack.responses)[0]
    assert "nothing was retried" in note["text"]
    assert fake_deployhq.retries() == []
