"""What Slack and networks do to a Socket Mode connection, played against the bot as the
Procfile runs it, and what came of it: how fast clicks were acked, how long the bot was without
a connection, the CPU its worker used meanwhile, and how many retries DeployHQ saw.

Shared by tests/test_socket_mode.py (which asserts on it) and bench/socket_mode.py (which
prints it for several clients)."""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from urllib.parse import parse_qs

import requests

from tests.support.cards import first_card, retry_value
from tests.support.fakes import FakeDeployHQ, FakeSlack, Reply
from tests.support.gunicorn import Gunicorn, cpu_seconds
from tests.support.signed import WEBHOOK_SECRET, click_body, delivery
from tests.support.socket_mode import FakeSocketMode

FAULTS = ("refresh", "redelivery", "drop", "reset", "half-open", "refused")
REFRESH_WINDOW = 2.0  # how long the old connection stays open after ``disconnect``
ON_OLD_SOCKET_AFTER = 0.5  # when, after ``disconnect``, a click arrives on the old connection
REFUSALS = 2  # apps.connections.open answers ok: false this many times


@dataclass
class Outcome:
    fault: str
    acks: list[float | None]  # seconds to each click's ack; None: never acked
    reconnect: float | None  # seconds from the fault to a new connection; None: none came
    cpu: float  # CPU seconds the worker used from the fault to the new connection (or deadline)
    retries: int  # retries DeployHQ received: one is right

    @property
    def slowest_ack(self) -> float | None:
        if not self.acks or None in self.acks:
            return None
        return max(a for a in self.acks if a is not None)

    @property
    def lost(self) -> int:
        return self.acks.count(None)


class Scene:
    """The bot under gunicorn (one worker, so its CPU time is that of the only connection),
    with a failure card posted and its Socket Mode connection open."""

    def __init__(
        self,
        env: dict[str, str],
        slack: FakeSlack,
        deployhq: FakeDeployHQ,
        socket_mode: FakeSocketMode,
        *,
        app: str | None = None,
    ) -> None:
        self.slack, self.deployhq, self.socket_mode = slack, deployhq, socket_mode
        slack.socket_url = socket_mode.url
        options = {"app": app} if app else {}
        self.server = Gunicorn(
            {**env, "SLACK_APP_TOKEN": "xapp-1-test-app-token"}, workers=1, **options
        )
        self.clicks = 0
        self.output: str | None = None
        try:
            self.server.wait_ready(timeout=30)
            (self.worker,) = self.server.wait_workers(1)
            deployhq.record(delivery())
            requests.post(
                f"{self.server.url}/deployhq/webhook",
                params={"token": WEBHOOK_SECRET},
                json=delivery(),
                timeout=10,
            ).raise_for_status()
            self.value = retry_value(first_card(slack))
            socket_mode.wait_connected(1, timeout=30)
        except BaseException:
            self.server.stop()
            raise

    def click(
        self, *, connection: int = -1, envelope_id: str | None = None, retry: int = 0
    ) -> tuple[str, float]:
        """Send a Retry click as Slack would; its envelope id and when it was sent."""
        self.clicks += 1
        body = click_body(
            self.value,
            response_url=self.slack.response_url(f"k{self.clicks}"),
            user_id=f"U0CLICK{self.clicks}",
        )
        payload = json.loads(parse_qs(body)["payload"][0])
        sent = time.monotonic()
        envelope_id = self.socket_mode.send(
            "interactive",
            payload,
            connection=connection,
            envelope_id=envelope_id,
            retry_attempt=retry,
        )
        return envelope_id, sent

    def play(self, fault: str, *, deadline: float = 30.0) -> Outcome:
        """Do ``fault`` to the open connection, then click on the connection that replaced it."""
        fake = self.socket_mode
        opened = fake.connections
        clicks: list[tuple[str, float]] = []
        cpu_before, started = cpu_seconds(self.worker), time.monotonic()
        if fault in ("refresh", "redelivery"):
            fake.refresh(REFRESH_WINDOW)
            time.sleep(ON_OLD_SOCKET_AFTER)
            clicks.append(self.click(connection=opened - 1))
        elif fault == "drop":
            fake.drop()
        elif fault == "reset":
            fake.reset()
        elif fault == "half-open":
            fake.go_silent()
        elif fault == "refused":
            refusal = Reply(200, {"ok": False, "error": "internal_error"})
            self.slack.script("apps.connections.open", *[refusal] * REFUSALS)
            fake.drop()
        else:
            raise ValueError(fault)
        try:
            reconnect: float | None = fake.wait_connected(opened + 1, timeout=deadline) - started
        except AssertionError:
            reconnect = None
        cpu = cpu_seconds(self.worker) - cpu_before
        if reconnect is not None:
            if fault == "redelivery":  # Slack sends the unacked click again, on the new one
                clicks.append(self.click(envelope_id=clicks[0][0], retry=1))
            else:
                clicks.append(self.click())  # as the new connection opens
        acks = [fake.ack_seconds(envelope_id, sent) for envelope_id, sent in clicks]
        if any(ack is not None for ack in acks):
            with contextlib.suppress(AssertionError):  # acked, never acted on: retries stays 0
                self.deployhq.wait_for(self.deployhq.retries, timeout=10)
            time.sleep(0.5)  # room for a second retry, were there one
        return Outcome(fault, acks, reconnect, cpu, len(self.deployhq.retries()))

    def stop(self) -> str:
        """Stop the bot (once; again just returns its output)."""
        if self.output is None:
            self.output = self.server.stop()
        return self.output
