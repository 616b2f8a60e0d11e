"""The store's promises, held by both backends: Redis and the in-process one."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import pytest

from bot.actions.claims import IllegalMove, Stage, moved
from bot.cards.rules import Card
from bot.deployhq.deployment import Deployment
from bot.store.kv import MemoryKeyValue, RedisKeyValue, StoreUnavailable, open_redis
from bot.store.shared import Store
from bot.web.wiring import Kept
from tests.support.clock import Clock, RedisClock
from tests.support.signed import delivery

CLAIM = 30.0  # how long a claim lasts; the tests move the clock on, they never wait


class Moves(Protocol):
    def advance(self, seconds: float) -> None: ...


@pytest.fixture(params=["redis", "memory"])
def backend(request: pytest.FixtureRequest) -> Iterator[tuple[Kept, Moves]]:
    if request.param == "redis":
        client = open_redis(request.getfixturevalue("redis_url"))
        yield Kept.of(Store.on(RedisKeyValue(client)), CLAIM), RedisClock(client)
    else:
        clock = Clock()
        yield Kept.of(Store.on(MemoryKeyValue(clock)), CLAIM), clock


@pytest.fixture
def store(backend: tuple[Kept, Moves]) -> Kept:
    return backend[0]


@pytest.fixture
def clock(backend: tuple[Kept, Moves]) -> Moves:
    return backend[1]


def test_a_notification_is_claimed_once(store: Kept):
    assert store.cards.first_delivery("d:1", "failed") is True
    assert store.cards.first_delivery("d:1", "failed") is False
    assert store.cards.first_delivery("d:2", "failed") is True


def test_one_of_many_concurrent_claims_wins(store: Kept):
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda i: store.claims.take("d:1", f"U{i}"), range(40)))
    winners = [claim for won, claim in results if won]
    assert len(winners) == 1
    assert {claim.user_id for won, claim in results if not won} == {winners[0].user_id}


def test_a_finished_retry_is_remembered_and_a_released_one_is_free(store: Kept, clock: Moves):
    won, claim = store.claims.take("d:1", "U1")
    sending = store.claims.mark_sending("d:1", claim, lease_seconds=5.0, doubt_seconds=60.0)
    assert sending is not None
    store.claims.finish("d:1", sending)
    clock.advance(CLAIM + 1)  # past the lock's own expiry: a finished retry outlives it
    won_again, holder = store.claims.take("d:1", "U2")
    assert (won, won_again, holder.user_id, holder.done) == (True, False, "U1", True)

    _, claim = store.claims.take("d:2", "U1")
    store.claims.release("d:2", claim)
    assert store.claims.take("d:2", "U2")[0] is True


def test_a_lock_whose_holder_died_expires(store: Kept, clock: Moves):
    assert store.claims.take("d:1", "U1")[0] is True
    clock.advance(CLAIM - 1)
    assert store.claims.take("d:1", "U2")[0] is False  # not yet
    clock.advance(2)
    assert store.claims.take("d:1", "U2")[0] is True


def test_only_the_holder_can_release_or_finish(store: Kept, clock: Moves):
    _, stale = store.claims.take("d:1", "U1")
    clock.advance(CLAIM + 1)
    store.claims.take("d:1", "U2")
    store.claims.release("d:1", stale)
    with pytest.raises(IllegalMove):  # a claim that never sent cannot be done
        store.claims.finish("d:1", stale)
    assert store.claims.mark_sending("d:1", stale, lease_seconds=5.0, doubt_seconds=60.0) is None
    won, holder = store.claims.take("d:1", "U3")
    assert (won, holder.user_id, holder.done) == (False, "U2", False)


def test_a_card_is_remembered_by_deployment(store: Kept):
    deployment = Deployment.from_api(delivery())
    card = Card("C1", deployment, ts="1.2", drawn=True, retried_by="U1", notes=("a note",))
    store.cards.save_card(card)
    assert store.cards.card(deployment.identifier) == card
    assert store.cards.open_cards() == {deployment.identifier}  # a note still to post
    store.cards.save_card(Card("C1", deployment, ts="1.2", drawn=True))
    assert store.cards.open_cards() == set()  # a drawn failure, nothing pending: settled
    assert store.cards.card("other") is None


def test_an_unreachable_redis_is_reported_quickly():
    store = Kept.of(Store.on(RedisKeyValue(open_redis("redis://127.0.0.1:1/0"))), CLAIM)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        store.claims.take("d:1", "U1")
    assert time.monotonic() - started < 3


def test_an_in_doubt_claim_outlives_its_lock_until_settled(store: Kept, clock: Moves):
    _, claim = store.claims.take("d:1", "U1")
    sending = store.claims.mark_sending("d:1", claim, lease_seconds=5.0, doubt_seconds=60.0)
    assert sending is not None
    doubt = store.claims.doubt("d:1", sending)
    clock.advance(CLAIM + 1)  # past the lock's expiry: the doubt still blocks a second retry
    won, holder = store.claims.take("d:1", "U2")
    assert (won, holder.user_id, holder.in_doubt) == (False, "U1", True)
    store.claims.release("d:1", doubt)  # DeployHQ's record says it was never queued
    assert store.claims.take("d:1", "U2")[0] is True


def test_one_caller_per_period_takes_the_turn(store: Kept, clock: Moves):
    assert [bool(store.turns.take("reconcile", 60)) for _ in range(3)] == [True, False, False]
    clock.advance(59)
    assert store.turns.take("reconcile", 60) is None
    clock.advance(2)
    assert store.turns.take("reconcile", 60) is not None


def test_a_settlement_happens_once_and_never_overwrites_a_newer_claim(store: Kept):
    _, claim = store.claims.take("d:9", "U1")
    sending = store.claims.mark_sending("d:9", claim, lease_seconds=0.0, doubt_seconds=0.0)
    assert sending is not None
    assert sending.in_doubt  # its holder's lease ran out at once: it counts as lost
    assert store.claims.settle("d:9", sending, done=False) is not None  # the first settler frees it
    assert store.claims.settle("d:9", sending, done=False) is None  # a second one has nothing to do
    won, newer = store.claims.take("d:9", "U2")
    assert won
    assert store.claims.settle("d:9", sending, done=True) is None  # a stale settler cannot touch it
    assert store.claims.held("d:9") == newer


def test_a_sending_claim_outlives_the_claim_lock_until_settled(store: Kept, clock: Moves):
    _, claim = store.claims.take("d:8", "U1")
    sending = store.claims.mark_sending("d:8", claim, lease_seconds=30.0, doubt_seconds=60.0)
    clock.advance(CLAIM + 1)  # past the claim lock: a sending claim is kept all the same
    won, holder = store.claims.take("d:8", "U2")
    assert (won, holder.user_id, holder.state) == (False, "U1", "sending")
    assert sending is not None and not holder.in_doubt  # its holder still has its lease


def test_a_lapsed_claim_cannot_be_marked_sending(store: Kept, clock: Moves):
    _, claim = store.claims.take("d:7", "U1")
    clock.advance(CLAIM + 1)
    store.claims.take("d:7", "U2")
    assert store.claims.mark_sending("d:7", claim, lease_seconds=5.0, doubt_seconds=5.0) is None


def test_a_turn_is_kept_only_by_its_holder(store: Kept, clock: Moves):
    token = store.turns.take("reconcile", 60)
    assert token is not None
    clock.advance(50)
    assert store.turns.keep("reconcile", token, 60)  # kept: another 60 s from now
    assert not store.turns.keep("reconcile", "someone-else", 60)
    clock.advance(50)
    assert store.turns.keep("reconcile", token, 60)
    clock.advance(61)
    assert not store.turns.keep("reconcile", token, 60)  # it lapsed


def test_a_burst_reads_an_answer_once_and_waits_for_it(store: Kept):
    """Eight callers at once: one reads, the others wait for its answer; then it is kept."""
    reads: list[int] = []

    def read() -> str:
        reads.append(1)
        time.sleep(0.2)  # DeployHQ taking a moment: the others arrive meanwhile
        return "the answer"

    def ask(_: int) -> str:
        return store.answers.fetch(("recent", "main"), read, ttl=CLAIM, wait=5.0)

    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(ask, range(8)))
    assert got == ["the answer"] * 8 and len(reads) == 1
    assert store.answers.fetch(("recent", "main"), read, ttl=CLAIM, wait=5.0) == "the answer"
    assert len(reads) == 1
    store.answers.forget("recent", "main")
    store.answers.fetch(("recent", "main"), read, ttl=CLAIM, wait=5.0)
    assert len(reads) == 2


def test_a_failed_read_is_not_kept_and_its_waiters_read_for_themselves(store: Kept):
    def failing() -> str:
        time.sleep(0.1)
        raise RuntimeError("DeployHQ said no")

    with ThreadPoolExecutor(max_workers=2) as pool:
        first = pool.submit(store.answers.fetch, ("x",), failing, CLAIM, 5.0)
        time.sleep(0.02)
        second = pool.submit(store.answers.fetch, ("x",), lambda: "read here", CLAIM, 5.0)
        with pytest.raises(RuntimeError):
            first.result()
        assert second.result() == "read here"
    assert store.answers.kept("x") is None


def test_a_kept_answer_lapses(store: Kept, clock: Moves):
    store.answers.fetch(("y",), lambda: "old", ttl=10.0, wait=1.0)
    clock.advance(11)
    assert store.answers.fetch(("y",), lambda: "new", ttl=10.0, wait=1.0) == "new"


def test_one_hold_at_a_time_and_a_dead_holders_lapses(store: Kept, clock: Moves):
    assert store.holds.take("preview:a", '{"by": "U1"}', 30.0) is None
    assert store.holds.take("preview:a", '{"by": "U2"}', 30.0) == '{"by": "U1"}'
    assert store.holds.take("preview:b", "{}", 30.0) is None  # another action's own
    clock.advance(31)  # its holder died and never renewed it
    assert store.holds.take("preview:a", '{"by": "U2"}', 30.0) is None
    store.holds.drop("preview:a")
    assert store.holds.take("preview:a", "{}", 30.0) is None


def test_a_claim_moves_only_along_its_life():
    """awaiting ⇄ running → sending → in doubt → done; nothing comes back from done, and
    nothing is done or in doubt that was never sent."""
    from datetime import UTC, datetime

    from bot.actions.claims import MOVES, ActionClaim

    claim = ActionClaim("U1", datetime.now(UTC), "t")
    allowed = {(a, b) for a, targets in MOVES.items() for b in targets}
    assert allowed == {
        (Stage.RUNNING, Stage.AWAITING),
        (Stage.AWAITING, Stage.RUNNING),
        (Stage.RUNNING, Stage.SENDING),
        (Stage.SENDING, Stage.IN_DOUBT),
        (Stage.SENDING, Stage.DONE),
        (Stage.IN_DOUBT, Stage.DONE),
    }
    for start in Stage:
        for to in Stage:
            at = ActionClaim("U1", claim.at, "t", state=start)
            if (start, to) in allowed:
                assert moved(at, to).state is to
            else:
                with pytest.raises(IllegalMove):
                    moved(at, to)
