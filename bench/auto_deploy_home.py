"""Pause auto-deploy and the App Home under load: ``python -m bench.auto_deploy_home``.

Two instances of the bot (the Procfile's gunicorn) share a Redis. Each round of the storm: a
failure's card offers Pause auto-deploy; 20 people press it at once, split over both
instances. Each round of the Home: 20 people open the Home tab at once, split over both, with
two projects served (``DEPLOYHQ_PROJECTS``). Prints, per round, what DeployHQ did and was
asked, and how long it took; every storm must pause once, and every Home round read each
project's insights and automatic deployments at most once.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time

import requests

from tests.support.crash import Scenario
from tests.support.gunicorn import Gunicorn
from tests.support.signed import click_body, slack_headers

ROUNDS = 5
PEOPLE = 20
PAUSE = "deployhq_pause_auto_deploy"
PROJECTS = {"DEPLOYHQ_PROJECTS": "my-project,other-project"}


def at_once(count: int, work: object) -> float:
    """Run ``work(n)`` for n in range(count), all released together; seconds until all return."""
    start = threading.Barrier(count)

    def run(n: int) -> None:
        start.wait()
        work(n)  # type: ignore[operator]

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.monotonic() - began


def storm() -> tuple[int, int, int, float]:
    """(DeployHQ's changes, POSTs, GETs of the list, seconds from the presses to the card)."""
    scenario = Scenario("pause")
    try:
        servers = (scenario.start(), scenario.start())
        for server in servers:
            server.wait_ready()
        value = scenario.value(servers[1])
        gets_before = _gets(scenario, "auto_deployments")
        began = time.monotonic()

        def press(n: int) -> None:
            url = scenario.slack.response_url(f"p{n}")
            body = click_body(value, response_url=url, user_id=f"U0P{n:02d}", action_id=PAUSE)
            scenario.post(servers[n % 2], body)

        at_once(PEOPLE, press)
        scenario.slack.wait_for(scenario.settled, timeout=15)
        took = time.monotonic() - began
        time.sleep(1.0)  # anything late would show by now
        posts = len(scenario.deployhq.auto_deploy_changes())
        return scenario.did(), posts, _gets(scenario, "auto_deployments") - gets_before, took
    finally:
        scenario.stop()


def home() -> tuple[int, int, int, int, float]:
    """(views published, insights reads, list reads, permalinks asked, seconds to publish all)."""
    scenario = Scenario("pause")
    try:
        servers = (scenario.start(**PROJECTS), scenario.start(**PROJECTS))
        for server in servers:
            server.wait_ready()
        scenario.value(servers[1])  # one open failure, with its card posted
        time.sleep(1.0)
        lists_before = _gets(scenario, "auto_deployments")
        began = time.monotonic()
        at_once(PEOPLE, lambda n: _open_home(servers[n % 2], f"U0V{n:02d}"))
        scenario.slack.wait_for(
            lambda: len(scenario.slack.api_calls("views.publish")) >= PEOPLE, timeout=20
        )
        took = time.monotonic() - began
        time.sleep(1.0)
        return (
            len(scenario.slack.api_calls("views.publish")),
            _gets(scenario, "insights"),
            _gets(scenario, "auto_deployments") - lists_before,
            len(scenario.slack.api_calls("chat.getPermalink")),
            took,
        )
    finally:
        scenario.stop()


def _open_home(server: Gunicorn, user: str) -> None:
    event = {"type": "app_home_opened", "user": user, "tab": "home", "channel": "D0HOME"}
    body = json.dumps(
        {
            "type": "event_callback",
            "team_id": "T1",
            "api_app_id": "A1",
            "event": event,
            "event_id": f"Ev{time.time_ns()}",
            "event_time": int(time.time()),
        }
    )
    requests.post(
        server.url + "/slack/events",
        data=body,
        headers=slack_headers(body, content_type="application/json"),
        timeout=10,
    )


def _gets(scenario: Scenario, what: str) -> int:
    return sum(
        1 for c in scenario.deployhq.calls if c.method == "GET" and c.path.endswith("/" + what)
    )


def main() -> int:
    logging.disable(logging.CRITICAL)
    ok = True
    print("| round | presses | DeployHQ paused | POSTs | list reads | card says paused in |")
    print("|---|---|---|---|---|---|")
    for n in range(1, ROUNDS + 1):
        did, posts, reads, took = storm()
        print(f"| {n} | {PEOPLE} × Pause, 2 instances | {did} | {posts} | {reads} | {took:.2f} s |")
        ok = ok and did == 1 and posts == 1
    print()
    print(
        "| round | Home opens | views | insights reads | list reads | permalinks | published in |"
    )
    print("|---|---|---|---|---|---|---|")
    for n in range(1, ROUNDS + 1):
        views, insights, lists, links, took = home()
        where = f"{PEOPLE}, 2 instances, 2 projects"
        print(f"| {n} | {where} | {views} | {insights} | {lists} | {links} | {took:.2f} s |")
        ok = ok and views == PEOPLE and insights <= 2 and lists <= 2
    print(
        "every storm paused once; every Home round read each project once"
        if ok
        else "A ROUND WENT WRONG"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
