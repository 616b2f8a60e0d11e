"""Faults: Redis dying mid-storm, DeployHQ and Slack misbehaving, a worker killed mid-retry.

Whatever breaks, no deployment is retried twice, every clicker hears back, no outcome is lost,
and Retry stays usable.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress

import pytest
import requests

from bot.config import Settings
from tests.conftest import BotServer
from tests.support.cards import buttons, first_card, retry_value, state_line, updates
from tests.support.fakes import FakeDeployHQ, FakeSlack, Reply
from tests.support.gunicorn import Gunicorn
from tests.support.redis_server import RedisServer
from tests.support.signed import WEBHOOK_SECRET, click_body, delivery, slack_headers


def headers_saying(slack: FakeSlack, text: str) -> list[dict]:
    return [u for u in slack.api_calls("chat.update") if text in u["blocks"][0]["text"]["text"]]


# --- Redis --------------------------------------------------------------------------------


@pytest.fixture
def durable_redis(start_redis: Callable[..., RedisServer]) -> RedisServer:
    return start_redis(persistent=True)


def test_redis_killed_in_a_click_storm_and_restarted_retries_once_and_answers_everyone(
    start_bot: Callable[..., BotServer],
    env: dict,
    durable_redis: RedisServer,
    fake_slack: FakeSlack,
    fake_deployhq: FakeDeployHQ,
):
    settings = Settings.from_env({**env, "REDIS_URL": durable_redis.url})
    bots = [start_bot(settings), start_bot(settings)]
    bots[0].webhook(delivery())
    value = retry_value(first_card(fake_slack))
    fake_deployhq.script("retry", Reply(200, None, delay=1.0))

    def storm(clicks: range) -> list[requests.Response]:
        with ThreadPoolExecutor(max_workers=len(clicks)) as pool:
            return list(
                pool.map(
                    lambda i: bots[i % 2].click(value, user_id=f"U0C{i:03d}", key=f"k{i}"), clicks
                )
            )

    acks = storm(range(0, 10))
    fake_deployhq.wait_for(fake_deployhq.retries)  # the winner is inside DeployHQ's call
    fake_slack.wait_for(lambda: len(fake_slack.responses()) == 9)
    durable_redis.stop()
    acks += storm(range(10, 20))
    fake_slack.wait_for(lambda: len(fake_slack.responses()) >= 19)
    durable_redis.start()
    acks += storm(range(20, 30))

    fake_slack.wait_for(
        lambda: len({c.path for c in fake_slack.calls if c.path.startswith("/respond/")}) >= 29
    )
    assert [a.status_code for a in acks] == [200] * 30
    answered = {
        c.path.removeprefix("/respond/"): c.data["text"]
        for c in fake_slack.calls
        if c.path.startswith("/respond/")
    }
    for i in range(10, 20):
        assert "cannot reach its Redis" in answered[f"k{i}"]
    for i in range(20, 30):
        assert "already" in answered[f"k{i}"]
    assert len(fake_deployhq.retries()) == 1
    health = bots[1].http.get(bots[1].url + "/healthz", timeout=5)
    assert health.status_code == 200  # recovered without a restart


# --- DeployHQ -----------------------------------------------------------------------------


@pytest.fixture
def black_hole() -> Iterator[str]:
    """An address whose connections are never accepted: its tiny backlog is already full."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        with suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    yield f"http://127.0.0.1:{port}"
    for sock in [*fillers, listener]:
        sock.close()


FAULTS = {
    "500": (Reply(500, {"status": 500, "error": "Internal error"}), "HTTP 500"),
    "503": (Reply(503, raw=b"<html><h1>Service Unavailable</h1></html>"), "HTTP 503"),
    "429": (Reply(429, {"error": "Too many requests"}, {"Retry-After": "2"}), "wait for 2 s"),
    "html-page": (Reply(502, raw=b"<!DOCTYPE html><title>Bad gateway</title>"), "HTTP 502"),
}


@pytest.mark.parametrize("fault", FAULTS, ids=list(FAULTS))
def test_deployhq_faults_say_what_happened_and_leave_retry_usable(
    start_bot: Callable[..., BotServer],
    env: dict,
    fake_slack: FakeSlack,
    fake_deployhq: FakeDeployHQ,
    fault: str,
):
    """A refusal (429) frees the failure at once. A server error may stand for work done
    behind it, so the failure stays in doubt until DeployHQ's record shows nothing was
    queued (here it was not), and only then is Retry offered again."""
    bot = start_bot(
        Settings.from_env({**env, "DEPLOYHQ_TIMEOUT": "1", "DEPLOYHQ_DOUBT_SECONDS": "1"})
    )
    reply, said = FAULTS[fault]
    bot.webhook(delivery())
    fake_deployhq.script("retry", reply)

    bot.click(retry_value(first_card(fake_slack)), user_id="U0FIRST")

    if reply.status >= 500:
        # DeployHQ answered: its status (and its words, when it gave any) are what is shown.
        (doubt,) = fake_slack.wait_for(
            lambda: updates(fake_slack, f"DeployHQ answered HTTP {reply.status}")
        )
        assert "It may still have queued the retry" in state_line(doubt)
        assert "deployhq_retry" not in buttons(doubt)
        said = "never queued, so nothing was retried"
    (failed,) = fake_slack.wait_for(lambda: updates(fake_slack, "did not go through"))
    assert said in state_line(failed)
    assert "deployhq_retry" in buttons(failed)
    if reply.status == 429:
        # DeployHQ's Retry-After is honoured: a click within it sends DeployHQ nothing.
        asked = len(fake_deployhq.calls)
        bot.click(retry_value(failed), user_id="U0EARLY", key="early")
        fake_slack.wait_for(lambda: len(updates(fake_slack, "did not go through")) == 2)
        assert len(fake_deployhq.calls) == asked
        time.sleep(2.05)
    bot.click(retry_value(failed), user_id="U0AGAIN", key="again")
    fake_slack.wait_for(lambda: updates(fake_slack, "Retried by <@U0AGAIN>"))
    assert len(fake_deployhq.retries()) == 2


def test_deployhq_connect_timeout_says_so_and_leaves_retry_usable(
    start_bot: Callable[..., BotServer], env: dict, fake_slack: FakeSlack, black_hole: str
):
    start_bot().webhook(delivery())  # posted (and confirmed) while DeployHQ answered
    bot = start_bot(
        Settings.from_env({**env, "DEPLOYHQ_TIMEOUT": "1", "DEPLOYHQ_BASE_URL": black_hole})
    )

    bot.click(retry_value(first_card(fake_slack)), user_id="U0FIRST")

    (failed,) = fake_slack.wait_for(lambda: updates(fake_slack, "did not go through"))
    assert "could not reach DeployHQ; nothing was sent" in state_line(failed)
    bot.click(retry_value(failed), user_id="U0AGAIN", key="again")
    fake_slack.wait_for(lambda: updates(fake_slack, "Retry requested by <@U0AGAIN>"))


# --- Slack --------------------------------------------------------------------------------


def test_a_rate_limited_post_is_posted_once_slack_lets_it(bot: BotServer, fake_slack: FakeSlack):
    """A 429 means Slack took nothing: the post is tried again after a back-off, by the card's
    push, never by the client inside the push (which would hold the card's push lease)."""
    fake_slack.script(
        "chat.postMessage", Reply(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"})
    )
    started = time.monotonic()

    response = bot.webhook(delivery(), settle="now")  # its push is tried again in 2 s

    assert response.json()["result"] == "accepted"
    assert time.monotonic() - started < 1.0  # the delivery is answered at once
    fake_slack.wait_for(lambda: len(fake_slack.api_calls("chat.postMessage")) >= 2)
    assert len(fake_slack.cards_taken(delivery()["identifier"])) == 1


def test_a_rate_limited_update_still_brings_the_outcome_to_the_card(
    bot: BotServer, fake_slack: FakeSlack
):
    bot.webhook(delivery())
    fake_slack.script(
        "chat.update",
        Reply(200, None),
        Reply(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"}),
    )

    bot.click(retry_value(first_card(fake_slack)))

    # The outcome is sent, refused with 429, and sent again after Retry-After.
    fake_slack.wait_for(lambda: len(updates(fake_slack, "Retried by")) == 2)
    assert len(fake_slack.api_calls("chat.update")) == 3


def test_a_5xx_on_update_does_not_lose_the_outcome(
    reconciling_bot: BotServer, fake_slack: FakeSlack
):
    bot = reconciling_bot
    bot.webhook(delivery())
    broken = Reply(500, {"ok": False, "error": "internal_error"})
    fake_slack.script("chat.update", Reply(200, None), broken, broken, broken)

    bot.click(retry_value(first_card(fake_slack)))

    # Slack's client tried three times; the reconciler tries again until it lands, in place.
    # (the fake records refused calls too: three refused, then the one that lands)
    fake_slack.wait_for(lambda: len(updates(fake_slack, "Retried by")) >= 4)
    cards = [m for m in fake_slack.api_calls("chat.postMessage") if "thread_ts" not in m]
    assert len(cards) == 1  # no second card


# --- a worker killed mid-retry ---------------------------------------------------------------


def test_a_worker_killed_mid_retry_leaves_no_card_stuck_retrying(
    env: dict, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    # Leases: the retry's 1 + 2 s; a card push the kill may interrupt, 2 + 5 s.
    server = Gunicorn({**env, "DEPLOYHQ_TIMEOUT": "1", "SLACK_TIMEOUT": "2"}, workers=1)
    try:
        server.wait_ready()
        requests.post(
            f"{server.url}/deployhq/webhook?token={WEBHOOK_SECRET}", json=delivery(), timeout=10
        )
        value = retry_value(first_card(fake_slack))
        fake_deployhq.script("retry", Reply(200, None, delay=5))

        def click(user_id: str, key: str) -> None:
            body = click_body(value, response_url=fake_slack.response_url(key), user_id=user_id)
            ack = requests.post(
                server.url + "/slack/events", data=body, headers=slack_headers(body), timeout=10
            )
            assert ack.status_code == 200

        click("U0DOOMED", "doomed")
        fake_deployhq.wait_for(fake_deployhq.retries)
        (worker,) = server.workers()
        os.kill(worker, signal.SIGKILL)  # mid-call: nothing will release the lock
        fake_slack.wait_for(lambda: server.workers() and server.workers() != [worker])
        retrying = fake_slack.api_calls("chat.update")[-1]
        assert "Retry requested by <@U0DOOMED>" in state_line(retrying)
        assert "deployhq_retry" in buttons(retrying)  # the card offers Retry throughout

        server.wait_ready()
        click("U0EARLY", "early")
        early = fake_slack.wait_for(lambda: fake_slack.responses("early"))[0]
        assert "<@U0DOOMED> already started retrying" in early["text"]

        # Its claim was marked sending before the call, so it never frees the failure by
        # itself: once the dead worker's lease has run out (1 s deadline + 2 s), the next click
        # settles it from DeployHQ's record, which shows the retry it queued.
        def later_click() -> str:
            key = f"later-{time.monotonic_ns()}"
            click("U0LATER", key)
            text = fake_slack.wait_for(lambda: fake_slack.responses(key))[0]["text"]
            return text if "already retried" in text else ""

        later = fake_slack.wait_for(later_click, timeout=30)
        assert "<@U0DOOMED> already retried this deployment" in later
        fake_slack.wait_for(lambda: updates(fake_slack, "Retried by <@U0DOOMED>"), timeout=30)
        assert len(fake_deployhq.retries()) == 1
    finally:
        server.stop()
