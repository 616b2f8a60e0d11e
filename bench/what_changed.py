"""What changed, and what it costs: ``python -m bench.what_changed``.

The Procfile's gunicorn (one worker) with a Redis, against the fake Slack and DeployHQ, with
``DEPLOYHQ_WHAT_CHANGED`` off and then on (DeployHQ's AI features off, as is its default for an
account). For each: one failure notification, then a burst of ten failures of one branch at
once, then twenty Retry clicks. Prints the DeployHQ calls per failure, by kind, how long the
webhook took to answer and a click to be acknowledged (median and slowest), and how long the
thread's notes took to arrive after the card.
"""

from __future__ import annotations

import logging
import statistics
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.support.cards import buttons, thread
from tests.support.crash import NEW_REF, Scenario
from tests.support.gunicorn import Gunicorn
from tests.support.signed import WEBHOOK_SECRET, click_body, delivery, slack_headers

BURST = 10
CLICKS = 20


def kinds(scenario: Scenario, since: int = 0) -> Counter[str]:
    return Counter(c.path.rsplit("/", 1)[-1][:22] for c in scenario.deployhq.calls[since:])


def deliver(server: Gunicorn, identifier: str) -> float:
    started = time.monotonic()
    requests.post(
        f"{server.url}/deployhq/webhook?token={WEBHOOK_SECRET}",
        json=delivery(identifier=identifier),
        timeout=10,
    ).raise_for_status()
    return time.monotonic() - started


def notes_of(scenario: Scenario, count: int, on: bool) -> None:
    """Wait until every failure is explained: its what-changed note (on), or its card redrawn
    with Roll back (off: the look-up that finds the last good deployment)."""
    slack = scenario.slack
    if on:
        done = lambda: len([m for m in thread(slack) if "What changed" in m["text"]])  # noqa: E731
    else:
        done = lambda: len(  # noqa: E731
            [u for u in slack.api_calls("chat.update") if "deployhq_rollback" in buttons(u)]
        )
    slack.wait_for(lambda: done() >= count, 30)
    time.sleep(0.5)  # anything late would show by now


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.0f} / {max(values) * 1000:.0f} ms"


def measure(on: bool) -> list[str]:
    scenario = Scenario("retry")
    try:
        # The branch's newest commit heads its recent commits, as on DeployHQ.
        scenario.deployhq.commit_log["main"] = [
            {"ref": NEW_REF, "author": "Ann", "message": "Add search"},
            *scenario.deployhq._default_log(),
        ]
        server = scenario.start(DEPLOYHQ_WHAT_CHANGED="true" if on else "false")
        server.wait_ready()
        ids = [f"{n:08d}-0000-4000-8000-00000000000b" for n in range(BURST)]
        for identifier in ids:
            scenario.deployhq.record(delivery(identifier=identifier))
        scenario.deployhq.history[:0] = [delivery(identifier=i) for i in ids]

        posted = time.monotonic()
        one = [deliver(server, "6bd5cdc4-d652-92e8-322f-287929091f03")]
        notes_of(scenario, 1, on)
        first_notes = time.monotonic() - posted
        single = kinds(scenario)
        before = len(scenario.deployhq.calls)
        with ThreadPoolExecutor(max_workers=BURST) as pool:
            burst = list(pool.map(lambda i: deliver(server, i), ids))
        notes_of(scenario, 1 + BURST, on)
        in_burst = kinds(scenario, before)

        card = scenario.card()
        value = str(buttons(card)["deployhq_retry"]["value"])
        acks = []
        for n in range(CLICKS):
            body = click_body(value, response_url=scenario.slack.response_url(f"k{n}"))
            started = time.monotonic()
            requests.post(
                server.url + "/slack/events", data=body, headers=slack_headers(body), timeout=10
            )
            acks.append(time.monotonic() - started)
        mode = "on" if on else "off"
        listed = ", ".join(f"{k} {v}" for k, v in sorted(single.items()))
        return [
            f"| {mode} | one failure | {sum(single.values())} | {listed} |",
            f"| {mode} | {BURST} failures of main at once | "
            f"{sum(in_burst.values()) / BURST:.1f} per failure | recent_commits "
            f"{in_burst['recent_commits']}, ai_deployment_overview "
            f"{in_burst['ai_deployment_overview']} in all |",
            f"| {mode} | webhook answered (median / slowest) | {ms(one + burst)} | |",
            f"| {mode} | Retry click acknowledged | {ms(acks)} | {CLICKS} clicks |",
            f"| {mode} | webhook sent → explained (one failure) | {first_notes:.2f} s | |",
        ]
    finally:
        scenario.stop()


def main() -> int:
    logging.disable(logging.CRITICAL)
    print("| what changed | case | DeployHQ calls / time | detail |")
    print("|---|---|---|---|")
    for on in (False, True):
        for line in measure(on):
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
