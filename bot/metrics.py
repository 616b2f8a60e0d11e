"""What the bot is doing, for Prometheus: instruments declared once, counted where the outcome
is decided. Under gunicorn, counts are summed over every worker (prometheus-client's multiprocess
mode, set up by gunicorn_conf before the workers fork), so any scrape sees the same totals."""

from __future__ import annotations

import hmac
import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"

# Each action's counter, by name (as the table of actions in words/actions.py names it).
ACTIONS: dict[str, Counter] = {}


def _action_counter(name: str, documentation: str, labels: list[str]) -> Counter:
    counter = Counter(name, documentation, labels)
    ACTIONS[name] = counter
    return counter


WEBHOOKS = Counter(
    "deployhq_bot_webhooks_total",
    "DeployHQ notifications, by what became of them",
    ["result"],  # accepted, updated, queued, duplicate, stale, too-old, ignored, refused
)
RETRIES = _action_counter(
    "deployhq_bot_retries_total",
    "Retry requests (buttons and /deployhq retry), by outcome",
    ["outcome"],  # retried, refused, failed, in-doubt, superseded, overtaken, busy, ...
)
DEPLOYS = _action_counter(
    "deployhq_bot_deploys_total",
    "Deploy latest requests (the card's button), by outcome",
    ["outcome"],  # deployed, out-of-date, and the retries' others
)
ABORTS = _action_counter(
    "deployhq_bot_aborts_total",
    "Abort requests (the card's button), by outcome",
    ["outcome"],  # aborted, superseded, and the retries' others
)
AUTO_DEPLOYS = _action_counter(
    "deployhq_bot_auto_deploy_changes_total",
    "Pauses and resumes of automatic deployments (the card's buttons, /deployhq freeze), by "
    "outcome",
    ["outcome"],  # paused, resumed, superseded, and the retries' others
)
HOME_VIEWS = Counter(
    "deployhq_bot_home_views_total",
    "App Home tabs published, by outcome",
    ["outcome"],  # published, failed
)
ROLLBACKS = _action_counter(
    "deployhq_bot_rollbacks_total",
    "Rollback requests (buttons and /deployhq rollback), by outcome",
    ["outcome"],
)
APPROVALS = Counter(
    "deployhq_bot_approvals_total",
    "Requests for a second person's approval, by how each ended",
    ["outcome"],  # approved, denied, expired, refused
)
ACK_SECONDS = Histogram(
    "deployhq_bot_ack_seconds",
    "Time to acknowledge a Slack request (Slack gives up after 3 s)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0),
)
DEPLOYHQ_SECONDS = Histogram(
    "deployhq_bot_deployhq_request_seconds",
    "DeployHQ API calls, by call, however they ended",
    ["call"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 60.0),
)
SLACK_ERRORS = Counter(
    "deployhq_bot_slack_errors_total",
    "Slack Web API calls that failed after the client's own retries",
    ["method", "error"],
)
SOCKET_MODE_CONNECTIONS = Gauge(
    "deployhq_bot_socket_mode_connections",
    "Open Socket Mode connections to Slack (each worker holds one; two while one is refreshed)",
    multiprocess_mode="livesum",  # summed over the workers that are alive
)
SOCKET_MODE_DOWN_SINCE = Gauge(
    "deployhq_bot_socket_mode_down_since_seconds",
    "Since when (Unix time) this worker has had no Socket Mode connection; 0 while it has one",
    multiprocess_mode="liveall",  # one value per live worker: /healthz checks every one
)
SOCKET_MODE_RECONNECTS = Counter(
    "deployhq_bot_socket_mode_reconnects_total",
    "Socket Mode connections replaced or retried, by cause",
    ["cause"],  # refresh, closed, dropped, reset, no-pong, refused, unreachable
)


def authorized(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <token>`` (constant time)."""
    given = (header or "").removeprefix("Bearer ").encode()
    return bool(header and header.startswith("Bearer ")) and hmac.compare_digest(
        given, token.encode()
    )


def socket_mode_workers() -> list[float] | None:
    """Each live worker's ``down since`` (0: connected), when gunicorn's workers share their
    metrics; None in a single process (its own state is all there is)."""
    if not os.environ.get(MULTIPROCESS_DIR):
        return None
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return [
        sample.value
        for metric in registry.collect()
        if metric.name == "deployhq_bot_socket_mode_down_since_seconds"
        for sample in metric.samples
    ]


def exposition() -> tuple[bytes, str]:
    """The metrics in Prometheus' text format, summed over every worker when under gunicorn."""
    if os.environ.get(MULTIPROCESS_DIR):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
