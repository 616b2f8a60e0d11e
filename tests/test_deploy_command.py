"""``/deployhq deploy <project> <server or group> [branch]``: confirmed privately, sent once."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from bot.bolt import command_words as commands
from bot.config import Settings
from bot.words.buttons import DeployOrder
from tests.conftest import BotServer
from tests.support.fakes import FakeDeployHQ, FakeSlack, Reply
from tests.support.signed import delivery

NEW_REF = "0123456789abcdef0123456789abcdef01234567"
SERVER = "7563d091"


@pytest.fixture
def deployhq(fake_deployhq: FakeDeployHQ) -> FakeDeployHQ:
    """A project whose Production Server last ran the delivered failure's revision, and whose
    main has moved on to NEW_REF."""
    fake_deployhq.history[:] = [delivery()]
    fake_deployhq.latest["main"] = NEW_REF
    fake_deployhq.commits[NEW_REF] = {"message": "Fix the <!here> login\nmore", "author": "Ann"}
    return fake_deployhq


def answers(slack: FakeSlack, key: str) -> list[dict[str, Any]]:
    return slack.responses(key)


def channel_said(slack: FakeSlack) -> list[dict[str, Any]]:
    """The channel's messages about a deploy, as posted then edited (newest last)."""
    return [
        m
        for m in slack.api_calls("chat.postMessage") + slack.api_calls("chat.update")
        if "thread_ts" not in m and "metadata" not in m
    ]


def confirm_of(bot: BotServer, text: str, key: str = "c1") -> dict[str, Any]:
    bot.command(text, key=key)
    bot.settle()
    said = bot.slack.wait_for(lambda: answers(bot.slack, key))
    return said[-1]


def deploy_button(message: dict[str, Any]) -> dict[str, Any]:
    for block in message["blocks"]:
        for element in block.get("elements") or []:
            if element.get("action_id") == "deployhq_deploy_confirm":
                return element
    raise AssertionError(f"no Deploy button in {message}")


def test_the_command_parses():
    assert commands.parse("deploy my-project Production") == commands.Deploy(
        "my-project", ("Production",)
    )
    assert commands.parse("deploy my-project 7563d091 release/2") == commands.Deploy(
        "my-project", ("7563d091", "release/2")
    )
    assert isinstance(commands.parse("deploy my-project"), commands.Help)
    assert "/deployhq deploy <project> <server or group> [branch]" in commands.USAGE


@pytest.mark.parametrize("named", ["production server", SERVER, "Production Server main"])
def test_deploy_by_name_or_identifier_confirms_then_deploys_once(
    bot: BotServer, deployhq: FakeDeployHQ, fake_slack: FakeSlack, named: str
):
    message = confirm_of(bot, f"deploy my-project {named}")
    assert message["response_type"] == "ephemeral"
    assert message["text"] == "Deploy 0123456 of main to Production Server?"
    shown = message["blocks"][0]["text"]["text"]
    assert shown == (
        "Deploy `0123456` of `main` to *Production Server*?\n> Fix the &lt;!here&gt; login\nby Ann"
    )
    assert deployhq.created() == []
    token = deploy_button(message)["value"]
    assert len(token) == 32 and NEW_REF not in token  # the order stays with the bot

    bot.click(token, action_id="deployhq_deploy_confirm", key="k1", user_id="U0ANN")
    bot.settle()
    assert len(deployhq.created()) == 1
    sent = deployhq.created()[0].data["deployment"]
    assert (sent["parent_identifier"], sent["branch"], sent["end_revision"]) == (
        SERVER,
        "main",
        NEW_REF,
    )
    said = fake_slack.wait_for(lambda: channel_said(fake_slack))[-1]
    assert said["channel"] == "C0DEPLOYS"  # where the command was typed
    assert said["text"].startswith(
        ":rocket: <@U0ANN> deployed `0123456` of `main` to *Production Server* · new deployment `"
    )
    assert said["text"].endswith("`: *pending*")


def test_an_unknown_server_is_refused_with_no_create(bot: BotServer, deployhq: FakeDeployHQ):
    message = confirm_of(bot, "deploy my-project Staging")
    assert message["text"] == (
        ":no_entry: Nothing was deployed: my-project has no server or server group named `Staging`."
    )
    assert deployhq.created() == []


def test_the_commit_the_server_already_runs_is_refused(bot: BotServer, deployhq: FakeDeployHQ):
    deployhq.latest["main"] = "def456abc789"  # what the failure deployed there
    message = confirm_of(bot, f"deploy my-project {SERVER}")
    assert message["text"].startswith(
        ":no_entry: Nothing was deployed: `def456a` already went to Production Server in "
        "deployment `6bd5cdc4`"
    )
    assert deployhq.created() == []


def test_ten_clicks_on_the_confirm_create_one_deployment(
    start_bot: Callable[..., BotServer], bot: BotServer, deployhq: FakeDeployHQ
):
    other = start_bot()
    value = deploy_button(confirm_of(bot, f"deploy my-project {SERVER}"))["value"]
    with ThreadPoolExecutor(max_workers=10) as pool:
        list(
            pool.map(
                lambda i: (bot, other)[i % 2].click(
                    value, user_id=f"U0C{i}", key=f"k{i}", action_id="deployhq_deploy_confirm"
                ),
                range(10),
            )
        )
    bot.settle()
    other.settle()
    assert len(deployhq.created()) == 1
    assert [d for d in deployhq.done if d[0] == "deploy"][:1] == deployhq.done[-1:]
    # A later click, once it has run: nothing more.
    bot.click(value, action_id="deployhq_deploy_confirm", key="late")
    bot.settle()
    assert len(deployhq.created()) == 1


def test_a_person_not_allowed_is_refused_with_no_call(
    start_bot: Callable[..., BotServer],
    env: dict[str, str],
    deployhq: FakeDeployHQ,
    fake_slack: FakeSlack,
):
    bot = start_bot(Settings.from_env({**env, "DEPLOYHQ_ACTION_USERS": "U0ONLY"}))
    message = confirm_of(bot, f"deploy my-project {SERVER}")  # the typist is not U0ONLY
    assert message["text"].startswith(":no_entry_sign: You are not among the people allowed")
    assert deployhq.calls == []


def test_someone_not_allowed_pressing_anothers_confirm_is_refused_with_no_call(
    start_bot: Callable[..., BotServer],
    env: dict[str, str],
    deployhq: FakeDeployHQ,
    fake_slack: FakeSlack,
):
    bot = start_bot(Settings.from_env({**env, "DEPLOYHQ_ACTION_USERS": "U0TYPIST"}))
    token = deploy_button(confirm_of(bot, f"deploy my-project {SERVER}"))["value"]
    asked = len(deployhq.calls)
    bot.click(token, action_id="deployhq_deploy_confirm", key="k1", user_id="U0EVE")
    bot.settle()
    assert len(deployhq.calls) == asked and deployhq.created() == []
    said = fake_slack.wait_for(lambda: answers(fake_slack, "k1"))[-1]
    assert "not among the people allowed" in said["text"]


@pytest.mark.parametrize(
    "forged",
    [
        DeployOrder("my-project", SERVER, "Production Server", "main", NEW_REF).encode(),
        DeployOrder("other-project", SERVER, "Staging", "main", "main").encode(),
        "0" * 32,
        "x" * 5000,
    ],
    ids=["order-itself", "edited-order", "unknown-token", "long"],
)
def test_a_confirm_the_bot_did_not_show_deploys_nothing(
    bot: BotServer, deployhq: FakeDeployHQ, fake_slack: FakeSlack, forged: str
):
    """The button carries only a token for the order the bot kept: an edited or invented value
    names no order, whatever it says."""
    deploy_button(confirm_of(bot, f"deploy my-project {SERVER}"))  # a real one exists
    asked = len(deployhq.calls)
    bot.click(forged, action_id="deployhq_deploy_confirm", key="k1", user_id="U0ANN")
    bot.settle()
    assert len(deployhq.calls) == asked and deployhq.created() == []
    said = fake_slack.wait_for(lambda: answers(fake_slack, "k1"))[-1]
    assert "this confirm is too old, or not one the bot showed" in said["text"]


@pytest.mark.parametrize(
    ("kind", "named"),
    [
        ("servers", "my-project's servers"),
        ("server_groups", "my-project's server groups"),
        ("latest_revision", "the latest commit of main"),
    ],
)
def test_a_read_deployhq_refuses_is_named_with_its_words(
    bot: BotServer, deployhq: FakeDeployHQ, kind: str, named: str
):
    deployhq.script(kind, Reply(404, {"error": "Record not found"}))
    message = confirm_of(bot, f"deploy my-project {SERVER}")
    assert message["text"] == (
        f"Could not read {named} from DeployHQ. DeployHQ answered HTTP 404: “Record not found”."
    )
    assert deployhq.created() == []
