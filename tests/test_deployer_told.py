"""The deployer told: a failure's thread mentions the Slack member whose email is exactly the
deployer's, once per failure, and nobody else, ever."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from bot.config import Settings
from bot.slack.members import is_email
from tests.conftest import BotServer
from tests.support.fakes import FakeSlack, Reply
from tests.support.signed import delivery

EMAIL = "ann.lee@example.com"


def thread(slack: FakeSlack) -> list[str]:
    return [str(m["text"]) for m in slack.taken if "thread_ts" in m]


def told(slack: FakeSlack) -> list[str]:
    return [t for t in thread(slack) if t.startswith(":wave:")]


def cards(slack: FakeSlack) -> list[dict]:
    return [m for m in slack.taken if "thread_ts" not in m]


def failed(bot: BotServer, deployer: str, identifier: str | None = None) -> None:
    changes = {"deployer": deployer}
    if identifier is not None:
        changes["identifier"] = identifier
    bot.webhook(delivery(**changes))
    bot.slack.wait_for(lambda: bot.slack.api_calls("chat.postMessage"))
    bot.settle()


def test_an_exact_email_match_is_mentioned_once(bot: BotServer, fake_slack: FakeSlack):
    fake_slack.emails["Ann.Lee@Example.com"] = "U0ANN"
    failed(bot, EMAIL)
    assert told(fake_slack) == [":wave: <@U0ANN>, your deployment failed."]
    assert [c["email"] for c in fake_slack.api_calls("users.lookupByEmail")] == [EMAIL]
    # The card pushed again (a redraw, the reconciler) tells nobody twice.
    bot.webhook(delivery(deployer=EMAIL, status="failed"))
    bot.settle()
    assert len(told(fake_slack)) == 1


def test_a_deployer_that_is_not_an_email_is_not_looked_up(bot: BotServer, fake_slack: FakeSlack):
    fake_slack.emails[EMAIL] = "U0ANN"
    failed(bot, "Ann Lee")
    assert fake_slack.api_calls("users.lookupByEmail") == []
    assert told(fake_slack) == []


def test_no_member_with_that_email_mentions_nobody(bot: BotServer, fake_slack: FakeSlack):
    failed(bot, EMAIL)
    assert len(fake_slack.api_calls("users.lookupByEmail")) == 1  # users_not_found
    assert told(fake_slack) == []


def test_a_member_whose_email_only_contains_it_is_not_the_deployer(
    bot: BotServer, fake_slack: FakeSlack
):
    # Slack answering with another address (a partial match) is not a match.
    user = {"id": "U0EVE", "profile": {"email": "eve.ann.lee@example.com"}}
    fake_slack.always("users.lookupByEmail", Reply(body={"ok": True, "user": user}))
    failed(bot, EMAIL)
    assert told(fake_slack) == []


def test_the_setting_off_looks_nobody_up(
    start_bot: Callable[..., BotServer], env: dict[str, str], fake_slack: FakeSlack
):
    fake_slack.emails[EMAIL] = "U0ANN"
    bot = start_bot(Settings.from_env({**env, "DEPLOYHQ_MENTION_DEPLOYER": "false"}))
    failed(bot, EMAIL)
    assert fake_slack.api_calls("users.lookupByEmail") == []
    assert told(fake_slack) == []


def test_five_failures_by_one_deployer_cost_one_lookup(bot: BotServer, fake_slack: FakeSlack):
    fake_slack.emails[EMAIL] = "U0ANN"
    for _ in range(5):
        identifier = str(uuid.uuid4())
        bot.webhook(delivery(deployer=EMAIL, identifier=identifier))
    fake_slack.wait_for(lambda: len(told(fake_slack)) == 5, timeout=20)
    assert len(fake_slack.api_calls("users.lookupByEmail")) == 1
    assert set(told(fake_slack)) == {":wave: <@U0ANN>, your deployment failed."}


def test_a_miss_is_cached_too(bot: BotServer, fake_slack: FakeSlack):
    for _ in range(3):
        bot.webhook(delivery(deployer=EMAIL, identifier=str(uuid.uuid4())))
    fake_slack.wait_for(lambda: len(cards(fake_slack)) == 3)
    bot.settle()
    assert len(fake_slack.api_calls("users.lookupByEmail")) == 1


def test_a_slack_error_on_lookup_costs_nothing_else(bot: BotServer, fake_slack: FakeSlack):
    fake_slack.emails[EMAIL] = "U0ANN"
    fake_slack.always("users.lookupByEmail", Reply(200, {"ok": False, "error": "missing_scope"}))
    failed(bot, EMAIL)
    assert len(cards(fake_slack)) == 1
    assert told(fake_slack) == []
    assert cards(fake_slack)[0]["text"] == "Deployment failed: My Project (main)"


def test_an_email_ish_deployer_with_markup_never_pings(bot: BotServer, fake_slack: FakeSlack):
    sneaky = "<!channel>@example.com"
    fake_slack.emails[sneaky] = "U0ANN"
    assert not is_email(sneaky)
    assert not is_email("ann@example.com <!here>")
    assert not is_email("ann@example.com|x")
    failed(bot, sneaky)
    assert fake_slack.api_calls("users.lookupByEmail") == []
    for message in fake_slack.taken:
        assert "<!channel>" not in str(message)
        assert "<@U0ANN>" not in str(message)
