"""What the bot relies on of Bolt beyond its public surface, in one module (bot/bolt/internals.py),
held here so that an upgrade of slack-bolt that changes it fails a test rather than a user."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from slack_bolt import App, BoltRequest
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.socket_mode.request import SocketModeRequest

from bot.bolt.internals import read_as_plain_form
from bot.slack.socket_mode import bolt_request

BOT = Path(__file__).resolve().parent.parent / "bot"
COMMAND = {
    "command": "/deployhq",
    "text": "retry payload-api 1234",
    "team_id": "T1",
    "user_id": "U1",
    "channel_id": "C1",
    "channel_name": "deploys",
    "response_url": "https://hooks.slack.com/commands/1/2/3",
    "trigger_id": "1.2.3",
}


def _app(heard: list[dict[str, Any]]) -> App:
    app = App(
        signing_secret="s",
        token_verification_enabled=False,
        request_verification_enabled=False,
        authorize=lambda **_: AuthorizeResult(enterprise_id=None, team_id="T1", bot_token="xoxb"),
        process_before_response=True,
    )

    @app.command("/deployhq")
    def command(ack: Any, body: dict[str, Any]) -> None:
        heard.append(body)
        ack()

    @app.action("deployhq_retry")
    def retry(ack: Any, action: dict[str, Any], context: Any) -> None:
        heard.append({"value": action["value"], "user": context.user_id})
        ack()

    return app


def test_only_the_fenced_module_imports_bolts_internals():
    reaching: list[str] = []
    for path in BOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            module = node.module if isinstance(node, ast.ImportFrom) else None
            if module and module.startswith("slack_bolt") and "internals" in module:
                reaching.append(f"{path.relative_to(BOT)}: {module}")
    assert reaching == ["bolt/internals.py: slack_bolt.request.internals"]


def test_bolt_still_misreads_a_command_that_says_payload_and_the_fence_reads_it_right():
    raw = urlencode(COMMAND)
    headers = {"content-type": ["application/x-www-form-urlencoded"]}
    misread = BoltRequest(body=raw, headers=headers)
    # When this fails, Bolt reads such a body right by itself: the fence can go.
    assert misread.body == {}
    heard: list[dict[str, Any]] = []
    response = _app(heard).dispatch(read_as_plain_form(misread, raw))
    assert response.status == 200
    assert [h["text"] for h in heard] == ["retry payload-api 1234"]
    fixed = read_as_plain_form(BoltRequest(body=raw, headers=headers), raw)
    assert (fixed.context.team_id, fixed.context.user_id, fixed.context.channel_id) == (
        "T1",
        "U1",
        "C1",
    )


def test_a_socket_mode_request_reaches_a_listener_through_bolts_public_dispatch():
    payload = {
        "type": "block_actions",
        "team": {"id": "T1"},
        "user": {"id": "U7"},
        "api_app_id": "A1",
        "actions": [{"action_id": "deployhq_retry", "value": "v1", "type": "button"}],
        "response_url": "https://hooks.slack.com/actions/1/2/3",
    }
    heard: list[dict[str, Any]] = []
    request = SocketModeRequest(
        type="interactive", envelope_id="e1", payload=payload, retry_attempt=1
    )
    made = bolt_request(request)
    assert made.headers.get("x-slack-retry-num") == ["1"]
    assert _app(heard).dispatch(made).status == 200
    assert heard == [{"value": "v1", "user": "U7"}]
