"""Gunicorn hooks (``--config python:bot.gunicorn_conf``).

Settings are checked in the master before any worker forks: a worker that exits on bad
settings would otherwise be restarted forever, printing the same message each time.
"""

from __future__ import annotations

import sys
from typing import Any

from bot.config import ConfigError, Settings


def on_starting(server: Any) -> None:
    try:
        Settings.from_env()
    except ConfigError as exc:
        print(exc, file=sys.stderr, flush=True)
        sys.exit(78)  # EX_CONFIG
