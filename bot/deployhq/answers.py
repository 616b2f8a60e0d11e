"""What DeployHQ's answers say when they are not what was asked for: its own words, in each
shape it answers with, and how long it asks to be left alone (``Retry-After``)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

MAX_MESSAGE = 500
MAX_RETRY_AFTER = 300.0  # no answer can silence the bot for longer


def error_message(status: int, reason: str, raw: bytes) -> str:
    """DeployHQ's own words, in each shape it answers with: ``{"error"}`` (also with
    ``status``, ``error_code``), ``{"message", "upgrade_url"}`` (a plan limit),
    ``{"errors": [...]}``, ``{"field": ["msg", ...]}`` or ``{"field": "msg"}`` (whole-object
    errors under ``base``), or a short text body; a proxy's HTML page says only its status."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        body = None
    message = ""
    if isinstance(body, dict):
        if isinstance(body.get("error"), str):
            message = body["error"]
        elif isinstance(body.get("message"), str):
            message = body["message"]
            if isinstance(body.get("upgrade_url"), str):
                message += f" (upgrade: {body['upgrade_url']})"
        elif isinstance(body.get("errors"), list):
            message = "; ".join(str(m) for m in body["errors"] if isinstance(m, str | int))
        else:
            parts = []
            for field, said in body.items():
                said_list = said if isinstance(said, list) else [said]
                words = ", ".join(str(m) for m in said_list if isinstance(m, str))
                if words:
                    parts.append(words if field == "base" else f"{field} {words}")
            message = "; ".join(parts)
    elif body is None:
        text = raw.decode("utf-8", errors="replace").strip()
        if text and "<" not in text[:200]:  # a short plain-text reason, not an HTML error page
            message = text
    message = " ".join(message.split())
    if not message:
        message = f"HTTP {status} {reason or ''}".strip()
    return message[:MAX_MESSAGE]


def retry_after(value: str) -> float | None:
    """A ``Retry-After`` header's seconds (given as seconds or as an HTTP date), at most
    MAX_RETRY_AFTER; None when there is none or it cannot be read."""
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            return None
    if not math.isfinite(seconds):
        return None
    return min(MAX_RETRY_AFTER, max(0.0, seconds))
