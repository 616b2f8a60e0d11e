"""Four eyes on production: an action on chosen servers waits for a second person's Approve.

Over real HTTP: the Bolt app behind the WSGI app, a private redis-server, fake Slack and
DeployHQ; two instances where it matters, and the Procfile's gunicorn killed after an approval.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from bot.cli import doctor
from bot.config import Settings
from tests.conftest import BotServer
from tests.support import crash
from tests.support.cards import buttons, first_card, state_line, thread, told
from tests.support.fakes import FakeDeployHQ, FakeSlack, Reply
from tests.support.signed import at, click_body, command_body, delivery

GOOD_ID = "11111111-2222-3333-4444-555555555555"
NEWER_ID = "77777777-2222-3333-4444-555555555555"
APPROVE, DENY = "deployhq_approve", "deployhq_deny"
FOUR_EYES = {
    "DEPLOYHQ_APPROVAL_SERVERS": "PRODUCTION server",  # by name, any case
    "DEPLOYHQ_APPROVERS_USERS": "U0BOB,U0CAROL",
}


def good() -> dict[str, Any]:
    return delivery(
        identifier=GOOD_ID,
        status="completed",
        end_revision={"ref": "a1b2c3d4e5f6", "message": "Known good"},
        timestamps={"queued_at": at(-3600), "started_at": at(-3598), "completed_at": at(-3540)},
    )


@pytest.fixture
def gated(start_bot: Callable[..., BotServer], env: dict[str, str]) -> Callable[..., BotServer]:
    def start(**extra: str) -> BotServer:
        return start_bot(Settings.from_env({**env, **FOUR_EYES, **extra}))

    return start


def card_with_rollback(bot: BotServer, slack: FakeSlack, deployhq: FakeDeployHQ) -> dict:
    deployhq.history[:] = [delivery(), good()]
    deployhq.record(good())
    bot.webhook(delivery())
    return slack.wait_for(
        lambda: next(
            (
                m
                for m in slack.api_calls("chat.update") + slack.api_calls("chat.postMessage")
                if "thread_ts" not in m and "deployhq_rollback" in buttons(m)
            ),
            None,
        )
    )


def last_card(slack: FakeSlack) -> dict:
    return [u for u in slack.api_calls("chat.update") if "blocks" in u][-1]


def request_of(bot: BotServer, slack: FakeSlack) -> str:
    """The request's id, as its Approve button carries it, once the card shows it."""
    bot.settle()
    card = slack.wait_for(lambda: APPROVE in buttons(last_card(slack)) and last_card(slack))
    return str(buttons(card)[APPROVE]["value"])


def posted_request(slack: FakeSlack) -> dict:
    """The message of its own a request no card shows is posted as, with Approve and Deny."""
    return dict(
        slack.wait_for(
            lambda: next(
                (m for m in slack.api_calls("chat.postMessage") if APPROVE in buttons(m)), None
            )
        )
    )


def press(bot: BotServer, action_id: str, value: str, user_id: str, key: str) -> None:
    bot.click(value, user_id=user_id, key=key, action_id=action_id)
    bot.settle()


def test_a_roll_back_on_production_waits_for_a_second_person_and_runs_once_approved(
    gated: Callable[..., BotServer], fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    bot = gated()
    card = card_with_rollback(bot, fake_slack, fake_deployhq)
    press(bot, "deployhq_rollback", buttons(card)["deployhq_rollback"]["value"], "U0ANN", "ann")

    request = request_of(bot, fake_slack)
    waiting = last_card(fake_slack)
    assert fake_deployhq.rollbacks() == []  # nothing is sent to DeployHQ yet
    line = state_line(waiting)
    assert line.startswith(":closed_lock_with_key: *Roll back* to `a1b2c3d` requested by <@U0ANN>")
    assert "waiting for approval (until <!date^" in line
    assert set(buttons(waiting)) == {APPROVE, DENY, "deployhq_open"}  # the actions give way
    note = " ".join(m["text"] for m in thread(fake_slack))
    assert "<@U0ANN> asked for *Roll back*" in note and "<@U0BOB> or <@U0CAROL>" in note
    assert "@here" not in note and "<!channel>" not in note

    press(bot, APPROVE, request, "U0ANN", "self")
    assert "cannot approve your own request" in told(fake_slack, "self")
    press(bot, APPROVE, request, "U0EVE", "eve")
    assert "Only <@U0BOB> or <@U0CAROL> may approve" in told(fake_slack, "eve")
    assert fake_deployhq.rollbacks() == []

    press(bot, APPROVE, request, "U0BOB", "bob")
    assert len(fake_deployhq.rollbacks()) == 1
    done = state_line(last_card(fake_slack))
    assert done.startswith(":rewind: Rolled back by <@U0ANN>, approved by <@U0BOB>")
    assert any("<@U0BOB> approved the roll back <@U0ANN>" in m["text"] for m in thread(fake_slack))

    press(bot, APPROVE, request, "U0CAROL", "carol")  # too late: it ran
    assert "<@U0BOB> already approved this request" in told(fake_slack, "carol")
    assert len(fake_deployhq.rollbacks()) == 1


def test_deployhqs_record_is_read_again_at_approval_and_a_newer_deployment_sends_nothing(
    gated: Callable[..., BotServer], fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    bot = gated()
    card = card_with_rollback(bot, fake_slack, fake_deployhq)
    press(bot, "deployhq_rollback", buttons(card)["deployhq_rollback"]["value"], "U0ANN", "ann")
    request = request_of(bot, fake_slack)
    newer = delivery(
        identifier=NEWER_ID,
        status="completed",
        end_revision={"ref": "0000aaaa1111"},
        timestamps={"queued_at": at(600), "started_at": at(602), "completed_at": at(660)},
    )
    fake_deployhq.history.insert(0, newer)  # someone deployed from DeployHQ meanwhile
    fake_deployhq.record(newer)

    press(bot, APPROVE, request, "U0BOB", "bob")
    assert fake_deployhq.rollbacks() == []
    assert "Nothing was rolled back: deployment `77777777`" in told(fake_slack, "bob")


def test_a_deny_ends_the_request_the_buttons_come_back_and_a_late_approve_sends_nothing(
    gated: Callable[..., BotServer], fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    bot = gated()
    card = card_with_rollback(bot, fake_slack, fake_deployhq)
    press(bot, "deployhq_rollback", buttons(card)["deployhq_rollback"]["value"], "U0ANN", "ann")
    request = request_of(bot, fake_slack)

    press(bot, DENY, request, "U0EVE", "eve")  # not an approver: cannot deny either
    assert "may approve or deny" in told(fake_slack, "eve")
    press(bot, DENY, request, "U0BOB", "bob")
    after = last_card(fake_slack)
    assert state_line(after).startswith(":no_entry: <@U0BOB> denied the roll back <@U0ANN> asked")
    assert {"deployhq_retry", "deployhq_rollback"} <= set(buttons(after))
    assert any("<@U0BOB> denied the roll back" in m["text"] for m in thread(fake_slack))

    press(bot, APPROVE, request, "U0CAROL", "carol")
    assert "<@U0BOB> already denied this request" in told(fake_slack, "carol")
    assert fake_deployhq.rollbacks() == [] and fake_deployhq.retries() == []

    # The requester may withdraw their own next request.
    press(bot, "deployhq_retry", buttons(after)["deployhq_retry"]["value"], "U0ANN", "again")
    second = request_of(bot, fake_slack)
    assert second != request
    press(bot, DENY, second, "U0ANN", "withdraw")
    assert "<@U0ANN> withdrew the retry they asked for" in state_line(last_card(fake_slack))


def test_an_undecided_request_lapses_on_its_own_and_the_buttons_come_back(
    gated: Callable[..., BotServer], fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    bot = gated(DEPLOYHQ_APPROVAL_MINUTES="0.05", RECONCILE_INTERVAL="0.3")  # 3 s
    bot.webhook(delivery())
    press(
        bot,
        "deployhq_retry",
        buttons(first_card(fake_slack))["deployhq_retry"]["value"],
        "U0ANN",
        "ann",
    )
    request = request_of(bot, fake_slack)

    lapsed = fake_slack.wait_for(
        lambda: "lapsed" in state_line(last_card(fake_slack)) and last_card(fake_slack),
        timeout=15,
    )
    assert "The retry <@U0ANN> asked for lapsed: nobody approved it in time" in state_line(lapsed)
    assert "deployhq_retry" in buttons(lapsed) and APPROVE not in buttons(lapsed)
    fake_slack.wait_for(lambda: any("lapsed" in m["text"] for m in thread(fake_slack)))
    press(bot, APPROVE, request, "U0BOB", "bob")
    assert "lapsed" in told(fake_slack, "bob")
    assert fake_deployhq.retries() == []


def test_with_approval_on_and_nobody_to_approve_every_gated_action_is_refused_and_doctor_says_so(
    start_bot: Callable[..., BotServer],
    env: dict[str, str],
    fake_slack: FakeSlack,
    fake_deployhq: FakeDeployHQ,
):
    closed = {**env, "DEPLOYHQ_APPROVAL_SERVERS": "*"}
    bot = start_bot(Settings.from_env(closed))
    bot.webhook(delivery())
    value = buttons(first_card(fake_slack))["deployhq_retry"]["value"]
    press(bot, "deployhq_retry", value, "U0ANN", "ann")
    assert "nobody may approve" in told(fake_slack, "ann")
    assert fake_deployhq.retries() == []
    assert "deployhq_retry" in buttons(last_card(fake_slack))  # offered again, with the reason

    check = doctor.approval(Settings.from_env(closed))
    assert check.mark == doctor.FAIL and "DEPLOYHQ_APPROVERS_USERS" in check.fix
    assert doctor.approval(Settings.from_env(env)).mark == doctor.NOTE  # off by default
    assert doctor.approval(Settings.from_env({**env, **FOUR_EYES})).mark == doctor.PASS


def test_servers_nobody_listed_and_abort_never_wait(
    gated: Callable[..., BotServer], fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    bot = gated(DEPLOYHQ_APPROVAL_SERVERS="staging")
    bot.webhook(delivery())
    press(
        bot,
        "deployhq_retry",
        buttons(first_card(fake_slack))["deployhq_retry"]["value"],
        "U0ANN",
        "ann",
    )
    assert len(fake_deployhq.retries()) == 1  # Production Server is not staging


def test_a_server_group_named_for_approval_holds_up_an_action_on_any_of_its_servers(
    gated: Callable[..., BotServer], fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    web = [
        {"name": "Web 1", "identifier": "aaaa1111", "server_group_identifier": "g-prod"},
        {"name": "Web 2", "identifier": "bbbb2222", "server_group_identifier": "g-prod"},
    ]
    fake_deployhq.group_names["g-prod"] = "Production"
    bot = gated(DEPLOYHQ_APPROVAL_SERVERS="production")
    bot.webhook(delivery(servers=web))
    press(
        bot,
        "deployhq_retry",
        buttons(first_card(fake_slack))["deployhq_retry"]["value"],
        "U0ANN",
        "ann",
    )
    assert request_of(bot, fake_slack) and fake_deployhq.retries() == []


def test_an_edited_or_invented_request_id_approves_nothing(
    gated: Callable[..., BotServer], fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    bot = gated()
    bot.webhook(delivery())
    press(
        bot,
        "deployhq_retry",
        buttons(first_card(fake_slack))["deployhq_retry"]["value"],
        "U0ANN",
        "ann",
    )
    request = request_of(bot, fake_slack)
    edited = request[:-1] + ("1" if request.endswith("0") else "0")  # one character changed
    for n, value in enumerate([edited, "f" * 32, '{"p":"my-project"}', ""]):
        press(bot, APPROVE, value, "U0BOB", f"k{n}")
        assert "no longer open" in told(fake_slack, f"k{n}"), value
    assert fake_deployhq.retries() == []


def test_twenty_approvals_over_two_instances_act_once(
    gated: Callable[..., BotServer], fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    first, second = gated(), gated()
    first.webhook(delivery())
    press(
        first,
        "deployhq_retry",
        buttons(first_card(fake_slack))["deployhq_retry"]["value"],
        "U0ANN",
        "ann",
    )
    request = request_of(first, fake_slack)
    go = threading.Barrier(20)

    def approve(n: int) -> None:
        go.wait()
        (first, second)[n % 2].click(
            request, user_id=("U0BOB", "U0CAROL")[n % 2], key=f"a{n}", action_id=APPROVE
        )

    threads = [threading.Thread(target=approve, args=(n,)) for n in range(20)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    first.settle()
    second.settle()
    took = time.monotonic() - started
    assert len(fake_deployhq.retries()) == 1, took
    said = [told(fake_slack, f"a{n}") for n in range(20)]
    assert sum("already approved" in s for s in said) >= 18  # the others are told who did


def test_approve_and_deny_pressed_together_one_wins_and_the_card_says_which(
    gated: Callable[..., BotServer], fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    first, second = gated(), gated()
    first.webhook(delivery())
    press(
        first,
        "deployhq_retry",
        buttons(first_card(fake_slack))["deployhq_retry"]["value"],
        "U0ANN",
        "ann",
    )
    request = request_of(first, fake_slack)
    go = threading.Barrier(2)

    def click(bot: BotServer, action_id: str, user_id: str) -> None:
        go.wait()
        bot.click(request, user_id=user_id, key=user_id, action_id=action_id)

    threads = [
        threading.Thread(target=click, args=(first, APPROVE, "U0BOB")),
        threading.Thread(target=click, args=(second, DENY, "U0CAROL")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    first.settle()
    second.settle()
    line = state_line(last_card(fake_slack))
    if fake_deployhq.retries():
        assert len(fake_deployhq.retries()) == 1 and "approved by <@U0BOB>" in line
        assert "already approved" in told(fake_slack, "U0CAROL")
    else:
        assert "<@U0CAROL> denied the retry" in line
        assert "already denied" in told(fake_slack, "U0BOB")


def test_a_deploy_command_on_production_is_a_channel_message_with_approve_and_deny(
    gated: Callable[..., BotServer], fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    bot = gated()
    fake_deployhq.history[:] = [delivery(status="completed")]
    fake_deployhq.latest["main"] = "0123456789abcdef0123456789abcdef01234567"
    bot.command("deploy my-project 7563d091", user_id="U0ANN", key="confirm")
    said = fake_slack.wait_for(lambda: fake_slack.responses("confirm"))[-1]
    press(
        bot,
        "deployhq_deploy_confirm",
        buttons(said)["deployhq_deploy_confirm"]["value"],
        "U0ANN",
        "ann",
    )
    asked = fake_slack.wait_for(
        lambda: next(
            (m for m in fake_slack.api_calls("chat.postMessage") if APPROVE in buttons(m)), None
        )
    )
    assert "<@U0ANN> asked to deploy `0123456`" in asked["text"] and fake_deployhq.created() == []
    press(bot, APPROVE, buttons(asked)[APPROVE]["value"], "U0CAROL", "carol")
    assert len(fake_deployhq.created()) == 1
    final = fake_slack.api_calls("chat.update")[-1]
    assert "deployed `0123456`" in final["text"] and "approved by <@U0CAROL>" in final["text"]
    assert APPROVE not in buttons(final)


def test_a_process_killed_after_the_approval_sends_nothing_and_the_next_request_acts_once():
    """The Procfile's gunicorn, two instances sharing a Redis: the approver's worker is killed
    with SIGKILL between the approval and the call. Nothing was sent; once its claim lapses the
    card offers Retry again, and a second request, approved on the other instance, acts once."""
    scenario = crash.Scenario("retry")
    try:
        four_eyes = {**FOUR_EYES, "DEPLOYHQ_APPROVERS_USERS": "U0BOB,U0CAROL"}
        first = scenario.start(BOT_FAILPOINT="approved", **four_eyes)
        second = scenario.start(**four_eyes)
        first.wait_ready()
        second.wait_ready()
        value = scenario.value(second)
        scenario.click(second, value, "U0ANN")
        request = _request(scenario)
        _press(scenario, first, APPROVE, request, "U0BOB")  # killed after approving

        def back() -> dict[str, Any] | None:
            cards = [u for u in scenario.slack.api_calls("chat.update") if "blocks" in u]
            last = cards[-1] if cards else {}
            return last if "deployhq_retry" in buttons(last) and len(cards) > 2 else None

        card = scenario.slack.wait_for(back, timeout=30)  # the claim lapsed: Retry is back
        assert scenario.did() == 0 and APPROVE not in buttons(card)
        scenario.slack.wait_for(
            lambda: any("interrupted before DeployHQ" in m["text"] for m in thread(scenario.slack))
        )
        scenario.click(second, str(buttons(card)["deployhq_retry"]["value"]), "U0ANN")
        again = _request(scenario, other_than=request)
        _press(scenario, second, APPROVE, again, "U0CAROL")
        scenario.deployhq.wait_for(scenario.did, timeout=15)
        time.sleep(1)  # the other instance's reconciler has had its turns meanwhile
        assert scenario.did() == 1
    finally:
        scenario.stop()


def _request(scenario: crash.Scenario, other_than: str = "") -> str:
    def found() -> str:
        for update in reversed(scenario.slack.api_calls("chat.update")):
            value = buttons(update).get(APPROVE, {}).get("value")
            if value and value != other_than:
                return str(value)
        return ""

    return str(scenario.slack.wait_for(found, timeout=15))


def _press(scenario: crash.Scenario, server: Any, action_id: str, value: str, user: str) -> None:
    body = click_body(
        value, response_url=scenario.slack.response_url(user), user_id=user, action_id=action_id
    )
    scenario.post(server, body)


SECOND_FAILURE = "99999999-2222-3333-4444-555555555555"


def test_a_server_moved_into_a_gated_group_is_gated_at_once_its_members_read_when_it_acts(
    gated: Callable[..., BotServer], fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    """The group's members are read from DeployHQ when the action is asked for, never kept: a
    server moved into ``prod`` a moment after a Retry on it went straight through waits now."""
    fake_deployhq.group_names["g-prod"] = "prod"
    web0 = {"name": "Web 0", "identifier": "aaaa0000", "server_group_identifier": "g-prod"}
    web1 = {"name": "Web 1", "identifier": "bbbb1111"}
    fake_deployhq.history[:] = [delivery(identifier=GOOD_ID, status="completed", servers=[web0])]
    bot = gated(DEPLOYHQ_APPROVAL_SERVERS="prod")
    bot.webhook(delivery(servers=[web1]))
    press(
        bot,
        "deployhq_retry",
        buttons(first_card(fake_slack))["deployhq_retry"]["value"],
        "U0ANN",
        "ann",
    )
    assert len(fake_deployhq.retries()) == 1  # web-1 is in no gated group yet

    for record in [*fake_deployhq.history, *fake_deployhq.deployments.values()]:
        for server in record.get("servers") or []:
            if server.get("identifier") == "bbbb1111":
                server["server_group_identifier"] = "g-prod"  # moved into prod in DeployHQ
    moved = {**web1, "server_group_identifier": "g-prod"}
    bot.webhook(delivery(identifier=SECOND_FAILURE, servers=[moved]))
    second = fake_slack.wait_for(
        lambda: next(
            (
                m
                for m in fake_slack.api_calls("chat.postMessage")
                if "thread_ts" not in m and SECOND_FAILURE[:8] in str(m)
            ),
            None,
        )
    )
    press(bot, "deployhq_retry", buttons(second)["deployhq_retry"]["value"], "U0ANN", "ann2")
    assert request_of(bot, fake_slack)
    assert len(fake_deployhq.retries()) == 1  # waits for an approver


def test_resuming_a_group_that_holds_a_gated_server_waits_for_approval(
    gated: Callable[..., BotServer], fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    """Auto-deploy of the group ``prod`` (which holds the gated Web 1) is paused; resuming the
    group changes Web 1 too, so it waits, as resuming Web 1 by its own name does."""
    fake_deployhq.group_names["g-prod"] = "prod"
    web = [
        {"name": "Web 1", "identifier": "aaaa1111", "server_group_identifier": "g-prod"},
        {"name": "Web 2", "identifier": "bbbb2222", "server_group_identifier": "g-prod"},
    ]
    fake_deployhq.history[:] = [delivery(identifier=GOOD_ID, status="completed", servers=web)]
    fake_deployhq.auto_deploy["g-prod"] = False
    bot = gated(DEPLOYHQ_APPROVAL_SERVERS="Web 1", DEPLOYHQ_PAUSE_AUTO_DEPLOY="true")

    bot.command("unfreeze my-project prod", user_id="U0ANN", key="unfreeze")
    bot.settle()
    assert fake_deployhq.auto_deploy_changes() == []  # nothing turned on yet
    asked = posted_request(fake_slack)
    assert "the automatic deployments of `prod` of `my-project`" in asked["text"]
    assert "waits for a second person's approval <https://" in told(fake_slack, "unfreeze")

    press(bot, APPROVE, buttons(asked)[APPROVE]["value"], "U0BOB", "bob")
    assert [c.path for c in fake_deployhq.auto_deploy_changes()] == [
        "/projects/my-project/auto_deployments"
    ]
    assert fake_deployhq.auto_deploy["g-prod"] is True
    final = fake_slack.api_calls("chat.update")[-1]
    assert "Approved by <@U0BOB>" in final["text"] and APPROVE not in buttons(final)


def _deploy_request(bot: BotServer, slack: FakeSlack, deployhq: FakeDeployHQ) -> dict:
    """``/deployhq deploy`` of main's newest commit to the gated server, confirmed by @ann:
    the channel's message asking for approval."""
    deployhq.history[:] = [delivery(status="completed")]
    deployhq.latest["main"] = "0123456789abcdef0123456789abcdef01234567"
    bot.command("deploy my-project 7563d091", user_id="U0ANN", key="confirm")
    said = slack.wait_for(lambda: slack.responses("confirm"))[-1]
    press(
        bot,
        "deployhq_deploy_confirm",
        buttons(said)["deployhq_deploy_confirm"]["value"],
        "U0ANN",
        "ann",
    )
    return dict(
        slack.wait_for(
            lambda: next(
                (m for m in slack.api_calls("chat.postMessage") if APPROVE in buttons(m)), None
            )
        )
    )


def test_an_approved_deploy_sends_nothing_when_something_was_deployed_there_since_the_request(
    gated: Callable[..., BotServer], fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    """X asked for; then Y is deployed to the server and completes: Approve must not put X over
    Y. The channel's message says why, and its buttons are gone."""
    bot = gated()
    asked = _deploy_request(bot, fake_slack, fake_deployhq)
    newer = delivery(
        identifier=NEWER_ID,
        status="completed",
        end_revision={"ref": "fedcba9876543210fedcba9876543210fedcba98"},
        timestamps={"queued_at": at(600), "started_at": at(602), "completed_at": at(660)},
    )
    fake_deployhq.history.insert(0, newer)
    fake_deployhq.record(newer)

    press(bot, APPROVE, buttons(asked)[APPROVE]["value"], "U0CAROL", "carol")
    assert fake_deployhq.created() == []
    assert "deployment `77777777` (*completed*) was queued" in told(fake_slack, "carol")
    final = fake_slack.api_calls("chat.update")[-1]
    assert "did not go through" in final["text"] and "77777777" in final["text"]
    assert APPROVE not in buttons(final)


def test_an_approved_deploy_sends_nothing_when_the_branch_has_moved_on(
    gated: Callable[..., BotServer], fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    bot = gated()
    asked = _deploy_request(bot, fake_slack, fake_deployhq)
    fake_deployhq.latest["main"] = "fedcba9876543210fedcba9876543210fedcba98"  # main moved on

    press(bot, APPROVE, buttons(asked)[APPROVE]["value"], "U0CAROL", "carol")
    assert fake_deployhq.created() == []
    assert "`main` has moved on to `fedcba9`" in told(fake_slack, "carol")
    final = fake_slack.api_calls("chat.update")[-1]
    assert "has moved on" in final["text"] and APPROVE not in buttons(final)


CARDLESS = "44444444-2222-3333-4444-555555555555"


def test_a_commands_request_no_card_shows_is_posted_with_approve_and_deny_and_decided_there(
    gated: Callable[..., BotServer], fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    """``/deployhq retry`` of a failure on a gated server that has no card: the request is a
    channel message of its own, the requester and a second asker are told where it is (a
    link), and an approver decides it there; the message then says what DeployHQ did."""
    bot = gated()
    bot.command(f"retry my-project {CARDLESS}", user_id="U0ANN", key="ann")
    bot.settle()
    asked = posted_request(fake_slack)
    assert asked["channel"] == "C0DEPLOYS" and fake_deployhq.retries() == []
    assert "<@U0ANN> asked for *Retry* on deployment `44444444` of `my-project`" in asked["text"]
    assert "<@U0BOB> or <@U0CAROL> approves it, by <!date^" in asked["text"]
    link = "https://acme.slack.com/archives/C0DEPLOYS/p"
    assert f"waits for a second person's approval <{link}" in told(fake_slack, "ann")

    bot.command(f"retry my-project {CARDLESS}", user_id="U0DAN", key="dan")
    bot.settle()
    assert f"Approve or Deny it <{link}" in told(fake_slack, "dan")
    assert len([m for m in fake_slack.api_calls("chat.postMessage") if APPROVE in buttons(m)]) == 1

    press(bot, APPROVE, buttons(asked)[APPROVE]["value"], "U0BOB", "bob")
    assert len(fake_deployhq.retries()) == 1
    final = fake_slack.api_calls("chat.update")[-1]
    assert "Approved by <@U0BOB>" in final["text"] and "Retried by <@U0ANN>" in final["text"]
    assert APPROVE not in buttons(final)


def test_a_request_with_a_message_of_its_own_lapses_there_and_can_be_asked_for_again(
    gated: Callable[..., BotServer], fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    bot = gated(DEPLOYHQ_APPROVAL_MINUTES="0.05", RECONCILE_INTERVAL="0.3")  # 3 s
    bot.command(f"retry my-project {CARDLESS}", user_id="U0ANN", key="ann")
    bot.settle()
    first = posted_request(fake_slack)
    lapsed = fake_slack.wait_for(
        lambda: next(
            (u for u in fake_slack.api_calls("chat.update") if "lapsed" in u.get("text", "")),
            None,
        ),
        timeout=15,
    )
    assert "The retry <@U0ANN> asked for lapsed" in lapsed["text"]
    assert APPROVE not in buttons(lapsed)

    bot.command(f"retry my-project {CARDLESS}", user_id="U0ANN", key="again")
    bot.settle()
    second = fake_slack.wait_for(
        lambda: [m for m in fake_slack.api_calls("chat.postMessage") if APPROVE in buttons(m)][1:]
    )[0]
    assert buttons(second)[APPROVE]["value"] != buttons(first)[APPROVE]["value"]
    press(bot, APPROVE, buttons(second)[APPROVE]["value"], "U0CAROL", "carol")
    assert len(fake_deployhq.retries()) == 1


def _press_on(bot: BotServer, slack: FakeSlack, message: dict, action_id: str, user: str) -> None:
    """Approve or Deny pressed on ``message`` (a card or a request's own message), with the
    message as Slack sends it back."""
    value = str(buttons(message)[action_id]["value"])
    body = click_body(
        value,
        response_url=slack.response_url(user),
        user_id=user,
        channel=message["channel"],
        message_ts=message["ts"],
        action_id=action_id,
        blocks=message["blocks"],
    )
    bot.slack_post(body)
    bot.settle()


def test_a_card_whose_request_the_store_lost_is_redrawn_from_deployhq_and_can_ask_again(
    gated: Callable[..., BotServer],
    fake_slack: FakeSlack,
    fake_deployhq: FakeDeployHQ,
    env: dict[str, str],
):
    """Redis flushed while a request waits: Approve sends nothing, and the card goes back to
    its failure with Retry (read from DeployHQ's record); a new request is then made and
    decided once."""
    bot = gated()
    bot.webhook(delivery())
    press(
        bot,
        "deployhq_retry",
        buttons(first_card(fake_slack))["deployhq_retry"]["value"],
        "U0ANN",
        "ann",
    )
    request_of(bot, fake_slack)
    waiting = last_card(fake_slack)
    redis.Redis.from_url(env["REDIS_URL"]).flushdb()

    _press_on(bot, fake_slack, waiting, APPROVE, "U0BOB")
    assert "no longer open" in told(fake_slack, "U0BOB") and fake_deployhq.retries() == []
    back = fake_slack.wait_for(
        lambda: "deployhq_retry" in buttons(last_card(fake_slack)) and last_card(fake_slack)
    )
    assert back["ts"] == waiting["ts"] and APPROVE not in buttons(back)

    press(bot, "deployhq_retry", buttons(back)["deployhq_retry"]["value"], "U0ANN", "again")
    again = request_of(bot, fake_slack)
    press(bot, APPROVE, again, "U0CAROL", "carol")
    assert len(fake_deployhq.retries()) == 1


def test_a_request_message_whose_request_the_store_lost_says_so_and_a_new_one_can_be_made(
    gated: Callable[..., BotServer],
    fake_slack: FakeSlack,
    fake_deployhq: FakeDeployHQ,
    env: dict[str, str],
):
    bot = gated()
    bot.command(f"retry my-project {CARDLESS}", user_id="U0ANN", key="ann")
    bot.settle()
    asked = {**posted_request(fake_slack), "ts": "1700000000.000777"}
    redis.Redis.from_url(env["REDIS_URL"]).flushdb()

    _press_on(bot, fake_slack, asked, DENY, "U0BOB")
    redrawn = fake_slack.api_calls("chat.update")[-1]
    assert redrawn["ts"] == "1700000000.000777" and APPROVE not in buttons(redrawn)
    assert "no longer knows this request" in redrawn["text"]

    bot.command(f"retry my-project {CARDLESS}", user_id="U0ANN", key="again")
    bot.settle()
    second = fake_slack.wait_for(
        lambda: [m for m in fake_slack.api_calls("chat.postMessage") if APPROVE in buttons(m)][1:]
    )[0]
    press(bot, APPROVE, buttons(second)[APPROVE]["value"], "U0CAROL", "carol")
    assert len(fake_deployhq.retries()) == 1


# The crash table's approval paths: Approve pressed on one instance of the Procfile's gunicorn,
# which dies (SIGKILL) at a step after its compare-and-set, or whose call's answer is lost.
APPROVAL_CASES = {
    "killed after sending was marked": ("sending", None),
    "killed in the call (DeployHQ did it)": ("in-call", None),
    "killed after the answer": ("answered", None),
    "the answer lost (dropped)": (None, "dropped"),
    "the answer lost (504 after the work)": (None, "504"),
}


@pytest.mark.parametrize("case", list(APPROVAL_CASES))
def test_an_approved_action_acts_once_whatever_dies_or_is_lost_after_the_approval(case: str):
    """After Approve, DeployHQ's record is the arbiter: a worker killed before the call sends
    nothing (the card offers Retry again, and a new request acts once); killed in or after the
    call, or its answer lost, the one retry DeployHQ did is found in its record and the card
    names who asked and who approved. Approve and the card's first Retry are pressed again on
    both instances all along: DeployHQ retries once in every case."""
    step, fault = APPROVAL_CASES[case]
    scenario = crash.Scenario("retry")
    try:
        failpoint = {"BOT_FAILPOINT": step} if step and step != "in-call" else {}
        approver = scenario.start(**FOUR_EYES, **failpoint)
        other = scenario.start(**FOUR_EYES)
        approver.wait_ready()
        other.wait_ready()
        if fault == "dropped":
            scenario.deployhq.script("retry", Reply(200, None, drop=True))
        elif fault == "504":
            page = b"<html>504 Gateway Time-out</html>"
            scenario.deployhq.script("retry", Reply(504, raw=page, after_work=True))
        elif step == "in-call":
            scenario.deployhq.script("retry", Reply(200, None, delay=3))
        value = scenario.value(other)
        scenario.click(other, value, "U0ANN")
        request = _request(scenario)
        asked = len(scenario.slack.api_calls("chat.update"))
        _press(scenario, approver, APPROVE, request, "U0BOB")
        # Bob's approval is taken (the card says so) before anyone else presses anything.
        scenario.slack.wait_for(
            lambda: any(
                "approved by <@U0BOB>" in state_line(u)
                for u in scenario.slack.api_calls("chat.update")
                if "blocks" in u
            ),
            timeout=20,
        )
        if step == "in-call":
            scenario.deployhq.wait_for(scenario.did)
            for worker in approver.workers():
                os.kill(worker, signal.SIGKILL)

        def ended() -> str:
            cards = [u for u in scenario.slack.api_calls("chat.update")[asked:] if "blocks" in u]
            last = cards[-1] if cards else {}
            line = state_line(last) if last else ""
            if "Retried by <@U0ANN>, approved by <@U0BOB>" in line:
                return "retried"
            if buttons(last).get(APPROVE, {}).get("value", request) != request:
                return "asked again"  # back on the failure, and a later clicker asked anew
            requested = line.startswith(":hourglass_flowing_sand:")  # "Retry requested by …"
            offered = "deployhq_retry" in buttons(last) and not requested
            return "offered" if offered else ""  # back on the failure, with Retry

        deadline, n = time.monotonic() + 60, 0
        while not ended() and time.monotonic() < deadline:
            _press(scenario, other, APPROVE, request, "U0CAROL")
            scenario.click((approver, other)[n % 2], value, f"U0LATER{n}")
            n += 1
            time.sleep(0.4)
        shown = ended()
        # What the card said since the request, for a case gone wrong.
        said = [
            state_line(u)[:120] for u in scenario.slack.api_calls("chat.update") if "blocks" in u
        ]
        if step == "sending":  # its answer never came: DeployHQ's record shows no retry
            assert shown in ("offered", "asked again") and scenario.did() == 0, said
            card = [u for u in scenario.slack.api_calls("chat.update") if "blocks" in u][-1]
            if shown == "offered":
                scenario.click(other, str(buttons(card)["deployhq_retry"]["value"]), "U0ANN")
            try:
                again = _request(scenario, other_than=request)
            except AssertionError as exc:  # what Ann was told instead, for a case gone wrong
                told = [r.get("text") for r in scenario.slack.responses("U0ANN")]
                raise AssertionError(f"no new request: {shown=}, {said[-3:]=}, {told=}") from exc
            _press(scenario, other, APPROVE, again, "U0CAROL")
            scenario.deployhq.wait_for(scenario.did, timeout=15)
        else:
            assert shown == "retried", said
        for extra in range(4):  # and once more on each after it has ended
            _press(scenario, (approver, other)[extra % 2], APPROVE, request, "U0CAROL")
        time.sleep(1)
        assert scenario.did() == 1
    finally:
        scenario.stop()


def test_an_approved_request_whose_answer_is_lost_ends_its_message_on_deployhqs_record(
    gated: Callable[..., BotServer], fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    """A request no card shows, approved; DeployHQ answers the retry 500 and its record never
    changes: once the doubt window is over the message says nothing was done, without buttons,
    and a new request can be made."""
    bot = gated(DEPLOYHQ_TIMEOUT="1", DEPLOYHQ_DOUBT_SECONDS="1", RECONCILE_INTERVAL="0.3")
    bot.command(f"retry my-project {CARDLESS}", user_id="U0ANN", key="ann")
    bot.settle()
    asked = posted_request(fake_slack)
    fake_deployhq.script("retry", Reply(500, {"status": 500, "error": "Internal error"}))
    press(bot, APPROVE, buttons(asked)[APPROVE]["value"], "U0BOB", "bob")
    ended = fake_slack.wait_for(
        lambda: next(
            (
                u
                for u in fake_slack.api_calls("chat.update")
                if "shows nothing was done" in u.get("text", "")
            ),
            None,
        ),
        timeout=15,
    )
    assert "Approved by <@U0BOB>" in ended["text"] and APPROVE not in buttons(ended)
    assert len(fake_deployhq.retries()) == 1 and fake_deployhq.actions() == []


def test_a_request_approved_on_a_worker_killed_before_the_call_ends_its_message():
    """A request no card shows, approved on an instance whose worker is SIGKILLed right after
    the approval: nothing was sent, and its message (not left waiting with live buttons) says
    so once the claim lapses; a new request then acts once."""
    scenario = crash.Scenario("retry")
    try:
        approver = scenario.start(**FOUR_EYES, BOT_FAILPOINT="approved")
        other = scenario.start(**FOUR_EYES)
        approver.wait_ready()
        other.wait_ready()
        url = scenario.slack.response_url("ann")
        body = command_body(f"retry my-project {CARDLESS}", response_url=url, user_id="U0ANN")
        scenario.post(other, body.encode())
        asked = posted_request(scenario.slack)
        _press(scenario, approver, APPROVE, buttons(asked)[APPROVE]["value"], "U0BOB")
        ended = _update_saying(scenario.slack, "shows nothing was done", timeout=30)
        assert APPROVE not in buttons(ended) and scenario.did() == 0

        again = scenario.slack.response_url("again")
        body = command_body(f"retry my-project {CARDLESS}", response_url=again, user_id="U0ANN")
        scenario.post(other, body.encode())
        second = scenario.slack.wait_for(
            lambda: [
                m for m in scenario.slack.api_calls("chat.postMessage") if APPROVE in buttons(m)
            ][1:],
            timeout=15,
        )[0]
        _press(scenario, other, APPROVE, buttons(second)[APPROVE]["value"], "U0CAROL")
        scenario.deployhq.wait_for(scenario.did, timeout=15)
        time.sleep(1)
        assert scenario.did() == 1
    finally:
        scenario.stop()


def _update_saying(slack: FakeSlack, words: str, timeout: float) -> dict[str, Any]:
    """The first message edit that says ``words``; on time-out, what every edit said."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for update in slack.api_calls("chat.update"):
            if words in str(update.get("text", "")):
                return dict(update)
        time.sleep(0.05)
    said = [str(u.get("text", ""))[:300] for u in slack.api_calls("chat.update")]
    raise AssertionError(f"no edit says {words!r}; the edits said: {said}")
