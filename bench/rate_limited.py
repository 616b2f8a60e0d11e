"""Click acks while Slack rate-limits every post: ``python -m bench.rate_limited``.

Starts the bot as the Procfile does (gunicorn, 2 workers, a private redis-server) against the
fake Slack and DeployHQ in a process of their own. Posts a few cards, then makes the fake Slack
answer 429 with ``Retry-After: 5`` to every ``chat.postMessage`` for 10 s, sends a burst of
failure notifications (which fills the bot's Slack pool with posts waiting out Retry-After), and
clicks Retry throughout those 10 s. Prints the click acks' latency during the limit, the
webhooks' answer latency, and how long until every failure was in Slack.
"""

from __future__ import annotations

import json
import platform
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

from bench.run import Client, Fakes, bot_env, click, summary
from tests.support.gunicorn import Gunicorn
from tests.support.redis_server import RedisServer
from tests.support.signed import WEBHOOK_SECRET, delivery

LIMIT_SECONDS, RETRY_AFTER = 10.0, 5
BURST = 40  # failure notifications sent as the limit starts
CLICKERS, CLICK_PAUSE = 4, 0.05


def rate_limit(fakes: Fakes) -> None:
    asked = json.dumps(
        {"method": "chat.postMessage", "seconds": LIMIT_SECONDS, "retry_after": RETRY_AFTER}
    ).encode()
    request = urllib.request.Request(  # noqa: S310 - the fake on 127.0.0.1
        fakes.slack + "/_rate_limit", data=asked, headers={"Content-Type": "application/json"}
    )
    urllib.request.urlopen(request, timeout=10).read()  # noqa: S310


def main() -> None:
    redis = RedisServer()
    redis.start()
    fakes = Fakes()
    env = bot_env(fakes, redis.url)
    bot = Gunicorn(env, workers=2)
    try:
        bot.wait_ready()
        hook = f"/deployhq/webhook?token={WEBHOOK_SECRET}"
        headers = {"Content-Type": "application/json"}
        rate_limit(fakes)
        limited_from = time.monotonic()

        def notify(_: int) -> float:
            body = json.dumps(
                delivery(identifier=str(uuid.uuid4()), project={"permalink": "bench"})
            )
            status, seconds = Client(bot.url).post(hook, body, headers)
            assert status == 200, status
            return seconds

        def clicks(n: int) -> list[float]:
            client, took = Client(bot.url), []
            while time.monotonic() - limited_from < LIMIT_SECONDS:
                body, signed = click(fakes, str(uuid.uuid4()), f"U{n:02d}")
                status, seconds = client.post("/slack/events", body, signed)
                assert status == 200, status
                took.append(seconds)
                time.sleep(CLICK_PAUSE)
            return took

        with ThreadPoolExecutor(BURST + CLICKERS) as pool:
            hooks = pool.map(notify, range(BURST))
            acks = pool.map(clicks, range(CLICKERS))
            hook_latencies = list(hooks)
            ack_latencies = [s for one in acks for s in one]
        # Every failure in Slack: each post is refused with 429, then taken once it lifts.
        deadline = time.monotonic() + 120
        while not all_posted(fakes, BURST) and time.monotonic() < deadline:
            time.sleep(0.2)
        all_in = time.monotonic() - limited_from
    finally:
        bot.stop()
        fakes.stop()
        redis.stop()

    p50, p99, worst = summary(ack_latencies)
    h50, h99, hworst = summary(hook_latencies)
    print(
        f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}"
    )
    print(f"Slack answered 429 (Retry-After {RETRY_AFTER}) to every post for {LIMIT_SECONDS:.0f} s")
    print(
        f"click acks during the limit: {len(ack_latencies)} clicks, "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {worst:.1f} ms"
    )
    print(
        f"failure webhooks sent as it began: {BURST}, answered p50 {h50:.1f} ms, "
        f"p99 {h99:.1f} ms, max {hworst:.1f} ms"
    )
    print(f"all {BURST} failures in Slack {all_in:.1f} s after the limit began")


def all_posted(fakes: Fakes, expected: int) -> bool:
    """Whether Slack has taken ``expected`` cards (thread replies aside)."""
    with urllib.request.urlopen(fakes.slack + "/_taken", timeout=10) as response:  # noqa: S310
        return int(json.load(response)) >= expected


if __name__ == "__main__":
    main()
