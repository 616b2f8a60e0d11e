"""Fake Slack and DeployHQ, each in a process of its own, as the real ones are remote services:
their work must share neither the load generator's interpreter nor each other's. Prints their
URLs as one JSON line."""

from __future__ import annotations

import json
import logging
import multiprocessing
import time
from multiprocessing.connection import Connection

from tests.support.fakes import FakeDeployHQ, FakeSlack, Reply


def deployhq(answer: Connection) -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    fake = FakeDeployHQ().start()
    fake.always("retry", Reply(200, None, delay=0.05))  # a DeployHQ that takes a moment
    answer.send(fake.url)
    while True:
        time.sleep(3600)


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    ours, theirs = multiprocessing.Pipe()
    multiprocessing.Process(target=deployhq, args=(theirs,), daemon=True).start()
    slack = FakeSlack().start()
    print(json.dumps({"slack": slack.url, "deployhq": ours.recv()}), flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
