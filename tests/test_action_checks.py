"""Each action's preflight and proof, and settling, without HTTP: DeployHQ's record is a value
here, the claims live in the in-process store, and what would be shown is written down.

The same rules run over real HTTP in test_one_action.py (every action, every crash point); here
each rule is one small case that names what it proves.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.actions import preflights
from bot.actions.action import Go, Proof, Stop
from bot.actions.claims import ActionClaim, Claims
from bot.actions.deploy import Deploy
from bot.actions.on_card import Abort, DeployLatest, Retry, Rollback
from bot.actions.settle import Settler
from bot.deployhq.client import DeployHQError
from bot.deployhq.deployment import Deployment
from bot.store.kv import Keys, MemoryKeyValue
from bot.words import states as s
from bot.words.actions import ActionName
from bot.words.buttons import AbortTarget, ActionTarget, DeployOrder, DeployTarget, RollbackTarget
from tests.support.signed import at, delivery

GOOD = "11111111-2222-3333-4444-555555555555"
NEWER = "22222222-2222-3333-4444-555555555555"
LATEST = "f00dfeed1234"
NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


def failure(**changes: Any) -> Deployment:
    return Deployment.from_api(delivery(**changes))


def later(identifier: str, ref: str, seconds: float = 600, **changes: Any) -> Deployment:
    """A deployment on the failure's server, queued ``seconds`` after it."""
    times = {"queued_at": at(seconds), "started_at": at(seconds + 2)}
    return Deployment.from_api(
        delivery(
            **{
                "identifier": identifier,
                "status": "completed",
                "end_revision": {"ref": ref},
                "timestamps": {**times, "completed_at": at(seconds + 60)},
                **changes,
            }
        )
    )


def good() -> Deployment:
    return later(GOOD, "a1b2c3d4e5f6", -3600)


@dataclass
class Record:
    """DeployHQ as a value: its record of the deployments, its branch's newest commit, and the
    calls it was asked to make (none of which a preflight or a proof may make)."""

    deployments: list[Deployment] = field(default_factory=list)  # newest first
    latest: str = LATEST
    unreadable: bool = False
    sent: list[str] = field(default_factory=list)

    def deployment(self, project: str, identifier: str) -> Deployment:
        if self.unreadable:
            raise DeployHQError("DeployHQ did not answer in time", kind="timeout")
        return next(d for d in self.deployments if d.identifier == identifier)

    def history(self, project: str, **_: Any) -> Iterator[Deployment]:
        yield from self.deployments

    def latest_revision(self, project: str, branch: str) -> str:
        return self.latest

    def __getattr__(self, name: str) -> Any:  # retry, rollback, deploy, abort
        def send(*args: Any) -> Any:
            self.sent.append(name)
            return "cancelled" if name == "abort" else self.deployments[0]

        return send


class Shown:
    """What the card (or a view) was told, in order."""

    def __init__(self) -> None:
        self.said: list[tuple[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        def tell(*args: Any, **kwargs: Any) -> bool:
            self.said.append((name, args[0] if args else None))
            return True

        return tell


class Held:
    """The pipeline's hold, lent to a preflight: it keeps the claim and the servers."""

    def __init__(self) -> None:
        self.servers_held: list[frozenset[str]] = []

    def renew(self) -> bool:
        return True

    def servers(self, servers: frozenset[str]) -> Stop | None:
        self.servers_held.append(servers)
        return None


def target(record: Deployment) -> ActionTarget:
    return ActionTarget.of(record)


# --- preflights: what DeployHQ's record must still show --------------------------------------


def test_a_retry_goes_ahead_on_a_failure_that_is_still_the_latest_word_on_its_servers():
    record = failure()
    deployhq, held = Record([record, good()]), Held()
    go = Retry(deployhq, Shown(), target(record)).preflight(held, "U1")
    assert isinstance(go, Go) and deployhq.sent == []  # checking sends nothing
    assert held.servers_held == [record.server_keys]
    go.send()
    assert deployhq.sent == ["retry"]


@pytest.mark.parametrize("kind", [Retry, Rollback, DeployLatest])
def test_nothing_is_sent_once_anything_newer_was_queued_on_the_failures_servers(kind):
    record = failure()
    newer = later(NEWER, "0000aaaa1111", status="failed")  # whatever became of it
    cards = Shown()
    names = (record.project_permalink, record.identifier, record.run_key)
    button = {
        Retry: ActionTarget(*names),
        Rollback: RollbackTarget(*names, to=GOOD),
        DeployLatest: DeployTarget(*names, ref=LATEST),
    }[kind]
    stop = kind(Record([newer, record, good()]), cards, button).preflight(Held(), "U1")
    assert isinstance(stop, Stop) and stop.outcome == "overtaken"
    assert isinstance(stop.state, s.Overtaken) and stop.state.newer_id == NEWER


def test_a_failure_deployhq_shows_retried_since_is_superseded_and_the_card_put_back():
    button = target(failure())
    moved = failure(status="running")
    cards = Shown()
    stop = Retry(Record([moved]), cards, button).preflight(Held(), "U1")
    assert isinstance(stop, Stop) and stop.outcome == "superseded"
    assert cards.said[0][0] == "on_record"


def test_an_archived_failure_is_refused_before_its_servers_are_held():
    record = failure(archived=True)
    held = Held()
    stop = Retry(Record([record]), Shown(), target(record)).preflight(held, "U1")
    assert isinstance(stop, Stop) and stop.outcome == "refused" and held.servers_held == []


def test_a_rollback_goes_to_the_last_good_deployment_recomputed_now_or_nowhere():
    record = failure()
    names = (record.project_permalink, record.identifier, record.run_key)
    go = Rollback(Record([record, good()]), Shown(), RollbackTarget(*names, to=GOOD)).preflight(
        Held(), "U1"
    )
    assert isinstance(go, Go) and go.ref == "a1b2c3d4e5f6"
    other = "33333333-2222-3333-4444-555555555555"
    cards = Shown()
    stop = Rollback(Record([record, good()]), cards, RollbackTarget(*names, to=other)).preflight(
        Held(), "U1"
    )
    assert isinstance(stop, Stop) and stop.outcome == "out-of-date"
    assert cards.said[0][0] == "on_rollback_target"  # the card offers the one DeployHQ gives


def test_deploy_latest_checks_the_branch_has_not_moved_and_the_commit_is_new_there():
    record = failure()
    button = DeployTarget(record.project_permalink, record.identifier, record.run_key, LATEST)
    assert preflights.deploy_latest(Record(), button, record, []) is None
    moved = preflights.deploy_latest(Record(latest="9999aaaa0000"), button, record, [])
    assert moved is not None and moved.latest == "9999aaaa0000" and "moved on" in moved.why
    retry_instead = DeployTarget(button.project, button.deployment, button.run_key, "def456abc789")
    failed_ref = preflights.deploy_latest(Record(latest="def456abc789"), retry_instead, record, [])
    assert failed_ref is not None and "Retry it instead" in failed_ref.why
    ran_before = later(GOOD, LATEST, -3600)
    there = preflights.deploy_latest(Record(), button, record, [ran_before])
    assert there is not None and "already went to these servers" in there.why
    preview = later(GOOD, LATEST, -3600, status="preview_ready")
    assert preflights.deploy_latest(Record(), button, record, [preview]) is None
    elsewhere = later(GOOD, LATEST, -3600, servers=[{"name": "Staging", "identifier": "aaaa1111"}])
    assert preflights.deploy_latest(Record(), button, record, [elsewhere]) is None


def test_deploy_latest_needs_one_server_or_one_group_and_a_branch():
    two = failure(
        servers=[
            {"name": "Web 1", "identifier": "aaaa1111"},
            {"name": "Web 2", "identifier": "bbbb2222"},
        ]
    )
    button = DeployTarget(two.project_permalink, two.identifier, two.run_key, LATEST)
    stop = preflights.deploy_latest(Record(), button, two, [])
    assert stop is not None and "neither one server nor one server group" in stop.why
    branchless = failure(branch="")
    stop = preflights.deploy_latest(Record(), button, branchless, [])
    assert stop is not None and "names no branch" in stop.why


def test_an_abort_goes_ahead_only_on_the_same_run_still_under_way():
    running = failure(status="running", timestamps={"queued_at": at(0), "started_at": at(2)})
    button = AbortTarget.of_run(running.identifier, running)
    assert preflights.abort(button, running) is None
    requeued = failure(status="pending", timestamps={"queued_at": at(300)})
    again = preflights.abort(button, requeued)
    assert again is not None and "queued this deployment again" in again.why
    ended = preflights.abort(button, failure(status="completed"))
    assert ended is not None and "*completed*" in ended.why


def test_a_deploy_order_holds_its_servers_then_sends_nothing_where_the_commit_already_ran():
    order = DeployOrder("my-project", "7563d091", "Production Server", "main", LATEST)
    held = Held()
    there = Deploy(Record([later(GOOD, LATEST)]), order, Shown()).preflight(held, "U1")
    assert isinstance(there, Stop) and there.outcome == "out-of-date"
    assert held.servers_held == [order.changes]
    cancelled = later(GOOD, LATEST, status="cancelled")  # it never changed the servers
    go = Deploy(Record([cancelled]), order, Shown()).preflight(Held(), "U1")
    assert isinstance(go, Go) and go.ref == LATEST


# --- proofs: what in DeployHQ's record shows an action happened -------------------------------


def claim(action: ActionName = "retry", ref: str = "") -> ActionClaim:
    return ActionClaim("U0ANN", NOW, "token", state="in-doubt", action=action, ref=ref)


def test_a_retry_is_proven_by_the_failures_run_changing_and_by_nothing_else():
    record = failure()
    button = target(record)
    assert Retry(Record([record]), Shown(), button).prove(claim()) == Proof()
    running = failure(status="running", timestamps={"queued_at": at(300)})
    assert Retry(Record([running]), Shown(), button).prove(claim()).done == running
    again = failure(timestamps={"queued_at": at(300), "completed_at": at(360)})
    assert Retry(Record([again]), Shown(), button).prove(claim()).done == again  # failed anew


def test_a_rollback_is_proven_by_a_new_deployment_to_its_revision_on_the_servers():
    record = failure()
    names = (record.project_permalink, record.identifier, record.run_key)
    rollback = Rollback(
        Record([later(NEWER, "a1b2c3d4e5f6"), record]), Shown(), RollbackTarget(*names, to=GOOD)
    )
    proof = rollback.prove(claim("rollback", "a1b2c3d4e5f6"))
    assert proof.done is not None and proof.done.identifier == NEWER
    other = Rollback(
        Record([later(NEWER, "0000aaaa1111"), record]), Shown(), RollbackTarget(*names, to=GOOD)
    )
    proof = other.prove(claim("rollback", "a1b2c3d4e5f6"))
    assert proof.done is None and proof.other is not None  # the record cannot tell
    nothing = Rollback(Record([record]), Shown(), RollbackTarget(*names, to=GOOD))
    assert nothing.prove(claim("rollback", "a1b2c3d4e5f6")) == Proof()


def test_deploy_latest_is_proven_like_a_rollback_by_its_own_commit():
    record = failure()
    button = DeployTarget(record.project_permalink, record.identifier, record.run_key, LATEST)
    deploy = DeployLatest(Record([later(NEWER, LATEST), record]), Shown(), button)
    assert deploy.prove(claim("deploy", LATEST)).done is not None


def test_an_abort_is_disproven_at_once_while_its_run_still_goes():
    running = failure(status="running", timestamps={"queued_at": at(0), "started_at": at(2)})
    button = AbortTarget.of_run(running.identifier, running)
    assert Abort(Record([running]), Shown(), button).prove(claim("abort")) == Proof(absent=True)
    stopped = failure(status="cancelled", timestamps={"queued_at": at(0), "started_at": at(2)})
    assert Abort(Record([stopped]), Shown(), button).prove(claim("abort")).done == stopped


def test_a_deploy_order_is_proven_by_a_deployment_of_its_commit_to_its_servers():
    order = DeployOrder("my-project", "7563d091", "Production Server", "main", LATEST)
    deploy = Deploy(Record([later(NEWER, LATEST)]), order, Shown())
    assert deploy.prove(claim("deploy", LATEST)).done is not None
    assert Deploy(Record([]), order, Shown()).prove(claim("deploy", LATEST)) == Proof()


# --- settling: one outcome, once, from the proof ---------------------------------------------


class Proving:
    """An action whose proof is given, on a view that writes down what it is told."""

    name: ActionName = "rollback"
    key = "d:1"
    project = "my-project"
    deployment = "d"
    on_card = True

    def __init__(self, proof: Proof | DeployHQError) -> None:
        self.proof = proof
        self.view = Shown()

    def prove(self, claim: ActionClaim) -> Proof:
        if isinstance(self.proof, DeployHQError):
            raise self.proof
        return self.proof


def in_doubt(claims: Claims, *, doubt_seconds: float) -> ActionClaim:
    _, mine = claims.take("d:1", "U0ANN", "rollback", "a1b2c3d4e5f6")
    sending = claims.mark_sending("d:1", mine, lease_seconds=0.0, doubt_seconds=doubt_seconds)
    assert sending is not None
    return claims.doubt("d:1", sending)


@pytest.fixture
def claims() -> Claims:
    return Claims(MemoryKeyValue(), Keys())


def test_a_proven_action_is_settled_done_and_shown_once(claims: Claims):
    held = in_doubt(claims, doubt_seconds=60)
    action = Proving(Proof(done=later(NEWER, "a1b2c3d4e5f6")))
    settled = Settler(claims).resolve(action, held)
    assert settled is not None and settled.done and claims.held("d:1") == settled
    assert [name for name, _ in action.view.said] == ["done"]
    assert Settler(claims).resolve(action, held) is not None  # settled already: nothing more
    assert [name for name, _ in action.view.said] == ["done"]


def test_nothing_in_the_record_keeps_the_doubt_until_its_window_is_over(claims: Claims):
    held = in_doubt(claims, doubt_seconds=60)
    action = Proving(Proof())
    assert Settler(claims).resolve(action, held) == held and action.view.said == []
    fresh = Claims(MemoryKeyValue(), Keys())
    over = in_doubt(fresh, doubt_seconds=0)
    assert Settler(fresh).resolve(action, over) is None  # never queued: free again
    ((name, state),) = action.view.said
    assert name == "show" and isinstance(state, s.NotDone) and state.action == "rollback"
    assert fresh.take("d:1", "U0BOB")[0] is True


def test_a_record_that_cannot_tell_ends_unknown_and_nothing_more_is_sent(claims: Claims):
    over = in_doubt(claims, doubt_seconds=0)
    action = Proving(Proof(other=later(NEWER, "0000aaaa1111")))
    settled = Settler(claims).resolve(action, over)
    assert settled is not None and settled.done  # held: nobody may act on it again
    ((name, state),) = action.view.said
    assert name == "show" and isinstance(state, s.Unknown)


def test_a_proof_of_absence_frees_the_action_without_waiting_out_the_window(claims: Claims):
    held = in_doubt(claims, doubt_seconds=600)
    action = Proving(Proof(absent=True))
    assert Settler(claims).resolve(action, held) is None
    assert isinstance(action.view.said[0][1], s.NotDone)


def test_an_unreadable_record_settles_nothing(claims: Claims):
    held = in_doubt(claims, doubt_seconds=0)
    action = Proving(DeployHQError("DeployHQ did not answer in time", kind="timeout"))
    assert Settler(claims).resolve(action, held) == held
    assert action.view.said == [] and claims.held("d:1") == held


def test_a_settlement_lost_to_another_settler_tells_nothing(claims: Claims):
    held = in_doubt(claims, doubt_seconds=0)
    first, second = Proving(Proof()), Proving(Proof())
    assert Settler(claims).resolve(first, held) is None
    assert Settler(claims).resolve(second, held) is None
    assert len(first.view.said) == 1 and second.view.said == []
