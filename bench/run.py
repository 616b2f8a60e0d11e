"""Benchmark: how fast the bot answers Slack, how much it handles, and that it retries once,
each side by side with its floor measured in the same run.

    python -m bench.run [--clicks-only | --webhooks-only]

Starts the bot exactly as the Procfile does (gunicorn, WEB_CONCURRENCY=2) against fake Slack and
DeployHQ servers and a private redis-server, and the floors (``bench/bare.py``) under the same
gunicorn: a bare endpoint for clicks, and a webhook that reads the deployment back from DeployHQ
and posts it to Slack inside the request. Prints a table with the aims. Not a test: it asserts
nothing.
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bot.deployhq.deployment import Deployment
from bot.words.buttons import ActionTarget
from tests.support.fakes import deployment_json
from tests.support.gunicorn import Gunicorn
from tests.support.redis_server import RedisServer
from tests.support.signed import SIGNING_SECRET, WEBHOOK_SECRET, click_body, delivery, slack_headers

BURSTS = {1: 100, 10: 50, 50: 30}  # concurrent clicks: rounds
WEBHOOKS, WEBHOOK_SENDERS = 200, 8
WEBHOOK_ROUNDS = 2  # the bot and its floor, alternately
AIM_WEBHOOKS = 0.9  # the bot's rate, at least this much of its floor's
AIM_ACKS = 1.3  # the bot's p99 ack, at most this much of the bare endpoint's
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


class Fakes:
    """The fake Slack and DeployHQ, running in ``bench.fakes``; read through their ``/_calls``."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.fakes"],
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its two processes are stopped together
        )
        assert self.process.stdout is not None
        urls = json.loads(self.process.stdout.readline())
        self.slack, self.deployhq = urls["slack"], urls["deployhq"]

    def paths(self, url: str) -> list[str]:
        with urllib.request.urlopen(url + "/_calls", timeout=30) as response:  # noqa: S310
            return [path for _, path in json.load(response)]

    def count(self, url: str, prefix: str) -> int:
        return sum(1 for path in self.paths(url) if path.startswith(prefix))

    def wait_count(self, url: str, prefix: str, at_least: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.count(url, prefix) < at_least:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {self.count(url, prefix)} of {at_least} {prefix} calls")
            time.sleep(0.2)

    def settled(self, idle: float = 0.15, timeout: float = 30.0) -> None:
        """Wait until neither fake has been called for ``idle`` seconds: the bot has finished
        the work that the last burst started."""
        deadline = time.monotonic() + timeout
        last, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            seen = len(self.paths(self.slack)) + len(self.paths(self.deployhq))
            if seen != last:
                last, since = seen, time.monotonic()
            elif time.monotonic() - since >= idle:
                return
            time.sleep(0.03)

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def click(fakes: Fakes, deployment: str, user: str) -> tuple[str, dict[str, str]]:
    # The failure as the fake DeployHQ records it, so the bot's check of DeployHQ's record
    # finds the failure the button names.
    value = ActionTarget.of(Deployment.from_api(deployment_json(deployment, "bench"))).encode()
    body = click_body(value, response_url=f"{fakes.slack}/respond/{user}", user_id=user)
    return body, slack_headers(body)


def bursts(url: str, fakes: Fakes, size: int, rounds: int, *, one_card: bool) -> list[float]:
    """Latency of each click, ``size`` at a time.

    ``one_card``: the burst is people clicking the same card (one retry, the rest are told who
    retried); otherwise every click retries a failure of its own, the most work per click.
    """
    clients = [Client(url) for _ in range(size)]
    latencies: list[float] = []
    lock = threading.Lock()
    for _ in range(rounds):
        shared = str(uuid.uuid4())
        requests = [
            click(fakes, shared if one_card else str(uuid.uuid4()), f"U{i:04d}")
            for i in range(size)
        ]
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
        fakes.settled()  # each burst meets a bot that has finished the last one's work
    return latencies


def summary(latencies: list[float]) -> tuple[float, float, float]:
    ms = sorted(x * 1000 for x in latencies)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    return statistics.median(ms), p99, ms[-1]


def webhooks_per_second(url: str, fakes: Fakes) -> float:
    """Failures sent by WEBHOOK_SENDERS at once, until each one's card is posted to Slack."""
    fakes.settled(timeout=120)  # the last run's lookups are over
    bodies = [json.dumps(delivery(identifier=str(uuid.uuid4()))) for _ in range(WEBHOOKS)]
    headers = {"Content-Type": "application/json"}
    path = f"/deployhq/webhook?token={WEBHOOK_SECRET}"
    before = fakes.count(fakes.slack, "/api/chat.postMessage")
    clients = [Client(url) for _ in range(WEBHOOK_SENDERS)]
    started = time.perf_counter()

    def send(i: int) -> None:
        for body in bodies[i::WEBHOOK_SENDERS]:
            status, _ = clients[i].post(path, body, headers)
            assert status == 200, status

    with ThreadPoolExecutor(WEBHOOK_SENDERS) as pool:
        list(pool.map(send, range(WEBHOOK_SENDERS)))
    fakes.wait_count(fakes.slack, "/api/chat.postMessage", before + WEBHOOKS, 120)
    return WEBHOOKS / (time.perf_counter() - started)


def storms(urls: list[str], fakes: Fakes) -> Counter[str]:
    """Each storm: STORM_SIZE concurrent clicks on one failure, alternating between instances."""
    clients = [Client(urls[i % len(urls)]) for i in range(STORM_SIZE)]
    deployments = [str(uuid.uuid4()) for _ in range(STORMS)]
    answered_before = fakes.count(fakes.slack, "/respond/")
    with ThreadPoolExecutor(STORM_SIZE) as pool:
        for deployment in deployments:
            requests = [click(fakes, deployment, f"S{i:04d}") for i in range(STORM_SIZE)]
            start = threading.Barrier(STORM_SIZE)

            def one(i: int, requests: list[Any] = requests, start: Any = start) -> int:
                body, headers = requests[i]
                start.wait()
                return clients[i].post("/slack/events", body, headers)[0]

            assert set(pool.map(one, range(STORM_SIZE))) == {200}
    # Every clicker hears back: the winner with the outcome, the others with who won.
    fakes.wait_count(fakes.slack, "/respond/", answered_before + STORMS * STORM_SIZE, 180)
    wanted = set(deployments)
    retried = (
        path.split("/deployments/")[1].split("/")[0]
        for path in fakes.paths(fakes.deployhq)
        if path.endswith("/retry")
    )
    return Counter(d for d in retried if d in wanted)


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


def bot_env(fakes: Fakes, redis_url: str) -> dict[str, str]:
    """The settings of a bot that talks to the benchmark's fakes and Redis."""
    return {
        "SLACK_BOT_TOKEN": "xoxb-bench",
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fakes.slack + "/api/",
        "SLACK_CHANNEL": "C0BENCH",
        "DEPLOYHQ_ACCOUNT": "bench",
        "DEPLOYHQ_BASE_URL": fakes.deployhq,
        "DEPLOYHQ_USERNAME": "bench@example.com",
        "DEPLOYHQ_API_KEY": "b" * 40,
        "DEPLOYHQ_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "REDIS_URL": redis_url,
        "LOG_LEVEL": "WARNING",
    }


def webhook_table(servers: dict[str, Gunicorn], fakes: Fakes) -> None:
    """The bot's rate against its floor's, alternately, in this one run."""
    print(
        f"Failure webhooks until every card is in Slack ({WEBHOOKS} from {WEBHOOK_SENDERS} "
        f"senders), per second: the bot against its floor (read back, post, inside the request)"
    )
    ratios = []
    for n in range(1, WEBHOOK_ROUNDS + 1):
        floor = webhooks_per_second(servers["bare"].url, fakes)
        bot = webhooks_per_second(servers["bot"].url, fakes)
        ratios.append(bot / floor)
        print(f"  round {n}: bot {bot:.0f}/s, floor {floor:.0f}/s: {bot / floor:.2f}×")
    met = "met" if min(ratios) >= AIM_WEBHOOKS else "NOT met"
    print(f"  aim ≥ {AIM_WEBHOOKS}× the floor: {met} ({min(ratios):.2f}–{max(ratios):.2f}×)\n")


def click_table(servers: dict[str, Gunicorn], fakes: Fakes) -> None:
    print("Click → ack latency in ms (p50 / p99 / max), signed block_actions over HTTP")
    print(
        f"{'burst':>5} {'clicks':>6} | {'bot, one card':>20} | {'bot, own failures':>20} | "
        f"{'bare endpoint':>20} | p99 ratio (aim ≤ {AIM_ACKS}×)"
    )
    worst = 0.0
    for size, rounds in BURSTS.items():
        url = servers["bot"].url
        card = summary(bursts(url, fakes, size, rounds, one_card=True))
        own = summary(bursts(url, fakes, size, rounds, one_card=False))
        bare = summary(bursts(servers["bare"].url, fakes, size, rounds, one_card=False))
        cells = " | ".join(f"{a:>6.1f} {b:>6.1f} {c:>6.1f}" for a, b, c in (card, own, bare))
        ratios = (card[1] / bare[1], own[1] / bare[1])
        worst = max(worst, *ratios)
        print(f"{size:>5} {size * rounds:>6} | {cells} | {ratios[0]:.2f}× / {ratios[1]:.2f}×")
    print("  (own failures at 50: an outage, 50 clicks on 50 different failures at once)")
    print(
        f"  aim ≤ {AIM_ACKS}×: {'met' if worst <= AIM_ACKS else 'NOT met'} (worst {worst:.2f}×)\n"
    )


def main() -> None:
    redis_server = RedisServer()
    redis_server.start()
    fakes = Fakes()
    env = bot_env(fakes, redis_server.url)
    servers = {
        "bot": Gunicorn(env, workers=2),
        "bare": Gunicorn(env, workers=2, app="bench.bare:app"),
        "bot-2": Gunicorn(env, workers=2),
    }
    try:
        for server in servers.values():
            server.wait_ready()
        for name in ("bot", "bare"):  # warm up: first requests pay for imports and auth.test
            bursts(servers[name].url, fakes, 10, 3, one_card=False)
        print(f"Machine: {machine()}")
        print("Bot and floors: the Procfile's gunicorn command, WEB_CONCURRENCY=2, --threads 10\n")
        if "--clicks-only" not in sys.argv:
            webhook_table(servers, fakes)
        if "--webhooks-only" in sys.argv:
            return
        click_table(servers, fakes)
        if "--clicks-only" in sys.argv:
            return
        counts = storms([servers["bot"].url, servers["bot-2"].url], fakes)
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
        fakes.stop()
        redis_server.stop()


if __name__ == "__main__":
    sys.exit(main())
