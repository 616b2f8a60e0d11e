"""Roll back from the card, and never retry a failure newer deployments have overtaken."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from bot.words.buttons import RollbackTarget
from tests.conftest import BotServer
from tests.support.cards import buttons, first_card, retry_value, state_line, updates
from tests.support.fakes import FakeDeployHQ, FakeSlack, Reply
from tests.support.signed import DEPLOYMENT_ID, at, delivery

GOOD_ID = "11111111-2222-3333-4444-555555555555"
ELSEWHERE_ID = "99999999-2222-3333-4444-555555555555"
NEWER_ID = "77777777-2222-3333-4444-555555555555"
STAGING = [{"name": "Staging", "identifier": "s-2", "protocol_type": "ssh"}]


def earlier(identifier: str, seconds: float, **changes: Any) -> dict[str, Any]:
    """A completed deployment queued ``seconds`` after the failure's (negative: before it)."""
    return delivery(
        identifier=identifier,
        status="completed",
        end_revision={"ref": "a1b2c3d4e5f6", "message": "Known good"},
        timestamps={
            "queued_at": at(seconds),
            "started_at": at(seconds + 2),
            "completed_at": at(seconds + 60),
            "duration": 58,
        },
        **changes,
    )


def history(deployhq: FakeDeployHQ, *deployments: dict[str, Any]) -> None:
    """DeployHQ's list for the project, newest first; each is also its current record."""
    deployhq.history[:] = list(deployments)
    for deployment in deployments:
        deployhq.record(deployment)


def roll_back(bot: BotServer, card: dict, **options: Any) -> None:
    """Press the card's Roll back button (and confirm)."""
    value = buttons(card)["deployhq_rollback"]["value"]
    bot.click(value, action_id="deployhq_rollback", **options)


@pytest.fixture
def card(bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ) -> dict:
    """A failure whose servers ran GOOD_ID before it (and Staging ran something since)."""
    history(
        fake_deployhq,
        earlier(ELSEWHERE_ID, -60, servers=STAGING),
        delivery(),
        earlier(GOOD_ID, -3600),
    )
    bot.webhook(delivery())
    return fake_slack.wait_for(
        lambda: next(
            (u for u in fake_slack.api_calls("chat.update") if "deployhq_rollback" in buttons(u)),
            None,
        )
    )


def test_roll_back_appears_for_the_last_good_deployment_on_the_same_servers(card: dict):
    button = buttons(card)["deployhq_rollback"]
    assert RollbackTarget.decode(button["value"]).to == GOOD_ID  # not Staging's newer success
    confirm = button["confirm"]["text"]["text"]
    assert "Production Server back on a1b2c3d" in confirm
    assert "deployed " in confirm and "UTC" in confirm
    assert "deployhq_retry" in buttons(card)


def test_no_roll_back_without_a_completed_deployment_on_the_same_servers(
    bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    history(fake_deployhq, delivery(), earlier(ELSEWHERE_ID, -3600, servers=STAGING))
    bot.webhook(delivery())
    assert fake_deployhq.wait_for(
        lambda: [c for c in fake_deployhq.calls if c.path.endswith("/deployments")]
    )
    shown = [first_card(fake_slack), *fake_slack.api_calls("chat.update")]
    assert all("deployhq_rollback" not in buttons(m) for m in shown)


def test_ten_clicks_over_two_instances_roll_back_once_to_the_right_deployment(
    card: dict,
    start_bot: Callable[..., BotServer],
    bot: BotServer,
    fake_slack: FakeSlack,
    fake_deployhq: FakeDeployHQ,
):
    instances = [bot, start_bot()]
    value = buttons(card)["deployhq_rollback"]["value"]
    fake_deployhq.script("rollback", Reply(200, None, delay=0.3))

    with ThreadPoolExecutor(max_workers=10) as pool:
        list(
            pool.map(
                lambda i: instances[i % 2].click(
                    value, user_id=f"U0R{i}", key=f"r{i}", action_id="deployhq_rollback"
                ),
                range(10),
            )
        )

    done = fake_slack.wait_for(lambda: updates(fake_slack, "Rolled back by"))[-1]
    fake_slack.wait_for(lambda: len(fake_slack.responses()) >= 9)
    (call,) = fake_deployhq.rollbacks()
    assert call.path == f"/projects/my-project/deployments/{GOOD_ID}/rollback"
    assert call.data == {"mode": "queue"}
    assert "to `a1b2c3d`" in state_line(done) and "*pending*" in state_line(done)
    assert all("already" in r["text"] and "roll" in r["text"] for r in fake_slack.responses())


def test_retry_after_a_rollback_and_rollback_after_a_retry_make_no_call(
    card: dict, bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    roll_back(bot, card, user_id="U0FIRST")
    fake_slack.wait_for(lambda: updates(fake_slack, "Rolled back by"))
    bot.click(retry_value(card), user_id="U0LATE", key="late")
    note = fake_slack.wait_for(lambda: fake_slack.responses("late"))[0]
    assert "<@U0FIRST> already rolled this deployment back" in note["text"]
    assert fake_deployhq.retries() == [] and len(fake_deployhq.rollbacks()) == 1


def test_rollback_after_a_retry_makes_no_call(
    card: dict, bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    bot.click(retry_value(card), user_id="U0FIRST")
    fake_slack.wait_for(lambda: updates(fake_slack, "Retried by"))
    roll_back(bot, card, user_id="U0LATE", key="late")
    note = fake_slack.wait_for(lambda: fake_slack.responses("late"))[0]
    assert "<@U0FIRST> already retried this deployment" in note["text"]
    assert fake_deployhq.rollbacks() == []


def test_a_refused_rollback_shows_deployhqs_reason_and_a_500_leaves_it_in_doubt(
    card: dict, bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    reason = "Cannot rollback to the latest deployment for this server"
    fake_deployhq.script("rollback", Reply(422, {"error": reason}))
    roll_back(bot, card)
    refused = fake_slack.wait_for(lambda: updates(fake_slack, "refused the rollback"))[-1]
    assert f"“{reason}”" in state_line(refused)
    fake_deployhq.script("rollback", Reply(500, {"error": "boom"}))
    roll_back(bot, card, key="again")
    # A 500 may stand for a rollback queued: nothing more is offered until DeployHQ says.
    doubt = fake_slack.wait_for(
        lambda: updates(fake_slack, "DeployHQ answered HTTP 500: “boom”. It may still have queued")
    )
    assert not {"deployhq_retry", "deployhq_rollback"} & set(buttons(doubt[-1]))


def test_later_notifications_of_the_rollback_update_the_same_card(
    card: dict, bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    roll_back(bot, card)
    fake_slack.wait_for(lambda: updates(fake_slack, "Rolled back by"))
    new = fake_deployhq.history[0]
    new_id = new["identifier"]
    assert new_id not in (DEPLOYMENT_ID, GOOD_ID)

    running = bot.webhook(
        {**new, "status": "running", "timestamps": {**new["timestamps"], "started_at": at(900)}}
    )
    assert running.json()["result"] == "updated"
    completed = {
        **new,
        "status": "completed",
        "timestamps": {**new["timestamps"], "started_at": at(900), "completed_at": at(960)},
    }
    assert bot.webhook(completed).json()["result"] == "updated"

    last = fake_slack.wait_for(lambda: updates(fake_slack, "*completed*"))[-1]
    assert "Rolled back by" in state_line(last)
    cards = [m for m in fake_slack.api_calls("chat.postMessage") if "thread_ts" not in m]
    assert len(cards) == 1  # the same card all along
    thread = [m["text"] for m in fake_slack.api_calls("chat.postMessage") if "thread_ts" in m]
    assert any(t.startswith(":rewind: The rollback: :white_check_mark: Completed") for t in thread)


def test_the_rollback_command_uses_the_same_lock(
    card: dict, bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    bot.command(f"rollback my-project {DEPLOYMENT_ID}", user_id="U0TYPIST")
    said = fake_slack.wait_for(lambda: fake_slack.responses("c1"))[0]
    assert said["response_type"] == "in_channel" and "rolled back to `a1b2c3d`" in said["text"]
    roll_back(bot, card, key="button")
    assert (
        "already rolled" in fake_slack.wait_for(lambda: fake_slack.responses("button"))[0]["text"]
    )
    assert len(fake_deployhq.rollbacks()) == 1


# --- never put older code back by accident ---------------------------------------------------


def test_a_retry_of_a_failure_overtaken_on_its_servers_makes_no_call_and_says_why(
    card: dict, bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    fake_deployhq.history.insert(0, earlier(NEWER_ID, 600))  # a fix deployed since, same servers

    bot.click(retry_value(card), user_id="U0LATE", key="late")
    bot.command(f"retry my-project {DEPLOYMENT_ID}", user_id="U0TYPIST")

    note = fake_slack.wait_for(lambda: fake_slack.responses("late"))[0]
    assert "Nothing was retried: deployment `77777777`" in note["text"]
    assert "has run on these servers since" in note["text"]
    unsafe = fake_slack.wait_for(lambda: updates(fake_slack, "Retry is no longer safe"))[-1]
    assert "deployhq_retry" not in buttons(unsafe) and "deployhq_rollback" not in buttons(unsafe)
    fake_slack.wait_for(lambda: fake_slack.responses("c1"))
    assert fake_deployhq.retries() == []


# --- Roll back held to Retry's standard -------------------------------------------------------


def test_a_rollback_over_newer_code_sends_nothing_by_button_or_command(
    card: dict, bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    fake_deployhq.history.insert(0, earlier(NEWER_ID, 600))  # a fix deployed since, same servers

    roll_back(bot, card, user_id="U0LATE", key="late")
    bot.command(f"rollback my-project {DEPLOYMENT_ID}", user_id="U0TYPIST")

    note = fake_slack.wait_for(lambda: fake_slack.responses("late"))[0]
    assert "Nothing was rolled back: deployment `77777777`" in note["text"]
    fake_slack.wait_for(lambda: fake_slack.responses("c1"))
    assert fake_deployhq.rollbacks() == [] and fake_deployhq.actions() == []


def test_a_roll_back_button_naming_another_target_than_deployhq_gives_now_sends_nothing(
    card: dict, bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    archived = {**earlier(GOOD_ID, -3600), "archived": True}  # archived since the card was drawn
    history(fake_deployhq, earlier(ELSEWHERE_ID, -60, servers=STAGING), delivery(), archived)

    roll_back(bot, card, key="stale")

    note = fake_slack.wait_for(lambda: fake_slack.responses("stale"))[0]
    assert "the card was out of date" in note["text"]
    redrawn = fake_slack.wait_for(
        lambda: [
            u
            for u in fake_slack.api_calls("chat.update")
            if "deployhq_retry" in buttons(u) and "deployhq_rollback" not in buttons(u)
        ]
    )[-1]
    assert "not retried yet" in state_line(redrawn)
    assert fake_deployhq.rollbacks() == []


def test_a_config_files_only_deployment_is_never_a_target(
    bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    config_only = {
        **earlier("22222222-2222-3333-4444-555555555555", -600),
        "config_files_deployment": True,
        "branch": None,
        "end_revision": None,
    }
    history(fake_deployhq, delivery(), config_only, earlier(GOOD_ID, -3600))
    bot.webhook(delivery())
    with_button = fake_slack.wait_for(
        lambda: [
            u for u in fake_slack.api_calls("chat.update") if "deployhq_rollback" in buttons(u)
        ]
    )[-1]
    assert RollbackTarget.decode(buttons(with_button)["deployhq_rollback"]["value"]).to == GOOD_ID


def test_after_a_rollback_whose_deployment_failed_and_redis_lost_everything_retry_sends_nothing(
    card: dict,
    bot: BotServer,
    fake_slack: FakeSlack,
    fake_deployhq: FakeDeployHQ,
    redis_url: str,
):
    import redis as redis_client

    roll_back(bot, card)
    fake_slack.wait_for(lambda: updates(fake_slack, "Rolled back by"))
    (_, new_id) = fake_deployhq.actions()[0]
    fake_deployhq.set_status(new_id, "failed", completed_at=fake_deployhq.now())
    fake_deployhq.history[0]["status"] = "failed"
    redis_client.Redis.from_url(redis_url).flushdb()

    bot.click(retry_value(card), user_id="U0AFTER", key="after")

    note = fake_slack.wait_for(lambda: fake_slack.responses("after"))[0]
    assert "Nothing was retried" in note["text"] and new_id[:8] in note["text"]
    assert fake_deployhq.actions() == [("rollback", new_id)]
