"""Who may act, by button and by command; user groups looked up in Slack and cached."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bot.config import Settings
from tests.conftest import BotServer
from tests.support.cards import retry_value
from tests.support.fakes import FakeDeployHQ, FakeSlack, Reply
from tests.support.signed import DEPLOYMENT_ID, at, delivery


@pytest.fixture
def restricted_bot(
    start_bot: Callable[..., BotServer],
    env: dict,
    fake_slack: FakeSlack,
    fake_deployhq: FakeDeployHQ,
) -> BotServer:
    fake_slack.usergroups["S0ONCALL"] = ["U0MEMBER", "U0OTHER"]
    fake_deployhq.deployments[DEPLOYMENT_ID] = delivery()
    return start_bot(
        Settings.from_env(
            {
                **env,
                "DEPLOYHQ_ACTION_USERS": "U0ADMIN, U0LEAD",
                "DEPLOYHQ_ACTION_USERGROUPS": "S0ONCALL",
            }
        )
    )


def card_value(bot: BotServer, slack: FakeSlack, deployhq: FakeDeployHQ) -> str:
    """Post a card; wait out its background look-up of why it failed, then forget it."""
    bot.webhook(delivery())
    deployhq.wait_for(lambda: deployhq.calls)
    deployhq.calls.clear()
    return retry_value(slack.api_calls("chat.postMessage")[-1])


def test_a_refused_clicker_is_told_privately_and_nothing_changes(
    restricted_bot: BotServer,
    fake_slack: FakeSlack,
    fake_deployhq: FakeDeployHQ,
    caplog: pytest.LogCaptureFixture,
):
    value = card_value(restricted_bot, fake_slack, fake_deployhq)

    restricted_bot.click(value, user_id="U0STRANGER")

    note = fake_slack.wait_for(fake_slack.responses)[0]
    assert note["response_type"] == "ephemeral"
    assert "not among the people allowed to act" in note["text"]
    assert fake_deployhq.calls == []
    assert fake_slack.api_calls("chat.update") == []
    assert "U0STRANGER is not allowed to act" in caplog.text


def test_a_refused_typist_is_told_privately_and_no_api_call_is_made(
    restricted_bot: BotServer,
    fake_slack: FakeSlack,
    fake_deployhq: FakeDeployHQ,
    caplog: pytest.LogCaptureFixture,
):
    restricted_bot.command(f"retry my-project {DEPLOYMENT_ID}", user_id="U0STRANGER")

    note = fake_slack.wait_for(fake_slack.responses)[0]
    assert note["response_type"] == "ephemeral"
    assert "not among the people allowed to act" in note["text"]
    assert fake_deployhq.calls == []
    assert "U0STRANGER is not allowed to act" in caplog.text


def test_an_allowed_user_retries_by_button_and_by_command(
    restricted_bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    value = card_value(restricted_bot, fake_slack, fake_deployhq)
    restricted_bot.click(value, user_id="U0LEAD")
    fake_deployhq.wait_for(lambda: len(fake_deployhq.retries()) == 1)

    fake_deployhq.deployments[DEPLOYMENT_ID] = delivery(
        timestamps={"completed_at": at(3600)}
    )  # it failed again later
    restricted_bot.command(f"retry my-project {DEPLOYMENT_ID}", user_id="U0ADMIN")
    fake_deployhq.wait_for(lambda: len(fake_deployhq.retries()) == 2)


def test_user_group_members_may_retry_and_the_lookup_is_cached(
    restricted_bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    value = card_value(restricted_bot, fake_slack, fake_deployhq)
    restricted_bot.click(value, user_id="U0OTHER")  # lost race is fine: they were allowed
    fake_deployhq.wait_for(fake_deployhq.retries)
    restricted_bot.command("retry my-project " + DEPLOYMENT_ID, user_id="U0MEMBER")
    fake_slack.wait_for(lambda: fake_slack.responses("c1"))
    restricted_bot.click(value, user_id="U0STRANGER", key="stranger")
    fake_slack.wait_for(lambda: fake_slack.responses("stranger"))

    lookups = fake_slack.api_calls("usergroups.users.list")
    assert lookups == [{"usergroup": "S0ONCALL"}]  # three checks, one call to Slack
    # allowed, but late: DeployHQ's record already shows the retry, so nothing is sent
    assert "Nothing was retried" in fake_slack.responses("c1")[0]["text"]
    assert "*pending*" in fake_slack.responses("c1")[0]["text"]
    assert len(fake_deployhq.retries()) == 1
    assert "not among" in fake_slack.responses("stranger")[0]["text"]


def test_when_slack_cannot_list_the_group_nobody_outside_the_user_list_retries(
    restricted_bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    value = card_value(restricted_bot, fake_slack, fake_deployhq)
    fake_slack.script("usergroups.users.list", Reply(200, {"ok": False, "error": "missing_scope"}))

    restricted_bot.click(value, user_id="U0MEMBER")

    note = fake_slack.wait_for(fake_slack.responses)[0]
    assert "could not check whether you may act" in note["text"]
    assert fake_deployhq.calls == []


def test_a_deleted_allowed_group_is_skipped_and_the_others_still_work(
    start_bot: Callable[..., BotServer],
    env: dict,
    fake_slack: FakeSlack,
    fake_deployhq: FakeDeployHQ,
    caplog: pytest.LogCaptureFixture,
):
    fake_slack.usergroups["S0ONCALL"] = ["U0MEMBER"]  # S0GONE was deleted in Slack
    bot = start_bot(Settings.from_env({**env, "DEPLOYHQ_ACTION_USERGROUPS": "S0GONE, S0ONCALL"}))
    value = card_value(bot, fake_slack, fake_deployhq)

    bot.click(value, user_id="U0MEMBER", key="m0")
    fake_deployhq.wait_for(fake_deployhq.retries)
    for n in (1, 2):  # one after the other: the members were cached by the first
        bot.click(value, user_id="U0MEMBER", key=f"m{n}")
        fake_slack.wait_for(lambda n=n: fake_slack.responses(f"m{n}"))
    bot.click(value, user_id="U0STRANGER", key="stranger")
    fake_slack.wait_for(lambda: fake_slack.responses("stranger"))
    assert len(fake_deployhq.retries()) == 1
    assert "not among" in fake_slack.responses("stranger")[0]["text"]
    assert "S0GONE" in caplog.text and "no_such_subteam" in caplog.text
    # Each group is cached on its own: the readable one is asked once, whatever the other does.
    asked = [c["usergroup"] for c in fake_slack.api_calls("usergroups.users.list")]
    assert asked.count("S0ONCALL") == 1


def test_who_may_act_is_still_read_under_its_former_names(env: dict[str, str]):
    """DEPLOYHQ_ACTION_USERS(_GROUPS) were DEPLOYHQ_RETRY_ALLOWED_USERS(_GROUPS): an installation
    that set the old names keeps its allow-lists through the upgrade; the new name wins."""
    from bot.config import ConfigError

    base = {k: v for k, v in env.items() if "USERS" not in k and "USERGROUPS" not in k}
    old = Settings.from_env(
        {
            **base,
            "DEPLOYHQ_RETRY_ALLOWED_USERS": "U0OLD",
            "DEPLOYHQ_RETRY_ALLOWED_USERGROUPS": "S0OLD",
        }
    )
    assert (old.action_users, old.action_usergroups) == ({"U0OLD"}, {"S0OLD"})
    both = Settings.from_env(
        {**base, "DEPLOYHQ_RETRY_ALLOWED_USERS": "U0OLD", "DEPLOYHQ_ACTION_USERS": "U0NEW"}
    )
    assert both.action_users == {"U0NEW"}
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({**base, "DEPLOYHQ_RETRY_ALLOWED_USERS": "not an id"})
    assert any("DEPLOYHQ_RETRY_ALLOWED_USERS" in p for p in raised.value.problems)
