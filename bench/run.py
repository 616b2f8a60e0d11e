"""Benchmark: how fast the bot answers Slack, how much it handles, and that it retries once.

    python -m bench.run

Starts the bot exactly as the Procfile does (gunicorn, WEB_CONCURRENCY=2) against fake Slack and
DeployHQ servers and a private redis-server, and prints a table. Not a test: it asserts nothing.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import platform
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bot.routing import RetryTarget
from tests.support.fakes import FakeDeployHQ, FakeSlack, Reply
from tests.support.gunicorn import Gunicorn
from tests.support.redis_server import RedisServer
from tests.support.signed import SIGNING_SECRET, WEBHOOK_SECRET, click_body, delivery, slack_headers

BURSTS = {1: 100, 10: 50, 50: 30}  # concurrent clicks: rounds
PAUSE = 0.1  # between rounds, so each burst meets a bot that has finished the last one's work
WEBHOOKS, WEBHOOK_SENDERS = 300, 10
STORMS, STORM_SIZE = 100, 30


class Client:
    """One keep-alive connection, as a Slack client would hold; requests are signed up front."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=30)

    def post(self, path: str, body: str, headers: dict[str, str]) -> tuple[int, float]:
        started = time.perf_counter()
        self.conn.request("POST", path, body=body.encode(), headers=headers)
        response = self.conn.getresponse()
        response.read()
        return response.status, time.perf_counter() - started


def click(slack: FakeSlack, deployment: str, user: str) -> tuple[str, dict[str, str]]:
    value = RetryTarget("bench", deployment, f"{deployment}:1").encode()
    body = click_body(value, response_url=slack.response_url(user), user_id=user)
    return body, slack_headers(body)


def bursts(url: str, slack: FakeSlack, size: int, rounds: int) -> list[float]:
    """Latency of each click, ``size`` at a time, every click a real retry of its own failure."""
    clients = [Client(url) for _ in range(size)]
    latencies: list[float] = []
    lock = threading.Lock()
    for _ in range(rounds):
        requests = [click(slack, str(uuid.uuid4()), f"U{i:04d}") for i in range(size)]
        start = threading.Barrier(size)

        def one(i: int, requests: list[Any] = requests, start: Any = start) -> None:
            body, headers = requests[i]
            start.wait()
            status, seconds = clients[i].post("/slack/events", body, headers)
            assert status == 200, status
            with lock:
                latencies.append(seconds)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(size)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        time.sleep(PAUSE)
    return latencies


def summary(latencies: list[float]) -> tuple[float, float, float]:
    ms = sorted(x * 1000 for x in latencies)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    return statistics.median(ms), p99, ms[-1]


def webhooks_per_second(url: str, slack: FakeSlack) -> float:
    bodies = [json.dumps(delivery(identifier=str(uuid.uuid4()))) for _ in range(WEBHOOKS)]
    headers = {"Content-Type": "application/json"}
    path = f"/deployhq/webhook?token={WEBHOOK_SECRET}"
    before = len(slack.api_calls("chat.postMessage"))
    clients = [Client(url) for _ in range(WEBHOOK_SENDERS)]
    started = time.perf_counter()

    def send(i: int) -> None:
        for body in bodies[i::WEBHOOK_SENDERS]:
            status, _ = clients[i].post(path, body, headers)
            assert status == 200, status

    with ThreadPoolExecutor(WEBHOOK_SENDERS) as pool:
        list(pool.map(send, range(WEBHOOK_SENDERS)))
    slack.wait_for(lambda: len(slack.api_calls("chat.postMessage")) - before >= WEBHOOKS, 120)
    return WEBHOOKS / (time.perf_counter() - started)


def storms(urls: list[str], slack: FakeSlack, deployhq: FakeDeployHQ) -> Counter[str]:
    """Each storm: STORM_SIZE concurrent clicks on one failure, alternating between instances."""
    clients = [Client(urls[i % len(urls)]) for i in range(STORM_SIZE)]
    deployments = [str(uuid.uuid4()) for _ in range(STORMS)]
    answered_before = len(slack.responses())
    with ThreadPoolExecutor(STORM_SIZE) as pool:
        for deployment in deployments:
            requests = [click(slack, deployment, f"S{i:04d}") for i in range(STORM_SIZE)]
            start = threading.Barrier(STORM_SIZE)

            def one(i: int, requests: list[Any] = requests, start: Any = start) -> int:
                body, headers = requests[i]
                start.wait()
                return clients[i].post("/slack/events", body, headers)[0]

            assert set(pool.map(one, range(STORM_SIZE))) == {200}
    # Every clicker hears back: the winner with the outcome, the others with who won.
    expected = answered_before + STORMS * STORM_SIZE
    slack.wait_for(lambda: len(slack.responses()) >= expected, 180)
    wanted = set(deployments)
    return Counter(
        path.split("/deployments/")[1].split("/")[0]
        for path in (c.path for c in deployhq.retries())
        if path.split("/deployments/")[1].split("/")[0] in wanted
    )


def machine() -> str:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            model = next(line.split(":", 1)[1].strip() for line in info if "model name" in line)
    except (OSError, StopIteration):
        pass
    return (
        f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the fakes' request log
    redis_server = RedisServer()
    redis_server.start()
    slack, deployhq = FakeSlack().start(), FakeDeployHQ().start()
    env = {
        "SLACK_BOT_TOKEN": "xoxb-bench",
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.url + "/api/",
        "SLACK_CHANNEL": "C0BENCH",
        "DEPLOYHQ_ACCOUNT": "bench",
        "DEPLOYHQ_BASE_URL": deployhq.url,
        "DEPLOYHQ_USERNAME": "bench@example.com",
        "DEPLOYHQ_API_KEY": "b" * 40,
        "DEPLOYHQ_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "REDIS_URL": redis_server.url,
        "LOG_LEVEL": "WARNING",
    }
    servers = {
        "bot": Gunicorn(env, workers=2),
        "bare": Gunicorn(env, workers=2, app="bench.bare:app"),
        "bot-2": Gunicorn(env, workers=2),
    }
    try:
        for server in servers.values():
            server.wait_ready()
        for name in ("bot", "bare"):  # warm up: first requests pay for imports and auth.test
            bursts(servers[name].url, slack, 10, 3)

        print(f"Machine: {machine()}")
        print(
            "Bot and baseline: the Procfile's gunicorn command, WEB_CONCURRENCY=2, --threads 10\n"
        )
        print("Click → ack latency (ms), signed block_actions; each click a real retry")
        print(
            f"{'burst':>5} {'clicks':>6} | {'bot p50':>7} {'p99':>6} {'max':>6} | "
            f"{'bare p50':>8} {'p99':>6} {'max':>6} | {'p99 ratio':>9}"
        )
        for size, rounds in BURSTS.items():
            bot = summary(bursts(servers["bot"].url, slack, size, rounds))
            bare = summary(bursts(servers["bare"].url, slack, size, rounds))
            print(
                f"{size:>5} {size * rounds:>6} | {bot[0]:>7.1f} {bot[1]:>6.1f} {bot[2]:>6.1f} | "
                f"{bare[0]:>8.1f} {bare[1]:>6.1f} {bare[2]:>6.1f} | {bot[1] / bare[1]:>8.2f}×"
            )

        rate = webhooks_per_second(servers["bot"].url, slack)
        print(
            f"\nFailure webhooks until each is posted to Slack: {WEBHOOKS} from "
            f"{WEBHOOK_SENDERS} senders, {rate:.0f}/s"
        )

        deployhq.always("retry", Reply(200, None, delay=0.05))  # a DeployHQ that takes a moment
        counts = storms([servers["bot"].url, servers["bot-2"].url], slack, deployhq)
        made = sum(counts.values())
        duplicated = sum(1 for c in counts.values() if c > 1)
        missing = STORMS - len(counts)
        print(
            f"Exactly-once: {STORMS} storms × {STORM_SIZE} concurrent clicks over 2 instances "
            f"(4 worker processes) → {made} retries made; {duplicated} storms retried twice, "
            f"{missing} not retried"
        )
    finally:
        for server in servers.values():
            server.stop()
        slack.stop()
        deployhq.stop()
        redis_server.stop()


if __name__ == "__main__":
    sys.exit(main())
