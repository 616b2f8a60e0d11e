"""Four eyes under load: ``python -m bench.approvals``.

Two instances of the bot (the Procfile's gunicorn) share a Redis, with approval on for the
failure's server. Each round: Ann asks for a Retry; then either 20 approvers' presses arrive at
once, split over both instances (the storm), or one Approve and one Deny meet (the race).
Prints, per round, what DeployHQ did, how the presses ended, and how long the storm took from
the first press to the retry; every storm round must retry once, every race round do exactly
one of retry or deny.
"""

from __future__ import annotations

import logging
import sys
import threading
import time

from tests.support.cards import buttons, state_line
from tests.support.crash import Scenario
from tests.support.gunicorn import Gunicorn
from tests.support.signed import click_body

ROUNDS = 5
PRESSES = 20
FOUR_EYES = {
    "DEPLOYHQ_APPROVAL_SERVERS": "production server",
    "DEPLOYHQ_APPROVERS_USERS": ",".join(f"U0APPROVER{n}" for n in range(PRESSES)),
}


def asked(scenario: Scenario, servers: tuple[Gunicorn, Gunicorn]) -> str:
    """Ann's Retry, and the id its request's buttons carry."""
    value = scenario.value(servers[1])
    scenario.click(servers[1], value, "U0ANN")

    def request() -> str:
        for update in reversed(scenario.slack.api_calls("chat.update")):
            found = buttons(update).get("deployhq_approve", {}).get("value")
            if found:
                return str(found)
        return ""

    return str(scenario.slack.wait_for(request, timeout=15))


def one_round(race: bool) -> tuple[int, str, float]:
    scenario = Scenario("retry")
    try:
        servers = (scenario.start(**FOUR_EYES), scenario.start(**FOUR_EYES))
        for server in servers:
            server.wait_ready()
        request = asked(scenario, servers)
        presses = (
            [("deployhq_approve", "U0APPROVER0"), ("deployhq_deny", "U0APPROVER1")]
            if race
            else [("deployhq_approve", f"U0APPROVER{n}") for n in range(PRESSES)]
        )
        start = threading.Barrier(len(presses))

        def press(n: int, action_id: str, user: str) -> None:
            start.wait()
            url = scenario.slack.response_url(f"p{n}")
            body = click_body(request, response_url=url, user_id=user, action_id=action_id)
            scenario.post(servers[n % 2], body)

        began = time.monotonic()
        threads = [
            threading.Thread(target=press, args=(n, a, u)) for n, (a, u) in enumerate(presses)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        scenario.slack.wait_for(lambda: len(scenario.slack.responses()) >= len(presses) - 1)
        took = time.monotonic() - began
        time.sleep(1.0)  # anything late would show by now
        cards = [u for u in scenario.slack.api_calls("chat.update") if "blocks" in u]
        return scenario.did(), state_line(cards[-1])[:70], took
    finally:
        scenario.stop()


def main() -> int:
    logging.disable(logging.CRITICAL)
    ok = True
    print("| round | presses | DeployHQ retried | the card ends on | presses answered in |")
    print("|---|---|---|---|---|")
    for race in (False, True):
        for n in range(1, ROUNDS + 1):
            did, line, took = one_round(race)
            what = "Approve + Deny" if race else f"{PRESSES} × Approve, 2 instances"
            print(f"| {n} | {what} | {did} | {line} | {took:.2f} s |")
            good = (did == 1 and "approved by" in line) or (race and did == 0 and "denied" in line)
            ok = ok and good
    print("every round acted at most once, as the card says" if ok else "A ROUND WENT WRONG")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
