"""Never older code across servers and groups: "anything newer on these servers", "already ran
there" and "the last good deployment" count every deployment whose servers overlap, whether it
went to a server, to a group holding it, or to a group it belongs to; and whichever way
DeployHQ's ``to=`` reads (only exact parents, or group deployments under each member too)."""

from __future__ import annotations

from typing import Any

import pytest

from bot.deployhq.deployment import Deployment
from bot.deployhq.history import last_good, reach
from bot.words.buttons import ActionTarget, RollbackTarget
from tests.conftest import BotServer
from tests.support.cards import buttons, first_card, retry_value, told
from tests.support.fakes import FakeDeployHQ, FakeSlack
from tests.support.signed import DEPLOYMENT_ID, at, delivery

GROUP = "g-prod"
WEB_1 = {
    "name": "web-1",
    "identifier": "w1",
    "protocol_type": "ssh",
    "server_group_identifier": GROUP,
}
WEB_2 = {
    "name": "web-2",
    "identifier": "w2",
    "protocol_type": "ssh",
    "server_group_identifier": GROUP,
}
NEWER = "22222222-3333-4444-5555-666666666666"
GOOD = "11111111-2222-3333-4444-555555555555"
NEW_REF = "0123456789abcdef0123456789abcdef01234567"


def deployment(identifier: str, servers: list[dict[str, Any]], seconds: float, **changes: Any):
    return delivery(
        identifier=identifier,
        status=changes.pop("status", "completed"),
        servers=servers,
        end_revision={"ref": changes.pop("ref", "9999999aaaaa"), "message": "Other work"},
        timestamps={
            "queued_at": at(seconds),
            "started_at": at(seconds + 2),
            "completed_at": at(seconds + 60),
            "duration": 58,
        },
        **changes,
    )


@pytest.fixture(params=["parent", "members"], ids=["to=parent-only", "to=members-too"])
def deployhq(fake_deployhq: FakeDeployHQ, request: pytest.FixtureRequest) -> FakeDeployHQ:
    fake_deployhq.to_reading = request.param
    fake_deployhq.group_names[GROUP] = "Production"
    return fake_deployhq


def card_of(bot: BotServer, slack: FakeSlack, failure: dict[str, Any]) -> str:
    bot.webhook(failure)
    return retry_value(first_card(slack))


def test_a_group_failure_is_not_retried_over_a_newer_deployment_to_one_of_its_servers(
    bot: BotServer, deployhq: FakeDeployHQ, fake_slack: FakeSlack
):
    failure = delivery(servers=[WEB_1, WEB_2])
    deployhq.history[:] = [deployment(NEWER, [WEB_1], 100), failure]
    value = card_of(bot, fake_slack, failure)

    bot.click(value, key="retry")
    bot.settle()

    assert deployhq.retries() == []
    assert "Nothing was retried: deployment `22222222`" in told(fake_slack, "retry")


def test_deploy_latest_on_a_group_failure_sends_nothing_after_one_server_moved_on(
    bot: BotServer, deployhq: FakeDeployHQ, fake_slack: FakeSlack
):
    failure = delivery(servers=[WEB_1, WEB_2])
    deployhq.latest["main"] = NEW_REF
    deployhq.history[:] = [deployment(NEWER, [WEB_1], 100, status="failed"), failure]
    value = card_of(bot, fake_slack, failure)
    target = ActionTarget.decode(value)
    latest = f'{{"p":"{target.project}","d":"{target.deployment}","r":"{target.run_key}",'
    latest += f'"ref":"{NEW_REF}"}}'

    bot.click(latest, action_id="deployhq_deploy_latest", key="latest")
    bot.settle()

    assert deployhq.created() == []
    assert "has run on these servers since" in told(fake_slack, "latest")


@pytest.mark.parametrize("how", ["card-retry", "card-rollback", "command-retry"])
def test_a_server_failure_is_not_acted_on_after_its_group_got_a_newer_deployment(
    bot: BotServer, deployhq: FakeDeployHQ, fake_slack: FakeSlack, how: str
):
    failure = delivery(servers=[WEB_1])
    good = deployment(GOOD, [WEB_1], -3600, ref="a1b2c3d4e5f6")
    deployhq.record(good)
    deployhq.history[:] = [deployment(NEWER, [WEB_1, WEB_2], 100), failure, good]
    value = card_of(bot, fake_slack, failure)
    target = ActionTarget.decode(value)

    if how == "card-retry":
        bot.click(value, key="k")
    elif how == "card-rollback":
        back = RollbackTarget(target.project, target.deployment, target.run_key, GOOD)
        bot.click(back.encode(), action_id="deployhq_rollback", key="k")
    else:
        bot.command(f"retry my-project {DEPLOYMENT_ID}", key="k")
    bot.settle()

    assert deployhq.actions() == []
    assert "has run on these servers since" in told(fake_slack, "k")


def test_a_commit_that_ran_on_the_group_is_not_deployed_again_to_one_of_its_servers(
    bot: BotServer, deployhq: FakeDeployHQ, fake_slack: FakeSlack
):
    deployhq.latest["main"] = NEW_REF
    deployhq.history[:] = [deployment(NEWER, [WEB_1, WEB_2], 100, ref=NEW_REF)]

    bot.command("deploy my-project web-1", key="c1")
    bot.settle()

    said = told(fake_slack, "c1")
    assert "Nothing was deployed: `0123456` already went to web-1 in deployment `22222222`" in said
    assert "deployhq_deploy_confirm" not in str(fake_slack.responses("c1"))


def test_the_last_good_deployment_is_the_newest_one_that_overlaps_and_only_if_it_is_exact():
    failure = Deployment.from_api(delivery(servers=[WEB_1, WEB_2]))
    group_good = Deployment.from_api(deployment(GOOD, [WEB_1, WEB_2], -7200))
    one_good = Deployment.from_api(deployment(NEWER, [WEB_1], -3600))
    other = Deployment.from_api(
        deployment("33333333-4444-5555-6666-777777777777", [{"name": "db", "identifier": "d"}], -60)
    )
    assert last_good([other, group_good], failure) == group_good
    # web-1 ran newer code by itself since the group's last good one: rolling the group back
    # to it would put older code on web-1, so nothing is offered.
    assert last_good([other, one_good, group_good], failure) is None


def test_only_a_lone_server_in_no_group_is_read_through_its_own_list():
    lone = Deployment.from_api(delivery())
    assert reach(lone) == "7563d091"
    assert reach(Deployment.from_api(delivery(servers=[WEB_1]))) == ""  # it has a group
    assert reach(Deployment.from_api(delivery(servers=[WEB_1, WEB_2]))) == ""


def test_a_card_offers_no_roll_back_that_would_put_older_code_on_one_of_its_servers(
    bot: BotServer, deployhq: FakeDeployHQ, fake_slack: FakeSlack
):
    failure = delivery(servers=[WEB_1, WEB_2])
    deployhq.history[:] = [
        failure,
        deployment(NEWER, [WEB_1], -3600),
        deployment(GOOD, [WEB_1, WEB_2], -7200),
    ]
    bot.webhook(failure)
    first_card(fake_slack)
    deployhq.wait_for(lambda: [c for c in deployhq.calls if c.path.endswith("/deployments")])
    bot.settle()
    shown = fake_slack.api_calls("chat.postMessage") + fake_slack.api_calls("chat.update")
    assert all("deployhq_rollback" not in buttons(m) for m in shown)


# --- DeployHQ's record wins for the run it describes ------------------------------------------


def test_a_delivery_whose_times_disagree_with_deployhqs_record_is_retried_on_the_first_click(
    bot: BotServer, fake_deployhq: FakeDeployHQ, fake_slack: FakeSlack
):
    """The delivery says the run ended 18 s later than DeployHQ's record of the same run: the
    card takes DeployHQ's times, so its Retry names the run DeployHQ knows, and the failing
    step is explained once."""
    record = delivery()
    record["steps"] = [
        {
            "identifier": "step-2",
            "description": "Transferring files",
            "status": "failed",
            "logs": True,
            "server": 1001,
        },
    ]
    fake_deployhq.record(record)
    fake_deployhq.logs["step-2"] = [{"id": 1, "message": "Upload failed", "type": "error"}]
    late = delivery(
        timestamps={
            "queued_at": at(18),
            "started_at": at(20),
            "completed_at": at(88),
            "duration": 68,
        }
    )
    bot.webhook(late, record=False)
    card = first_card(fake_slack)
    bot.settle()
    assert ActionTarget.decode(retry_value(card)).run_key == Deployment.from_api(record).run_key

    bot.click(retry_value(card), key="retry")
    bot.settle()

    assert len(fake_deployhq.retries()) == 1
    assert "failed again since" not in told(fake_slack, "retry")
    why = [m for m in fake_slack.api_calls("chat.postMessage") if "Why it failed" in m["text"]]
    assert len(why) == 1


def test_a_group_failure_costs_what_a_server_failure_costs(
    bot: BotServer, deployhq: FakeDeployHQ, fake_slack: FakeSlack
):
    """A notification: the record, the failing step's log, the project's whole list (one
    page here), the branch's latest commit. A click: the record, the list, the retry."""
    failure = delivery(servers=[WEB_1, WEB_2])
    record = {
        **failure,
        "steps": [
            {
                "identifier": "step-2",
                "description": "Transferring files",
                "status": "failed",
                "logs": True,
                "server": 1001,
            }
        ],
    }
    deployhq.record(record)
    deployhq.logs["step-2"] = [{"id": 1, "message": "Upload failed", "type": "error"}]
    deployhq.history[:] = [failure, deployment(GOOD, [WEB_1, WEB_2], -3600)]
    bot.webhook(failure, record=False)
    card = first_card(fake_slack)
    fake_slack.wait_for(lambda: fake_slack.api_calls("chat.postMessage")[1:])  # why it failed
    bot.settle()
    asked = [(c.path.rsplit("/", 1)[-1], c.raw_uri) for c in deployhq.calls]
    assert [a[0] for a in asked] == [DEPLOYMENT_ID, "logs", "deployments", "latest_revision"]
    assert "to=" not in asked[2][1]  # a group's overlaps are only sure in the whole list
    before = len(deployhq.calls)

    bot.click(retry_value(card), key="retry")
    bot.settle()

    clicked = [c.path.rsplit("/", 1)[-1] for c in deployhq.calls[before:]]
    assert clicked == [DEPLOYMENT_ID, "deployments", "retry"]
