"""Flask request → Bolt request, as Bolt's own Flask adapter does, with one correction.

slack-bolt 1.30 reads any form body that contains the text "payload" as an interactivity
payload. A slash command whose text, channel name or user name contains that word (say
``/deployhq retry payload-api …``) then parses to nothing, and Bolt answers 404. Such a body
is read here as the plain form it is; the raw body, which the signature covers, is untouched.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from flask import Request, Response
from slack_bolt import App, BoltContext, BoltRequest
from slack_bolt.adapter.flask.handler import to_flask_response
from slack_bolt.request.internals import build_context


def to_bolt_request(request: Request) -> BoltRequest:
    raw = request.get_data(as_text=True)
    bolt = BoltRequest(
        body=raw,
        query=request.query_string.decode("utf-8"),
        headers=request.headers,  # type: ignore[arg-type]  # what Bolt's adapter passes too
    )
    if not bolt.body and "payload" in raw and not raw.lstrip().startswith("{"):
        form = dict(parse_qsl(raw, keep_blank_values=True))
        if "payload" not in form:
            bolt.body = form
            bolt.context = build_context(BoltContext({}), form)
    return bolt


def handle(app: App, request: Request) -> Response:
    return to_flask_response(app.dispatch(to_bolt_request(request)))
