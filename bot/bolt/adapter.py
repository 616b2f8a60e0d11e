"""Flask request → Bolt request: verified on the raw body before anything parses it.

Bolt parses a body before its own signature check, so an unsigned ``payload=[[[[…`` nested
deep enough raised RecursionError (a 500), and a timestamp like ``abc`` made its verifier raise
ValueError. Here the headers are checked for form, then the signature on the raw bytes, and only
a request Slack signed is parsed; what still cannot be read is a 400.

One more correction to Bolt's own Flask adapter: slack-bolt 1.30 reads any form body that
contains the text "payload" as an interactivity payload. A slash command whose text, channel
name or user name contains that word (say ``/deployhq retry payload-api …``) then parses to
nothing, and Bolt answers 404. Such a body is read as the plain form it is (``internals.py``,
the one place that touches Bolt's internals).
"""

from __future__ import annotations

import json
import re
import time

from flask import Request, Response
from slack_bolt import App, BoltRequest
from slack_bolt.adapter.flask.handler import to_flask_response
from slack_sdk.signature import SignatureVerifier

from bot import metrics
from bot.bolt.internals import read_as_plain_form

MAX_CLOCK_SKEW = 5 * 60  # Slack's own limit: older requests may be replays
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")


class Rejected(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def verify(request: Request, verifier: SignatureVerifier) -> bytes:
    """The raw body of a request Slack signed; ``Rejected`` for any other."""
    timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
    signature = request.headers.get("X-Slack-Signature", "")
    if not timestamp or not signature:
        raise Rejected(401, "this request is not signed by Slack")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise Rejected(400, "X-Slack-Request-Timestamp must be whole seconds since 1970")
    if not _SIGNATURE.fullmatch(signature):
        raise Rejected(400, "X-Slack-Signature must be v0= and 64 hex digits")
    if abs(time.time() - int(timestamp)) > MAX_CLOCK_SKEW:
        raise Rejected(401, "this request is too old to be trusted (or the clocks disagree)")
    body = request.get_data(cache=True)
    if not verifier.is_valid(body=body, timestamp=timestamp, signature=signature):
        raise Rejected(401, "the signature does not match SLACK_SIGNING_SECRET")
    return body


def to_bolt_request(request: Request, raw: str) -> BoltRequest:
    try:
        bolt = BoltRequest(
            body=raw,
            query=request.query_string.decode("utf-8", errors="replace"),
            headers=request.headers,  # type: ignore[arg-type]  # what Bolt's adapter passes too
        )
    except (ValueError, RecursionError, TypeError, AttributeError) as exc:
        raise Rejected(400, "the request body cannot be read") from exc
    return read_as_plain_form(bolt, raw)


def handle(app: App, request: Request, verifier: SignatureVerifier) -> Response:
    with metrics.ACK_SECONDS.time():
        return _handle(app, request, verifier)


def _handle(app: App, request: Request, verifier: SignatureVerifier) -> Response:
    try:
        raw = verify(request, verifier).decode("utf-8", errors="replace")
        bolt = to_bolt_request(request, raw)
    except Rejected as rejected:
        return Response(
            json.dumps({"ok": False, "error": rejected.message}),
            rejected.status,
            content_type="application/json",
        )
    return to_flask_response(app.dispatch(bolt))
