"""One failure, two instances of the bot (the Procfile's gunicorn, sharing a Redis), and a fault
at one step of an action: a SIGKILL between two steps, an answer lost after DeployHQ did the
work, Redis flushed, or DeployHQ's clock off by ten minutes. Then people click the card as it
first looked (or press the confirm ``/deployhq deploy`` showed), on both instances, until it
settles. What DeployHQ *did* is counted.

Used by tests/test_one_action.py (which asserts exactly one action in every case) and by
bench/one_action.py (which prints the whole table).
"""

from __future__ import annotations

import os
import signal
import tempfile
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import requests

from tests.support.cards import buttons, state_line
from tests.support.fakes import FakeDeployHQ, FakeSlack, Reply
from tests.support.gunicorn import Gunicorn
from tests.support.redis_server import RedisServer
from tests.support.signed import (
    SIGNING_SECRET,
    WEBHOOK_SECRET,
    SigningKey,
    at,
    click_body,
    command_body,
    delivery,
    slack_headers,
)

# The boundaries of the pipeline (bot/actions/pipeline.py reaches them, bot/runtime/failpoints.py
# kills there), and one the test makes itself: the call sent, DeployHQ done, the answer not back.
STEPS = ("claimed", "preflight", "sending", "in-call", "answered", "finished", "card-saved")
FAULTS = ("timeout", "504", "dropped", "redis-flushed", "clock+10m", "clock-10m")
# "deploy" is the card's Deploy latest; "order" is /deployhq deploy's confirmed order; "pause"
# is the card's Pause auto-deploy.
ACTIONS = ("retry", "rollback", "deploy", "abort", "order", "pause")
NEW_REF = (
    "0123456789abcdef0123456789abcdef01234567"  # the branch's newest commit, for Deploy latest
)
# Each action: its button, what the fake DeployHQ calls the request, the word once done.
_BUTTON = {
    "retry": "deployhq_retry",
    "rollback": "deployhq_rollback",
    "deploy": "deployhq_deploy_latest",
    "abort": "deployhq_abort",
    "order": "deployhq_deploy_confirm",
    "pause": "deployhq_pause_auto_deploy",
}
_KIND = {
    "retry": "retry",
    "rollback": "rollback",
    "deploy": "create",
    "abort": "abort",
    "order": "create",
    "pause": "set_auto_deployments",
}
# What DeployHQ records having done, for each action (``FakeDeployHQ.done``).
_DID = {
    "retry": "retry",
    "rollback": "rollback",
    "deploy": "deploy",
    "abort": "abort",
    "order": "deploy",
    "pause": "auto-deploy",
}
DONE = {
    "retry": "Retried by",
    "rollback": "Rolled back by",
    "deploy": "deployed by",
    "abort": "Aborted by",
    "order": " deployed `0123456`",
    "pause": "Auto-deploy paused by",
}
GOOD_ID = "11111111-2222-3333-4444-555555555555"
# Fakes are built one at a time: Debian 12's Python 3.11.2 can fail to build Flask apps in
# several threads at once (``SystemError: AST constructor recursion depth mismatch``).
_BUILDING = threading.Lock()
_KEY = SigningKey()


def good_deployment() -> dict[str, Any]:
    """The deployment a rollback goes back to: completed on the same server an hour before."""
    return delivery(
        identifier=GOOD_ID,
        status="completed",
        end_revision={"ref": "a1b2c3d4e5f6", "message": "Known good"},
        timestamps={
            "queued_at": at(-3600),
            "started_at": at(-3598),
            "completed_at": at(-3540),
            "duration": 58,
        },
    )


@dataclass
class Outcome:
    actions: int  # what DeployHQ did
    asked: int  # what DeployHQ was asked to do
    card: str  # the card's last state line
    seconds: float
    output: str = field(default="", repr=False)  # what the bot printed, for a case gone wrong


class Scenario:
    def __init__(self, action: str) -> None:
        self.action = action
        with _BUILDING:
            self.slack = FakeSlack().start()
            self.deployhq = FakeDeployHQ().start()
        self.redis = RedisServer()
        self.redis.start()
        self.folder = tempfile.mkdtemp(prefix="bot-failpoint-")
        self.servers: list[Gunicorn] = []
        self.output = ""  # what the bot's processes printed, once stopped
        self.deployhq.history[:] = [delivery(), good_deployment()]
        self.deployhq.record(delivery())
        self.deployhq.record(good_deployment())
        self.deployhq.latest["main"] = NEW_REF  # the branch has moved on since the failure

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "SLACK_BOT_TOKEN": "xoxb-test-token",
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": self.slack.url + "/api/",
            "SLACK_CHANNEL": "C0DEPLOYS",
            "DEPLOYHQ_ACCOUNT": "acme",
            "DEPLOYHQ_BASE_URL": self.deployhq.url,
            "DEPLOYHQ_USERNAME": "ops@example.com",
            "DEPLOYHQ_API_KEY": "k" * 40,
            "DEPLOYHQ_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "DEPLOYHQ_PUBLIC_KEY": _KEY.public_pem,
            "REDIS_URL": self.redis.url,
            "DEPLOYHQ_TIMEOUT": "1",
            "SLACK_TIMEOUT": "2",
            "DEPLOYHQ_DOUBT_SECONDS": "1",
            "RECONCILE_INTERVAL": "0.5",
            "BOT_FAILPOINT_DIR": self.folder,
            # The crash table is about one action: what changed (two more DeployHQ reads and a
            # card update per failure, on the same two cores) is measured by its own bench.
            "DEPLOYHQ_WHAT_CHANGED": "false",
            "DEPLOYHQ_PAUSE_AUTO_DEPLOY": "true" if self.action == "pause" else "false",
            **extra,
        }

    def start(self, **extra: str) -> Gunicorn:
        server = Gunicorn(self.env(**extra), workers=1)
        self.servers.append(server)
        return server

    def stop(self) -> None:
        self.output = "\n".join(server.stop() for server in self.servers)
        self.redis.stop()
        self.slack.stop()
        self.deployhq.stop()

    def post(self, server: Gunicorn, body: bytes) -> None:
        with suppress(requests.RequestException):  # the worker died under it: that is the point
            requests.post(
                server.url + "/slack/events", data=body, headers=slack_headers(body), timeout=5
            )

    def click(self, server: Gunicorn, value: str, user_id: str) -> None:
        action_id = _BUTTON[self.action]
        body = click_body(
            value,
            response_url=self.slack.response_url(f"{user_id}-{time.monotonic_ns()}"),
            user_id=user_id,
            action_id=action_id,
        )
        self.post(server, body)

    def value(self, server: Gunicorn) -> str:
        """What the first clicker presses: the card's button as it first offered the action,
        or (for an order) the Deploy button of the confirm ``/deployhq deploy`` showed."""
        if self.action == "order":
            url = self.slack.response_url("confirm")
            self.post(server, command_body("deploy my-project 7563d091", response_url=url))
            said = self.slack.wait_for(lambda: self.slack.responses("confirm"))[-1]
            return str(buttons(said)[_BUTTON["order"]]["value"])
        requests.post(
            f"{server.url}/deployhq/webhook?token={WEBHOOK_SECRET}", json=delivery(), timeout=10
        )
        if self.action == "abort":  # a run under way: the failure retried first
            retry = str(buttons(self._card("deployhq_retry"))["deployhq_retry"]["value"])
            self.post(
                server, click_body(retry, response_url=self.slack.response_url("r"), user_id="U0R")
            )
            self.deployhq.wait_for(self.deployhq.actions)
        return str(buttons(self.card())[_BUTTON[self.action]]["value"])

    def did(self) -> int:
        """What DeployHQ did of this action."""
        return sum(1 for kind, _ in self.deployhq.actions() if kind == _DID[self.action])

    def card(self) -> dict[str, Any]:
        """The card as it first offered the action (Roll back and Deploy latest come once the
        last good deployment and the branch's newest commit are known)."""
        return self._card(_BUTTON[self.action])

    def _card(self, action_id: str) -> dict[str, Any]:
        return self.slack.wait_for(
            lambda: next(
                (
                    m
                    for m in self.slack.api_calls("chat.postMessage")
                    + self.slack.api_calls("chat.update")
                    if "thread_ts" not in m and action_id in buttons(m)
                ),
                None,
            )
        )

    def settled(self, *, ever: bool = False) -> str:
        """The card's last state line (the channel's message, for an order) once it shows
        DeployHQ acted (or "" until then). ``ever``: any of its updates, not only the last:
        once Redis has forgotten every card, nothing orders the redraws still under way, and a
        redraw from DeployHQ's record alone no longer knows who clicked."""
        if self.action == "order":
            said = [
                m["text"]
                for m in self.slack.api_calls("chat.postMessage")
                + self.slack.api_calls("chat.update")
                if "metadata" not in m and "thread_ts" not in m
            ]
            return next((m for m in reversed(said) if DONE["order"] in m), "")
        updates = [u for u in self.slack.api_calls("chat.update") if "blocks" in u]
        if ever:  # the newest that names who acted, else the newest that shows it done
            shown = [s for u in reversed(updates) if (s := self._shows(u))]
            return next((s for s in shown if DONE[self.action] in s), shown[0] if shown else "")
        return self._shows(updates[-1]) if updates else ""

    def _shows(self, last: dict[str, Any]) -> str:
        line = state_line(last)
        header = last["blocks"][0]["text"]["text"]
        if self.action == "pause":  # the auto-deploy line, beside the failure's
            autos = [
                str(b["elements"][0].get("text", ""))
                for b in last["blocks"]
                if b["type"] == "context" and str(b.get("block_id", "")).startswith("auto.")
            ]
            return next((x for x in autos if DONE["pause"] in x), "")
        if self.action == "abort":  # the abort's line follows the retried run's
            lines = [
                str(e.get("text", ""))
                for b in last["blocks"]
                if b["type"] == "context"
                for e in b["elements"]
            ]
            return next((x for x in lines if DONE["abort"] in x), "")
        if any(word in line for word in DONE.values()) or "queued" in header:
            return line
        return ""


def run(action: str, step: str | None = None, fault: str | None = None) -> Outcome:
    """One case: ``step`` is where the first clicker's process is killed; ``fault`` what else
    goes wrong. Returns what DeployHQ did, and how the card ended."""
    scenario = Scenario(action)
    started = time.monotonic()
    try:
        failpoint = {"BOT_FAILPOINT": step} if step and step != "in-call" else {}
        first = scenario.start(**failpoint)
        second = scenario.start()
        first.wait_ready()
        second.wait_ready()
        if fault in ("clock+10m", "clock-10m"):
            scenario.deployhq.clock = timedelta(minutes=10 if fault == "clock+10m" else -10)
        kind = _KIND[action]
        if fault == "timeout":
            scenario.deployhq.script(kind, Reply(200, None, delay=2.5))  # past the 1 s deadline
        elif fault == "504":
            page = b"<html>504 Gateway Time-out</html>"
            scenario.deployhq.script(kind, Reply(504, raw=page, after_work=True))
        elif fault == "dropped":
            scenario.deployhq.script(kind, Reply(200, None, drop=True))
        elif step == "in-call":
            scenario.deployhq.script(kind, Reply(200, None, delay=3))

        value = scenario.value(second)  # what comes before the action passes no failpoint

        scenario.click(first, value, "U0FIRST")
        if step == "in-call":
            scenario.deployhq.wait_for(scenario.did)
            for worker in first.workers():
                os.kill(worker, signal.SIGKILL)
        if fault == "redis-flushed":  # once the action is done and shown, Redis forgets it all
            scenario.deployhq.wait_for(scenario.did)
            with suppress(AssertionError):
                scenario.slack.wait_for(scenario.settled, timeout=10)
            scenario.redis.flush()

        # Everyone clicks the card as it first looked, on both instances, until it settles.
        deadline = time.monotonic() + 40
        n = 0
        while not scenario.settled(ever=fault == "redis-flushed") and time.monotonic() < deadline:
            scenario.click((first, second)[n % 2], value, f"U0LATER{n}")
            n += 1
            time.sleep(0.4)
        for extra in range(4):  # and once more on each after it has settled
            scenario.click((first, second)[extra % 2], value, f"U0AFTER{extra}")
        time.sleep(0.5)
        line = scenario.settled(ever=fault == "redis-flushed") or "(never settled)"
        asked = len(
            {
                "retry": scenario.deployhq.retries,
                "rollback": scenario.deployhq.rollbacks,
                "deploy": scenario.deployhq.created,
                "abort": scenario.deployhq.aborts,
                "order": scenario.deployhq.created,
                "pause": scenario.deployhq.auto_deploy_changes,
            }[action]()
        )
        done = scenario.did()
        outcome = Outcome(done, asked, line, time.monotonic() - started)
    finally:
        scenario.stop()
    outcome.output = scenario.output
    return outcome
