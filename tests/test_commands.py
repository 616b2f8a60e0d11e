"""/deployhq over real HTTP: each subcommand, bad input, and sharing the button's lock."""

from __future__ import annotations

import threading

import pytest
from slack_sdk.models.blocks import Block

from tests.conftest import BotServer
from tests.support.cards import buttons, retry_value, state_line
from tests.support.fakes import FakeDeployHQ, FakeSlack, Reply
from tests.support.signed import DEPLOYMENT_ID, delivery

PAGE = f"https://acme.deployhq.com/projects/my-project/deployments/{DEPLOYMENT_ID}"


@pytest.fixture(autouse=True)
def known_failure(fake_deployhq: FakeDeployHQ) -> None:
    """DeployHQ knows the failed deployment the webhooks in these tests describe."""
    fake_deployhq.deployments[DEPLOYMENT_ID] = delivery()


def answer(slack: FakeSlack, key: str = "c1") -> dict:
    return slack.wait_for(lambda: slack.responses(key))[-1]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", ""),
        ("help", ""),
        ("frobnicate my-project", "there is no `frobnicate` command"),
        ("retry", "`retry` needs"),
        ("retry my-project", "`retry` needs"),
        ("retry my-project not/an/id", "`retry` needs"),
        ("status a b c", "`status` needs"),
        ("failed", "`failed` needs"),
        ("failed my-project 0", "from 1 to 20"),
        ("failed my-project lots", "from 1 to 20"),
        ("<!channel> hi", "there is no `&lt;!channel&gt;` command"),
    ],
)
def test_help_and_bad_input_answer_with_usage_and_call_nothing(
    bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ, text: str, problem: str
):
    ack = bot.command(text)

    assert ack.status_code == 200
    reply = ack.json()  # the usage comes back with the acknowledgement itself
    assert reply["response_type"] == "ephemeral"
    assert "/deployhq retry <project> <deployment>" in reply["text"].replace("`", "")
    assert problem in reply["text"]
    assert "<!channel>" not in reply["text"]
    assert fake_deployhq.calls == []


def test_retry_says_in_the_channel_who_retried_what(
    bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    bot.command(f"retry my-project {DEPLOYMENT_ID}", user_id="U0TYPIST")

    reply = answer(fake_slack)
    assert reply["response_type"] == "in_channel"
    assert reply["text"] == (
        ":arrows_counterclockwise: <@U0TYPIST> retried My Project `6bd5cdc4`: *pending*"
    )
    assert len(fake_deployhq.retries()) == 1


@pytest.mark.parametrize("pasted", [PAGE, f"<{PAGE}>", f"<{PAGE}|link>"])
def test_retry_takes_a_pasted_deployhq_address(
    bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ, pasted: str
):
    bot.command(f"retry {pasted}")

    assert "retried My Project" in answer(fake_slack)["text"]
    assert fake_deployhq.retries()[0].path.startswith("/projects/my-project/")


def test_a_command_mentioning_payload_is_understood(
    bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    # slack-bolt reads any form body containing "payload" as an interactivity payload.
    fake_deployhq.deployments[DEPLOYMENT_ID] = delivery(
        project={"name": "Payload API", "permalink": "payload-api"}
    )

    ack = bot.command(f"retry payload-api {DEPLOYMENT_ID}")

    assert ack.status_code == 200
    assert "<@U0TYPIST> retried" in answer(fake_slack)["text"]
    assert fake_deployhq.retries()[0].path.startswith("/projects/payload-api/")


def test_retry_shows_deployhqs_422_reason(
    bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    fake_deployhq.script("retry", Reply(422, {"error": "This deployment cannot be retried"}))

    bot.command(f"retry my-project {DEPLOYMENT_ID}")

    reply = answer(fake_slack)
    assert reply["response_type"] == "in_channel"
    assert "DeployHQ refused: “This deployment cannot be retried”" in reply["text"]


@pytest.mark.parametrize(
    ("reply", "said"),
    [
        (Reply(404, {"error": "Not found", "error_code": "record_not_found"}), "not found"),
        (
            Reply(401, {"status": 401, "error": "Access denied"}),
            "refused the bot's API credentials",
        ),
    ],
)
def test_retry_of_an_unknown_deployment_or_with_bad_credentials_says_so_plainly(
    bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ, reply: Reply, said: str
):
    fake_deployhq.script("show", reply)

    bot.command(f"retry my-project {DEPLOYMENT_ID}")

    note = answer(fake_slack)
    assert note["response_type"] == "ephemeral"
    assert said in note["text"]
    assert "k" * 40 not in note["text"] and "ops@example.com" not in note["text"]
    assert fake_deployhq.retries() == []


def test_status_shows_the_deployment_to_the_caller_only(
    bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    bot.command(f"status my-project {DEPLOYMENT_ID}")

    reply = answer(fake_slack)
    assert reply["response_type"] == "ephemeral"
    shown = str(reply["blocks"])
    for fact in (
        "*failed*",
        "`main`",
        "`abc123d` → `def456a`",
        "Production Server",
        "Adam",
        "Queued",
        "Failed",
    ):
        assert fact in shown
    assert buttons(reply)["deployhq_open"]["url"] == PAGE
    for block in reply["blocks"]:
        Block.parse(block).to_dict()
    assert fake_deployhq.retries() == []


def test_failed_lists_recent_failures_each_with_a_retry_that_works(
    bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    ids = [f"{n:08d}-0000-0000-0000-000000000000" for n in range(80)]
    fake_deployhq.history = [
        delivery(identifier=i, status="failed" if n % 10 == 0 else "completed")
        for n, i in enumerate(ids)
    ]

    bot.command("failed my-project 6")

    reply = answer(fake_slack)
    assert reply["response_type"] == "ephemeral"
    rows = [b for b in reply["blocks"] if "accessory" in b]
    assert len(rows) == 6  # found across two pages of 50
    assert [r["accessory"]["action_id"] for r in rows] == ["deployhq_retry"] * 6
    assert ids[0][:8] in rows[0]["text"]["text"] and ids[50][:8] in rows[5]["text"]["text"]

    bot.click(rows[1]["accessory"]["value"], key="from-list")
    note = fake_slack.wait_for(lambda: fake_slack.responses("from-list"))[-1]
    assert "Retried" in note["text"]
    assert fake_deployhq.retries()[0].path.endswith(f"/deployments/{ids[10]}/retry")


def test_failed_with_none_says_so(bot: BotServer, fake_slack: FakeSlack):
    bot.command("failed my-project")
    assert "No failed deployments" in answer(fake_slack)["text"]


def test_a_click_and_a_command_racing_on_one_failure_retry_once(
    bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    bot.webhook(delivery())
    value = retry_value(fake_slack.api_calls("chat.postMessage")[0])
    fake_deployhq.script("retry", Reply(200, None, delay=0.3))
    go = threading.Barrier(4)

    def click(n: int) -> None:
        go.wait()
        bot.click(value, user_id=f"U0CLICK{n}", key=f"k{n}")

    def command(n: int) -> None:
        go.wait()
        bot.command(f"retry my-project {DEPLOYMENT_ID}", user_id=f"U0TYPE{n}", key=f"c{n}")

    threads = [threading.Thread(target=f, args=(n,)) for n, f in enumerate([click, command] * 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    fake_slack.wait_for(lambda: len(fake_slack.responses()) >= 3)
    bot.settle()
    assert len(fake_deployhq.retries()) == 1
    assert any("Retried by" in state_line(u) for u in fake_slack.api_calls("chat.update"))
