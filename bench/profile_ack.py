"""Profile acknowledging a Retry click, in-process: where does a click's answer spend its time?

    python -m bench.profile_ack

Builds the real app against the fake Slack and DeployHQ and a private redis-server, sends
signed clicks through Flask's test client (each a real retry, whose work runs alongside), and
prints the time per click and cProfile's top functions by their own time.
"""

from __future__ import annotations

import cProfile
import logging
import pstats
import time
import uuid

from bot.config import Settings
from bot.web.factory import create_app
from bot.words.buttons import ActionTarget
from tests.support.fakes import FakeDeployHQ, FakeSlack
from tests.support.redis_server import RedisServer
from tests.support.signed import SIGNING_SECRET, click_body, slack_headers

CLICKS = 400


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    redis_server = RedisServer()
    redis_server.start()
    slack, deployhq = FakeSlack().start(), FakeDeployHQ().start()
    try:
        settings = Settings.from_env(
            {
                "SLACK_BOT_TOKEN": "xoxb-profile",
                "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                "SLACK_API_URL": slack.url + "/api/",
                "SLACK_CHANNEL": "C0PROFILE",
                "DEPLOYHQ_ACCOUNT": "profile",
                "DEPLOYHQ_BASE_URL": deployhq.url,
                "DEPLOYHQ_USERNAME": "p@example.com",
                "DEPLOYHQ_API_KEY": "p" * 40,
                "REDIS_URL": redis_server.url,
                "LOG_LEVEL": "WARNING",
            }
        )
        client = create_app(settings).test_client()
        clicks = []
        for _ in range(CLICKS):
            deployment = str(uuid.uuid4())
            value = ActionTarget("profile", deployment, f"{deployment}:1").encode()
            body = click_body(value, response_url=slack.response_url())
            clicks.append((body, slack_headers(body)))
        for body, headers in clicks[:20]:  # warm up
            client.post("/slack/events", data=body, headers=headers)
        time.sleep(2)

        profile = cProfile.Profile()
        started = time.perf_counter()
        profile.enable()
        for body, headers in clicks[20:]:
            assert client.post("/slack/events", data=body, headers=headers).status_code == 200
        profile.disable()
        per_click = (time.perf_counter() - started) / (CLICKS - 20) * 1000
        print(f"{per_click:.2f} ms per acknowledged click (profiled, retries running alongside)\n")
        pstats.Stats(profile).sort_stats("tottime").print_stats(15)
        time.sleep(2)
    finally:
        slack.stop()
        deployhq.stop()
        redis_server.stop()


if __name__ == "__main__":
    main()
