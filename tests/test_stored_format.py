"""What is already in Redis must keep loading: cards and claims as the bot has been storing them.

``tests/data/stored_v1.json`` holds records written by the code before the card states had
explicit tags (a state's tag was then its class's name). They are loaded by today's code, must
come out as the same objects, and must be written back exactly as they were read, so an older
process sharing the same Redis during a deploy reads what a newer one wrote.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.actions.claims import ActionClaim
from bot.cards.store import card_from_json, card_to_json
from bot.words import states as m
from bot.words.actions import UnknownAction, action_named

STORED = json.loads((Path(__file__).parent / "data" / "stored_v1.json").read_text())
AT = datetime(2026, 3, 4, 10, 5, 6, tzinfo=UTC)
LATER = datetime(2026, 3, 4, 10, 7, 0, tzinfo=UTC)
ROLLED = "77777777-2222-3333-4444-555555555555"
GOOD = "11111111-2222-3333-4444-555555555555"

STATES = {
    "failed-unconfirmed": m.Failed(),
    "failed-again": m.Failed(again=True, retried_by="U0FIRST"),
    "retrying": m.Requested("U0FIRST", AT),
    "rolling-back": m.Requested("U0FIRST", AT, "rollback"),
    "in-doubt": m.InDoubt("U0FIRST", AT, "rollback"),
    "retried": m.Retried("U0FIRST", AT),
    "refused": m.Refused("U0FIRST", "Archived deployments cannot be retried"),
    "not-done": m.NotDone("U0FIRST", "DeployHQ did not answer in time.", "rollback"),
    "progress": m.Progress("U0FIRST", AT),
    "progress-bare": m.Progress(),
    "rolled-back": m.RolledBack("U0FIRST", AT, "a1b2c3d4e5f6", "pending", ROLLED),
    "overtaken": m.Overtaken(ROLLED, "completed", LATER),
    "overtaken-no-time": m.Overtaken(ROLLED, "running"),
    "unknown": m.Unknown("U0FIRST", AT, "rollback"),
}


def test_every_stored_state_is_covered():
    assert set(STATES) == set(STORED["cards"])


@pytest.mark.parametrize("name", sorted(STATES))
def test_a_stored_card_loads_as_it_was_saved_and_is_written_back_the_same(name: str):
    raw = STORED["cards"][name]
    card = card_from_json(raw)
    assert card.state == STATES[name]
    assert json.loads(card_to_json(card)) == json.loads(raw)


def test_a_stored_cards_fields_load_with_their_types():
    card = card_from_json(STORED["cards"]["failed-again"])
    assert (card.channel, card.ts, card.version, card.drawn) == (
        "C0DEPLOYS",
        "1700000000.000100",
        7,
        True,
    )
    assert (card.retried_by, card.retried_at) == ("U0FIRST", AT)
    assert card.rollback_to is not None and card.rollback_to.identifier == GOOD
    assert card.deployment.failed_step is not None
    assert card.deployment.failed_step.description == "Transferring files"
    assert card.explained == card.deployment.run_key

    rolled = card_from_json(STORED["cards"]["rolled-back"])
    assert rolled.rolled_back is not None and rolled.rolled_back.identifier == ROLLED
    assert rolled.notes == ("rolled",)
    assert card_from_json(STORED["cards"]["not-done"]).posting is True
    unconfirmed = card_from_json(STORED["cards"]["failed-unconfirmed"])
    assert (unconfirmed.confirmed, unconfirmed.ts, unconfirmed.drawn) == (False, None, False)


def test_a_card_stored_without_a_state_is_a_failure():
    data = json.loads(STORED["cards"]["failed-unconfirmed"])
    del data["state"]
    state = card_from_json(json.dumps(data)).state
    assert isinstance(state, m.Failed) and not state.again and state.retried_by is None


def test_stored_claims_load_as_they_were_saved_and_are_written_back_the_same():
    claims = {name: ActionClaim.from_json(raw) for name, raw in STORED["claims"].items()}
    assert claims["running"] == ActionClaim("U0FIRST", AT, "0123456789abcdef0123456789abcdef")
    assert claims["sending-rollback"] == ActionClaim(
        "U0FIRST",
        AT,
        "0123456789abcdef0123456789abcdef",
        state="sending",
        action="rollback",
        ref="a1b2c3d4e5f6",
        sent_at=LATER,
        lease_seconds=22.0,
        doubt_seconds=60.0,
    )
    assert claims["in-doubt"].lost(LATER) == LATER and claims["in-doubt"].in_doubt
    assert claims["done"].done
    for name, claim in claims.items():
        assert json.loads(claim.to_json()) == json.loads(STORED["claims"][name])


def test_deploy_latest_has_a_state_of_its_own_stored_as_the_roll_back_older_processes_read():
    # Before Deploy latest had a state of its own it was stored as a roll back whose action is
    # "deploy"; both ways must keep working while old and new processes share the store.
    written_before = {
        "kind": "RolledBack",
        "user_id": "U0FIRST",
        "at": AT.timestamp(),
        "ref": "f00dfeed1234",
        "status": "pending",
        "deployment_id": ROLLED,
        "action": "deploy",
    }
    state = m.from_json(written_before)
    assert state == m.DeployedLatest("U0FIRST", AT, "f00dfeed1234", "pending", ROLLED)
    assert m.to_json(state) == written_before
    # A roll back is still a roll back, and the two never draw the same block ids.
    rolled = m.from_json({**written_before, "action": "rollback"})
    assert rolled == m.RolledBack("U0FIRST", AT, "f00dfeed1234", "pending", ROLLED)
    assert "action" not in m.to_json(rolled)
    assert m.fingerprint_seed(rolled) != m.fingerprint_seed(state)
    assert m.fingerprint_seed(state).endswith("action='deploy')")


def test_a_record_from_before_names_were_stored_is_a_retry_and_an_unknown_name_fails_loudly():
    assert action_named("rollback") == "rollback"
    assert action_named(None) == "retry"  # stored before the name was
    old = m.from_json({"kind": "Retrying", "user_id": "U1", "at": 0})
    assert isinstance(old, m.Requested) and old.action == "retry"
    for unknown in ("rm -rf", 7, "", "Retry"):
        with pytest.raises(UnknownAction):
            action_named(unknown)
        with pytest.raises(UnknownAction):
            m.from_json({"kind": "Retrying", "user_id": "U1", "at": 0, "action": unknown})
    claim = {"user": "U1", "at": 0, "token": "t", "action": "reboot"}
    with pytest.raises(UnknownAction):
        ActionClaim.from_json(json.dumps(claim))
