"""Gunicorn settings and hooks (``--config python:bot.runtime.gunicorn_conf``).

Settings are checked in the master before any worker forks: a worker that exits on bad
settings would otherwise be restarted forever, printing the same message each time.
"""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Any

from gunicorn import glogging

from bot.config import ConfigError, Settings
from bot.logs import scrub_handlers

# prometheus-client's own variable. Not imported from bot.metrics: prometheus-client chooses its
# storage when first imported, so it must not be imported here before this is set.
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"

# A PaaS restarts a dyno with SIGTERM and kills it 30 s later: a worker gets this long to
# finish its requests and the work queued after them (a retry in flight, a card update).
graceful_timeout = 25
# gunicorn's control interface is not used: without this every instance on one machine shares
# one socket ($HOME/.gunicorn/gunicorn.ctl), and stopping one removes another's.
control_socket_disable = True
# The path without its query string: a webhook URL may carry ?token=<secret>.
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms "%(a)s"'
logger_class = "bot.runtime.gunicorn_conf.Logger"
# Threads, as the Procfile's --threads asks, with a deadline on reading each request (see there).
worker_class = "bot.runtime.worker.DeadlineWorker"


class Logger(glogging.Logger):  # type: ignore[misc]
    """gunicorn's logger, at LOG_LEVEL, with every secret scrubbed from its lines."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        try:
            settings = Settings.from_env()
        except ConfigError:
            return  # on_starting reports it and stops
        self.error_log.setLevel(settings.log_level)
        for logger in (self.error_log, self.access_log):
            scrub_handlers(logger, settings.secrets, settings.log_format)


def on_starting(server: Any) -> None:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(exc, file=sys.stderr, flush=True)
        sys.exit(78)  # EX_CONFIG
    for warning in settings.warnings():
        server.log.warning(warning)
    _count_over_workers()
    if settings.redis_url is None:
        if server.num_workers > 1:
            server.log.warning(
                "REDIS_URL is not set: running 1 worker process instead of %d, because the "
                "in-process store keeps a retry single only within one process",
                server.num_workers,
            )
            server.num_workers = 1
        else:
            server.log.warning(
                "REDIS_URL is not set: using the in-process store (one process; locks and "
                "cards are forgotten on restart)"
            )


def _count_over_workers() -> None:
    """prometheus-client's multiprocess mode: each worker writes its counts to files in one
    folder, set (and emptied) here before any worker forks; /metrics sums them."""
    folder = os.environ.get(MULTIPROCESS_DIR) or tempfile.mkdtemp(prefix="deployhq-bot-metrics-")
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):  # counts from a previous run of this dyno
        if name.endswith(".db"):
            os.remove(os.path.join(folder, name))
    os.environ[MULTIPROCESS_DIR] = folder


def child_exit(server: Any, worker: Any) -> None:
    """A dead worker's gauges must not linger (its counters stay counted)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def worker_exit(server: Any, worker: Any) -> None:
    """Close the Socket Mode connection (Slack then sends to the other workers), and finish the
    work queued after acks before the worker goes (within graceful_timeout)."""
    bot = getattr(getattr(worker, "wsgi", None), "bot", None)
    if bot is None:
        return
    if bot.socket_mode is not None:
        bot.socket_mode.close()
    bot.pools.close()
