"""The road to production: TLS Redis, no secret in any log, one process without Redis, dyno
restarts, the one-click deploy, and the two Quick start commands, each as a user meets it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
import requests

from bot.config import PLACEHOLDERS, ConfigError, Settings
from tests.conftest import BotServer
from tests.support.cards import first_card, retry_value, state_line
from tests.support.fakes import FakeDeployHQ, FakeSlack, Reply
from tests.support.gunicorn import ROOT, Gunicorn, path_with_venv
from tests.support.redis_server import RedisServer, free_port
from tests.support.signed import (
    SIGNING_SECRET,
    WEBHOOK_SECRET,
    click_body,
    command_body,
    delivery,
    slack_headers,
)

REDIS_PASSWORD = "redis-password-3f9a1c"


def retried_cards(slack: FakeSlack) -> list[dict[str, Any]]:
    return [u for u in slack.api_calls("chat.update") if "Retried by" in state_line(u)]


# --- TLS Redis ----------------------------------------------------------------------------


def test_a_self_signed_rediss_is_refused_by_default_and_the_way_out_is_named(
    start_redis: Callable[..., RedisServer],
    env: dict[str, str],
    start_bot: Callable[..., BotServer],
    caplog: pytest.LogCaptureFixture,
):
    redis_tls = start_redis(tls=True, password=REDIS_PASSWORD)
    bot = start_bot(Settings.from_env({**env, "REDIS_URL": redis_tls.url}))

    health = bot.http.get(bot.url + "/healthz", timeout=10)

    assert health.status_code == 503
    assert "certificate" in health.json()["error"]
    assert "REDIS_TLS_VERIFY=false" in health.json()["error"]
    assert "REDIS_TLS_VERIFY=false" in caplog.text
    assert REDIS_PASSWORD not in caplog.text + health.text


def test_tls_verification_off_warns_only_where_there_is_tls_to_verify(env: dict[str, str]):
    """app.json sets REDIS_TLS_VERIFY=false for Heroku Redis, whatever URL it hands out."""
    off = {**env, "REDIS_TLS_VERIFY": "false"}
    plain = Settings.from_env({**off, "REDIS_URL": "redis://127.0.0.1:6379"})
    tls = Settings.from_env({**off, "REDIS_URL": "rediss://127.0.0.1:6380"})
    assert not [w for w in plain.warnings() if "REDIS_TLS_VERIFY" in w]
    assert [w for w in tls.warnings() if "REDIS_TLS_VERIFY" in w]


def test_with_verification_off_a_click_storm_on_tls_redis_retries_once(
    start_redis: Callable[..., RedisServer],
    env: dict[str, str],
    start_bot: Callable[..., BotServer],
    fake_slack: FakeSlack,
    fake_deployhq: FakeDeployHQ,
):
    redis_tls = start_redis(tls=True, password=REDIS_PASSWORD)
    settings = Settings.from_env({**env, "REDIS_URL": redis_tls.url, "REDIS_TLS_VERIFY": "false"})
    bots = [start_bot(settings), start_bot(settings)]
    assert bots[0].http.get(bots[0].url + "/healthz", timeout=10).json() == {
        "ok": True,
        "store": "redis",
    }
    bots[0].webhook(delivery())
    value = retry_value(first_card(fake_slack))
    fake_deployhq.script("retry", Reply(200, None, delay=0.3))

    with ThreadPoolExecutor(max_workers=20) as pool:
        acks = list(
            pool.map(
                lambda i: bots[i % 2].click(value, user_id=f"U0C{i:02d}", key=f"k{i}"), range(20)
            )
        )

    assert [a.status_code for a in acks] == [200] * 20
    fake_slack.wait_for(lambda: retried_cards(fake_slack))
    fake_slack.wait_for(lambda: len(fake_slack.responses()) == 19)
    assert len(fake_deployhq.retries()) == 1
    assert redis_tls.client().keys("deployhq-bot:retry:*")  # the lock lives in the TLS Redis


# --- logs ---------------------------------------------------------------------------------


def test_no_secret_reaches_any_log_line_at_debug_under_the_procfile_command(
    env: dict[str, str],
    start_redis: Callable[..., RedisServer],
    fake_slack: FakeSlack,
    fake_deployhq: FakeDeployHQ,
):
    redis_server = start_redis(password=REDIS_PASSWORD)
    env = {**env, "REDIS_URL": redis_server.url, "LOG_LEVEL": "DEBUG"}
    secrets = [
        env["SLACK_BOT_TOKEN"],
        SIGNING_SECRET,
        env["DEPLOYHQ_API_KEY"],
        WEBHOOK_SECRET,
        REDIS_PASSWORD,
    ]
    server = Gunicorn(env, workers=2)
    try:
        server.wait_ready()
        hook = server.url + "/deployhq/webhook"
        as_query = requests.post(f"{hook}?token={WEBHOOK_SECRET}", json=delivery(), timeout=10)
        as_basic = requests.post(
            hook,
            json=delivery(identifier="0b5e7a52-1111-2222-3333-444455556666"),
            auth=("deployhq", WEBHOOK_SECRET),
            timeout=10,
        )
        refused = requests.post(f"{hook}?token=wrong-token", json=delivery(), timeout=10)
        assert (as_query.status_code, as_basic.status_code, refused.status_code) == (200, 200, 403)

        value = retry_value(first_card(fake_slack))
        for body in (
            click_body(value, response_url=fake_slack.response_url("click")),
            command_body("help", response_url=fake_slack.response_url("help")),
        ):
            answer = requests.post(
                server.url + "/slack/events", data=body, headers=slack_headers(body), timeout=10
            )
            assert answer.status_code == 200
        fake_slack.wait_for(lambda: retried_cards(fake_slack))

        fake_deployhq.always("show", Reply(401, {"status": 401, "error": "Access denied"}))
        body = command_body(
            "status my-project 6bd5cdc4-d652-92e8-322f-287929091f03",
            response_url=fake_slack.response_url("status"),
        )
        requests.post(
            server.url + "/slack/events", data=body, headers=slack_headers(body), timeout=10
        )
        note = fake_slack.wait_for(lambda: fake_slack.responses("status"))[0]
        assert "refused the bot's API credentials" in note["text"]
    finally:
        output = server.stop()

    assert "DEBUG" in output  # libraries really did log at DEBUG
    assert '"POST /deployhq/webhook HTTP/1.1" 200' in output  # the access log, without its query
    assert '"POST /slack/events HTTP/1.1" 200' in output
    for secret in secrets:
        assert secret not in output
    assert "will be unused" not in output  # Bolt's misleading boot-time warning is gone


# --- processes ----------------------------------------------------------------------------


def test_without_redis_the_procfile_command_runs_one_worker_and_says_why(env: dict[str, str]):
    env = {k: v for k, v in env.items() if k not in ("REDIS_URL", "DEPLOYHQ_WEBHOOK_SECRET")}
    server = Gunicorn(env, workers=3)
    try:
        server.wait_ready()
        time.sleep(0.5)  # time enough for more workers to boot, were any coming
        workers = server.workers()
        health = requests.get(server.url + "/healthz", timeout=5).json()
    finally:
        output = server.stop()

    assert len(workers) == 1
    assert health["store"] == "memory"
    assert output.count("REDIS_URL is not set: running 1 worker process instead of 3") == 1
    assert output.count("DEPLOYHQ_WEBHOOK_SECRET is not set") == 1  # once, from the master
    assert "JSON" in output


def test_a_retry_in_flight_when_the_dyno_restarts_finishes_and_reaches_the_card(
    env: dict[str, str], fake_slack: FakeSlack, fake_deployhq: FakeDeployHQ
):
    server = Gunicorn(env, workers=2)
    try:
        server.wait_ready()
        requests.post(
            f"{server.url}/deployhq/webhook?token={WEBHOOK_SECRET}", json=delivery(), timeout=10
        )
        value = retry_value(first_card(fake_slack))
        fake_deployhq.script("retry", Reply(200, None, delay=4.0))
        body = click_body(value, response_url=fake_slack.response_url())
        ack = requests.post(
            server.url + "/slack/events", data=body, headers=slack_headers(body), timeout=10
        )
        assert ack.status_code == 200
        fake_deployhq.wait_for(fake_deployhq.retries)  # DeployHQ has the call, and is slow

        # A PaaS restart: SIGTERM to every process of the dyno at once.
        signalled = time.monotonic()
        os.killpg(server.process.pid, signal.SIGTERM)
        server.process.wait(timeout=30)
        took = time.monotonic() - signalled
    finally:
        output = server.stop()

    assert len(fake_deployhq.retries()) == 1
    (done,) = retried_cards(fake_slack)
    assert "DeployHQ status: *pending*" in state_line(done)
    assert "finishing 1 actions task(s) before exiting" in output
    assert 3.0 < took < 25.0  # waited for DeployHQ, and well inside the PaaS's 30 s


# --- settings as a newcomer leaves them -----------------------------------------------------


def example_env() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def test_env_example_copied_unchanged_does_not_start_and_names_each_placeholder():
    values = example_env()
    # every value the example fills in is a placeholder the bot knows to refuse
    assert {k for k, v in values.items() if v} == set(PLACEHOLDERS)
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(values)
    for name in PLACEHOLDERS:
        assert any(
            p.startswith(f"{name} is not set (it still holds") for p in raised.value.problems
        )


@pytest.mark.parametrize(
    ("error", "fix"),
    [("not_in_channel", "/invite @DeployHQ"), ("channel_not_found", "check SLACK_CHANNEL")],
)
def test_a_card_refused_for_its_channel_names_the_fix(
    bot: BotServer,
    fake_slack: FakeSlack,
    caplog: pytest.LogCaptureFixture,
    error: str,
    fix: str,
):
    fake_slack.always("chat.postMessage", Reply(200, {"ok": False, "error": error}))

    # Answered at once; Slack is asked after, and asked again later (not waited for here).
    first = bot.webhook(delivery(), settle="now")
    second = bot.webhook(delivery(identifier="0b5e7a52-1111-2222-3333-444455556666"), settle="now")

    assert first.json()["result"] == second.json()["result"] == "accepted"
    assert fix in caplog.text
    assert error in second.json()["warning"] and fix in second.json()["warning"]


# --- one-click deploy ---------------------------------------------------------------------


def settings_read() -> set[str]:
    """Every environment variable ``Settings.from_env`` looks at."""
    read: set[str] = set()

    class Recording(dict[str, str]):
        def get(self, key: str, default: Any = None) -> Any:
            read.add(key)
            return super().get(key, default)

    with suppress(ConfigError):
        Settings.from_env(Recording())
    return read


def test_app_json_offers_exactly_the_settings_the_bot_reads():
    app = json.loads((ROOT / "app.json").read_text())
    offered = app["env"]
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({})
    required = {p.split()[0] for p in raised.value.problems}

    from bot.config import SETTINGS

    former = {old for setting in SETTINGS for old in setting.formerly}
    # REDIS_URL comes from the add-on; a former name is read, never offered
    assert set(offered) | {"REDIS_URL"} | former == settings_read()
    assert {"plan": "heroku-redis:mini"} in app["addons"]
    assert {n for n, spec in offered.items() if spec["required"]} == required | {
        "DEPLOYHQ_WEBHOOK_SECRET"
    }
    assert offered["DEPLOYHQ_WEBHOOK_SECRET"]["generator"] == "secret"
    assert offered["REDIS_TLS_VERIFY"]["value"] == "false"
    assert app["formation"]["web"]["quantity"] == 1
    assert all(spec["description"] for spec in offered.values())
    version = (ROOT / ".python-version").read_text().strip()
    assert tuple(int(p) for p in version.split(".")) >= (3, 11)


# --- the Quick start's run command -----------------------------------------------------------


def run_command(env: dict[str, str], **options: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(ROOT / "bin" / "run")],
        env={"PATH": path_with_venv(), "HOME": os.environ.get("HOME", "/root"), **env},
        start_new_session=True,
        **options,
    )


def test_the_run_command_without_settings_says_which_to_fill_and_where(tmp_path: Path):
    process = run_command(
        {"ENV_FILE": str(tmp_path / "missing.env"), "PORT": str(free_port())},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output = process.communicate(timeout=120)[0].decode()

    assert process.returncode == 78, output
    assert "copy .env.example to .env" in output
    for name in PLACEHOLDERS:
        assert f"{name} is not set" in output
    assert "from the app's Basic Information page" in output  # where each comes from
    assert "Traceback" not in output


def test_the_run_command_serves_the_bot_from_an_env_file_without_redis(
    tmp_path: Path, env: dict[str, str], fake_slack: FakeSlack
):
    env_file = tmp_path / ".env"
    settings = {k: v for k, v in env.items() if k not in ("REDIS_URL", "DEPLOYHQ_PUBLIC_KEY")}
    env_file.write_text("\n".join(f"{k}={v}" for k, v in settings.items()) + "\n")
    port = free_port()
    log = tmp_path / "out.log"
    with log.open("wb") as out:
        process = run_command(
            {"ENV_FILE": str(env_file), "PORT": str(port), "WEB_CONCURRENCY": "2"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        health = None
        while health is None and time.monotonic() < deadline and process.poll() is None:
            with suppress(requests.RequestException):
                health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).json()
            time.sleep(0.1)
        assert health == {"ok": True, "store": "memory"}, log.read_text()
        posted = requests.post(
            f"http://127.0.0.1:{port}/deployhq/webhook?token={WEBHOOK_SECRET}",
            json=delivery(),
            timeout=10,
        )
        assert posted.json()["result"] == "accepted"
        first_card(fake_slack)
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    assert "running 1 worker process instead of 2" in log.read_text()


def test_every_setting_is_declared_once_and_documented_where_a_person_looks():
    """``bot.config.SETTINGS`` declares each setting once: the names the bot reads, every one in
    ``.env.example`` and in docs/settings.md's table, and ``app.json`` describing each in its
    words."""
    from bot.config import SETTINGS

    declared = {setting.env for setting in SETTINGS}
    former = {old: setting.env for setting in SETTINGS for old in setting.formerly}
    assert len(declared) == len(SETTINGS) and not declared & set(former)
    assert declared | set(former) == settings_read()
    example = (ROOT / ".env.example").read_text()
    assert {n for n in declared if not re.search(rf"^#? ?{n}=", example, re.M)} == set()
    table = (ROOT / "docs" / "settings.md").read_text()
    assert {n for n in declared if f"`{n}`" not in table} == set()
    renamed = {f"| `{now}` | `{old}` |" for old, now in former.items()}
    assert {row for row in renamed if row not in table} == set()  # the former names' table
    assert {old for old in former if old in example} == set()
    offered = json.loads((ROOT / "app.json").read_text())["env"]
    assert {s.env: s.help for s in SETTINGS if s.env in offered} == {
        n: spec["description"] for n, spec in offered.items()
    }
    required = {s.env for s in SETTINGS if s.required}
    assert {n for n, spec in offered.items() if spec["required"]} == required | {
        "DEPLOYHQ_WEBHOOK_SECRET"  # required on a PaaS, where the secret is generated
    }
