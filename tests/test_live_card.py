"""The card as a live view of its deployment, driven by webhooks over real HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.conftest import BotServer
from tests.support.cards import buttons, headers, retry_value, state_line
from tests.support.fakes import FakeDeployHQ, FakeSlack, Reply
from tests.support.signed import DEPLOYMENT_ID, delivery

CARD_TS = "1700000000.000001"


def later(seconds: float) -> str:
    """A moment after DeployHQ re-queued the deployment (the fake does that 'now')."""
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def event(status: str, **timestamps: str | float) -> dict:
    return delivery(status=status, timestamps=timestamps)


def thread(slack: FakeSlack, ts: str = CARD_TS) -> list[str]:
    return [m["text"] for m in slack.api_calls("chat.postMessage") if m.get("thread_ts") == ts]


def cards_posted(slack: FakeSlack) -> list[dict]:
    return [m for m in slack.api_calls("chat.postMessage") if "thread_ts" not in m]


def retried(bot: BotServer, slack: FakeSlack, user_id: str = "U0CLICKER") -> None:
    """Click Retry on the first card and wait until its thread shows DeployHQ's answer."""
    bot.click(retry_value(cards_posted(slack)[-1]), user_id=user_id)
    slack.wait_for(lambda: any("DeployHQ status" in t for t in thread(slack)))


def test_one_message_follows_failed_retry_pending_running_completed(
    bot: BotServer, fake_slack: FakeSlack
):
    assert bot.webhook(delivery()).json()["result"] == "accepted"
    retried(bot, fake_slack)

    running = bot.webhook(event("running", started_at=later(1)))
    completed = bot.webhook(
        event("completed", started_at=later(1), completed_at=later(61), duration=60)
    )

    assert (running.json()["result"], completed.json()["result"]) == ("updated", "updated")
    assert len(cards_posted(fake_slack)) == 1
    assert {u["ts"] for u in fake_slack.api_calls("chat.update")} == {CARD_TS}
    assert headers(fake_slack) == [
        ":hourglass_flowing_sand: Retrying deployment: My Project",
        ":arrows_counterclockwise: Deployment retried: My Project",
        ":arrow_forward: Deploying: My Project",
        ":white_check_mark: Deployment completed: My Project",
    ]
    final = fake_slack.api_calls("chat.update")[-1]
    line = state_line(final)
    assert "Completed" in line and "in 1m 0s" in line
    assert "Retried by <@U0CLICKER>" in line and "later" in line
    assert "deployhq_retry" not in buttons(final)
    notes = thread(fake_slack)
    assert len(notes) == 4
    assert "<@U0CLICKER> asked DeployHQ to retry" in notes[0]
    assert "*pending*" in notes[1]
    assert notes[2].startswith(":arrow_forward: Running since")
    assert notes[3].startswith(":white_check_mark: Completed")


def test_failing_again_shows_a_fresh_retry_that_retries(
    bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    bot.webhook(delivery())
    first_value = retry_value(cards_posted(fake_slack)[0])
    retried(bot, fake_slack, "U0FIRST")

    again = bot.webhook(event("failed", started_at=later(1), completed_at=later(30)))

    assert again.json()["result"] == "updated"
    card = fake_slack.api_calls("chat.update")[-1]
    assert card["blocks"][0]["text"]["text"] == ":x: Deployment failed again: My Project"
    assert "Failed again after the retry by <@U0FIRST>" in state_line(card)
    assert retry_value(card) != first_value  # a new failure, a new lock
    assert thread(fake_slack)[-1].startswith(":x: Failed again")

    bot.click(retry_value(card), user_id="U0SECOND", key="second")
    fake_slack.wait_for(
        lambda: "Retried by <@U0SECOND>" in state_line(fake_slack.api_calls("chat.update")[-1])
    )
    assert len(fake_deployhq.retries()) == 2


def test_duplicate_and_late_deliveries_change_nothing(bot: BotServer, fake_slack: FakeSlack):
    bot.webhook(delivery())
    retried(bot, fake_slack)
    # One delivery, sent twice: two built apart could straddle a second and be two events.
    completed = event("completed", started_at=later(1), completed_at=later(60))
    bot.webhook(completed)
    updates, replies = len(fake_slack.api_calls("chat.update")), len(thread(fake_slack))

    duplicate = bot.webhook(completed)
    late_running = bot.webhook(event("running", started_at=later(1)))
    late_failure = bot.webhook(delivery())  # the original failure, delivered again

    assert duplicate.json()["result"] == "duplicate"
    assert late_running.json()["result"] == "stale"
    assert late_failure.json()["result"] == "duplicate"
    assert len(fake_slack.api_calls("chat.update")) == updates
    assert len(thread(fake_slack)) == replies
    assert headers(fake_slack)[-1] == ":white_check_mark: Deployment completed: My Project"


def test_an_unknown_status_is_shown_not_refused(bot: BotServer, fake_slack: FakeSlack):
    bot.webhook(delivery())
    retried(bot, fake_slack)
    response = bot.webhook(event("quarantined", started_at=later(5)))
    assert response.json()["result"] == "updated"
    assert headers(fake_slack)[-1] == ":grey_question: Deployment quarantined: My Project"


def test_a_deleted_card_is_posted_afresh_and_followed_there(
    bot: BotServer, fake_slack: FakeSlack, caplog
):
    bot.webhook(delivery())
    retried(bot, fake_slack)
    fake_slack.deleted.add(CARD_TS)

    bot.webhook(event("running", started_at=later(1)))
    bot.webhook(event("completed", started_at=later(1), completed_at=later(60)))

    fresh = cards_posted(fake_slack)
    assert len(fresh) == 2
    assert fresh[1]["blocks"][0]["text"]["text"] == ":arrow_forward: Deploying: My Project"
    last = fake_slack.api_calls("chat.update")[-1]
    assert last["ts"] == "1700000000.000004"  # after the first card and two thread replies
    assert "posting a fresh one" in caplog.text
    assert thread(fake_slack, last["ts"])[-1].startswith(":white_check_mark: Completed")


def test_the_failing_steps_log_appears_in_the_thread_trimmed_and_escaped(
    bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    """In DeployHQ's shapes: the step's server is the integer id of one of the deployment's
    servers, and the log comes newest first (ids descending)."""
    fake_deployhq.deployments[DEPLOYMENT_ID] = delivery(
        servers=[{"id": 1001, "identifier": "7563d091", "name": "Production Server"}],
        steps=[
            {"identifier": "step-1", "description": "Checking access", "status": "completed"},
            {
                "identifier": "step-2",
                "description": "Transferring files",
                "status": "failed",
                "server": 1001,
                "logs": True,
            },
        ],
    )
    oldest_first = [
        {
            "id": n,
            "step": "transfer",
            "message": f"line {n:02d} <!channel> `rm -rf`",
            "detail": None,
            "type": "info",
        }
        for n in range(40)
    ] + [{"id": 99, "message": "Upload failed", "detail": "x" * 5000, "type": "error"}]
    fake_deployhq.logs["step-2"] = list(reversed(oldest_first))

    response = bot.webhook(delivery(), record=False)  # DeployHQ's record, not the delivery's

    assert response.json()["result"] == "accepted"
    note = fake_slack.wait_for(lambda: thread(fake_slack))[0]
    assert "*Why it failed:* the step _Transferring files_ on Production Server failed." in note
    assert "line 39" in note and "line 30" in note and "line 29" not in note  # the last lines
    assert note.index("line 30") < note.index("line 39") < note.index("✖ Upload failed")
    assert "<!channel>" not in note and "&lt;!channel&gt;" in note
    assert "`rm -rf`" not in note  # backticks cannot close the code block early
    assert len(note) < 3000


def test_a_step_that_kept_no_log_is_named_and_its_log_not_fetched(
    bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    fake_deployhq.deployments[DEPLOYMENT_ID] = delivery(
        steps=[{"identifier": "step-9", "description": "Build", "status": "failed", "logs": False}]
    )
    bot.webhook(delivery())
    note = fake_slack.wait_for(lambda: thread(fake_slack))[0]
    assert "the step _Build_" in note and "Its log is empty." in note
    assert not [c for c in fake_deployhq.calls if c.path.endswith("/logs")]


def test_a_deployhq_failure_while_fetching_the_log_leaves_the_card_alone(
    bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    fake_deployhq.script("show", Reply(500, {"error": "boom"}))

    response = bot.webhook(delivery())

    assert response.status_code == 200
    fake_deployhq.wait_for(lambda: fake_deployhq.calls)
    assert len(cards_posted(fake_slack)) == 1
    assert thread(fake_slack) == []
    assert fake_slack.api_calls("chat.update") == []


def test_the_log_never_delays_the_notification(
    bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    # The first read confirms the failure; the second, for its log, is slow.
    fake_deployhq.script("show", Reply(200, None), Reply(200, None, delay=3))
    started = datetime.now(UTC)

    response = bot.webhook(delivery(), settle=False)

    assert response.json()["result"] == "accepted"
    fake_slack.wait_for(lambda: cards_posted(fake_slack))
    assert (datetime.now(UTC) - started).total_seconds() < 2
    fake_deployhq.wait_for(lambda: len(fake_deployhq.calls) >= 2)  # the look-up goes on


def test_when_slack_refuses_an_update_the_event_lands_once_slack_takes_it(
    reconciling_bot: BotServer, fake_slack: FakeSlack
):
    bot = reconciling_bot
    bot.webhook(delivery())
    retried(bot, fake_slack)
    down = Reply(200, {"ok": False, "error": "fatal_error"})
    fake_slack.script("chat.update", down, down)

    running_event = event("running", started_at=later(1))  # one delivery, sent twice
    running = bot.webhook(running_event)
    redelivered = bot.webhook(running_event)

    assert running.json()["result"] == "updated"
    assert redelivered.json()["result"] == "duplicate"
    fake_slack.wait_for(lambda: headers(fake_slack)[-1] == ":arrow_forward: Deploying: My Project")
