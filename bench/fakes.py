"""Fake Slack and DeployHQ in a process of their own, as the real ones are remote: their work
must not share the load generator's interpreter. Prints their URLs as one JSON line."""

from __future__ import annotations

import json
import logging
import time

from tests.support.fakes import FakeDeployHQ, FakeSlack, Reply


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    slack, deployhq = FakeSlack().start(), FakeDeployHQ().start()
    deployhq.always("retry", Reply(200, None, delay=0.05))  # a DeployHQ that takes a moment
    print(json.dumps({"slack": slack.url, "deployhq": deployhq.url}), flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
