"""Every action through one pipeline: no two actions change one server at once, whichever card
or command started them, and a ``/deployhq deploy`` whose answer was lost (or whose process
died after DeployHQ made it) ends in a channel message naming the new deployment, without
anyone pressing again."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.actions.claims import ActionClaim, Claims
from bot.config import Settings
from bot.store.kv import Keys, MemoryKeyValue
from tests.conftest import BotServer
from tests.support.cards import buttons, told
from tests.support.crash import Scenario
from tests.support.crash import good_deployment as good
from tests.support.fakes import FakeDeployHQ, FakeSlack, Reply
from tests.support.signed import delivery

NEW_REF = "0123456789abcdef0123456789abcdef01234567"
SERVER = "7563d091"
PAGE_504 = b"<html>504 Gateway Time-out</html>"


@pytest.fixture
def deployhq(fake_deployhq: FakeDeployHQ) -> FakeDeployHQ:
    """A failure on Production Server, a good deployment before it, and main moved on."""
    fake_deployhq.history[:] = [delivery(), good()]
    fake_deployhq.record(good())
    fake_deployhq.latest["main"] = NEW_REF
    return fake_deployhq


def card_with(slack: FakeSlack, *action_ids: str) -> dict[str, Any]:
    return slack.wait_for(
        lambda: next(
            (
                u
                for u in slack.api_calls("chat.update")
                if set(action_ids) <= set(buttons(u)) and "thread_ts" not in u
            ),
            None,
        )
    )


def channel_said(slack: FakeSlack) -> list[str]:
    """What the channel was told of deploys (not cards, not threads), oldest first."""
    return [
        str(m["text"])
        for m in slack.api_calls("chat.postMessage") + slack.api_calls("chat.update")
        if "thread_ts" not in m and "metadata" not in m
    ]


def confirm_token(bot: BotServer, key: str = "confirm") -> str:
    bot.command(f"deploy my-project {SERVER}", key=key)
    said = bot.slack.wait_for(lambda: bot.slack.responses(key))[-1]
    return str(buttons(said)["deployhq_deploy_confirm"]["value"])


def together(*presses: Callable[[], Any]) -> None:
    """Press every button at the same moment."""
    start = threading.Barrier(len(presses))

    def press(act: Callable[[], Any]) -> None:
        start.wait()
        act()

    threads = [threading.Thread(target=press, args=(p,)) for p in presses]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def slow_history(fake: FakeDeployHQ) -> None:
    """Each read of the deployments list takes 0.4 s: both actions are in their preflight at
    once, each having read that nothing is under way, before either is sent."""
    fake.always("index", Reply(200, None, delay=0.4))


def race(
    bot: BotServer, other: BotServer, slack: FakeSlack, fake: FakeDeployHQ, action_id: str
) -> None:
    """The card's button on one instance and the confirm of ``/deployhq deploy`` on another,
    pressed at the same moment, each preflight slow enough to overlap the other's."""
    bot.webhook(delivery())
    button = buttons(card_with(slack, action_id))[action_id]
    token = confirm_token(other)
    slow_history(fake)
    together(
        lambda: bot.click(button["value"], action_id=action_id, key="card"),
        lambda: other.click(token, action_id="deployhq_deploy_confirm", key="command"),
    )
    bot.settle()
    other.settle()


def test_deploy_latest_and_a_deploy_of_the_same_commit_at_once_make_one_deployment(
    bot: BotServer,
    start_bot: Callable[..., BotServer],
    deployhq: FakeDeployHQ,
    fake_slack: FakeSlack,
):
    race(bot, start_bot(), fake_slack, deployhq, "deployhq_deploy_latest")

    assert len(deployhq.created()) == 1
    assert [kind for kind, _ in deployhq.actions()] == ["deploy"]
    refused = told(fake_slack, "card") + told(fake_slack, "command")
    assert "still under way. Two actions never change one server at once" in refused


def test_a_roll_back_and_a_deploy_of_a_newer_commit_at_once_queue_one_of_them(
    bot: BotServer,
    start_bot: Callable[..., BotServer],
    deployhq: FakeDeployHQ,
    fake_slack: FakeSlack,
):
    race(bot, start_bot(), fake_slack, deployhq, "deployhq_rollback")

    assert len(deployhq.actions()) == 1, deployhq.actions()
    assert len(deployhq.rollbacks()) + len(deployhq.created()) == 1


def test_a_server_is_free_again_once_deployhq_has_answered(
    bot: BotServer, deployhq: FakeDeployHQ, fake_slack: FakeSlack
):
    """Holding a server is for while an action is under way, not after: a Deploy latest done,
    the next deploy's preflight reads DeployHQ's record (which now shows it) and decides."""
    bot.webhook(delivery())
    latest = buttons(card_with(fake_slack, "deployhq_deploy_latest"))["deployhq_deploy_latest"]
    token = confirm_token(bot)
    bot.click(latest["value"], action_id="deployhq_deploy_latest", key="card")
    bot.settle()
    bot.click(token, action_id="deployhq_deploy_confirm", key="command")
    bot.settle()

    assert len(deployhq.created()) == 1
    assert "already went to Production Server" in told(fake_slack, "command")


@pytest.fixture
def doubtful_bot(start_bot: Callable[..., BotServer], env: dict[str, str]) -> BotServer:
    """The doubt window is a second and the reconciler passes twice a second."""
    quick = {"DEPLOYHQ_DOUBT_SECONDS": "1", "RECONCILE_INTERVAL": "0.5", "DEPLOYHQ_TIMEOUT": "1"}
    return start_bot(Settings.from_env({**env, **quick}))


def test_a_504_after_the_create_is_settled_in_the_channel_without_a_second_press(
    doubtful_bot: BotServer, deployhq: FakeDeployHQ, fake_slack: FakeSlack
):
    token = confirm_token(doubtful_bot)
    deployhq.script("create", Reply(504, raw=PAGE_504, after_work=True))
    started = time.monotonic()
    doubtful_bot.click(token, action_id="deployhq_deploy_confirm", key="k1", user_id="U0ANN")

    fake_slack.wait_for(
        lambda: any("DeployHQ answered HTTP 504" in m for m in channel_said(fake_slack))
    )
    (created,) = [ident for kind, ident in deployhq.actions() if kind == "deploy"]
    named = fake_slack.wait_for(
        lambda: [m for m in channel_said(fake_slack) if created[:8] in m], timeout=10
    )
    assert time.monotonic() - started < 1 + 2 + 1  # the doubt window, a recheck, a pass
    assert named[-1].startswith(":rocket: <@U0ANN> deployed `0123456` of `main` to *Production")
    # The in-doubt message itself was edited: one message in the channel, now true.
    posted = [m for m in fake_slack.api_calls("chat.postMessage") if "metadata" not in m]
    assert len(posted) == 1
    assert len(deployhq.created()) == 1


def test_a_504_with_nothing_made_says_so_once_the_doubt_window_has_passed(
    doubtful_bot: BotServer, deployhq: FakeDeployHQ, fake_slack: FakeSlack
):
    token = confirm_token(doubtful_bot)
    deployhq.script("create", Reply(504, raw=PAGE_504))  # a proxy's page; DeployHQ made nothing
    doubtful_bot.click(token, action_id="deployhq_deploy_confirm", key="k1", user_id="U0ANN")

    said = fake_slack.wait_for(
        lambda: [m for m in channel_said(fake_slack) if "was never queued" in m], timeout=10
    )
    assert said[-1].startswith(":warning: <@U0ANN>'s deploy of `0123456` of `main`")
    assert deployhq.actions() == []
    # And the order may be sent again: DeployHQ's record freed it.
    doubtful_bot.click(token, action_id="deployhq_deploy_confirm", key="k2", user_id="U0ANN")
    doubtful_bot.settle()
    assert [kind for kind, _ in deployhq.actions()] == ["deploy"]


@pytest.mark.parametrize("step", ["answered", "in-call"])
def test_a_deploy_whose_process_died_after_the_create_is_told_without_a_second_press(step: str):
    scenario = Scenario("order")
    try:
        first = scenario.start(**({"BOT_FAILPOINT": step} if step != "in-call" else {}))
        second = scenario.start()
        first.wait_ready()
        second.wait_ready()
        if step == "in-call":
            scenario.deployhq.script("create", Reply(201, None, delay=3))
        value = scenario.value(second)
        scenario.click(first, value, "U0ANN")
        scenario.deployhq.wait_for(scenario.did)
        if step == "in-call":
            for worker in first.workers():
                os.kill(worker, signal.SIGKILL)
        line = scenario.slack.wait_for(scenario.settled, timeout=20)
        (created,) = [ident for kind, ident in scenario.deployhq.actions() if kind == "deploy"]
        assert created[:8] in line and "<@U0ANN> deployed `0123456`" in line
        assert len(scenario.deployhq.created()) == 1
    finally:
        scenario.stop()


# --- the claims on servers, without HTTP -------------------------------------------------------


def claims() -> Claims:
    return Claims(MemoryKeyValue(), Keys(), lock_seconds=30)


def taken(claims: Claims, key: str, user: str = "U0A") -> ActionClaim:
    ok, claim = claims.take(key, user)
    assert ok
    return claim


def test_overlapping_servers_exclude_each_other_and_disjoint_ones_do_not():
    store = claims()
    mine, _ = store.hold_servers("a", taken(store, "a"), frozenset({"web-1", "web-2"}))
    assert mine is not None and mine.servers == ("web-1", "web-2")
    lost, holder = store.hold_servers("b", taken(store, "b", "U0B"), frozenset({"web-2", "db"}))
    assert lost is None and holder is not None and holder.user_id == "U0A"
    # Nothing of a refused hold is kept: "db" is free for a third action.
    third, _ = store.hold_servers("c", taken(store, "c"), frozenset({"db"}))
    assert third is not None


def test_servers_are_held_through_sending_and_doubt_and_freed_by_the_outcome():
    store = claims()
    claim, _ = store.hold_servers("a", taken(store, "a"), frozenset({"web-1"}))
    assert claim is not None
    sending = store.mark_sending("a", claim, 3.0, 60.0)
    assert sending is not None
    doubt = store.doubt("a", sending)
    other = taken(store, "b")
    assert store.hold_servers("b", other, frozenset({"web-1"}))[0] is None  # in doubt: held
    assert store.settle("a", doubt, done=False) is not None  # DeployHQ's record: never queued
    assert store.hold_servers("b", other, frozenset({"web-1"}))[0] is not None


def test_a_hold_whose_claim_lapsed_or_finished_is_taken_over():
    store = claims()
    claim, _ = store.hold_servers("a", taken(store, "a"), frozenset({"web-1"}))
    assert claim is not None
    sending = store.mark_sending("a", claim, lease_seconds=5.0, doubt_seconds=60.0)
    assert sending is not None
    store.finish("a", sending)
    assert store.hold_servers("b", taken(store, "b"), frozenset({"web-1"}))[0] is not None
    # A holder that died before sending: its claim expires, and its hold with it.
    store.kv.delete(store.keys("retry", "b"))
    assert store.hold_servers("c", taken(store, "c"), frozenset({"web-1"}))[0] is not None


def test_a_claim_stored_before_servers_were_held_reads_back_as_it_was_written():
    claim = ActionClaim("U0A", datetime(2026, 1, 1, tzinfo=UTC), "t", ref="abc")
    raw = claim.to_json()
    assert "servers" not in raw
    assert ActionClaim.from_json(raw) == claim
    held = ActionClaim.from_json(raw.replace('"doubt": 0.0', '"doubt": 0.0, "servers": ["web-1"]'))
    assert held.servers == ("web-1",)
    assert held.at + timedelta(0) == claim.at
