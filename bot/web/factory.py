"""The WSGI app: Slack's requests, DeployHQ's notifications, a health check and metrics.

``gunicorn 'bot.web.factory:create_app()'`` builds one per worker process, so each worker has
its own Redis pool, HTTP session and listener threads. ``create_app`` only wires: where a click goes
(``listeners.actions`` → ``actions``), where a webhook goes (``webhook`` → ``cards``) and how a
card reaches Slack (``outbox`` → ``card_publisher``) read from the constructors below.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import Flask, Response, jsonify, request
from slack_sdk import WebClient
from slack_sdk.signature import SignatureVerifier
from werkzeug.exceptions import HTTPException

from bot import logs, metrics
from bot.actions.deploy import ChannelMessages, DeployOrders
from bot.actions.deploy_plan import Deploys
from bot.actions.on_card import CardActions
from bot.actions.permissions import AccessPolicy
from bot.actions.pipeline import Actions
from bot.actions.settle import Settler
from bot.cards.changes import Cards
from bot.cards.deliveries import Deliveries
from bot.cards.explain import Explainer
from bot.cards.outbox import Outbox
from bot.cards.publisher import Publisher
from bot.cards.reconcile import Reconciler
from bot.config import ConfigError, Settings
from bot.deployhq.client import DeployHQ
from bot.deployhq.notifications import MAX_BODY_BYTES, WebhookAuth
from bot.runtime.background import EXTENSION, Pools
from bot.runtime.connections import deployhq_client, open_store
from bot.slack import adapter as slack_adapter
from bot.slack.app import build_app
from bot.slack.client import slack_client, slack_poster
from bot.slack.identity import Identity
from bot.slack.members import Deployers
from bot.slack.routing import SLACK_EVENTS_PATH, WEBHOOK_PATH
from bot.slack.socket_mode import SocketMode
from bot.store.shared import Store
from bot.web.health import health
from bot.web.webhook import Webhook

log = logging.getLogger(__name__)

RECONCILER = "deployhq-bot.reconciler"
ACTIONS = "deployhq-bot.actions"
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
    poster = client or slack_poster(settings)
    client = client or slack_client(settings)
    store = store or open_store(settings)
    deployhq = deployhq or deployhq_client(settings, store.pauses)
    pools = Pools.create()

    # A card: its record first (cards), then Slack (outbox → publisher), then why it failed.
    deliveries = Deliveries(
        store.cards, max_delivery_age=timedelta(seconds=settings.max_delivery_age)
    )
    publisher = Publisher(
        client,
        store.cards,
        deliveries,
        settings.deployhq_web_url,
        deployhq=deployhq,
        poster=poster,
        slack_timeout=settings.slack_timeout,
    )
    deployers = Deployers(client, store.deployers) if settings.mention_deployer else None
    explainer = Explainer(deployhq, store.cards, deployers)
    outbox = Outbox(publisher, explainer, slack=pools.slack, lookups=pools.lookups)
    cards = Cards(store.cards, deliveries, outbox)

    # An action: who may, the pipeline, and what settles it when DeployHQ's answer is lost.
    policy = AccessPolicy(
        settings.retry_allowed_users,
        settings.retry_allowed_usergroups,
        client=client,
        cache=store.usergroups,
        projects=settings.projects,
    )
    kinds = CardActions(deployhq, cards)
    messages = ChannelMessages(poster, client, settings.slack_channel)
    orders = DeployOrders(deployhq, store.orders, messages)
    settler = Settler(store.claims)
    reconciler = Reconciler(
        store,
        cards,
        outbox,
        settler,
        deployhq,
        kinds,
        orders,
        interval=settings.reconcile_interval,
    )
    actions = Actions(
        store.claims,
        settler,
        policy=policy,
        rechecks=pools.retries,
        doubt_seconds=settings.retry_doubt_seconds,
        deadline_seconds=settings.deployhq_timeout,
    )
    deploys = Deploys(deployhq, store.orders)

    identity = Identity(client, settings.slack_bot_token)
    bolt = build_app(
        settings,
        client=client,
        identity=identity,
        actions=actions,
        kinds=kinds,
        orders=orders,
        policy=policy,
        deployhq=deployhq,
        pools=pools,
        deploys=deploys,
    )
    verifier = SignatureVerifier(settings.slack_signing_secret)
    webhook = Webhook(
        settings,
        auth=WebhookAuth(settings.deployhq_webhook_secret, settings.deployhq_public_key),
        policy=policy,
        cards=cards,
        publisher=publisher,
        slack=pools.slack,
    )
    identity.start()
    reconciler.start()
    socket_mode = None
    if settings.slack_app_token:
        socket_mode = SocketMode(bolt, settings, client).start()

    flask = Flask(__name__)
    flask.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    flask.extensions[EXTENSION] = pools  # drained by gunicorn's worker_exit
    flask.extensions[RECONCILER] = reconciler
    flask.extensions[ACTIONS] = actions
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
        answer, status = webhook.handle(request)
        return jsonify(answer), status

    @flask.get("/healthz")
    def healthz() -> tuple[Response, int]:
        answer, status = health(store, socket_mode)
        return jsonify(answer), status

    @flask.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        return _error(exc.code or 500, exc.description or exc.name)

    return flask


def _error(status: int, message: str) -> tuple[Response, int]:
    return jsonify(ok=False, error=message), status


def _settings_or_exit() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        # One readable message instead of a traceback (gunicorn checks before this, in its master).
        raise SystemExit(str(exc)) from None
