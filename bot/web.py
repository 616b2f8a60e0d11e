"""The WSGI app: Slack's requests, DeployHQ's notifications and a health check.

``gunicorn 'bot.web:create_app()'`` builds one per worker process, so each worker has its own
Redis pool, HTTP session and listener threads.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from flask import Flask, Request, Response, jsonify, request
from slack_sdk import WebClient
from slack_sdk.signature import SignatureVerifier
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from bot import logs, metrics, slack_adapter
from bot.app import build_app
from bot.background import EXTENSION, Pools
from bot.cards import Cards
from bot.config import ConfigError, Settings
from bot.deployhq import DeployHQ
from bot.deployments import FAILED
from bot.identity import Identity
from bot.notifications import MAX_BODY_BYTES, WebhookAuth, WebhookRejected, read_notification
from bot.outbox import Outbox
from bot.permissions import RetryPolicy
from bot.reconcile import Reconciler
from bot.retries import Retries
from bot.routing import SLACK_EVENTS_PATH, WEBHOOK_PATH
from bot.services import deployhq_client, open_store, slack_client, slack_poster
from bot.socket_mode import SocketMode
from bot.store import Store, StoreUnavailable

log = logging.getLogger(__name__)

RECONCILER = "deployhq-bot.reconciler"
SOCKET_MODE = "deployhq-bot.socket-mode"


def create_app(
    settings: Settings | None = None,
    *,
    client: WebClient | None = None,
    store: Store | None = None,
    deployhq: DeployHQ | None = None,
) -> Flask:
    """Build the whole bot; collaborators not given are made from ``settings``."""
    if settings is None:
        settings = _settings_or_exit()
    logs.configure(settings.log_level, settings.secrets, settings.log_format)
    given_client = client
    client = client or slack_client(settings)
    store = store or open_store(settings)
    deployhq = deployhq or deployhq_client(settings)
    pools = Pools.create()
    cards = Cards(
        client,
        store,
        settings.deployhq_web_url,
        deployhq=deployhq,
        max_delivery_age=timedelta(seconds=settings.max_delivery_age),
        lookups=pools.lookups,
        poster=slack_poster(settings) if given_client is None else given_client,
        slack_timeout=settings.slack_timeout,
    )
    outbox = Outbox(cards.sync, pools.slack)
    cards.show = outbox.show
    policy = RetryPolicy(
        settings.retry_allowed_users,
        settings.retry_allowed_usergroups,
        client=client,
        store=store,
        projects=settings.projects,
    )
    retries = Retries(
        deployhq,
        store,
        cards,
        policy,
        doubt_seconds=settings.retry_doubt_seconds,
        deadline_seconds=settings.deployhq_timeout,
    )
    reconciler = Reconciler(store, cards, retries, deployhq, interval=settings.reconcile_interval)
    recheck_after = min(10.0, settings.deployhq_timeout + 1)
    retries.recheck = lambda target: pools.retries.later(
        recheck_after, "re-checking an in-doubt retry", reconciler.check, target.deployment
    )
    identity = Identity(client, settings.slack_bot_token)
    bolt = build_app(
        settings,
        client=client,
        identity=identity,
        retries=retries,
        deployhq=deployhq,
        cards=cards,
        pools=pools,
    )
    verifier = SignatureVerifier(settings.slack_signing_secret)
    webhook_auth = WebhookAuth(settings.deployhq_webhook_secret, settings.deployhq_public_key)
    identity.start()
    reconciler.start()
    socket_mode = None
    if settings.slack_app_token:
        socket_mode = SocketMode(bolt, settings, client).start()

    flask = Flask(__name__)
    flask.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    flask.extensions[EXTENSION] = pools  # drained by gunicorn's worker_exit
    flask.extensions[RECONCILER] = reconciler
    flask.extensions[SOCKET_MODE] = socket_mode  # closed by gunicorn's worker_exit

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
        return slack_adapter.handle(bolt, request, verifier)

    @flask.post(WEBHOOK_PATH)
    def deployhq_webhook() -> tuple[Response, int]:
        token = request.args.get("token")
        if token is None and request.authorization is not None:
            token = request.authorization.password  # Basic auth carries the secret instead
        try:
            deployment = read_notification(
                read_body(request), request.mimetype, token, webhook_auth
            )
        except WebhookRejected as rejected:
            log.warning("webhook refused (%s): %s", rejected.status, rejected.message)
            metrics.WEBHOOKS.labels("refused").inc()
            return _error(rejected.status, rejected.message)
        project = deployment.project_permalink
        channel = request.args.get("channel") or settings.channel_for(project)
        if channel not in settings.channels:
            log.warning("webhook refused: ?channel=%s is not a configured channel", channel[:40])
            metrics.WEBHOOKS.labels("refused").inc()
            return _error(
                403, "?channel= must be SLACK_CHANNEL or a channel named in DEPLOYHQ_CHANNELS"
            )
        if not policy.serves(project):
            log.info("notification for %s ignored: not in DEPLOYHQ_PROJECTS", project)
            metrics.WEBHOOKS.labels("ignored").inc()
            return jsonify(ok=True, result="ignored", deployment=deployment.identifier), 200
        try:
            result = cards.on_notification(deployment, channel)
        except StoreUnavailable:
            log.warning("store unavailable; deployment %s handled without it", deployment.run_key)
            # Later statuses need the card's place, so only failures can go ahead.
            result = "accepted" if deployment.status == FAILED else "ignored"
            if result == "accepted":
                pools.slack.run(
                    "posting without the store", cards.post_without_store, deployment, channel
                )
        metrics.WEBHOOKS.labels(result).inc()
        log.info(
            "notification %s %s: %s",
            deployment.identifier,
            deployment.status,
            result,
            extra={"deployment": deployment.identifier, "outcome": result},
        )
        answer: dict[str, object] = {
            "ok": True,
            "result": result,
            "deployment": deployment.identifier,
        }
        refusal = cards.channel_refusal(channel)
        if refusal:
            answer["warning"] = f"Slack refuses posts to {channel}: {refusal}"
        return jsonify(answer), 200

    @flask.get("/healthz")
    def healthz() -> tuple[Response, int]:
        """200 while the bot can work: the store answers and, with Socket Mode, this worker
        has held a connection to Slack within the last SOCKET_MODE_HEALTH_GRACE seconds."""
        answer: dict[str, object] = {"ok": True, "store": store.backend}
        try:
            store.ping()
        except StoreUnavailable as exc:
            answer.update(ok=False, error=str(exc))
        if socket_mode is not None:
            state = socket_mode.status()
            answer["socket_mode"] = state.as_json()
            if not state.healthy:
                answer["ok"] = False
                answer.setdefault(
                    "error", f"no Socket Mode connection to Slack for {state.down_for:.0f} s"
                )
            workers = metrics.socket_mode_workers()
            if workers:  # every worker of this server, not just the one answering
                now = time.time()
                deaf = [since for since in workers if since and now - since > state.grace]
                answer["socket_mode_workers"] = {
                    "workers": len(workers),
                    "connected": sum(1 for since in workers if not since),
                }
                if deaf:
                    answer["ok"] = False
                    answer.setdefault(
                        "error",
                        f"{len(deaf)} of {len(workers)} workers have had no Socket Mode "
                        f"connection for over {state.grace:.0f} s",
                    )
        return jsonify(answer), 200 if answer["ok"] else 503

    @flask.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        return _error(exc.code or 500, exc.description or exc.name)

    return flask


def read_body(request: Request) -> bytes:
    """The body, at most MAX_BODY_BYTES; a longer one is 413, with or without Content-Length."""
    chunks: list[bytes] = []
    size = 0
    while size <= MAX_BODY_BYTES:  # a chunked body arrives a chunk per read
        chunk = request.stream.read(MAX_BODY_BYTES + 1 - size)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
    raise RequestEntityTooLarge()


def _error(status: int, message: str) -> tuple[Response, int]:
    return jsonify(ok=False, error=message), status


def _settings_or_exit() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        # One readable message instead of a traceback (gunicorn checks before this, in its master).
        raise SystemExit(str(exc)) from None
