"""Socket Mode that never goes deaf, through the Procfile's gunicorn: Slack's refreshes, dropped
and reset connections, a silent (half-open) one and a refused apps.connections.open. For each,
a click is acked well within Slack's 3 s and retried once, a new connection opens within
seconds, and the worker does not spin while it is away."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
import requests

from bot.config import ConfigError, Settings
from tests.support.fakes import FakeDeployHQ, FakeSlack
from tests.support.socket_faults import REFUSALS, Scene
from tests.support.socket_mode import FakeSocketMode

# Short keepalive: a silent connection is given up after 1.5 s without a pong.
FAST = {"SOCKET_MODE_PING_INTERVAL": "0.5", "SOCKET_MODE_PING_TIMEOUT": "1.5"}
ACK_LIMIT = 3.0  # Slack's
SPINNING = 0.5  # CPU seconds: a spinning worker burns about one per second away


@pytest.fixture
def socket_mode() -> Iterator[FakeSocketMode]:
    server = FakeSocketMode()
    yield server
    server.stop()


@pytest.fixture
def scene(
    env: dict[str, str],
    fake_slack: FakeSlack,
    fake_deployhq: FakeDeployHQ,
    socket_mode: FakeSocketMode,
) -> Iterator[Scene]:
    started = Scene(
        {**env, **FAST, "METRICS_TOKEN": "m" * 32}, fake_slack, fake_deployhq, socket_mode
    )
    yield started
    output = started.stop()
    assert "Traceback" not in output, output
    assert "xapp-1-test-app-token" not in output


def lines(output: str, pattern: str) -> list[str]:
    return [line for line in output.splitlines() if re.search(pattern, line)]


@pytest.mark.parametrize(
    ("fault", "within", "cause"),
    [
        ("refresh", 2.0, r"INFO .*Slack asked for a new connection \(refresh_requested\)"),
        ("drop", 2.0, r"WARNING .*connection lost: closed without a close frame; reconnecting now"),
        ("reset", 2.0, r"WARNING .*connection lost: the connection was reset; reconnecting now"),
        ("half-open", 6.0, r"WARNING .*connection lost: no pong within 1.5 s; reconnecting now"),
    ],
)
def test_after_each_fault_a_new_connection_opens_at_once_and_clicks_are_acked_and_retried_once(
    scene: Scene, fault: str, within: float, cause: str
):
    outcome = scene.play(fault, deadline=20)
    output = scene.stop()

    assert outcome.reconnect is not None and outcome.reconnect < within, outcome
    assert outcome.lost == 0 and (outcome.slowest_ack or 0) < ACK_LIMIT, outcome
    assert outcome.retries == 1, outcome
    assert outcome.cpu < SPINNING, outcome
    assert len(lines(output, cause)) == 1, output  # one line says why, once


def test_a_click_sent_on_the_old_connection_during_a_refresh_is_acked_there(scene: Scene):
    outcome = scene.play("refresh", deadline=20)

    # The first click went to the old connection after Slack's disconnect message; the second
    # to the new one as it opened. Both answered at once: none waited for the old one to close.
    assert len(outcome.acks) == 2 and outcome.lost == 0, outcome
    assert all(ack is not None and ack < 0.5 for ack in outcome.acks), outcome
    assert outcome.retries == 1


def test_a_click_slack_redelivers_on_the_new_connection_is_acked_and_acted_on_once(scene: Scene):
    outcome = scene.play("redelivery", deadline=20)

    assert outcome.lost == 0 and len(outcome.acks) == 2, outcome  # each delivery acked
    assert outcome.retries == 1, outcome


def test_refused_connections_back_off_and_the_bot_connects_when_slack_agrees(
    scene: Scene, fake_slack: FakeSlack
):
    outcome = scene.play("refused", deadline=30)
    output = scene.stop()

    assert outcome.reconnect is not None, outcome
    # First attempt at once, then about 1 s and 2 s later (3/4 to all of it, jittered).
    assert 0.75 * (1 + 2) <= outcome.reconnect < 10, outcome
    assert outcome.cpu < SPINNING, outcome
    assert outcome.retries == 1 and (outcome.slowest_ack or 0) < ACK_LIMIT, outcome
    refusals = lines(output, r"WARNING .*Slack refused apps.connections.open \(internal_error\)")
    assert len(refusals) == REFUSALS, output
    assert len(fake_slack.api_calls("apps.connections.open")) == 1 + REFUSALS + 1


def test_healthz_and_metrics_show_the_connection_and_its_reconnects(scene: Scene):
    url = scene.server.url
    health = requests.get(url + "/healthz", timeout=5)
    assert health.status_code == 200
    state = health.json()["socket_mode"]
    assert state["connected"] is True and state["last_heard_seconds_ago"] < 5
    # Every worker of the server, read from the workers' shared metrics.
    assert health.json()["socket_mode_workers"] == {"workers": 1, "connected": 1}

    scene.play("drop", deadline=20)
    metrics = requests.get(
        url + "/metrics", headers={"Authorization": "Bearer " + "m" * 32}, timeout=5
    ).text

    assert re.search(r"^deployhq_bot_socket_mode_connections 1\.0$", metrics, re.M), metrics
    assert 'deployhq_bot_socket_mode_reconnects_total{cause="dropped"} 1.0' in metrics
    after = requests.get(url + "/healthz", timeout=5).json()["socket_mode"]
    assert after["connected"] is True and after["reconnects"] == 1


def test_healthz_answers_503_once_the_socket_is_down_longer_than_the_grace(
    env: dict[str, str],
    fake_slack: FakeSlack,
    fake_deployhq: FakeDeployHQ,
    socket_mode: FakeSocketMode,
):
    scene = Scene(
        {**env, **FAST, "SOCKET_MODE_HEALTH_GRACE": "1"}, fake_slack, fake_deployhq, socket_mode
    )
    try:
        fake_slack.socket_url = ""  # from now on Slack refuses every new connection
        socket_mode.drop()
        deadline = time.monotonic() + 15
        while (answer := requests.get(scene.server.url + "/healthz", timeout=5)).status_code != 503:
            assert time.monotonic() < deadline, answer.json()
            time.sleep(0.1)
    finally:
        output = scene.stop()
    body = answer.json()
    assert body["ok"] is False and body["socket_mode"]["connected"] is False
    assert body["socket_mode_workers"] == {"workers": 1, "connected": 0}
    # This worker's own state or every worker's, whichever /healthz read first past the grace.
    assert "no Socket Mode connection" in body["error"]
    assert "Traceback" not in output
    assert body["socket_mode"]["last_heard_from_slack"]  # when it last heard, for the operator


def test_the_keepalive_settings_are_checked(env: dict[str, str]):
    with pytest.raises(ConfigError) as refused:
        Settings.from_env(
            {
                **env,
                "SOCKET_MODE_PING_INTERVAL": "0",
                "SOCKET_MODE_PING_TIMEOUT": "soon",
                "SOCKET_MODE_HEALTH_GRACE": "2d",
            }
        )
    for name in ("PING_INTERVAL", "PING_TIMEOUT", "HEALTH_GRACE"):
        assert f"SOCKET_MODE_{name} must be seconds" in str(refused.value)
    settings = Settings.from_env({**env, "SOCKET_MODE_PING_TIMEOUT": "20s"})
    assert (settings.socket_mode_ping_interval, settings.socket_mode_ping_timeout) == (5.0, 20.0)
