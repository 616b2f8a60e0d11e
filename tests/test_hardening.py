"""Hardening: acks never wait, unsigned requests never reach a 500, and every action is scoped."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from bot.bolt.command_words import Help, parse
from bot.config import Settings, is_channel_id
from bot.deployhq.deployment import is_identifier
from bot.store.kv import MemoryKeyValue
from bot.words.buttons import ActionTarget
from tests.conftest import BotServer
from tests.support.cards import first_card, retry_value, state_line
from tests.support.fakes import FakeDeployHQ, FakeSlack, Reply
from tests.support.signed import DEPLOYMENT_ID, click_body, delivery, slack_headers


def timed(call: Callable[[], requests.Response]) -> tuple[requests.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


# --- acks never wait ---------------------------------------------------------------------------


def test_a_click_is_acknowledged_at_once_while_slack_rate_limits_every_post(
    reconciling_bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    bot = reconciling_bot
    bot.webhook(delivery())
    value = retry_value(first_card(fake_slack))
    fake_slack.rate_limit("chat.postMessage", seconds=8, retry_after=5)
    burst = [str(uuid.uuid4()) for _ in range(12)]

    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(lambda i: bot.webhook(delivery(identifier=i), settle=False), burst))
        time.sleep(1.0)  # the Slack pool is now asleep on Retry-After
        ack, took = timed(lambda: bot.click(value))

    assert [a.json()["result"] for a in answers] == ["accepted"] * 12
    assert ack.status_code == 200 and took < 1.0
    fake_deployhq.wait_for(fake_deployhq.retries, timeout=3)  # the retry is not starved either
    # Every failure is posted once the limit lifts (with the first card: 13), none twice.
    fake_slack.wait_for(
        lambda: len([m for m in fake_slack.taken if "thread_ts" not in m]) == 13, timeout=40
    )
    bot.settle(later=False)  # the pushes that landed scheduled nothing more
    assert len([m for m in fake_slack.taken if "thread_ts" not in m]) == 13


def test_with_deployhq_hung_on_twenty_clicks_help_and_more_clicks_answer_at_once(
    start_bot: Callable[..., BotServer],
    env: dict[str, str],
    fake_slack: FakeSlack,
    fake_deployhq: FakeDeployHQ,
):
    bot = start_bot(Settings.from_env({**env, "DEPLOYHQ_TIMEOUT": "4"}))
    fake_deployhq.always("show", Reply(200, None, delay=30))  # hangs past every deadline
    failures = [str(uuid.uuid4()) for _ in range(20)]
    values = [ActionTarget("my-project", d, f"{d}:1").encode() for d in failures]

    with ThreadPoolExecutor(max_workers=20) as pool:
        acks = list(pool.map(lambda i: timed(lambda: bot.click(values[i], key=f"k{i}")), range(20)))
    fake_deployhq.wait_for(lambda: len(fake_deployhq.calls) >= 20, timeout=5)
    help_answer, help_took = timed(lambda: bot.command("help"))
    late, late_took = timed(lambda: bot.click(values[0], user_id="U0LATE", key="late"))

    assert max(took for _, took in acks) < 1.0
    assert help_took < 1.0 and "/deployhq retry" in help_answer.json()["text"]
    assert late.status_code == 200 and late_took < 1.0
    assert fake_deployhq.retries() == []


def test_slacks_identity_check_is_never_in_a_clicks_path(
    start_bot: Callable[..., BotServer],
    fake_slack: FakeSlack,
    fake_deployhq: FakeDeployHQ,
):
    fake_slack.always("auth.test", Reply(200, {"ok": False, "error": "fatal_error"}, delay=6))
    bot = start_bot()
    bot.webhook(delivery())

    ack, took = timed(lambda: bot.click(retry_value(first_card(fake_slack))))

    assert ack.status_code == 200 and took < 1.0
    assert "no longer available" not in ack.text
    fake_slack.wait_for(
        lambda: any("Retried by" in state_line(u) for u in fake_slack.api_calls("chat.update"))
    )
    assert len(fake_deployhq.retries()) == 1


# --- verify before parsing -----------------------------------------------------------------------

DEEP = "payload=" + "[" * 100_000
ZEROS = "v0=" + "0" * 64


def signed_as(timestamp: str | None = None, signature: str | None = ZEROS) -> dict[str, str]:
    """Headers that look signed; ``timestamp`` None means now."""
    headers = {"X-Slack-Request-Timestamp": timestamp or str(int(time.time()))}
    if signature is not None:
        headers["X-Slack-Signature"] = signature
    return headers


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        ("payload={}", signed_as("abc"), 400),
        ("payload={}", signed_as("1e9"), 400),
        ("payload={}", signed_as("1\u00b23"), 400),  # a superscript two: "isdigit", not a digit
        ("payload={}", signed_as(signature="sha1=x"), 400),
        ("payload={}", signed_as(signature=None), 401),
        (DEEP, {}, 401),
        (DEEP, signed_as(), 401),
    ],
    ids=[
        "ts-abc",
        "ts-1e9",
        "ts-superscript",
        "sig-form",
        "no-sig",
        "deep-unsigned",
        "deep-bad-sig",
    ],
)
def test_malformed_unsigned_requests_are_4xx_with_no_traceback(
    bot: BotServer,
    fake_slack: FakeSlack,
    fake_deployhq: FakeDeployHQ,
    caplog: pytest.LogCaptureFixture,
    body: str,
    headers: dict[str, str],
    status: int,
):
    response = bot.http.post(
        bot.url + "/slack/events",
        data=body.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded", **headers},
        timeout=10,
    )

    assert response.status_code == status
    assert response.json()["ok"] is False
    assert "Traceback" not in caplog.text
    assert fake_deployhq.calls == [] and fake_slack.responses() == []


def test_a_signed_body_that_cannot_be_parsed_is_a_400(bot: BotServer, caplog):
    response = bot.slack_post(DEEP)
    assert response.status_code == 400
    assert "Traceback" not in caplog.text


# --- scope --------------------------------------------------------------------------------------


@pytest.fixture
def scoped(start_bot: Callable[..., BotServer], env: dict[str, str]) -> BotServer:
    return start_bot(
        Settings.from_env(
            {
                **env,
                "DEPLOYHQ_CHANNELS": "my-project=C0PROJECT, other=C0OTHER",
                "DEPLOYHQ_PROJECTS": "my-project,other",
                "DEPLOYHQ_ACTION_USERS": "U0LEAD",
            }
        )
    )


def test_deployhq_channels_send_each_projects_cards_to_its_channel(
    scoped: BotServer, fake_slack: FakeSlack
):
    scoped.webhook(delivery())
    assert first_card(fake_slack)["channel"] == "C0PROJECT"


def test_channel_override_only_to_a_configured_channel(
    scoped: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    for channel in ("D0SOMEDM", "G0PRIVATE", "C0PROJECT\n", "#general"):
        refused = scoped.webhook(delivery(), channel=channel)
        assert refused.status_code == 403, channel
    assert fake_slack.api_calls("chat.postMessage") == []

    assert scoped.webhook(delivery(), channel="C0OTHER").json()["result"] == "accepted"
    assert first_card(fake_slack)["channel"] == "C0OTHER"


def test_deployhq_projects_limits_deliveries_commands_and_buttons(
    scoped: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    outsider = delivery(project={"name": "Secret", "permalink": "secret-project"})
    assert scoped.webhook(outsider).json()["result"] == "ignored"
    assert fake_slack.api_calls("chat.postMessage") == []

    scoped.command(f"retry secret-project {DEPLOYMENT_ID}", user_id="U0LEAD")
    target = ActionTarget("secret-project", DEPLOYMENT_ID, f"{DEPLOYMENT_ID}:1")
    scoped.click(target.encode(), user_id="U0LEAD", key="button")

    for key in ("c1", "button"):
        note = fake_slack.wait_for(lambda k=key: fake_slack.responses(k))[0]
        assert "does not act on the project *secret-project*" in note["text"]
    assert fake_deployhq.calls == []


def test_with_an_allowlist_reads_are_refused_too_before_any_deployhq_call(
    scoped: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    scoped.command(f"status my-project {DEPLOYMENT_ID}", user_id="U0STRANGER", key="status")
    scoped.command("failed my-project", user_id="U0STRANGER", key="failed")
    scoped.command(f"status my-project {DEPLOYMENT_ID}", user_id="U0LEAD", key="lead")

    for key in ("status", "failed"):
        note = fake_slack.wait_for(lambda k=key: fake_slack.responses(k))[0]
        assert "not among the people allowed" in note["text"]
    fake_slack.wait_for(lambda: fake_slack.responses("lead"))
    assert len(fake_deployhq.calls) == 1  # only the allowed user's status


# --- the small ones -----------------------------------------------------------------------------


def test_a_count_in_other_digits_is_usage_not_a_crash(bot: BotServer):
    assert isinstance(parse("failed my-project ²"), Help)
    assert isinstance(parse("failed my-project ٣"), Help)
    answer = bot.command("failed my-project ²")
    assert answer.status_code == 200 and "from 1 to 20" in answer.json()["text"]


def test_ids_with_a_trailing_newline_are_not_ids():
    assert is_channel_id("C0123") and not is_channel_id("C0123\n")
    assert is_identifier("abc-1") and not is_identifier("abc-1\n")


def test_a_chunked_body_over_a_megabyte_is_413(bot: BotServer):
    def chunks() -> Iterator[bytes]:
        for _ in range(1100):
            yield b"x" * 1024

    response = bot.http.post(
        bot.url + "/deployhq/webhook",
        data=chunks(),
        headers={"Content-Type": "application/json"},
        auth=("deployhq", "test-webhook-secret-fedcba9876543210"),
        timeout=10,
    )
    assert response.status_code == 413


def test_the_in_process_store_drops_expired_entries():
    kv = MemoryKeyValue()
    kv.SWEEP_SECONDS = 0.0
    for i in range(100):
        kv.put(f"k{i}", "v", 0.01)
    time.sleep(0.05)
    kv.put("fresh", "v", 60)
    assert len(kv) == 1


def test_a_click_body_signed_for_another_secret_reaches_nothing(
    bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    body = click_body(
        ActionTarget("my-project", DEPLOYMENT_ID, f"{DEPLOYMENT_ID}:1").encode(),
        response_url=fake_slack.response_url(),
    )
    response = bot.http.post(
        bot.url + "/slack/events", data=body, headers=slack_headers(body, secret="other"), timeout=5
    )
    assert response.status_code == 401
    assert fake_deployhq.calls == []
