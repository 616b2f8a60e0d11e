"""Pause auto-deploy from the failure: a failure card whose server DeployHQ deploys pushes to
by itself offers Pause auto-deploy; one pause however many press it, on however many
instances; the card says paused only once DeployHQ's record shows it off, a lost answer is
settled from that record, Resume puts it back, and ``/deployhq freeze``, ``unfreeze`` and
``status <project>`` do the same from the keyboard."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from bot.bolt import command_words as commands
from bot.config import Settings
from tests.conftest import BotServer
from tests.support.cards import buttons, thread, told
from tests.support.fakes import FakeDeployHQ, FakeSlack, Reply
from tests.support.signed import delivery

PAUSE, RESUME = "deployhq_pause_auto_deploy", "deployhq_resume_auto_deploy"
SERVER = "7563d091"
LATER_FAILURE = "99999999-2222-3333-4444-555555555555"


@pytest.fixture
def autos(start_bot: Callable[..., BotServer], env: dict[str, str]) -> Callable[..., BotServer]:
    def start(**extra: str) -> BotServer:
        return start_bot(Settings.from_env({**env, "DEPLOYHQ_PAUSE_AUTO_DEPLOY": "true", **extra}))

    return start


def cards(slack: FakeSlack) -> list[dict[str, Any]]:
    return [
        m
        for m in slack.api_calls("chat.postMessage") + slack.api_calls("chat.update")
        if "thread_ts" not in m and "blocks" in m
    ]


def auto_line(message: dict[str, Any]) -> str:
    return next(
        b["elements"][0]["text"]
        for b in message["blocks"]
        if b["type"] == "context" and str(b.get("block_id", "")).startswith("auto.")
    )


def card_with(slack: FakeSlack, action_id: str) -> dict[str, Any]:
    return slack.wait_for(
        lambda: next((m for m in reversed(cards(slack)) if action_id in buttons(m)), None)
    )


def latest_card(slack: FakeSlack) -> dict[str, Any]:
    return cards(slack)[-1]


def failure_card(bot: BotServer, slack: FakeSlack) -> dict[str, Any]:
    bot.webhook(delivery())
    card = card_with(slack, PAUSE)
    bot.settle()
    return card


def changes(deployhq: FakeDeployHQ) -> list[str]:
    return [what for kind, what in deployhq.actions() if kind == "auto-deploy"]


def press(
    bot: BotServer, action_id: str, value: str, user_id: str = "U0ANN", key: str = "r1"
) -> None:
    bot.click(value, user_id=user_id, key=key, action_id=action_id)
    bot.settle()


def test_the_card_offers_pause_with_a_confirm_naming_the_branch_and_server(
    autos: Callable[..., BotServer], fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    bot = autos()
    card = failure_card(bot, fake_slack)
    pause = buttons(card)[PAUSE]
    assert pause["confirm"]["text"]["text"] == (
        "New pushes to `main` will no longer deploy to Production Server by themselves until "
        "someone resumes them."
    )
    assert json.loads(pause["value"]) == {
        "p": "my-project",
        "t": SERVER,
        "on": False,
        "d": delivery()["identifier"],
    }
    assert "Auto-deploy is on for *Production Server*" in auto_line(card)
    assert RESUME not in buttons(card)


def test_pause_sets_exactly_that_deployable_off_reads_it_back_and_offers_resume(
    autos: Callable[..., BotServer], fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    bot = autos()
    card = failure_card(bot, fake_slack)
    press(bot, PAUSE, buttons(card)[PAUSE]["value"])

    (sent,) = fake_deployhq.auto_deploy_changes()
    assert sent.data == {
        "deployables": [{"identifier": SERVER, "auto_deploy": False}]
    }  # as the CLI
    assert changes(fake_deployhq) == [f"{SERVER}:off"]
    paused = card_with(fake_slack, RESUME)
    assert auto_line(paused).startswith(
        ":double_vertical_bar: Auto-deploy paused by <@U0ANN> <!date^"
    )
    assert "^{ago}|" in auto_line(paused)  # "2 hours ago", in each reader's Slack
    assert PAUSE not in buttons(paused)
    note = " ".join(m["text"] for m in thread(fake_slack))
    assert "<@U0ANN> paused auto-deploy of *Production Server*" in note
    assert "(DeployHQ shows it off)" in note
    # Read back: the card says paused only after DeployHQ's list showed it off.
    paths = [(c.method, c.path.rsplit("/", 1)[-1]) for c in fake_deployhq.calls]
    post = paths.index(("POST", "auto_deployments"))
    assert ("GET", "auto_deployments") in paths[post + 1 :]


def test_twenty_presses_on_two_instances_pause_once(
    autos: Callable[..., BotServer], fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    first, second = autos(), autos()  # two instances, one Redis
    card = failure_card(first, fake_slack)
    value = buttons(card)[PAUSE]["value"]
    fake_deployhq.always("set_auto_deployments", Reply(200, None, delay=0.3))  # slow to answer

    def click(n: int) -> None:
        (first, second)[n % 2].click(value, user_id=f"U0P{n:02d}", key=f"k{n}", action_id=PAUSE)

    with ThreadPoolExecutor(20) as pool:
        list(pool.map(click, range(20)))
    first.settle()
    second.settle()

    assert len(fake_deployhq.auto_deploy_changes()) == 1
    assert changes(fake_deployhq) == [f"{SERVER}:off"]
    said = " ".join(told(fake_slack, f"k{n}") for n in range(20))
    assert "already" in said or "paused" in said  # the others learn someone did it
    assert auto_line(card_with(fake_slack, RESUME)).startswith(
        ":double_vertical_bar: Auto-deploy paused by <@U0P"
    )


def test_a_pause_whose_answer_was_lost_is_settled_from_deployhqs_record(
    autos: Callable[..., BotServer], fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    bot = autos(DEPLOYHQ_DOUBT_SECONDS="1")
    card = failure_card(bot, fake_slack)
    page = b"<html>504 Gateway Time-out</html>"
    fake_deployhq.script("set_auto_deployments", Reply(504, raw=page, after_work=True))
    press(bot, PAUSE, buttons(card)[PAUSE]["value"])

    assert changes(fake_deployhq) == [f"{SERVER}:off"]  # DeployHQ did it; its answer was lost
    paused = card_with(fake_slack, RESUME)
    assert "Auto-deploy paused by <@U0ANN>" in auto_line(paused)
    press(bot, PAUSE, buttons(card)[PAUSE]["value"], user_id="U0LATE", key="late")
    assert len(fake_deployhq.auto_deploy_changes()) == 1  # never a second one
    assert "<@U0ANN>" in told(fake_slack, "late")


def test_a_pause_button_whose_value_was_edited_to_resume_changes_nothing(
    autos: Callable[..., BotServer], fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    bot = autos()
    value = buttons(failure_card(bot, fake_slack))[PAUSE]["value"]
    press(bot, PAUSE, value)
    edited = value.replace('"on":false', '"on":true')
    assert edited != value
    press(bot, PAUSE, edited, user_id="U0CAROL", key="r2")
    press(bot, PAUSE, "not json", user_id="U0CAROL", key="r3")
    assert changes(fake_deployhq) == [f"{SERVER}:off"]  # the Pause only
    for key in ("r2", "r3"):
        said = " ".join(str(r.get("text")) for r in fake_slack.responses(key))
        assert "no longer names a server's automatic deployments; nothing was changed" in said


def test_a_pause_deployhq_skipped_says_so_in_its_words_and_offers_pause_again(
    autos: Callable[..., BotServer], fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    bot = autos()
    card = failure_card(bot, fake_slack)
    skipped = {"deployables": [], "skipped": ["7563d091: not an auto-deployable server"]}
    fake_deployhq.script("set_auto_deployments", Reply(200, skipped))
    press(bot, PAUSE, buttons(card)[PAUSE]["value"])

    shown = latest_card(fake_slack)
    assert auto_line(shown).startswith(
        ":no_entry: DeployHQ refused the pause of auto-deploy of *Production Server*"
    )
    assert "7563d091: not an auto-deployable server" in auto_line(shown)
    assert PAUSE in buttons(shown)
    press(bot, PAUSE, buttons(shown)[PAUSE]["value"], key="again")
    assert changes(fake_deployhq) == [f"{SERVER}:off"]


def test_resume_puts_it_back_and_a_later_pause_is_a_new_change(
    autos: Callable[..., BotServer], fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    bot = autos()
    card = failure_card(bot, fake_slack)
    press(bot, PAUSE, buttons(card)[PAUSE]["value"])
    press(bot, RESUME, buttons(card_with(fake_slack, RESUME))[RESUME]["value"], user_id="U0BOB")
    resumed = latest_card(fake_slack)
    assert "Auto-deploy is on for *Production Server* (resumed by <@U0BOB>" in auto_line(resumed)
    press(bot, PAUSE, buttons(resumed)[PAUSE]["value"], user_id="U0CAROL")
    assert changes(fake_deployhq) == [f"{SERVER}:off", f"{SERVER}:on", f"{SERVER}:off"]
    assert "paused by <@U0CAROL>" in auto_line(latest_card(fake_slack))


def test_a_pause_deployhq_already_shows_sends_nothing_and_the_card_says_what_it_shows(
    autos: Callable[..., BotServer], fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    bot = autos()
    card = failure_card(bot, fake_slack)
    fake_deployhq.auto_deploy[SERVER] = False  # someone paused it in DeployHQ meanwhile
    press(bot, PAUSE, buttons(card)[PAUSE]["value"])
    assert fake_deployhq.auto_deploy_changes() == []
    assert "already shows auto-deploy off" in told(fake_slack, "r1")
    shown = latest_card(fake_slack)
    assert (
        auto_line(shown)
        == ":double_vertical_bar: Auto-deploy is off for *Production Server* in DeployHQ."
    )
    assert RESUME in buttons(shown)


def test_a_later_failure_card_shows_who_paused_it(
    autos: Callable[..., BotServer], fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    bot = autos()
    card = failure_card(bot, fake_slack)
    press(bot, PAUSE, buttons(card)[PAUSE]["value"])
    bot.webhook(delivery(identifier=LATER_FAILURE))
    later = fake_slack.wait_for(
        lambda: next(
            (
                m
                for m in reversed(cards(fake_slack))
                if LATER_FAILURE in json.dumps(m) and RESUME in buttons(m)
            ),
            None,
        )
    )
    assert auto_line(later).startswith(
        ":double_vertical_bar: Auto-deploy paused by <@U0ANN> <!date^"
    )


def test_who_may_press_it_follows_the_same_rules(
    autos: Callable[..., BotServer], fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    bot = autos(DEPLOYHQ_ACTION_USERS="U0ANN")
    card = failure_card(bot, fake_slack)
    press(bot, PAUSE, buttons(card)[PAUSE]["value"], user_id="U0EVE", key="eve")
    assert fake_deployhq.auto_deploy_changes() == []
    assert "not among the people allowed to act" in told(fake_slack, "eve")


def test_pausing_needs_no_approval_and_resuming_waits_for_one(
    autos: Callable[..., BotServer], fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    bot = autos(DEPLOYHQ_APPROVAL_SERVERS="production server", DEPLOYHQ_APPROVERS_USERS="U0BOB")
    card = failure_card(bot, fake_slack)
    press(bot, PAUSE, buttons(card)[PAUSE]["value"])
    assert changes(fake_deployhq) == [f"{SERVER}:off"]  # the safe direction waits for no one

    press(bot, RESUME, buttons(card_with(fake_slack, RESUME))[RESUME]["value"])
    waiting = card_with(fake_slack, "deployhq_approve")
    assert "*Resume auto-deploy* requested by <@U0ANN>" in auto_line(waiting)
    assert changes(fake_deployhq) == [f"{SERVER}:off"]  # nothing sent yet
    press(
        bot,
        "deployhq_approve",
        buttons(waiting)["deployhq_approve"]["value"],
        user_id="U0BOB",
        key="bob",
    )
    assert changes(fake_deployhq) == [f"{SERVER}:off", f"{SERVER}:on"]
    assert "resumed by <@U0ANN>" in auto_line(latest_card(fake_slack))


def test_a_name_from_deployhq_is_shown_as_text(
    autos: Callable[..., BotServer], fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    bot = autos()
    servers = [{"name": "<!channel> <https://evil.example|prod>", "identifier": SERVER}]
    fake_deployhq.record(delivery(servers=servers))
    bot.webhook(delivery(servers=servers))
    card = card_with(fake_slack, PAUSE)
    line = auto_line(card)
    assert "<!channel>" not in line and "<https://evil" not in line
    assert "&lt;!channel&gt;" in line


# --- the keyboard -------------------------------------------------------------------------


def test_the_commands_parse():
    assert commands.parse("freeze my-project") == commands.Freeze("my-project", (), False)
    assert commands.parse("unfreeze my-project Production Server") == commands.Freeze(
        "my-project", ("Production", "Server"), True
    )
    assert commands.parse("status my-project") == commands.ProjectStatus("my-project")
    assert isinstance(commands.parse("freeze"), commands.Help)
    assert "/deployhq freeze <project> [server or group]" in commands.USAGE


def test_freeze_without_a_server_pauses_every_one_that_is_on_and_says_what_deployhq_shows(
    bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    fake_deployhq.history[:] = [delivery()]
    fake_deployhq.extra_deployables.append(
        {"identifier": "s-2", "name": "Staging", "type": "server"}
    )
    fake_deployhq.auto_deploy["s-2"] = False  # already off: left alone
    bot.command("freeze my-project", user_id="U0ANN", key="f")
    bot.settle()
    assert changes(fake_deployhq) == [f"{SERVER}:off"]
    said = fake_slack.wait_for(lambda: fake_slack.responses("f"))[-1]
    assert said["response_type"] == "in_channel"
    assert "<@U0ANN> paused auto-deploy of *Production Server*" in said["text"]
    assert "• *Production Server*: :double_vertical_bar: paused by <@U0ANN>" in said["text"]
    assert "• *Staging*: :double_vertical_bar: paused" in said["text"]

    bot.command("status my-project", key="s")
    bot.settle()
    status = fake_slack.wait_for(lambda: fake_slack.responses("s"))[-1]
    assert status["response_type"] == "ephemeral"
    assert "*Production Server*: :double_vertical_bar: paused by <@U0ANN>" in status["text"]

    bot.command("unfreeze my-project production server", user_id="U0BOB", key="u")
    bot.settle()
    assert changes(fake_deployhq) == [f"{SERVER}:off", f"{SERVER}:on"]
    assert "• *Production Server*: :arrow_forward: on" in told(fake_slack, "u")


def test_unfreeze_without_a_server_resumes_only_what_the_bot_paused_and_names_the_rest(
    bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    """Web 2 was turned off in DeployHQ by a person (a server under maintenance); the bot
    pauses Production Server; an unnamed unfreeze turns Production Server back on and leaves
    Web 2 off, saying so and how to turn it on; naming Web 2 then turns it on."""
    fake_deployhq.history[:] = [delivery()]
    fake_deployhq.extra_deployables.append({"identifier": "s-2", "name": "Web 2", "type": "server"})
    fake_deployhq.auto_deploy["s-2"] = False  # off in DeployHQ, not by the bot
    bot.command("freeze my-project", user_id="U0ANN", key="f")
    bot.settle()
    assert changes(fake_deployhq) == [f"{SERVER}:off"]

    bot.command("unfreeze my-project", user_id="U0BOB", key="u")
    bot.settle()
    assert changes(fake_deployhq) == [f"{SERVER}:off", f"{SERVER}:on"]  # Web 2 stays off
    said = fake_slack.wait_for(lambda: fake_slack.responses("u"))[-1]
    assert said["response_type"] == "in_channel"
    assert "resumed auto-deploy of *Production Server*" in said["text"]
    assert "Left off: *Web 2*, which the bot did not pause" in said["text"]
    assert "`/deployhq unfreeze my-project Web 2`" in said["text"]
    assert "• *Web 2*: :double_vertical_bar: paused" in said["text"]

    bot.command("unfreeze my-project", user_id="U0BOB", key="again")
    bot.settle()
    assert len(changes(fake_deployhq)) == 2  # nothing the bot paused is off: nothing sent
    assert "Nothing the bot paused in `my-project` is off" in told(fake_slack, "again")

    bot.command("unfreeze my-project Web 2", user_id="U0BOB", key="named")
    bot.settle()
    assert changes(fake_deployhq)[-1] == "s-2:on"


def test_freeze_of_a_name_deployhq_does_not_list_sends_nothing(
    bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    fake_deployhq.history[:] = [delivery()]
    bot.command("freeze my-project <!here> nowhere", key="n")
    bot.settle()
    assert fake_deployhq.auto_deploy_changes() == []
    said = told(fake_slack, "n")
    assert "No server or group called" in said and "<!here>" not in said
    assert "`Production Server`" in said
