"""What changed: the commits behind a failure and DeployHQ's overview in its thread, what Roll
back undoes and Deploy latest adds in their confirms, and a Preview that never acts."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from bot.config import Settings
from tests.conftest import BotServer
from tests.support.cards import buttons, thread, told
from tests.support.fakes import FakeDeployHQ, FakeSlack, Reply
from tests.support.signed import DEPLOYMENT_ID, at, delivery

GOOD_ID = "11111111-2222-3333-4444-555555555555"
GOOD_REF = "a1b2c3d4e5f6"
FAILED_REF = "def456abc789"  # what the delivered failure deployed
NEW_REF = "0123456789abcdef0123456789abcdef01234567"


def completed(identifier: str, seconds: float, ref: str = GOOD_REF) -> dict[str, Any]:
    return delivery(
        identifier=identifier,
        status="completed",
        end_revision={"ref": ref, "message": "Known good"},
        timestamps={
            "queued_at": at(seconds),
            "started_at": at(seconds + 2),
            "completed_at": at(seconds + 60),
            "duration": 58,
        },
    )


def commits(count: int) -> list[dict[str, str]]:
    """``count`` commits after GOOD_REF up to FAILED_REF, newest first, then GOOD_REF."""
    between = [
        {"ref": f"{n:07x}aaaaa", "author": f"Dev{n}", "message": f"Change {n}\nbody"}
        for n in range(count - 1, 0, -1)
    ]
    return [
        {"ref": FAILED_REF, "author": "Adam", "message": "Fix login <!channel> <https://x.io|y>"},
        *between,
        {"ref": GOOD_REF, "author": "Adam", "message": "Known good"},
    ]


def note(slack: FakeSlack, text: str) -> str:
    found: str = slack.wait_for(
        lambda: next((m["text"] for m in thread(slack) if text in m["text"]), None)
    )
    return found


def calls(fake: FakeDeployHQ, name: str) -> int:
    return sum(1 for c in fake.calls if c.path.endswith("/" + name))


def card_with(slack: FakeSlack, action_id: str, text: str = "") -> dict[str, Any]:
    """The newest card update with the button ``action_id`` (whose confirm says ``text``)."""

    def found() -> dict[str, Any] | None:
        for update in reversed(slack.api_calls("chat.update")):
            button = buttons(update).get(action_id)
            if button and text in button.get("confirm", {}).get("text", {}).get("text", ""):
                return update
        return None

    return slack.wait_for(found)  # type: ignore[no-any-return]


@pytest.fixture
def env(env: dict[str, str]) -> dict[str, str]:
    return {**env, "DEPLOYHQ_WHAT_CHANGED": "true"}


@pytest.fixture
def failure(fake_deployhq: FakeDeployHQ) -> FakeDeployHQ:
    """A failure of main since the last good deployment, 12 commits back; main has moved on to
    NEW_REF since."""
    fake_deployhq.history[:] = [delivery(), completed(GOOD_ID, -3600)]
    fake_deployhq.commit_log["main"] = [
        {"ref": NEW_REF, "author": "Ann", "message": "Add search"},
        {"ref": "fedcba9876543", "author": "Bo", "message": "Tidy"},
        *commits(12),
    ]
    fake_deployhq.latest["main"] = NEW_REF
    fake_deployhq.commits[NEW_REF] = {"message": "Add search", "author": "Ann"}
    return fake_deployhq


@pytest.fixture
def previewing(start_bot: Callable[..., BotServer], env: dict[str, str]) -> BotServer:
    """A bot that follows a preview closely for 1 s (its record read every 0.1 s)."""
    return start_bot(Settings.from_env({**env, "DEPLOYHQ_PREVIEW_SECONDS": "1"}))


def test_the_thread_says_what_changed_newest_first_as_text_and_the_confirms_what_they_do(
    bot: BotServer, fake_slack: FakeSlack, failure: FakeDeployHQ
):
    failure.ai_overview = "Fixes the login.\nAdds <!here> nothing."
    bot.webhook(delivery())
    said = note(fake_slack, "What changed")
    lines = said.splitlines()
    assert lines[0] == (
        ":memo: *What changed since the last good deployment* (`a1b2c3d` → `def456a`, 12 commits):"
    )
    assert lines[1] == "• `def456a` Adam: Fix login &lt;!channel&gt; &lt;https://x.io|y&gt;"
    assert lines[2] == "• `000000b` Dev11: Change 11"
    assert len([line for line in lines if line.startswith("• ")]) == 10
    assert lines[11] == (
        f"<https://acme.deployhq.com/projects/my-project/deployments/{DEPLOYMENT_ID}|"
        "and 2 more in DeployHQ>"
    )
    assert lines[12:] == [
        "*DeployHQ's overview:*",
        ">Fixes the login.",
        ">Adds &lt;!here&gt; nothing.",
    ]
    asked = [c.data for c in failure.calls if c.path.endswith("/ai_deployment_overview")]
    assert asked == [{"start_ref": GOOD_REF, "end_ref": FAILED_REF}]

    rollback = card_with(fake_slack, "deployhq_rollback", "Undoes")
    said_rollback = buttons(rollback)["deployhq_rollback"]["confirm"]["text"]["text"]
    assert said_rollback.endswith(
        "Undoes 12 commits: “Fix login <!channel> <https://x.io|y>”, “Change 11” and 10 more."
    )
    assert buttons(rollback)["deployhq_rollback"]["confirm"]["text"]["type"] == "plain_text"
    deploy = buttons(card_with(fake_slack, "deployhq_deploy_latest", "Adds"))
    assert deploy["deployhq_deploy_latest"]["confirm"]["text"]["text"].endswith(
        "Adds 2 commits: “Add search” and “Tidy”."
    )
    assert {"deployhq_preview_rollback", "deployhq_preview_deploy"} <= set(deploy)
    assert failure.actions() == []  # nothing of this acts


def test_the_deployments_own_overview_comes_first_and_no_overview_is_asked_for(
    bot: BotServer, fake_slack: FakeSlack, failure: FakeDeployHQ
):
    failure.ai_overview = "not this one"
    failure.record({**delivery(), "overview": "DeployHQ's own words on it."})
    bot.webhook(delivery(), record=False)
    said = note(fake_slack, "What changed")
    assert said.endswith("*DeployHQ's overview:*\n>DeployHQ's own words on it.")
    assert calls(failure, "ai_deployment_overview") == 0


def test_a_range_beyond_the_recent_commits_is_said_in_one_line_never_guessed(
    bot: BotServer, fake_slack: FakeSlack, failure: FakeDeployHQ
):
    failure.commit_log["main"] = commits(30)[:20]  # the last good one is further back
    bot.webhook(delivery())
    said = note(fake_slack, "What changed")
    assert said == (
        ":memo: *What changed since the last good deployment*: DeployHQ's recent commits of "
        "`main` do not reach from `a1b2c3d` to `def456a` (too far back, or the branch was "
        "rewritten), so the bot does not guess. DeployHQ's deployment page has them."
    )
    assert calls(failure, "recent_commits") == 1  # just listed: not asked again at once
    assert calls(failure, "ai_deployment_overview") == 0
    rollback = card_with(fake_slack, "deployhq_rollback")
    assert "Undoes" not in buttons(rollback)["deployhq_rollback"]["confirm"]["text"]["text"]


def test_overview_off_a_burst_of_failures_reads_the_commits_once_and_asks_once(
    start_bot: Callable[..., BotServer], fake_slack: FakeSlack, failure: FakeDeployHQ
):
    """Five failures of main at once, over two instances: the branch's commits are read once,
    and DeployHQ (its AI features off) is asked for an overview once, not five times."""
    ids = [f"{n:08d}-0000-4000-8000-00000000000a" for n in range(5)]
    failure.history[:] = [*(delivery(identifier=i) for i in ids), completed(GOOD_ID, -3600)]
    instances = [start_bot(), start_bot()]
    for identifier in ids:
        failure.record(delivery(identifier=identifier))
    with ThreadPoolExecutor(max_workers=5) as pool:
        list(
            pool.map(
                lambda n: instances[n % 2].webhook(
                    delivery(identifier=ids[n]), record=False, settle=False
                ),
                range(5),
            )
        )
    fake_slack.wait_for(
        lambda: len([m for m in thread(fake_slack) if "What changed" in m["text"]]) == 5, 20
    )
    for instance in instances:
        instance.settle()
    assert calls(failure, "recent_commits") == 1
    assert calls(failure, "ai_deployment_overview") == 1
    said = [m["text"] for m in thread(fake_slack) if "What changed" in m["text"]]
    assert all("overview" not in s for s in said)


def test_recent_commits_deployhq_refuses_are_said_in_its_words_and_the_card_stays(
    bot: BotServer, fake_slack: FakeSlack, failure: FakeDeployHQ
):
    failure.always("recent_commits", Reply(500, {"error": "Repository cache is rebuilding"}))
    bot.webhook(delivery())
    said = note(fake_slack, "What changed")
    assert said == (
        ":memo: What changed on `main` could not be read from DeployHQ: Repository cache is "
        "rebuilding"
    )
    assert "deployhq_rollback" in buttons(card_with(fake_slack, "deployhq_rollback"))


def test_deploy_commands_confirm_says_what_it_adds_to_what_the_server_runs(
    bot: BotServer, fake_slack: FakeSlack, failure: FakeDeployHQ
):
    failure.history[:] = [completed(GOOD_ID, -3600)]
    failure.commit_log["main"] = [
        {"ref": NEW_REF, "author": "Ann", "message": "Add <@U123> search"},
        {"ref": GOOD_REF, "author": "Adam", "message": "Known good"},
    ]
    bot.command("deploy my-project Production Server")
    bot.settle()
    confirm = fake_slack.wait_for(lambda: fake_slack.responses("c1"))[-1]
    shown = confirm["blocks"][0]["text"]["text"]
    assert shown.endswith(
        "\nAdds 1 commit since `a1b2c3d`:\n• `0123456` Ann: Add &lt;@U123&gt; search"
    )
    ids = [e["action_id"] for e in confirm["blocks"][1]["elements"]]
    assert ids == ["deployhq_deploy_confirm", "deployhq_preview_order", "deployhq_deploy_cancel"]


def test_preview_of_the_roll_back_is_posted_in_the_thread_and_acts_on_nothing(
    previewing: BotServer, fake_slack: FakeSlack, failure: FakeDeployHQ
):
    bot = previewing
    bot.webhook(delivery())
    card = card_with(fake_slack, "deployhq_preview_rollback")
    value = buttons(card)["deployhq_preview_rollback"]["value"]
    failure.preview_files = {
        "7563d091": {"changed": [f"app/<!here>/f{n}.rb" for n in range(11)], "removed": ["a.js"]}
    }

    bot.click(value, action_id="deployhq_preview_rollback", key="p1")
    said = note(fake_slack, "Preview of")
    bot.settle()
    assert said.startswith(
        ":mag_right: Preview of the roll back to `a1b2c3d`: 11 files change, 1 removed on "
        "Production Server. Nothing was deployed.\n```app/&lt;!here&gt;/f0.rb\n"
    )
    assert said.endswith("app/&lt;!here&gt;/f9.rb```\nand 2 more paths.")
    asked = [c for c in failure.calls if c.path.endswith(f"{GOOD_ID}/rollback")]
    assert [c.data for c in asked] == [{"mode": "preview"}]
    assert len(failure.previews) == 1 and failure.actions() == []
    assert "preparing the preview of the roll back" in told(fake_slack, "p1")

    # It took no claim: the failure's own Roll back still goes through, once.
    bot.click(buttons(card)["deployhq_rollback"]["value"], action_id="deployhq_rollback")
    bot.settle()
    assert [a for a, _ in failure.actions()] == ["rollback"]


def test_a_second_press_shows_the_preview_under_way_and_a_slow_one_is_followed(
    previewing: BotServer, fake_slack: FakeSlack, failure: FakeDeployHQ
):
    bot = previewing
    bot.webhook(delivery())
    value = buttons(card_with(fake_slack, "deployhq_preview_deploy"))["deployhq_preview_deploy"]
    failure.preview_outcome = ""  # DeployHQ keeps it preview_pending

    bot.click(value["value"], action_id="deployhq_preview_deploy", key="p1", user_id="U0ANN")
    failure.wait_for(lambda: failure.previews)
    bot.click(value["value"], action_id="deployhq_preview_deploy", key="p2", user_id="U0BO")
    fake_slack.wait_for(lambda: "under way" in told(fake_slack, "p2"))
    assert "asked for by <@U0ANN>" in told(fake_slack, "p2")
    slow = note(fake_slack, "still preparing")
    assert "deploying the latest commit `0123456`" in slow
    failure.preview_outcome = "preview_ready"
    said = note(fake_slack, "Preview of")
    bot.settle()
    assert said.startswith(
        ":mag_right: Preview of deploying the latest commit `0123456`: 2 files change, 1 "
        "removed on Production Server."
    )
    assert len(failure.previews) == 1 and failure.actions() == []
    sent = next(
        c.data["deployment"]
        for c in failure.calls
        if c.method == "POST" and c.path.endswith("/deployments")
    )
    assert (sent["mode"], sent["parent_identifier"], sent["end_revision"]) == (
        "preview",
        "7563d091",
        NEW_REF,
    )


def test_a_failed_preview_says_so_with_deployhqs_words(
    previewing: BotServer, fake_slack: FakeSlack, failure: FakeDeployHQ
):
    bot = previewing
    bot.webhook(delivery())
    value = buttons(card_with(fake_slack, "deployhq_preview_rollback"))
    failure.preview_outcome = "preview_failed"
    bot.click(value["deployhq_preview_rollback"]["value"], action_id="deployhq_preview_rollback")
    said = note(fake_slack, "could not prepare the preview")
    bot.settle()
    assert said == (
        ":warning: DeployHQ could not prepare the preview of the roll back to `a1b2c3d` "
        "(*preview_failed*): “Could not connect to the server” Nothing was deployed."
    )
    assert failure.actions() == []


def test_the_deploy_commands_preview_is_told_privately_and_deploys_nothing(
    previewing: BotServer, fake_slack: FakeSlack, failure: FakeDeployHQ
):
    bot = previewing
    failure.history[:] = [completed(GOOD_ID, -3600)]
    bot.command("deploy my-project Production Server")
    bot.settle()
    confirm = fake_slack.wait_for(lambda: fake_slack.responses("c1"))[-1]
    token = confirm["blocks"][1]["elements"][1]["value"]

    bot.click(token, action_id="deployhq_preview_order", key="p1")
    fake_slack.wait_for(lambda: "Preview of" in told(fake_slack, "p1"))
    bot.settle()
    assert "Preview of deploying `0123456` of `main` to *Production Server*: 2 files" in told(
        fake_slack, "p1"
    )
    assert failure.created() == [] or all(
        c.data["deployment"]["mode"] == "preview" for c in failure.created()
    )
    assert failure.actions() == []

    bot.click("0" * 32, action_id="deployhq_preview_order", key="p2")
    bot.settle()
    assert "No preview was asked for" in told(fake_slack, "p2")
    bot.click("{not json", action_id="deployhq_preview_rollback", key="p3")
    bot.settle()
    assert "No preview was asked for" in told(fake_slack, "p3")
    assert len(failure.previews) == 1


def test_a_person_not_allowed_gets_no_preview(
    start_bot: Callable[..., BotServer],
    env: dict[str, str],
    fake_slack: FakeSlack,
    failure: FakeDeployHQ,
):
    bot = start_bot(Settings.from_env({**env, "DEPLOYHQ_ACTION_USERS": "U0ANN"}))
    bot.webhook(delivery())
    value = buttons(card_with(fake_slack, "deployhq_preview_rollback"))
    bot.click(value["deployhq_preview_rollback"]["value"], action_id="deployhq_preview_rollback")
    bot.settle()
    assert "not among the people allowed" in told(fake_slack, "r1")
    assert failure.previews == []


def test_a_preview_whose_answer_is_lost_is_said_and_can_be_asked_again(
    start_bot: Callable[..., BotServer],
    env: dict[str, str],
    fake_slack: FakeSlack,
    failure: FakeDeployHQ,
):
    """DeployHQ made the preview but its answer never came: the person hears so, and the
    next press asks again (a preview left behind in DeployHQ changes nothing)."""
    bot = start_bot(
        Settings.from_env({**env, "DEPLOYHQ_PREVIEW_SECONDS": "1", "DEPLOYHQ_TIMEOUT": "1"})
    )
    bot.webhook(delivery())
    value = buttons(card_with(fake_slack, "deployhq_preview_rollback"))
    value = value["deployhq_preview_rollback"]["value"]
    failure.script("preview", Reply(200, None, delay=3))

    bot.click(value, action_id="deployhq_preview_rollback", key="p1")
    fake_slack.wait_for(lambda: "gave no preview" in told(fake_slack, "p1"), 10)
    # Under load the socket's read timeout may fire before the call's overall deadline: both
    # say DeployHQ did not answer, in words of their own.
    assert "DeployHQ did not answer" in told(fake_slack, "p1")
    bot.click(value, action_id="deployhq_preview_rollback", key="p2")
    note(fake_slack, "Preview of the roll back")
    bot.settle()
    assert len(failure.previews) == 2 and failure.actions() == []
