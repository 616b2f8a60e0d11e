"""Two actions on the same servers, pressed at the same moment: ``python -m bench.races``.

Two instances of the bot (the Procfile's gunicorn) share a Redis. On one, a failure card's
Deploy latest (or Roll back); on the other, the confirm of ``/deployhq deploy`` to the same
server. Each preflight is made slow (every read of DeployHQ's deployments list takes 0.4 s), so
both have read "nothing under way" before either is sent, unless the servers they change are
held. Prints, for each race and round, what DeployHQ did; every round must do one thing.
"""

from __future__ import annotations

import logging
import sys
import threading
import time

import requests

from tests.support.cards import buttons
from tests.support.crash import Scenario
from tests.support.fakes import Reply
from tests.support.gunicorn import Gunicorn
from tests.support.signed import WEBHOOK_SECRET, click_body, command_body, delivery

ROUNDS = 5
RACES = {"deploy latest + /deployhq deploy": "deploy", "roll back + /deployhq deploy": "rollback"}


def one_round(action: str) -> list[str]:
    """What DeployHQ did when the card's button and the command's confirm met."""
    scenario = Scenario(action)
    try:
        card_side, command_side = scenario.start(), scenario.start()
        card_side.wait_ready()
        command_side.wait_ready()
        url = f"{card_side.url}/deployhq/webhook?token={WEBHOOK_SECRET}"
        requests.post(url, json=delivery(), timeout=10)
        card_id = "deployhq_rollback" if action == "rollback" else "deployhq_deploy_latest"
        button = str(buttons(scenario.card())[card_id]["value"])
        scenario.post(
            command_side,
            command_body(
                "deploy my-project 7563d091", response_url=scenario.slack.response_url("c")
            ),
        )
        said = scenario.slack.wait_for(lambda: scenario.slack.responses("c"))[-1]
        token = str(buttons(said)["deployhq_deploy_confirm"]["value"])
        scenario.deployhq.always("index", Reply(200, None, delay=0.4))
        start = threading.Barrier(2)

        def press(server: Gunicorn, value: str, action_id: str) -> None:
            start.wait()
            url = scenario.slack.response_url("p")
            scenario.post(server, click_body(value, response_url=url, action_id=action_id))

        presses = [
            threading.Thread(target=press, args=(card_side, button, card_id)),
            threading.Thread(target=press, args=(command_side, token, "deployhq_deploy_confirm")),
        ]
        for thread in presses:
            thread.start()
        for thread in presses:
            thread.join()
        time.sleep(2.5)  # both pipelines have run, with their slow reads
        return [kind for kind, _ in scenario.deployhq.actions()]
    finally:
        scenario.stop()


def main() -> int:
    logging.disable(logging.CRITICAL)
    wrong = 0
    for name, action in RACES.items():
        for n in range(1, ROUNDS + 1):
            did = one_round(action)
            wrong += len(did) != 1
            print(f"{name:34} round {n}: DeployHQ did {len(did)}: {', '.join(did)}", flush=True)
    print(f"rounds with other than one action: {wrong}")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
