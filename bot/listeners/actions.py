"""Button clicks. Each is acknowledged at once; the work runs after the answer has left."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, Respond

from bot import messages
from bot.background import Background
from bot.retries import Retries, RetryResult
from bot.routing import OPEN_ACTION, RETRY_ACTION, ROLLBACK_ACTION, RetryTarget, RollbackTarget

log = logging.getLogger(__name__)


def register(app: App, retries: Retries, background: Background) -> None:
    def retry_clicked(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()  # the answer leaves when this returns; the retry itself runs after it
        log.info("Retry clicked by %s", (body.get("user") or {}).get("id"))
        background.run("retry click", retry, retries, body, respond)

    def rollback_clicked(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        log.info("Roll back clicked by %s", (body.get("user") or {}).get("id"))
        background.run("rollback click", rollback, retries, body, respond)

    app.action(RETRY_ACTION)(retry_clicked)
    app.action(ROLLBACK_ACTION)(rollback_clicked)
    # A link button still reports its click; answer it so Slack shows no error.
    app.action(OPEN_ACTION)(acknowledge)


def retry(retries: Retries, body: dict[str, Any], respond: Respond) -> None:
    """Retry what the clicked button names, answering the clicker privately when needed."""
    _act(body, respond, "retry", RetryTarget.decode, retries.retry, messages.retry_note)


def rollback(retries: Retries, body: dict[str, Any], respond: Respond) -> None:
    """Roll back what the clicked button names, answering the clicker privately when needed."""
    _act(body, respond, "rollback", RollbackTarget.decode, retries.rollback, messages.rollback_note)


def _act(
    body: dict[str, Any],
    respond: Respond,
    action: str,
    decode: Callable[[str], Any],
    act: Callable[[Any, str, Callable[[str], None]], RetryResult],
    outcome_note: Callable[[Any, Any], str],
) -> None:
    user_id = str((body.get("user") or {}).get("id", ""))
    actions = body.get("actions") or [{}]
    try:
        target = decode(str(actions[0].get("value", "")))
    except ValueError as exc:
        log.warning("%s click by %s with an unreadable button: %s", action, user_id, exc)
        done = "retried" if action == "retry" else "rolled back"
        tell(respond, f"This button no longer names a deployment; nothing was {done}.")
        return
    result = act(target, user_id, lambda text: tell(respond, text))
    if result.state is not None and not result.card_updated:
        tell(respond, outcome_note(result.state, result.deployment))


def acknowledge(ack: Ack) -> None:
    ack()


def tell(respond: Respond, mrkdwn: str) -> None:
    """A private note to whoever clicked; a failure to send it is logged, never raised."""
    try:
        respond(response_type="ephemeral", replace_original=False, **messages.notice(mrkdwn))
    except Exception:
        log.exception("could not send a private note through the response URL")
