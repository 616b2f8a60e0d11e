"""Deploy latest and Abort from the card: each sent once, however many click, DeployHQ's record
deciding."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from bot.config import Settings
from bot.words.buttons import AbortTarget, DeployTarget
from tests.conftest import BotServer
from tests.support.cards import buttons, retry_value
from tests.support.fakes import FakeDeployHQ, FakeSlack, Reply
from tests.support.signed import DEPLOYMENT_ID, delivery

NEW_REF = "0123456789abcdef0123456789abcdef01234567"
GOOD_ID = "11111111-2222-3333-4444-555555555555"


def lines(message: dict[str, Any]) -> str:
    """Every line of the card's state block (the state, and an abort's progress)."""
    for block in message["blocks"]:
        if block["type"] == "context":
            return " | ".join(str(e["text"]) for e in block["elements"])
    raise AssertionError("no state line")


def updates(slack: FakeSlack, text: str) -> list[dict]:
    return [u for u in slack.api_calls("chat.update") if text in lines(u)]


def card_with(slack: FakeSlack, action_id: str) -> dict:
    return slack.wait_for(
        lambda: next((u for u in slack.api_calls("chat.update") if action_id in buttons(u)), None)
    )


def storm(instances: list[BotServer], value: str, action_id: str, clicks: int = 20) -> None:
    with ThreadPoolExecutor(max_workers=10) as pool:
        list(
            pool.map(
                lambda i: instances[i % len(instances)].click(
                    value, user_id=f"U0C{i}", key=f"c{i}", action_id=action_id
                ),
                range(clicks),
            )
        )


@pytest.fixture
def card(bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ) -> dict:
    """A failure of main whose branch has moved on to NEW_REF since."""
    fake_deployhq.latest["main"] = NEW_REF
    fake_deployhq.commits[NEW_REF] = {"message": "Fix the <!here> login\nmore", "author": "Ann"}
    fake_deployhq.history[:] = [delivery()]
    bot.webhook(delivery())
    return card_with(fake_slack, "deployhq_deploy_latest")


def test_deploy_latest_names_the_commit_its_message_and_author(card: dict):
    button = buttons(card)["deployhq_deploy_latest"]
    assert DeployTarget.decode(button["value"]).ref == NEW_REF
    assert len(button["value"]) < 2000
    confirm = button["confirm"]
    assert confirm["title"]["text"] == "Deploy the latest commit?"
    assert confirm["text"]["type"] == "plain_text"  # the commit's words can ping nobody
    assert confirm["text"]["text"] == (
        "DeployHQ will deploy 0123456 of main to Production Server, as a new deployment: "
        "“Fix the <!here> login” by Ann."
    )
    assert {"deployhq_retry", "deployhq_deploy_latest"} <= set(buttons(card))


def test_twenty_clicks_over_two_instances_create_one_deployment_and_nothing_after(
    card: dict,
    start_bot: Callable[..., BotServer],
    bot: BotServer,
    fake_slack: FakeSlack,
    fake_deployhq: FakeDeployHQ,
):
    value = buttons(card)["deployhq_deploy_latest"]["value"]
    fake_deployhq.script("create", Reply(201, None, delay=0.3))

    storm([bot, start_bot()], value, "deployhq_deploy_latest")

    done = fake_slack.wait_for(lambda: updates(fake_slack, "deployed by"))[-1]
    fake_slack.wait_for(lambda: len(fake_slack.responses()) >= 19)
    (call,) = fake_deployhq.created()
    assert call.data["deployment"] | {} == {
        "parent_identifier": "7563d091",
        "branch": "main",
        "end_revision": NEW_REF,
        "mode": "queue",
        "copy_config_files": True,
        "run_build_commands": True,
        "use_build_cache": True,
    }
    assert [kind for kind, _ in fake_deployhq.actions()] == ["deploy"]
    assert "Latest commit `0123456` deployed by" in lines(done) and "*pending*" in lines(done)
    assert "deployhq_retry" not in buttons(done)
    assert all("already" in r["text"] for r in fake_slack.responses())

    # Afterwards Retry and Roll back send nothing: the failure has had its one action.
    bot.click(retry_value(card), user_id="U0LATE", key="late")
    note = fake_slack.wait_for(lambda: fake_slack.responses("late"))[0]
    assert "deployed the branch's latest commit" in note["text"]
    assert fake_deployhq.retries() == [] and fake_deployhq.rollbacks() == []
    assert len(fake_deployhq.created()) == 1


def test_a_lost_answer_after_the_deployment_was_created_sends_no_second_one(
    card: dict, bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    value = buttons(card)["deployhq_deploy_latest"]["value"]
    fake_deployhq.script("create", Reply(504, raw=b"<html>504</html>", after_work=True))

    bot.click(value, user_id="U0FIRST", action_id="deployhq_deploy_latest")
    fake_slack.wait_for(
        lambda: updates(
            fake_slack, "DeployHQ answered HTTP 504. It may still have queued the deploy"
        )
    )
    bot.click(value, user_id="U0SECOND", key="second", action_id="deployhq_deploy_latest")

    done = fake_slack.wait_for(lambda: updates(fake_slack, "deployed by <@U0FIRST>"))[-1]
    assert "0123456" in lines(done)
    assert len(fake_deployhq.created()) == 1 and len(fake_deployhq.actions()) == 1


def test_a_branch_that_moved_on_again_deploys_nothing_and_redraws_the_card(
    card: dict, bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    newer = "fedcba9876543210fedcba9876543210fedcba98"
    fake_deployhq.latest["main"] = newer
    bot.click(buttons(card)["deployhq_deploy_latest"]["value"], action_id="deployhq_deploy_latest")

    note = fake_slack.wait_for(lambda: fake_slack.responses("r1"))[0]
    assert "Nothing was deployed" in note["text"] and "`fedcba9`" in note["text"]
    redrawn = fake_slack.wait_for(
        lambda: [
            u
            for u in fake_slack.api_calls("chat.update")
            if "deployhq_deploy_latest" in buttons(u)
            and newer in buttons(u)["deployhq_deploy_latest"]["value"]
        ]
    )
    assert redrawn and fake_deployhq.created() == []


def test_a_commit_the_servers_already_ran_is_never_deployed_again(
    bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    """The branch's newest commit is what an earlier deployment put on these servers: older
    code (or the same), so nothing is sent."""
    earlier = delivery(
        identifier=GOOD_ID,
        status="completed",
        end_revision={"ref": NEW_REF},
        timestamps={"queued_at": "2025-10-27T09:00:00Z", "completed_at": "2025-10-27T09:01:00Z"},
    )
    fake_deployhq.history[:] = [delivery(), earlier]
    fake_deployhq.record(earlier)
    fake_deployhq.latest["main"] = NEW_REF
    bot.webhook(delivery())
    value = buttons(card_with(fake_slack, "deployhq_deploy_latest"))["deployhq_deploy_latest"]

    bot.click(value["value"], action_id="deployhq_deploy_latest")

    note = fake_slack.wait_for(lambda: fake_slack.responses("r1"))[0]
    assert "already went to these servers" in note["text"]
    assert fake_deployhq.created() == []


def test_no_deploy_latest_when_the_servers_share_no_group(
    bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    two = [
        {"name": "Web 1", "identifier": "w-1", "protocol_type": "ssh"},
        {"name": "Web 2", "identifier": "w-2", "protocol_type": "ssh"},
    ]
    fake_deployhq.latest["main"] = NEW_REF
    bot.webhook(delivery(servers=two))
    fake_deployhq.wait_for(
        lambda: [c for c in fake_deployhq.calls if c.path.endswith("/deployments")]
    )
    bot.settle()
    # Its newest commit is not asked for (what changed reads the recent commits all the same).
    assert not [c for c in fake_deployhq.calls if c.path.endswith(("latest_revision", "info"))]
    shown = fake_slack.api_calls("chat.update") + fake_slack.api_calls("chat.postMessage")
    assert all("deployhq_deploy_latest" not in buttons(m) for m in shown)


# --- Abort ------------------------------------------------------------------------------------


@pytest.fixture
def running_card(bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ) -> dict:
    """A failure retried: its card follows the run DeployHQ queued, and offers Abort."""
    bot.webhook(delivery())
    first = fake_slack.wait_for(
        lambda: next((m for m in fake_slack.api_calls("chat.postMessage")), None)
    )
    bot.click(retry_value(first), user_id="U0RETRY", key="retry")
    return card_with(fake_slack, "deployhq_abort")


def test_abort_is_offered_with_a_confirm_while_the_run_is_under_way(running_card: dict):
    button = buttons(running_card)["deployhq_abort"]
    target = AbortTarget.decode(button["value"])
    assert (target.run, target.deployment) == (DEPLOYMENT_ID, DEPLOYMENT_ID)
    assert button["confirm"]["title"]["text"] == "Abort this deployment?"
    assert button["confirm"]["text"]["text"] == (
        "DeployHQ will stop deployment 6bd5cdc4 of My Project (main) on Production Server now, "
        "wherever it has got to."
    )
    assert button["style"] == "danger" and button["confirm"]["style"] == "danger"


def test_twenty_abort_clicks_over_two_instances_abort_once_and_say_who(
    running_card: dict,
    start_bot: Callable[..., BotServer],
    bot: BotServer,
    fake_slack: FakeSlack,
    fake_deployhq: FakeDeployHQ,
):
    value = buttons(running_card)["deployhq_abort"]["value"]
    fake_deployhq.script("abort", Reply(200, None, delay=0.3))

    storm([bot, start_bot()], value, "deployhq_abort")

    done = fake_slack.wait_for(lambda: updates(fake_slack, "Aborted by"))[-1]
    fake_slack.wait_for(lambda: len(fake_slack.responses()) >= 19)
    assert all("already" in r["text"] and "abort" in r["text"] for r in fake_slack.responses()), (
        fake_slack.responses()
    )
    assert len(fake_deployhq.aborts()) == 1
    assert [kind for kind, _ in fake_deployhq.actions()] == ["retry", "abort"]
    assert "DeployHQ status: *cancelled*" in lines(done)
    final = fake_slack.wait_for(
        lambda: [u for u in updates(fake_slack, "Aborted by") if "aborted" in u["text"].lower()]
    )[-1]
    assert "deployhq_abort" not in buttons(final)


def test_a_lost_abort_answer_after_the_abort_sends_no_second_one(
    running_card: dict, bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    value = buttons(running_card)["deployhq_abort"]["value"]
    fake_deployhq.script("abort", Reply(200, None, drop=True))

    bot.click(value, user_id="U0FIRST", key="first", action_id="deployhq_abort")
    fake_slack.wait_for(lambda: updates(fake_slack, "did not answer the abort"))
    bot.click(value, user_id="U0SECOND", key="second", action_id="deployhq_abort")

    fake_slack.wait_for(lambda: updates(fake_slack, "Aborted by <@U0FIRST>"))
    assert len(fake_deployhq.aborts()) == 1


def test_an_abort_of_a_run_that_has_ended_sends_nothing(
    running_card: dict, bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    fake_deployhq.set_status(DEPLOYMENT_ID, "completed", completed_at="2025-10-27T11:00:00Z")
    bot.click(
        buttons(running_card)["deployhq_abort"]["value"], key="late", action_id="deployhq_abort"
    )
    note = fake_slack.wait_for(lambda: fake_slack.responses("late"))[0]
    assert "Nothing was aborted" in note["text"] and "*completed*" in note["text"]
    assert fake_deployhq.aborts() == []


def test_a_lost_abort_settled_by_the_run_ending_by_itself_says_so_not_aborted(
    running_card: dict, bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    value = buttons(running_card)["deployhq_abort"]["value"]
    fake_deployhq.script("abort", Reply(504, {"error": "Gateway Timeout"}))  # never reached it

    bot.click(value, user_id="U0FIRST", key="first", action_id="deployhq_abort")
    fake_slack.wait_for(
        lambda: updates(fake_slack, "DeployHQ answered HTTP 504: “Gateway Timeout”")
    )
    fake_deployhq.set_status(DEPLOYMENT_ID, "completed", completed_at="2025-10-27T11:00:00Z")
    bot.click(value, user_id="U0SECOND", key="second", action_id="deployhq_abort")

    settled = fake_slack.wait_for(lambda: updates(fake_slack, "before the abort"))[-1]
    assert "The deployment finished (*completed*) before the abort <@U0FIRST> asked for" in (
        lines(settled)
    )
    assert not updates(fake_slack, "Aborted by")
    assert fake_deployhq.aborts() and fake_deployhq.done[-1][0] != "abort"


@pytest.mark.parametrize("action_id", ["deployhq_deploy_latest", "deployhq_abort"])
def test_someone_outside_the_allowed_users_is_refused_with_no_call(
    start_bot: Callable[..., BotServer],
    env: dict[str, str],
    fake_slack: FakeSlack,
    fake_deployhq: FakeDeployHQ,
    action_id: str,
):
    bot = start_bot(Settings.from_env({**env, "DEPLOYHQ_ACTION_USERS": "U0RETRY"}))
    fake_deployhq.latest["main"] = NEW_REF
    fake_deployhq.history[:] = [delivery()]
    bot.webhook(delivery())
    if action_id == "deployhq_abort":
        first = fake_slack.wait_for(lambda: fake_slack.api_calls("chat.postMessage"))[0]
        bot.click(retry_value(first), user_id="U0RETRY", key="retry")
    value = buttons(card_with(fake_slack, action_id))[action_id]["value"]
    bot.settle()
    before = len(fake_deployhq.calls)

    bot.click(value, user_id="U0EVE", key="eve", action_id=action_id)
    note = fake_slack.wait_for(lambda: fake_slack.responses("eve"))[0]
    bot.settle()
    assert note["text"].startswith(":no_entry_sign: You are not among the people allowed")
    assert len(fake_deployhq.calls) == before
    assert fake_deployhq.created() == [] and fake_deployhq.aborts() == []


# --- An abort: short doubt, DeployHQ's words, and an abort stays an abort ---------------------


def running_card_of(bot: BotServer, slack: FakeSlack) -> dict:
    bot.webhook(delivery())
    first = slack.wait_for(lambda: next((m for m in slack.api_calls("chat.postMessage")), None))
    bot.click(retry_value(first), user_id="U0RETRY", key="retry")
    return card_with(slack, "deployhq_abort")


def test_an_abort_deployhq_answered_with_503_is_back_once_its_record_shows_the_run_going(
    start_bot: Callable[..., BotServer],
    env: dict[str, str],
    fake_slack: FakeSlack,
    fake_deployhq: FakeDeployHQ,
):
    """DeployHQ asked for 2 s and did not abort: its record, read once the pause is over,
    shows the run still going, so Abort is offered again then, not a minute later."""
    bot = start_bot(Settings.from_env({**env, "DEPLOYHQ_TIMEOUT": "1"}))
    value = buttons(running_card_of(bot, fake_slack))["deployhq_abort"]["value"]
    busy = Reply(503, {"error": "Updating the repository"}, headers={"Retry-After": "2"})
    fake_deployhq.script("abort", busy)

    bot.click(value, user_id="U0FIRST", key="first", action_id="deployhq_abort")
    said = "DeployHQ answered HTTP 503: “Updating the repository”, and asked to wait 2 s."
    (doubt,) = fake_slack.wait_for(lambda: updates(fake_slack, said))
    assert "It may still have queued the abort" in lines(doubt)
    asked = fake_slack.wait_for(
        lambda: [
            u
            for u in fake_slack.api_calls("chat.update")
            if "deployhq_abort" in buttons(u)
            and u["ts"] == doubt["ts"]
            and fake_slack.api_calls("chat.update").index(u)
            > fake_slack.api_calls("chat.update").index(doubt)
        ],
        timeout=6,
    )
    assert "never queued" in lines(asked[-1])
    assert fake_deployhq.done[-1][0] == "retry"  # nothing was aborted yet

    bot.click(value, user_id="U0SECOND", key="second", action_id="deployhq_abort")
    fake_slack.wait_for(lambda: updates(fake_slack, "Aborted by <@U0SECOND>"))
    assert [kind for kind, _ in fake_deployhq.done] == ["retry", "abort"]


def test_a_run_the_bot_aborted_that_deployhq_reports_as_failed_stays_an_abort(
    bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    fake_deployhq.abort_status = "failed"
    value = buttons(running_card_of(bot, fake_slack))["deployhq_abort"]["value"]
    bot.click(value, user_id="U0FIRST", key="first", action_id="deployhq_abort")
    fake_slack.wait_for(lambda: updates(fake_slack, "Aborted by <@U0FIRST>"))
    # Then DeployHQ's notification: the aborted run, failed.
    run = fake_deployhq.deployments[DEPLOYMENT_ID]
    queued = run["timestamps"]["queued_at"]
    bot.webhook(
        delivery(
            timestamps={
                "queued_at": queued,
                "started_at": queued,
                "completed_at": fake_deployhq.now(),
                "duration": 1,
            }
        )
    )
    bot.settle()

    last = [u for u in fake_slack.api_calls("chat.update") if "blocks" in u][-1]
    assert last["blocks"][0]["text"]["text"].startswith(":no_entry_sign: Deployment aborted")
    assert "Aborted by <@U0FIRST>" in lines(last) and "DeployHQ status: *failed*" in lines(last)
    assert "Failed again" not in lines(last)
    thread = [m["text"] for m in fake_slack.api_calls("chat.postMessage") if "thread_ts" in m]
    assert not [t for t in thread if "Why it failed" in t or "Failed again" in t], thread
