"""The WSGI app: Slack's requests, DeployHQ's notifications, a health check and metrics, in
front of the bot ``runtime.wiring.build`` makes.

``gunicorn 'bot.web.factory:create_app()'`` builds one per worker process, so each worker has
its own Redis pool, HTTP session and listener threads. ``create_app`` only wires: where a click goes
(``listeners.actions`` → ``actions``), where a webhook goes (``webhook`` → ``cards``) and how a
card reaches Slack (``outbox`` → ``card_publisher``) read from the constructors below.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, request
from slack_sdk import WebClient
from werkzeug.exceptions import HTTPException

from bot import logs, metrics
from bot.bolt import adapter as slack_adapter
from bot.config import ConfigError, Settings
from bot.deployhq.client import DeployHQ
from bot.deployhq.notifications import MAX_BODY_BYTES
from bot.store.shared import Store
from bot.web.health import health
from bot.web.wiring import Bot, build
from bot.words.buttons import SLACK_EVENTS_PATH, WEBHOOK_PATH

log = logging.getLogger(__name__)


class BotApp(Flask):
    """The Flask app, and the bot it serves (gunicorn's hooks drain its pools on exit)."""

    def __init__(self, bot: Bot) -> None:
        super().__init__(__name__)
        self.bot = bot


def create_app(
    settings: Settings | None = None,
    *,
    client: WebClient | None = None,
    store: Store | None = None,
    deployhq: DeployHQ | None = None,
) -> BotApp:
    """The whole bot behind its routes; collaborators not given are made from ``settings``."""
    if settings is None:
        settings = _settings_or_exit()
    logs.configure(settings.log_level, settings.secrets, settings.log_format)
    bot = build(settings, client=client, store=store, deployhq=deployhq).start()
    flask = BotApp(bot)
    flask.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    _routes(flask, bot)
    return flask


def _routes(flask: Flask, bot: Bot) -> None:
    settings = bot.settings

    @flask.before_request
    def name_the_request() -> None:
        logs.start_request(request.headers.get("X-Request-Id"))

    @flask.get("/metrics")
    def metrics_page() -> Response | tuple[Response, int]:
        if not settings.metrics_token:
            return _error(404, "metrics are off: set METRICS_TOKEN to serve them")
        if not metrics.authorized(request.headers.get("Authorization"), settings.metrics_token):
            return _error(401, "send Authorization: Bearer <METRICS_TOKEN>")
        body, content_type = metrics.exposition()
        return Response(body, content_type=content_type)

    @flask.post(SLACK_EVENTS_PATH)
    def slack_events() -> Response:
        return slack_adapter.handle(bot.bolt, request, bot.verifier)

    @flask.post(WEBHOOK_PATH)
    def deployhq_webhook() -> tuple[Response, int]:
        answer, status = bot.webhook.handle(request)
        return jsonify(answer), status

    @flask.get("/healthz")
    def healthz() -> tuple[Response, int]:
        answer, status = health(bot.store, bot.socket_mode)
        return jsonify(answer), status

    @flask.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        return _error(exc.code or 500, exc.description or exc.name)


def _error(status: int, message: str) -> tuple[Response, int]:
    return jsonify(ok=False, error=message), status


def _settings_or_exit() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        # One readable message instead of a traceback (gunicorn checks before this, in its master).
        raise SystemExit(str(exc)) from None
