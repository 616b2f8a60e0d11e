"""Acks first: the work after an answer waits for the worker's requests to be answered."""

from __future__ import annotations

import logging
import threading
import time

from bot.runtime import background
from bot.runtime.background import Background, Serving


def test_work_started_during_a_request_waits_until_it_is_answered():
    serving = Serving()
    started = threading.Event()
    with serving.request():
        serving.after_answers(started.set)
        time.sleep(0.05)
        assert not started.is_set()  # held while the request is being answered
    assert started.is_set()  # started by the request's end, not by a timer


def test_work_is_never_held_past_the_bound(monkeypatch):
    monkeypatch.setattr(background, "ACKS_FIRST_SECONDS", 0.1)
    serving = Serving()
    started = threading.Event()
    with serving.request():
        begun = time.monotonic()
        serving.after_answers(started.set)
        assert started.wait(2)
        waited = time.monotonic() - begun
    assert 0.09 <= waited < 1.0


def test_with_no_request_in_hand_work_starts_at_once():
    serving = Serving()
    started = []
    serving.after_answers(lambda: started.append(threading.current_thread()))
    assert started == [threading.current_thread()]


def test_a_closing_pool_starts_what_was_held_and_drains_it():
    serving = Serving()
    pool = Background(2, "test", serving=serving)
    done = threading.Event()
    with serving.request():
        pool.run("a task", done.set)
        assert pool.pending == 1 and not done.is_set()
        pool.close(wait=True)  # a stopping worker: what waited runs now, and is waited for
        assert done.is_set() and pool.pending == 0


def test_work_handed_to_a_closed_pool_stops_short_without_a_traceback(caplog):
    caplog.set_level(logging.INFO)
    first, second = Background(1, "first"), Background(1, "second")
    second.close(wait=True)
    first.run("looking up why it failed", second.run, "a push", lambda: None)
    first.close(wait=True)
    assert "looking up why it failed stopped short: the second pool has closed" in caplog.text
    assert "Traceback" not in caplog.text and not [
        r for r in caplog.records if r.levelname == "ERROR"
    ]


def test_work_after_another_pool_waits_until_that_pool_is_idle(monkeypatch):
    monkeypatch.setattr(background, "AFTER_SECONDS", 5.0)
    first = Background(1, "cards")
    then = Background(1, "lookups", after=first)
    release, order = threading.Event(), []
    first.run("a card", lambda: (release.wait(2), order.append("card")))
    then.run("why it failed", lambda: order.append("lookup"))
    time.sleep(0.1)
    assert order == []  # the lookup waits while the card is pending
    release.set()
    then.close(wait=True)
    first.close(wait=True)
    assert order == ["card", "lookup"]


def test_work_scheduled_for_later_counts_until_it_has_run_so_a_settle_waits_for_it():
    from bot.runtime.background import Pools

    pools = Pools.create()
    ran = threading.Event()

    def again() -> None:  # what a retried push does: schedule its next attempt
        pools.slack.later(0.05, "the second attempt", ran.set)

    pools.slack.later(0.05, "the first attempt", again)
    assert (pools.slack.scheduled, pools.pending, pools.unfinished) == (1, 0, 1)
    deadline = time.monotonic() + 5
    while pools.unfinished and time.monotonic() < deadline:
        time.sleep(0.005)
    # never seen idle between the first attempt and the one it scheduled
    assert ran.is_set() and pools.unfinished == 0
    pools.close()
