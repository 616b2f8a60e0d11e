"""What the bot is doing: Prometheus metrics over every worker, and JSON log lines."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from bot.config import Settings
from tests.conftest import BotServer
from tests.support.cards import first_card, retry_value, state_line
from tests.support.fakes import FakeDeployHQ, FakeSlack
from tests.support.gunicorn import Gunicorn
from tests.support.signed import (
    SIGNING_SECRET,
    WEBHOOK_SECRET,
    click_body,
    delivery,
    slack_headers,
)

METRICS_TOKEN = "metrics-token-5e1f0c2a9b"


def sample(exposition: str, name: str, **labels: str) -> float:
    """One sample's value from Prometheus' text format (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in exposition.splitlines():
        if line.startswith(f"{name}{{{wanted}}} ") or (not labels and line.startswith(name + " ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_add_up_over_every_worker_under_the_procfile_command(
    env: dict[str, str], fake_slack: FakeSlack, tmp_path: Path
):
    folder = tmp_path / "metrics"
    server = Gunicorn(
        {**env, "METRICS_TOKEN": METRICS_TOKEN, "PROMETHEUS_MULTIPROC_DIR": str(folder)},
        workers=2,
    )
    try:
        server.wait_ready()
        hook = f"{server.url}/deployhq/webhook"
        failures = [delivery(identifier=str(uuid.uuid4())) for _ in range(12)]
        for failure in failures:  # each on a connection of its own: either worker may take it
            requests.post(f"{hook}?token={WEBHOOK_SECRET}", json=failure, timeout=10)
        requests.post(f"{hook}?token={WEBHOOK_SECRET}", json=failures[0], timeout=10)
        for _ in range(3):
            requests.post(f"{hook}?token=wrong-token-x", json=failures[0], timeout=10)
        fake_slack.wait_for(lambda: len(fake_slack.taken) >= 12)
        body = click_body(
            retry_value(first_card(fake_slack)), response_url=fake_slack.response_url()
        )
        requests.post(
            server.url + "/slack/events", data=body, headers=slack_headers(body), timeout=10
        )
        fake_slack.wait_for(
            lambda: any("Retried by" in state_line(u) for u in fake_slack.api_calls("chat.update"))
        )
        auth = {"Authorization": f"Bearer {METRICS_TOKEN}"}
        scrapes = [
            requests.get(server.url + "/metrics", headers=auth, timeout=10) for _ in range(6)
        ]
        workers = server.workers()
    finally:
        output = server.stop()

    written_by = {m.group(1) for p in folder.iterdir() if (m := re.search(r"_(\d+)\.db$", p.name))}
    assert len(written_by & {str(w) for w in workers}) == 2  # both workers counted something
    for scrape in scrapes:  # whichever worker answered, the same totals
        text = scrape.text
        assert scrape.status_code == 200
        assert sample(text, "deployhq_bot_webhooks_total", result="accepted") == 12
        assert sample(text, "deployhq_bot_webhooks_total", result="duplicate") == 1
        assert sample(text, "deployhq_bot_webhooks_total", result="refused") == 3
        assert sample(text, "deployhq_bot_retries_total", outcome="retried") == 1
        assert sample(text, "deployhq_bot_ack_seconds_count") == 1
        assert sample(text, "deployhq_bot_deployhq_request_seconds_count", call="retry") == 1
    assert METRICS_TOKEN not in output


def test_metrics_need_the_token(start_bot: Callable[..., BotServer], env: dict[str, str]):
    closed = start_bot()
    assert closed.http.get(closed.url + "/metrics", timeout=5).status_code == 404

    bot = start_bot(Settings.from_env({**env, "METRICS_TOKEN": METRICS_TOKEN}))
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": METRICS_TOKEN}):
        assert bot.http.get(bot.url + "/metrics", headers=headers, timeout=5).status_code == 401
    ok = bot.http.get(
        bot.url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=5
    )
    assert ok.status_code == 200 and "deployhq_bot_webhooks_total" in ok.text


def test_slack_errors_are_counted_by_method_and_error(
    start_bot: Callable[..., BotServer], env: dict[str, str], fake_slack: FakeSlack
):
    from tests.support.fakes import Reply

    bot = start_bot(Settings.from_env({**env, "METRICS_TOKEN": METRICS_TOKEN}))
    before = bot.http.get(
        bot.url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=5
    ).text
    fake_slack.script("chat.postMessage", Reply(200, {"ok": False, "error": "not_in_channel"}))
    bot.webhook(delivery())
    after = bot.http.get(
        bot.url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=5
    ).text
    labels = {"method": "chat.postMessage", "error": "not_in_channel"}
    assert sample(after, "deployhq_bot_slack_errors_total", **labels) == (
        sample(before, "deployhq_bot_slack_errors_total", **labels) + 1
    )


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_json_lines_parse_carry_a_clicks_request_id_to_its_work_and_hold_no_secret(
    env: dict[str, str],
    fake_slack: FakeSlack,
    fake_deployhq: FakeDeployHQ,
    level: str,
):
    server = Gunicorn({**env, "LOG_FORMAT": "json", "LOG_LEVEL": level}, workers=1)
    try:
        server.wait_ready()
        requests.post(
            f"{server.url}/deployhq/webhook?token={WEBHOOK_SECRET}", json=delivery(), timeout=10
        )
        body = click_body(
            retry_value(first_card(fake_slack)), response_url=fake_slack.response_url()
        )
        requests.post(
            server.url + "/slack/events",
            data=body,
            headers={**slack_headers(body), "X-Request-Id": "click-4f2a9c81"},
            timeout=10,
        )
        fake_slack.wait_for(
            lambda: any("Retried by" in state_line(u) for u in fake_slack.api_calls("chat.update"))
        )
    finally:
        output = server.stop()

    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert all({"timestamp", "level", "logger", "message"} <= set(line) for line in lines)
    by_click = [line for line in lines if line.get("request_id") == "click-4f2a9c81"]
    messages = [line["message"] for line in by_click]
    assert any(m.startswith("Retry clicked by U0CLICKER") for m in messages)  # the ack
    (outcome,) = [line for line in by_click if line.get("outcome") == "retried"]  # after it
    assert outcome["user"] == "U0CLICKER" and outcome["deployment"] == delivery()["identifier"]
    for secret in (env["SLACK_BOT_TOKEN"], SIGNING_SECRET, env["DEPLOYHQ_API_KEY"], WEBHOOK_SECRET):
        assert secret not in output
