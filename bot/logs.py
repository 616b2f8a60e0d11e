"""Logging: one handler on stderr, and no secret in any line, whoever wrote it.

Our own code never logs a secret, but libraries at DEBUG print what they send, and a traceback
can quote anything. So the last step of every line, ours, Bolt's, urllib3's and gunicorn's, is
to replace each configured secret with ``[redacted]``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any
from urllib.parse import quote

from pythonjsonlogger.json import JsonFormatter
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s"
REDACTED = "[redacted]"

REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="-")
"""The Slack request or webhook a line belongs to; background work runs in a copy of the
context that submitted it, so the id follows a click from its ack to the card's update."""
_SANE_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")


def start_request(given: str | None = None) -> str:
    """Name the current request: the router's X-Request-Id when it looks like one, else new."""
    request_id = given if given and _SANE_ID.fullmatch(given) else uuid.uuid4().hex[:16]
    REQUEST_ID.set(request_id)
    return request_id


class _WithRequestId(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = REQUEST_ID.get()
        return True


def formatter(log_format: str) -> logging.Formatter:
    """The readable text format, or (``json``) one JSON object a line for log drains."""
    if log_format == "json":
        return JsonFormatter(
            JSON_FIELDS,
            rename_fields={"asctime": "timestamp", "levelname": "level", "name": "logger"},
        )
    return logging.Formatter(TEXT_FORMAT)


class ScrubbingFormatter(logging.Formatter):
    """Formats with ``inner``, then blanks out every secret (and its URL-encoded form)."""

    def __init__(self, inner: logging.Formatter, secrets: Iterable[str]) -> None:
        super().__init__()
        self.inner = inner
        # As written, URL-encoded, and as JSON would escape it.
        forms = {form for s in secrets if s for form in (s, quote(s, safe=""), json.dumps(s)[1:-1])}
        # Longest first, so a secret containing another is replaced whole.
        self.secrets = sorted(forms, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        return self.scrub(self.inner.format(record))

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text


class _QuietBolt(logging.Filter):
    """Drops Bolt's warning that the bot token "will be unused".

    Bolt reads SLACK_BOT_TOKEN from the environment itself and warns, on every boot, that the
    client we hand it wins; which is what we want, so the warning only misleads.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


class _BotHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Ours, so configuring again replaces it and leaves other handlers alone. It writes to
    whatever ``sys.stderr`` is when a line is written, not the one it was made with."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _: Any) -> None:
        pass


def configure(level: str, secrets: Iterable[str], log_format: str = "text") -> None:
    """Send every log line, scrubbed, to stderr at ``level``; safe to call more than once."""
    handler = _BotHandler()
    handler.addFilter(_WithRequestId())
    handler.setFormatter(ScrubbingFormatter(formatter(log_format), secrets))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _BotHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    bolt = logging.getLogger("slack_bolt.App")
    if not any(isinstance(f, _QuietBolt) for f in bolt.filters):
        bolt.addFilter(_QuietBolt())


def scrub_handlers(
    logger: logging.Logger, secrets: Iterable[str], log_format: str = "text"
) -> None:
    """Wrap the formatters of ``logger``'s own handlers (gunicorn's error and access logs);
    with ``json``, they write JSON lines too."""
    secrets = tuple(secrets)
    for handler in logger.handlers:
        inner = handler.formatter or logging.Formatter()
        if isinstance(inner, ScrubbingFormatter):
            inner = inner.inner
        if log_format == "json":
            handler.addFilter(_WithRequestId())
            inner = formatter("json")
        handler.setFormatter(ScrubbingFormatter(inner, secrets))
