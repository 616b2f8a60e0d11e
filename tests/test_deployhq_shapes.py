"""The fake DeployHQ answers in DeployHQ's shapes, held to the response schemas of DeployHQ's own
API description (``tests/data/deployhq_schemas.json``, see ``tests/support/deployhq_schemas``),
so that it cannot drift from DeployHQ again; and what the bot costs DeployHQ in calls."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from jsonschema import Draft202012Validator

from bot.config import Settings
from tests.conftest import BotServer
from tests.support.cards import buttons
from tests.support.deployhq_schemas import derive, load, schema_of
from tests.support.fakes import FakeDeployHQ, FakeSlack, deployment_json
from tests.support.signed import DEPLOYMENT_ID, at, delivery

DESCRIPTION = Path(__file__).resolve().parents[2] / "shared" / "deployhq-openapi.json"
GROUP = [
    {"name": "Web 1", "identifier": "w-1", "server_group_identifier": "g-web"},
    {"name": "Web 2", "identifier": "w-2", "server_group_identifier": "g-web"},
]
STAGING = [{"name": "Staging", "identifier": "s-2", "protocol_type": "ssh"}]
GOOD_ID = "11111111-2222-3333-4444-555555555555"


def completed(identifier: str, seconds: float, **changes: Any) -> dict[str, Any]:
    return delivery(
        identifier=identifier,
        status="completed",
        end_revision={"ref": "a1b2c3d4e5f6", "message": "Known good"},
        timestamps={
            "queued_at": at(seconds),
            "started_at": at(seconds + 2),
            "completed_at": at(seconds + 60),
            "duration": "58",  # as some deliveries give it
        },
        **changes,
    )


def with_failed_step(identifier: str) -> dict[str, Any]:
    record = deployment_json(identifier, "my-project")
    record["steps"].append(
        {
            "identifier": "step-2",
            "description": "Transferring files",
            "status": "failed",
            "server": 1001,
            "logs": True,
            "step": "transfer",
            "stage": "deploy",
        }
    )
    return record


def uuid_of(n: int) -> str:
    return f"{n:08d}-0000-4000-8000-000000000000"


def check(answer: str, response: requests.Response) -> Any:
    """The answer's status is the one DeployHQ's description gives, and its body fits."""
    status = answer.split()[-1]
    assert str(response.status_code) == status, (answer, response.status_code, response.text)
    body = response.json()
    errors = sorted(
        Draft202012Validator(schema_of(answer)).iter_errors(body), key=lambda e: list(e.path)
    )
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]
    return body


@pytest.mark.skipif(not DESCRIPTION.exists(), reason="DeployHQ's API description is not at hand")
def test_the_schemas_are_derived_from_deployhqs_own_description():
    assert derive(json.loads(DESCRIPTION.read_text())) == load()


def test_the_schemas_hold_what_deployhqs_live_api_is_known_to_do():
    """A check of the checker: an answer shaped as the description alone has it is refused
    where DeployHQ's CLI records that the live API differs."""
    deployment = Draft202012Validator(schema_of("deployment 200"))
    step = {"identifier": "s", "server": "Production Server", "status": "failed"}
    assert not deployment.is_valid({"steps": [step]})  # a server name, not its integer id
    assert deployment.is_valid({"steps": [{**step, "server": 1001}]})
    assert not deployment.is_valid({"timestamps": {"queued_at": "2026-01-01T12:00:30Z"}})
    assert deployment.is_valid({"timestamps": {"queued_at": "2026-01-01T12:00:30.000+01:00"}})
    assert not deployment.is_valid({"servers": [{"name": "x", "surprise": 1}]})


def test_every_kind_of_answer_the_fake_gives_fits_deployhqs_description(
    fake_deployhq: FakeDeployHQ,
):
    base = f"{fake_deployhq.url}/projects/my-project/deployments"
    fake_deployhq.deployments[DEPLOYMENT_ID] = with_failed_step(DEPLOYMENT_ID)
    fake_deployhq.history[:] = [
        completed(uuid_of(3), -30, servers=GROUP),
        delivery(identifier=uuid_of(2), status="preview_ready"),
        delivery(),
        completed(GOOD_ID, -3600),
        delivery(identifier=uuid_of(1), status="running"),
    ]
    for record in fake_deployhq.history:
        fake_deployhq.record(record)
    archived = uuid_of(9)
    fake_deployhq.record(delivery(identifier=archived, archived=True))
    fake_deployhq.logs["step-2"] = [
        {"id": n, "step": "transfer", "message": f"line {n}", "detail": "", "type": "info"}
        for n in range(1, 251)
    ]
    http = requests.Session()

    shown = check("deployment 200", http.get(f"{base}/{DEPLOYMENT_ID}"))
    server_ids = {s["id"] for s in shown["servers"]}
    assert shown["steps"] and {s["server"] for s in shown["steps"]} <= server_ids
    assert shown["timestamps"]["queued_at"].endswith("+01:00")

    page = check("deployments 200", http.get(base, params={"per_page": 2}))
    assert page["pagination"] == {
        "current_page": 1,
        "total_pages": 2,
        "offset": 0,
        "total_records": 4,  # the preview is left out
    }
    assert all("steps" not in r for r in page["records"])
    to_group = check("deployments 200", http.get(base, params={"to": "g-web"}))
    assert [r["identifier"] for r in to_group["records"]] == [uuid_of(3)]
    to_server = check("deployments 200", http.get(base, params={"to": "7563d091"}))
    assert [r["identifier"] for r in to_server["records"]] == [DEPLOYMENT_ID, GOOD_ID, uuid_of(1)]
    running = check("deployments 200", http.get(base, params={"currently_running": "1"}))
    assert [r["identifier"] for r in running["records"]] == [uuid_of(1)]

    logs = check("logs 200", http.get(f"{base}/{DEPLOYMENT_ID}/steps/step-2/logs"))
    assert [e["id"] for e in logs][:3] == [250, 249, 248] and len(logs) == 100  # newest first
    older = check(
        "logs 200", http.get(f"{base}/{DEPLOYMENT_ID}/steps/step-2/logs", params={"before": 151})
    )
    assert older[0]["id"] == 150

    check("projects 200", http.get(f"{fake_deployhq.url}/projects"))
    fake_deployhq.missing.add(uuid_of(8))
    check("deployment 404", http.get(f"{base}/{uuid_of(8)}"))

    retried = check("retry 200", http.post(f"{base}/{DEPLOYMENT_ID}/retry"))
    assert retried["status"] == "pending" and retried["timestamps"]["started_at"] is None
    refused = check("retry 422", http.post(f"{base}/{DEPLOYMENT_ID}/retry"))  # pending now
    assert refused == {"error": "This deployment cannot be retried"}
    check("retry 422", http.post(f"{base}/{archived}/retry"))

    rolled = check("rollback 200", http.post(f"{base}/{GOOD_ID}/rollback", json={"mode": "queue"}))
    assert rolled["identifier"] != GOOD_ID and rolled["status"] == "pending"
    check("rollback 422", http.post(f"{base}/{rolled['identifier']}/rollback"))  # the latest

    fake_deployhq.latest["main"] = "0123456789ab"
    latest = check(
        "latest_revision 200",
        http.get(f"{fake_deployhq.url}/projects/my-project/repository/latest_revision?branch=main"),
    )
    assert latest == {"ref": "0123456789ab"}
    asked = {"parent_identifier": "7563d091", "branch": "main", "end_revision": "0123456789ab"}
    created = check("create 201", http.post(base, json={"deployment": {**asked, "mode": "queue"}}))
    assert created["status"] == "pending" and created["end_revision"]["ref"] == "0123456789ab"
    lacking = {**asked, "parent_identifier": "no-such-server"}
    check("create 422", http.post(base, json={"deployment": lacking}))
    assert check("abort 200", http.post(f"{base}/{created['identifier']}/abort")) == {
        "status": "cancelled"
    }

    project = f"{fake_deployhq.url}/projects/my-project"
    servers = check("servers 200", http.get(f"{project}/servers"))
    assert {s["identifier"] for s in servers} >= {"7563d091"}
    groups = check("server_groups 200", http.get(f"{project}/server_groups"))
    assert [g["identifier"] for g in groups] == ["g-web"]

    autos = check("auto_deployments 200", http.get(f"{project}/auto_deployments"))
    assert {"7563d091", "g-web"} <= {d["identifier"] for d in autos["deployables"]}
    assert all(d["auto_deploy"] is True for d in autos["deployables"])
    as_cli = {"deployables": [{"identifier": "7563d091", "auto_deploy": False}]}
    paused = check(
        "set_auto_deployments 200", http.post(f"{project}/auto_deployments", json=as_cli)
    )
    assert paused["deployables"] == [
        {
            "identifier": "7563d091",
            "name": "Production Server",
            "type": "server",
            "auto_deploy": False,
            "preferred_branch": "main",
        }
    ]
    as_hash = {"deployables": {"g-web": False, "no-such-server": False}}  # the description's
    skipped = check(
        "set_auto_deployments 200", http.post(f"{project}/auto_deployments", json=as_hash)
    )
    assert [d["identifier"] for d in skipped["deployables"]] == ["g-web"]  # the unknown one skipped
    check("set_auto_deployments 422", http.post(f"{project}/auto_deployments", json={}))
    assert fake_deployhq.actions()[-2:] == [
        ("auto-deploy", "7563d091:off"),
        ("auto-deploy", "g-web:off"),
    ]
    figures = check("insights 200", http.get(f"{project}/insights", params={"period": "30"}))
    assert figures["period"] == 30 and figures["servers"][0]["reliability"] == 92.5

    recent = check(
        "recent_commits 200", http.get(f"{project}/repository/recent_commits?branch=main")
    )
    assert recent["commits"][0]["ref"] == "def456abc789"
    overview = {"start_ref": "a1b2c3d4e5f6", "end_ref": "def456abc789"}
    off = check("ai_overview 422", http.post(f"{project}/ai_deployment_overview", json=overview))
    assert off["success"] is False
    fake_deployhq.ai_overview = "Fixes the login."
    on = check("ai_overview 200", http.post(f"{project}/ai_deployment_overview", json=overview))
    assert on["overview"] == "Fixes the login."

    preview = check(
        "create 201", http.post(base, json={"deployment": {**asked, "mode": "preview"}})
    )
    assert preview["status"] == "preview_pending" and set(preview) == {"identifier", "status"}
    pending = check("deployment 200", http.get(f"{base}/{preview['identifier']}"))
    ready = check("deployment 200", http.get(f"{base}/{preview['identifier']}"))
    assert (pending["status"], ready["status"]) == ("preview_pending", "preview_ready")
    assert ready["files"]["7563d091"]["removed"] == ["public/old.js"]
    listed = check("deployments 200", http.get(base, params={"per_page": 50}))
    assert preview["identifier"] not in {r["identifier"] for r in listed["records"]}
    back = check("rollback 200", http.post(f"{base}/{GOOD_ID}/rollback", json={"mode": "preview"}))
    assert back["status"] == "preview_pending"


def test_a_failure_notification_costs_seven_calls_and_finds_roll_back_past_other_servers(
    start_bot: Callable[..., BotServer],
    env: dict[str, str],
    fake_slack: FakeSlack,
    fake_deployhq: FakeDeployHQ,
):
    """170 deployments to another server since the failure: DeployHQ's to= filter still finds
    the last good one on the failure's server, in one page. The record, read to confirm the
    card, names the failing step: the deployment is read once. The fourth asks for the branch's
    newest commit (the failed one here, so no Deploy latest and no commit_info); the fifth, the
    project's automatic deployments (Pause auto-deploy); the sixth and seventh, what changed:
    the branch's recent commits and DeployHQ's overview of them (the record carries none)."""
    fake_deployhq.deployments[DEPLOYMENT_ID] = with_failed_step(DEPLOYMENT_ID)
    since = [completed(uuid_of(n), 10 + n, servers=STAGING) for n in range(170, 0, -1)]
    fake_deployhq.history[:] = [*since, delivery(), completed(GOOD_ID, -3600)]
    fake_deployhq.logs["step-2"] = [{"id": 1, "message": "Upload failed", "type": "error"}]
    on = {"DEPLOYHQ_WHAT_CHANGED": "true", "DEPLOYHQ_PAUSE_AUTO_DEPLOY": "true"}
    bot = start_bot(Settings.from_env({**env, **on}))

    bot.webhook(delivery())

    card = fake_slack.wait_for(
        lambda: next(
            (u for u in fake_slack.api_calls("chat.update") if "deployhq_rollback" in buttons(u)),
            None,
        )
    )
    assert GOOD_ID in buttons(card)["deployhq_rollback"]["value"]
    fake_slack.wait_for(lambda: fake_slack.api_calls("chat.postMessage")[1:])  # the log note
    bot.settle()
    asked = [(c.method, c.path, c.raw_uri) for c in fake_deployhq.calls]
    assert len(asked) == 7, asked
    assert [a[1].rsplit("/", 1)[-1] for a in asked] == [
        DEPLOYMENT_ID,
        "logs",
        "deployments",
        "latest_revision",
        "auto_deployments",
        "recent_commits",
        "ai_deployment_overview",
    ]
    assert "deployhq_deploy_latest" not in buttons(card)
    assert "to=7563d091" in asked[2][2]


def test_a_click_costs_three_calls(
    bot: BotServer, fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    fake_deployhq.history[:] = [delivery(), completed(GOOD_ID, -3600)]
    bot.webhook(delivery())
    card = fake_slack.wait_for(
        lambda: next(
            (u for u in fake_slack.api_calls("chat.update") if "deployhq_rollback" in buttons(u)),
            None,
        )
    )
    bot.settle()
    before = len(fake_deployhq.calls)

    bot.click(buttons(card)["deployhq_rollback"]["value"], action_id="deployhq_rollback")

    fake_deployhq.wait_for(lambda: fake_deployhq.actions())
    bot.settle()
    asked = [c.path.rsplit("/", 1)[-1] for c in fake_deployhq.calls[before:]]
    # The record, the deployments to its servers, the rollback; then the card follows the
    # deployment the rollback queued, from DeployHQ's answer.
    assert asked[:3] == [DEPLOYMENT_ID, "deployments", "rollback"], asked
    assert len(asked) == 3, asked
