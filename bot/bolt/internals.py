"""The little of Bolt's internals the bot still needs, fenced here: nothing else imports from
``slack_bolt``'s internal modules or writes a Bolt object after Bolt made it, and
``tests/test_bolt_internals.py`` fails when an upgrade of slack-bolt changes what this relies on.

- **A form body that mentions "payload"**: slack-bolt (1.30 and before) reads any form body
  containing the text ``payload`` as an interactivity payload, so a slash command whose text,
  channel or user name holds that word parses to nothing and Bolt answers 404. Its public
  ``BoltRequest`` takes a dict body only in Socket Mode, so the body and context of such a
  request are set here, as Bolt's own constructor would have set them from the right parse.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from slack_bolt import BoltContext, BoltRequest
from slack_bolt.request.internals import build_context


def read_as_plain_form(bolt: BoltRequest, raw: str) -> BoltRequest:
    """``bolt``, whose raw body ``raw`` Bolt read as no payload, read again as the plain form it
    is (when it is one: a form with no ``payload`` field)."""
    if bolt.body or "payload" not in raw or raw.lstrip().startswith("{"):
        return bolt
    form = dict(parse_qsl(raw, keep_blank_values=True))
    if "payload" in form:
        return bolt
    bolt.body = form
    bolt.context = build_context(BoltContext({}), form)
    return bolt
