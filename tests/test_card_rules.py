"""The card's pure rules, without Redis, Slack or DeployHQ: how a card moves."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.cards import rules
from bot.cards.rules import Card
from bot.deployhq.deployment import Deployment
from bot.words import states as s
from bot.words.actions import ABORT
from tests.support.signed import at, delivery

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


def running() -> Deployment:
    return Deployment.from_api(
        delivery(status="running", timestamps={"queued_at": at(100), "started_at": at(102)})
    )


def test_a_late_not_done_of_an_earlier_abort_never_replaces_the_abort_that_went_through():
    card = Card("C1", running(), aborted=s.Aborted("U0SECOND", NOW, "cancelled"))
    late = s.NotDone("U0FIRST", "DeployHQ's record shows the abort was never queued", ABORT)
    after = rules.acted(card, "x", late, "note")
    assert after.aborted == card.aborted and after.notes == ()


def test_the_run_the_bot_aborted_stays_an_abort_when_deployhq_calls_it_failed():
    card = Card("C1", running(), aborted=s.Aborted("U0ANN", NOW, "cancelled"))
    failed = Deployment.from_api(
        delivery(timestamps={"queued_at": at(100), "started_at": at(102), "completed_at": at(130)})
    )
    after = rules.advance(card, failed, trusted=True)
    assert after is not None
    assert after.aborted == s.Aborted("U0ANN", NOW, "failed")
    assert not isinstance(after.state, s.Failed) and not after.wants_explaining
    assert "Stopped by the abort <@U0ANN> asked for" in after.notes[-1]


def test_a_new_run_after_an_abort_is_a_failure_of_its_own():
    card = Card("C1", running(), aborted=s.Aborted("U0ANN", NOW, "cancelled"))
    later = Deployment.from_api(
        delivery(timestamps={"queued_at": at(500), "started_at": at(502), "completed_at": at(560)})
    )
    after = rules.advance(card, later, trusted=True)
    assert after is not None and after.aborted is None
    assert after.state == s.Failed(again=True)


def test_deployhqs_record_of_the_same_run_wins_over_a_deliverys_later_times():
    record = Deployment.from_api(delivery())
    told = Deployment.from_api(
        delivery(timestamps={"queued_at": at(18), "started_at": at(20), "completed_at": at(88)})
    )
    card = Card("C1", told, confirmed=False)
    after = rules.confirmed(card, record)
    assert after.deployment.run_key == record.run_key and after.confirmed
