"""Parsing DeployHQ's deployment object defensively."""

from __future__ import annotations

import pytest

from bot.deployhq.deployment import Deployment
from tests.support.signed import delivery


def test_the_documented_failure_parses():
    d = Deployment.from_api(delivery())
    assert (d.identifier, d.status, d.project_permalink, d.branch, d.deployer) == (
        "6bd5cdc4-d652-92e8-322f-287929091f03",
        "failed",
        "my-project",
        "main",
        "Adam",
    )
    assert d.end_revision is not None and d.end_revision.short_ref == "def456a"
    assert d.servers == ("Production Server",)
    assert d.duration == 68
    assert d.run_key == f"{d.identifier}:{int(d.completed_at.timestamp())}"  # when it failed


def test_messy_fields_fall_back_instead_of_failing():
    d = Deployment.from_api(
        delivery(
            deployer=None,
            branch="",
            servers="not a list",
            status="SOMETHING_NEW",
            timestamps={
                "started_at": "2025-10-27T10:00:00",
                "completed_at": "garbage",
                "duration": "nan",
            },
            project={"permalink": "p", "repository": {"branch": "master"}},
            end_revision={"ref": 12345, "message": ["not", "text"]},
        )
    )
    assert d.deployer == "" and d.servers == () and d.status == "something_new"
    assert d.branch == "master"  # older deliveries name it only on the repository
    assert d.completed_at is None and d.duration is None
    assert d.started_at is not None and d.started_at.tzinfo is not None
    assert d.end_revision is not None and d.end_revision.ref == "12345"
    assert d.project_name == "p"


def test_a_retry_that_fails_again_is_a_new_run():
    first = Deployment.from_api(delivery())
    again = Deployment.from_api(delivery(timestamps={"completed_at": "2025-10-27T11:00:00Z"}))
    assert first.identifier == again.identifier
    assert first.run_key != again.run_key


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        "x",
        {},
        {"identifier": "../etc"},
        {"identifier": "abc"},
        {"identifier": "a b", "project": {}},
    ],
)
def test_what_is_not_a_deployment_is_refused(data):
    with pytest.raises(ValueError):
        Deployment.from_api(data)


def test_a_stored_copy_reads_back_the_same():
    d = Deployment.from_api(delivery())
    assert Deployment.from_api(d.to_api()) == d


def test_previews_archived_and_aborted_deployments_are_shown_for_what_they_are():
    from bot.deployhq.history import newer_on_servers
    from bot.messages.card import deployment_card
    from bot.words import states
    from tests.support.signed import at

    failed = Deployment.from_api(delivery())
    preview = Deployment.from_api(
        delivery(
            identifier="33333333-2222-3333-4444-555555555555",
            status="preview_ready",
            timestamps={"queued_at": at(600)},
        )
    )
    assert preview.is_preview and newer_on_servers([preview, failed], failed) is None

    archived = Deployment.from_api(delivery(archived=True))
    card = deployment_card(archived, states.Failed(), page_url="https://x")
    elements = [e for b in card["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert [e["action_id"] for e in elements] == ["deployhq_open"]  # no Retry, no Roll back

    aborted = Deployment.from_api(delivery(status="cancelled"))
    card = deployment_card(aborted, states.Progress(), page_url="https://x")
    assert card["blocks"][0]["text"]["text"].endswith("Deployment aborted: My Project")
