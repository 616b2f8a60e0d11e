"""DeployHQ's notifications, as ``/deployhq/webhook`` receives them: authenticated, read,
scoped to the configured channels and projects, recorded on the card, answered.

The answer leaves as soon as the delivery is recorded; the card is posted or updated after it,
by the outbox. Its ``result``: ``accepted`` (a new failure, to confirm with DeployHQ and post),
``updated``, ``queued``, ``duplicate``, ``stale``, ``too-old`` or ``ignored``.
"""

from __future__ import annotations

import logging
import time

from flask import Request
from werkzeug.exceptions import RequestEntityTooLarge

from bot import metrics
from bot.actions.permissions import AccessPolicy
from bot.cards.changes import Cards
from bot.cards.publisher import Publisher
from bot.config import Settings
from bot.deployhq.deployment import FAILED
from bot.deployhq.notifications import (
    MAX_BODY_BYTES,
    WebhookAuth,
    WebhookRejected,
    read_notification,
)
from bot.runtime.background import Runner
from bot.store.kv import WithoutStore
from bot.store.shared import AutoDeployLedger

log = logging.getLogger(__name__)
# A burst of deliveries records when the last one came once a second per process, not each time.
HEARD_EVERY = 1.0
# What a missing store means to the web app, decided here: a failure's card is still posted
# (without its record, so a delivery sent again may post it again), any other status is ignored
# (it needs the card's place), and /healthz answers 503 naming the store's problem.
WITHOUT_STORE = WithoutStore(
    "web",
    {
        "notification": "a failure's card is posted without its record; any other status is "
        "ignored",
        "health": "/healthz answers 503 with the store's problem",
    },
    quiet=frozenset({"health"}),
)

Answer = tuple[dict[str, object], int]


class Webhook:
    def __init__(
        self,
        settings: Settings,
        *,
        auth: WebhookAuth,
        policy: AccessPolicy,
        cards: Cards,
        publisher: Publisher,
        slack: Runner,
        ledger: AutoDeployLedger | None = None,
    ) -> None:
        self.settings = settings
        self.auth = auth
        self.policy = policy
        self.cards = cards
        self.publisher = publisher  # posts a failure itself while the store is down
        self.slack = slack
        self.ledger = ledger  # when the last notification arrived, for the App Home
        self._heard = 0.0  # when this process last said so

    def handle(self, request: Request) -> Answer:
        token = request.args.get("token")
        if token is None and request.authorization is not None:
            token = request.authorization.password  # Basic auth carries the secret instead
        try:
            deployment = read_notification(read_body(request), request.mimetype, token, self.auth)
        except WebhookRejected as rejected:
            log.warning("webhook refused (%s): %s", rejected.status, rejected.message)
            metrics.WEBHOOKS.labels("refused").inc()
            return {"ok": False, "error": rejected.message}, rejected.status
        now = time.time()
        if self.ledger is not None and now - self._heard >= HEARD_EVERY:
            self._heard = now  # an authenticated delivery: the App Home says when (to a second)
            self.ledger.heard("notification", now)
        project = deployment.project_permalink
        channel = request.args.get("channel") or self.settings.channel_for(project)
        if channel not in self.settings.channels:
            log.warning("webhook refused: ?channel=%s is not a configured channel", channel[:40])
            metrics.WEBHOOKS.labels("refused").inc()
            return {
                "ok": False,
                "error": "?channel= must be SLACK_CHANNEL or a channel named in DEPLOYHQ_CHANNELS",
            }, 403
        if not self.policy.serves(project):
            log.info("notification for %s ignored: not in DEPLOYHQ_PROJECTS", project)
            metrics.WEBHOOKS.labels("ignored").inc()
            return {"ok": True, "result": "ignored", "deployment": deployment.identifier}, 200
        result = ""
        with WITHOUT_STORE.step("notification", deployment.run_key) as store:
            result = self.cards.on_notification(deployment, channel)
        if store.missing:  # later statuses need the card's place: only failures go ahead
            result = "accepted" if deployment.status == FAILED else "ignored"
            if result == "accepted":
                self.slack.run(
                    "posting without the store",
                    self.publisher.post_unrecorded,
                    deployment,
                    channel,
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
        refusal = self.publisher.channel_refusal(channel)
        if refusal:
            answer["warning"] = f"Slack refuses posts to {channel}: {refusal}"
        return answer, 200


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
