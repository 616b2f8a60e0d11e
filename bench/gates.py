"""What the gates cost, and how soon doubt ends: ``python -m bench.gates``.

One instance of the bot (the Procfile's gunicorn) on a private Redis, fake Slack and DeployHQ.

1. **DeployHQ calls per click.** A card's Retry, pressed once, counted from the press until the
   card shows the outcome: with approval off; with the failure's server named in
   ``DEPLOYHQ_APPROVAL_SERVERS`` (decided by its name, no list read); with a server group named
   (DeployHQ's servers and groups read for the decision); and then that request's Approve.
2. **Time to Retry after a 500.** DeployHQ answers the retry 500 and its record never changes:
   seconds from the press until the card offers Retry again, for several doubt windows, with
   the reconciler's pass left at its default (60 s).
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter

from tests.support.cards import buttons, state_line
from tests.support.crash import Scenario
from tests.support.fakes import Reply
from tests.support.gunicorn import Gunicorn
from tests.support.signed import click_body

APPROVERS = {"DEPLOYHQ_APPROVERS_USERS": "U0BOB"}
ROUNDS = 3


def _last_line(scenario: Scenario) -> tuple[str, dict]:
    cards = [u for u in scenario.slack.api_calls("chat.update") if "blocks" in u]
    return (state_line(cards[-1]), cards[-1]) if cards else ("", {})


def _calls_since(scenario: Scenario, before: int) -> Counter[str]:
    with scenario.deployhq._lock:
        calls = scenario.deployhq.calls[before:]
    return Counter(c.path.split("?")[0].rsplit("/", 1)[-1] for c in calls)


def _press(scenario: Scenario, server: Gunicorn, action_id: str, value: str, user: str) -> None:
    url = scenario.slack.response_url(f"{user}-{time.monotonic_ns()}")
    scenario.post(server, click_body(value, response_url=url, user_id=user, action_id=action_id))


def calls_per_click(extra: dict[str, str], group: bool = False) -> tuple[int, int, str]:
    """DeployHQ calls for one Retry press (and for its Approve, when it waits), and what."""
    scenario = Scenario("retry")
    try:
        if group:  # the failure's server belongs to the group named "prod"
            for record in [*scenario.deployhq.history, *scenario.deployhq.deployments.values()]:
                for server in record.get("servers") or []:
                    server["server_group_identifier"] = "g-prod"
            scenario.deployhq.group_names["g-prod"] = "prod"
        server = scenario.start(RECONCILE_INTERVAL="3600", **extra)  # no pass in the count
        server.wait_ready()
        value = scenario.value(server)
        time.sleep(1.5)  # the card's own lookups are over
        before = len(scenario.deployhq.calls)
        scenario.click(server, value, "U0ANN")

        def shown() -> str:
            line, card = _last_line(scenario)
            if "deployhq_approve" in buttons(card):
                return str(buttons(card)["deployhq_approve"]["value"])
            return "done" if "Retried by" in line else ""

        request = scenario.slack.wait_for(shown, timeout=15)
        time.sleep(0.5)
        asked = _calls_since(scenario, before)
        approved: Counter[str] = Counter()
        if request != "done":
            before = len(scenario.deployhq.calls)
            _press(scenario, server, "deployhq_approve", request, "U0BOB")
            scenario.slack.wait_for(lambda: "Retried by" in _last_line(scenario)[0], timeout=15)
            time.sleep(0.5)
            approved = _calls_since(scenario, before)
        what = ", ".join(f"{k} {v}" for k, v in sorted((asked + approved).items()))
        return sum(asked.values()), sum(approved.values()), what
    finally:
        scenario.stop()


def seconds_to_retry(doubt: int) -> float:
    scenario = Scenario("retry")
    try:
        server = scenario.start(DEPLOYHQ_DOUBT_SECONDS=str(doubt), RECONCILE_INTERVAL="60")
        server.wait_ready()
        value = scenario.value(server)
        scenario.deployhq.script("retry", Reply(500, {"status": 500, "error": "Internal error"}))
        began = time.monotonic()
        scenario.click(server, value, "U0ANN")

        def offered() -> bool:
            line, card = _last_line(scenario)
            return "never queued" in line and "deployhq_retry" in buttons(card)

        scenario.slack.wait_for(offered, timeout=doubt + 90)
        return time.monotonic() - began
    finally:
        scenario.stop()


def main() -> int:
    logging.disable(logging.CRITICAL)
    print("| Retry pressed once | DeployHQ calls to the request | to Approve's outcome | which |")
    print("|---|---|---|---|")
    cases = [
        ("approval off", {}, False),
        ("server named", {"DEPLOYHQ_APPROVAL_SERVERS": "production server", **APPROVERS}, False),
        ("group named", {"DEPLOYHQ_APPROVAL_SERVERS": "prod", **APPROVERS}, True),
    ]
    for name, extra, group in cases:
        asked, approved, what = calls_per_click(extra, group)
        print(f"| {name} | {asked} | {approved or '-'} | {what} |")
    print()
    print("| DEPLOYHQ_DOUBT_SECONDS | Retry offered again after (3 runs) | bound (window + 10 s) |")
    print("|---|---|---|")
    ok = True
    for doubt in (5, 15, 30):
        took = [seconds_to_retry(doubt) for _ in range(ROUNDS)]
        ok = ok and max(took) < doubt + 10
        print(f"| {doubt} | {', '.join(f'{t:.1f} s' for t in took)} | {doubt + 10} s |")
    print("doubt ended on time in every run" if ok else "A RUN WENT PAST ITS BOUND")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
