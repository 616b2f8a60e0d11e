"""Block Kit builders: outside text stays text, and limits hold whatever comes in."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from slack_sdk.models.blocks import Block

from bot.deployhq.client import DeployHQError
from bot.deployhq.deployment import Deployment
from bot.messages import replies
from bot.messages.card import deployment_card
from bot.messages.text import duration_text, when
from bot.words import states
from tests.support.signed import delivery

HOSTILE = "<!channel> <@U0VICTIM> <https://evil.example|click> @here & <#C0SECRET>"
NOW = datetime(2025, 10, 27, 10, 5, tzinfo=UTC)

STATES: list[states.CardState] = [
    states.Failed(),
    states.Requested("U0CLICKER", NOW),
    states.Retried("U0CLICKER", NOW),
    states.Refused("U0CLICKER", HOSTILE),
    states.NotDone("U0CLICKER", HOSTILE),
]


def hostile_deployment(length: int = 1) -> Deployment:
    text = HOSTILE * length
    return Deployment.from_api(
        delivery(
            branch=text,
            deployer=text,
            project={"name": text, "permalink": "my-project"},
            end_revision={"ref": text, "message": text + "\nsecond line"},
            start_revision={"ref": "abc"},
            servers=[{"name": text}] * 40,
        )
    )


def texts(node: Any) -> list[dict]:
    """Every text object in a message."""
    if isinstance(node, dict):
        found = [node] if node.get("type") in ("plain_text", "mrkdwn") else []
        return found + [t for v in node.values() for t in texts(v)]
    if isinstance(node, list):
        return [t for v in node for t in texts(v)]
    return []


@pytest.mark.parametrize("state", STATES, ids=lambda s: s.TAG)
def test_outside_text_can_never_mention_link_or_name_a_channel(state):
    message = deployment_card(hostile_deployment(), state, page_url="https://x.test/d")

    for text in texts(message["blocks"]):
        if text["type"] == "mrkdwn":
            assert text["verbatim"] is True
            body = text["text"]
            for markup in ("<!channel>", "<@U0VICTIM>", "<https://evil", "<#C0SECRET>"):
                assert markup not in body
    everything = str(message)
    assert "&lt;!channel&gt;" in everything
    for markup in ("<!channel>", "<@U0VICTIM>", "<https://evil", "<#C0SECRET>"):
        assert markup not in message["text"]


@pytest.mark.parametrize("state", STATES, ids=lambda s: s.TAG)
def test_huge_input_stays_within_block_kit_limits(state):
    message = deployment_card(
        hostile_deployment(length=500), state, page_url="https://x.test/" + "d" * 4000
    )
    assert len(message["blocks"]) <= 50
    for block in message["blocks"]:
        Block.parse(block).to_dict()  # slack_sdk validates every limit here
    assert len(message["text"]) <= 4000


def test_the_servers_list_is_shortened():
    message = deployment_card(hostile_deployment(), states.Failed(), page_url="u")
    assert "and 35 more" in str(message["blocks"])


def test_block_ids_change_when_the_card_changes():
    deployment = Deployment.from_api(delivery())
    ids = [
        {b["block_id"] for b in deployment_card(deployment, s, page_url="u")["blocks"]}
        for s in STATES
    ]
    for i, first in enumerate(ids):
        for second in ids[i + 1 :]:
            assert not first & second


def test_only_live_states_offer_retry():
    deployment = Deployment.from_api(delivery())
    offers = {
        state.TAG: any(
            e.get("action_id") == "deployhq_retry"
            for b in deployment_card(deployment, state, page_url="u")["blocks"]
            for e in b.get("elements", [])
        )
        for state in STATES
    }
    assert offers == {
        "Failed": True,
        "Retrying": True,
        "Retried": False,
        "RetryRefused": False,
        "RetryFailed": True,
    }


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (DeployHQError("Access denied", status=401), "refused the bot's API credentials"),
        (DeployHQError("nope", status=404), "not found"),
        (DeployHQError("slow down", status=429, retry_after=30), "wait for 30 s"),
        (DeployHQError("x", kind="timeout"), "did not answer in time"),
        (DeployHQError("x", kind="connect"), "could not reach DeployHQ"),
        (DeployHQError("Service Unavailable", status=503), "HTTP 503"),
        (
            DeployHQError("Updating repository", status=503, retry_after=4.2),
            "DeployHQ is busy (Updating repository); wait for 5 s",
        ),
        (DeployHQError("x", kind="busy", retry_after=2), "wait for 2 s"),
        (
            DeployHQError("Your plan allows 1 server (upgrade: https://x.test)", status=403),
            "HTTP 403): Your plan allows 1 server",
        ),
        (DeployHQError("odd", status=418), "DeployHQ answered: odd"),
    ],
)
def test_errors_are_described_plainly(error, expected):
    assert expected in replies.describe_error(error)


def test_durations_read_naturally():
    assert [duration_text(s) for s in (5, 68, 3725)] == ["5s", "1m 8s", "1h 2m"]


def test_deployhqs_offset_times_are_kept_in_utc_and_their_fallback_says_utc():
    from bot.deployhq.deployment import Deployment
    from tests.support.signed import delivery

    d = Deployment.from_api(
        delivery(timestamps={"queued_at": "2026-01-01T12:00:30.000+01:00"}, status="failed")
    )
    assert d.queued_at is not None and d.queued_at.utcoffset().total_seconds() == 0
    assert d.queued_at.hour == 11
    line = when(d.queued_at)
    assert line.endswith("|2026-01-01 11:00 UTC>")
    assert f"<!date^{int(d.queued_at.timestamp())}^" in line
