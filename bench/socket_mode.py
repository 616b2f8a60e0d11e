"""Benchmark: Socket Mode through refreshes, drops, resets, silence and refusals, per client.

    python -m bench.socket_mode [--clients ours,builtin,websocket_client] [--faults ...]
                                [--deadline 75]

Each (client, fault) gets a fresh bot, started exactly as the Procfile does (gunicorn, one
worker), fake Slack and DeployHQ servers, a fake Socket Mode endpoint and a private
redis-server. ``ours`` is the bot as it is (bot.socket_mode, default settings: pings every 5 s,
given up after 10 s); ``builtin`` and ``websocket_client`` are the bot with Socket Mode on
Bolt's own adapters instead (slack-sdk's built-in client, as the bot used before, and
websocket-client). Prints one row per fault: the slowest ack of the clicks sent around it (✗:
one was never acked), the time to a new connection, the worker's CPU seconds meanwhile, and the
retries DeployHQ received (1 is right). Not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import logging
import threading

import redis
from flask import Flask
from slack_bolt import App
from slack_sdk import WebClient

from bot.config import Settings
from bot.slack.socket_mode import Status
from tests.support.fakes import FakeDeployHQ, FakeSlack
from tests.support.redis_server import RedisServer
from tests.support.signed import SIGNING_SECRET, WEBHOOK_SECRET, SigningKey
from tests.support.socket_faults import FAULTS, Outcome, Scene
from tests.support.socket_mode import FakeSocketMode

CLIENTS = ("ours", "builtin", "websocket_client")


class BoltAdapter:
    """Socket Mode on one of Bolt's adapters, started as the bot did before bot.socket_mode:
    connect in the background, retried until Slack answers; the adapter reconnects after."""

    def __init__(self, kind: str, app: App, settings: Settings, client: WebClient) -> None:
        if kind == "builtin":
            from slack_bolt.adapter.socket_mode.builtin import SocketModeHandler
        else:
            from slack_bolt.adapter.socket_mode.websocket_client import (  # type: ignore[no-redef]
                SocketModeHandler,
            )
        self.handler = SocketModeHandler(app, settings.slack_app_token)
        self.stop = threading.Event()

    def start(self) -> BoltAdapter:
        def connect() -> None:
            wait = 1.0
            while not self.stop.is_set():
                try:
                    self.handler.connect()
                except Exception:  # as before: try again
                    self.stop.wait(wait)
                    wait = min(wait * 2, 60.0)
                else:
                    return

        threading.Thread(target=connect, daemon=True).start()
        return self

    def close(self) -> None:
        self.stop.set()
        self.handler.close()

    def status(self) -> Status:
        return Status(True, 0.0, None, None, 0, 60.0)  # these adapters do not say


def create_app(kind: str) -> Flask:
    """The bot, with Socket Mode on Bolt's ``kind`` adapter (gunicorn calls this)."""
    import bot.web.factory

    def adapter(app: App, settings: Settings, client: WebClient) -> BoltAdapter:
        return BoltAdapter(kind, app, settings, client)

    bot.web.SocketMode = adapter  # type: ignore[assignment,misc]
    return bot.web.create_app()


def run(client: str, fault: str, deadline: float, redis_url: str, key: SigningKey) -> Outcome:
    slack, deployhq, socket_mode = FakeSlack().start(), FakeDeployHQ().start(), FakeSocketMode()
    redis.Redis.from_url(redis_url).flushdb()
    env = {
        "SLACK_BOT_TOKEN": "xoxb-bench-token",
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.url + "/api/",
        "SLACK_CHANNEL": "C0DEPLOYS",
        "DEPLOYHQ_ACCOUNT": "acme",
        "DEPLOYHQ_BASE_URL": deployhq.url,
        "DEPLOYHQ_USERNAME": "ops@example.com",
        "DEPLOYHQ_API_KEY": "k" * 40,
        "DEPLOYHQ_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "DEPLOYHQ_PUBLIC_KEY": key.public_pem,
        "REDIS_URL": redis_url,
        "LOG_LEVEL": "WARNING",
    }
    app = None if client == "ours" else f"'bench.socket_mode:create_app(\"{client}\")'"
    scene = Scene(env, slack, deployhq, socket_mode, app=app)
    try:
        return scene.play(fault, deadline=deadline)
    finally:
        scene.stop()
        socket_mode.stop()
        slack.stop()
        deployhq.stop()


def row(client: str, outcome: Outcome, deadline: float) -> str:
    ack = outcome.slowest_ack
    if not outcome.acks:
        acks = "no connection to click on"
    elif ack is None:
        acks = f"✗ {outcome.lost} of {len(outcome.acks)} never acked"
    else:
        acks = f"{ack * 1000:.0f} ms"
    reconnect = (
        f"{outcome.reconnect:.2f} s" if outcome.reconnect is not None else f"> {deadline:g} s"
    )
    return (
        f"| {client} | {outcome.fault} | {acks} | {reconnect} | {outcome.cpu:.2f} s "
        f"| {outcome.retries} |"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--faults", default=",".join(FAULTS))
    parser.add_argument(
        "--deadline", type=float, default=75.0, help="seconds to wait for a new connection"
    )
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    key = SigningKey()
    server = RedisServer()
    server.start()
    print(
        "| client | fault | slowest ack | new connection after | worker CPU meanwhile | retries |"
    )
    print("|---|---|---|---|---|---|")
    try:
        for client in args.clients.split(","):
            for fault in args.faults.split(","):
                outcome = run(client, fault, args.deadline, server.url, key)
                print(row(client, outcome, args.deadline), flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
